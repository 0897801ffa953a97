import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// Snapshots are signed with a key outside the state dir (default ~/.config/trustplay): tests use a
// key of their own in a temp dir (removed by test/support/global-setup.ts) so they never touch home.
const keyDir = join(tmpdir(), `trustplay-vitest-${process.pid}`);
process.env['TRUSTPLAY_TEST_KEY_DIR'] = keyDir;

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // End-to-end suites share one lab (real containerd, registry, sshd); run files one at a time
    // so two suites never fight over the same nodes.
    fileParallelism: false,
    env: { TRUSTPLAY_SNAPSHOT_KEY_FILE: join(keyDir, 'snapshot.key') },
    globalSetup: ['test/support/global-setup.ts'],
  },
});
