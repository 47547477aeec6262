// Shared jest settings: ts-jest on the sources (no build step), workspace packages resolved to
// their TypeScript sources through the same path map the compiler uses.
const path = require('node:path');
const root = __dirname;
const names = ['proto', 'service-kit', 'planner', 'gpu-agent', 'profiler', 'optimizer', 'cli'];
const moduleNameMapper = Object.fromEntries(
  names.map((n) => [`^@perseus/${n}$`, path.join(root, 'packages', n, 'src', 'index.ts')]),
);
module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: path.join(root, 'tsconfig.base.json') }],
  },
  moduleFileExtensions: ['ts', 'js', 'json'],
  moduleNameMapper,
  testMatch: ['<rootDir>/test/**/*.test.ts', '<rootDir>/src/**/*.test.ts'],
  testTimeout: 30000,
};
