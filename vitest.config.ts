import { defineConfig } from 'vitest/config';

// Three tiers: unit (mocks, no server), integration (library ↔ real S3 server) and e2e (the
// built CLI ↔ real S3 server). The server tiers share one global setup that starts the local
// Ceph RGW through scripts/s3-server.sh unless S3_ENDPOINT points elsewhere.
export default defineConfig({
  test: {
    reporters: ['default', './test/setup/summary-reporter.ts'],
    // The SDK's Node-version notice is noise in test logs (the CLI hides it too).
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'server',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/setup/s3-server.ts'],
          // One file at a time: fault tests restart the shared gateway, interrupt tests time signals.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
