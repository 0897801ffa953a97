/** Removes the test run's snapshot key dir (see vitest.config.ts) when the run ends. */
import { rmSync } from 'node:fs';

export default function setup(): () => void {
  return () => {
    const dir = process.env['TRUSTPLAY_TEST_KEY_DIR'];
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
}
