/**
 * What a person sees on a terminal: the CLI in a real pty (tmux), listr2 rows per host and the
 * recap; and without a terminal, plain lines with no escape codes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trustplay } from '../support/cli.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const hasTmux = spawnSync('tmux', ['-V']).status === 0;
if (!hasTmux && process.env['CI'] === 'true')
  throw new Error('tmux is needed for the terminal output test in CI (apt-get install tmux)');

let dir: string;
const stale =
  JSON.stringify(
    { auths: { 'registry.test:5000': { auth: 'dXNlcjpodW50ZXIy' }, 'other.example:5000': { auth: 'eDp5' } } },
    null,
    2,
  ) + '\n';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustplay-tty-'));
  await writeFile(join(dir, 'inv.yaml'), 'hosts:\n  alpha: { connection: local }\n  beta: { connection: local }\n');
  await writeFile(
    join(dir, 'pb.yaml'),
    `- name: Wipe credentials\n  hosts: all\n  tasks:\n    - name: Wipe stale creds\n      node.creds.wipe:\n        registry: registry.test:5000\n        paths: ["${dir}/{{ inventory_hostname }}.json"]\n        containerd_auth: false\n`,
  );
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const reset = async () => {
  for (const h of ['alpha', 'beta']) await writeFile(join(dir, `${h}.json`), stale);
};

describe.skipIf(!hasTmux)(`terminal output${hasTmux ? '' : ' (not run: tmux is not installed)'}`, () => {
  it('shows one listr2 row per host with its recap, then the details and the verdict', async () => {
    await reset();
    const session = `trustplay-tty-${process.pid}`;
    const cmd = `TRUSTPLAY_LOCK_DIR=${dir} ${process.execPath} --import tsx src/cli/main.ts run ${dir}/pb.yaml -i ${dir}/inv.yaml --state-dir ${dir}/state; echo EXIT=$?; sleep 30`;
    execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '120', '-y', '40', '-c', repo, cmd], {
      env: { ...process.env, TERM: 'xterm-256color', CI: '', NO_COLOR: '' },
    });
    try {
      let screen = '';
      for (let i = 0; i < 100 && !/EXIT=\d/.test(screen); i++) {
        await new Promise((r) => setTimeout(r, 200));
        screen = execFileSync('tmux', ['capture-pane', '-p', '-t', session]).toString();
      }
      expect(screen).toMatch(/EXIT=0/);
      expect(screen).toMatch(/PLAY Wipe credentials/);
      expect(screen).toMatch(/✔ alpha\s+ok=0\s+changed=1/);
      expect(screen).toMatch(/✔ beta\s+ok=0\s+changed=1/);
      expect(screen).toMatch(/alpha \| changed \| Wipe stale creds/);
      expect(screen).toMatch(/^success in /m);
      expect(screen).not.toContain('dXNlcjpodW50ZXIy');
    } finally {
      spawnSync('tmux', ['kill-session', '-t', session]);
    }
    expect(JSON.parse(await readFile(join(dir, 'alpha.json'), 'utf8'))).toEqual({
      auths: { 'other.example:5000': { auth: 'eDp5' } },
    });
  });
});

describe('output without a terminal', () => {
  it('is plain lines: no escape codes, no spinners', async () => {
    await reset();
    const r = await trustplay(['run', `${dir}/pb.yaml`, '-i', `${dir}/inv.yaml`, '--state-dir', `${dir}/state`], {
      env: { TRUSTPLAY_LOCK_DIR: dir, NO_COLOR: '' },
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // eslint-disable-next-line no-control-regex
    expect(r.stdout).not.toMatch(/\x1b\[/);
    expect(r.stdout).toMatch(/^alpha \| changed \| Wipe stale creds$/m);
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^success in \d/);
  });
});
