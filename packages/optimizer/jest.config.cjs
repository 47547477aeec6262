module.exports = {
  ...require('../../jest.preset.cjs'),
  displayName: 'optimizer',
  rootDir: __dirname,
  // Fail loudly on timers, sockets or servers a test leaves open (issue 11).
  detectOpenHandles: true,
};
