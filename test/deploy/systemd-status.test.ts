/**
 * The systemd unit's promise: `systemctl status trustplay-check` shows the last verdict line. The
 * journal gets the unit's stdout and stderr on one stream, so the unit's own command line, run with
 * both on one file, must end with the verdict (with `--format json` too, whose stdout ends in `}`).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let dir: string;
const lastLine = (s: string) => s.trim().split('\n').at(-1) ?? '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustplay-unit-'));
  await writeFile(join(dir, 'creds.json'), '{"auths": {}}\n');
  await writeFile(join(dir, 'local.yaml'), 'hosts:\n  here: { connection: local }\n');
  await writeFile(
    join(dir, 'good.yaml'),
    `- hosts: all\n  tasks:\n    - name: wipe\n      node.creds.wipe:\n        registry: registry.test:5000\n        paths: ["${dir}/creds.json"]\n        containerd_auth: false\n`,
  );
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the systemd unit', () => {
  it('ends its journal output (stdout and stderr on one stream) with the verdict line', async () => {
    // The unit's own ExecStart, pointed at this test's files; journald gets both streams on one fd.
    const unit = readFileSync(new URL('../../deploy/systemd/trustplay-check.service', import.meta.url), 'utf8');
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(/\s+/).slice(1);
    const args = exec.map((a) =>
      a.endsWith('fix-registry.yaml')
        ? join(dir, 'good.yaml')
        : a.endsWith('inventory.yaml')
          ? join(dir, 'local.yaml')
          : a.startsWith('/var/lib/')
            ? join(dir, a.split('/').at(-1)!)
            : a,
    );
    expect(args).toContain('--format');
    const journal = join(dir, 'journal.log');
    const fd = openSync(journal, 'w');
    try {
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
        cwd: fileURLToPath(new URL('../../', import.meta.url)),
        env: { ...process.env, TRUSTPLAY_LOCK_DIR: dir, NO_COLOR: '1', CI: '' },
        stdio: ['ignore', fd, fd],
        timeout: 60_000,
      });
      expect(r.status).toBe(0);
    } finally {
      closeSync(fd);
    }
    const text = readFileSync(journal, 'utf8');
    expect(lastLine(text)).toMatch(/^in desired state: nothing would change in \d/);
    // Printed once, not once per stream (the JSON holds the reason too, as a value).
    expect(text.match(/^in desired state/gm)).toHaveLength(1);
    expect(text).toContain('"reason": "in desired state: nothing would change"');
    // The unit's --metrics file: valid for Prometheus' own checker, and green for this green check.
    const metrics = readFileSync(join(dir, 'trustplay.prom'), 'utf8');
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
    expect(lint.status, `${lint.error?.message ?? ''}${lint.stdout}${lint.stderr}`).toBe(0);
    expect(metrics).toMatch(/^trustplay_host_in_sync\{playbook="[^"]*good\.yaml",mode="check",host="here"\} 1$/m);
    expect(metrics).toMatch(/^trustplay_task_in_sync\{[^}]*host="here",play="[^"]*",task="wipe"\} 1$/m);
    expect(metrics).toMatch(/^trustplay_exit_code\{[^}]*mode="check"\} 0$/m);
  });
});
