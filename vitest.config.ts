import { defineConfig } from 'vitest/config';

// Three projects: `unit` needs nothing running; `workflow` runs the training-process
// workflow against fake activities on a Temporal server each test file starts (no
// PostgreSQL, no sshd); `integration` gets a Temporal dev server, a fresh PostgreSQL
// database and (when a test asks) a loopback sshd from the global setup.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'workflow',
          include: ['test/workflow/**/*.test.ts'],
          environment: 'node',
          testTimeout: 30_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
