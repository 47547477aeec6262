module.exports = {
  ...require('../../jest.preset.cjs'),
  displayName: 'planner',
  rootDir: __dirname,
};
