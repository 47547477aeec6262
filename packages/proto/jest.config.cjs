module.exports = { ...require('../../jest.preset.cjs'), displayName: 'proto', rootDir: __dirname };
