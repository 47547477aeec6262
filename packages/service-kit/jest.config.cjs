module.exports = {
  ...require('../../jest.preset.cjs'),
  displayName: 'service-kit',
  rootDir: __dirname,
  // Fail loudly on timers, sockets or servers a test leaves open (issue 11).
  detectOpenHandles: true,
};
