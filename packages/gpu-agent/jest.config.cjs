module.exports = {
  ...require('../../jest.preset.cjs'),
  displayName: 'gpu-agent',
  rootDir: __dirname,
};
