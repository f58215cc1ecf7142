const selected = (process.env.WEBHOOK_TEST_DATABASES ?? 'sqlite').split(',').map((name) => name.trim());
// The guarantee tests run several worker processes on one database server: with SQLite alone there is none.
const withServer = selected.includes('postgres') || selected.includes('mariadb');

/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.spec.ts'],
  testPathIgnorePatterns: ['/node_modules/', ...(withServer ? [] : ['/test/e2e/guarantees\\.e2e\\.spec\\.ts$'])],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  setupFiles: ['<rootDir>/test/setup-env.ts'],
  testTimeout: 60000,
};
