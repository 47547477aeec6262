module.exports = {
  ...require('../../jest.preset.cjs'),
  displayName: 'optimizer',
  rootDir: __dirname,
};
