import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // End-to-end suites share one lab (real containerd, registry, sshd); run files one at a time
    // so two suites never fight over the same nodes.
    fileParallelism: false,
  },
});
