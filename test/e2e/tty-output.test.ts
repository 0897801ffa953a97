/**
 * What a person sees on a terminal: the CLI in a real pty (tmux), listr2 rows per host and the
 * recap for a small fleet, one progress bar per play and a grouped recap for 200 hosts; and without
 * a terminal, plain lines with no escape codes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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

/**
 * Runs the CLI in a tmux pane of `height` lines (160 columns) until it exits; returns the last
 * screen and every screen captured on the way (every 200 ms), for what is drawn and redrawn.
 */
async function inTerminal(
  args: string,
  env: Record<string, string>,
  height: number,
): Promise<{ screen: string; frames: string[] }> {
  const session = `trustplay-tty-${process.pid}-${height}`;
  const vars = Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const cmd = `${vars} ${process.execPath} --import tsx src/cli/main.ts ${args}; echo EXIT=$?; sleep 60`;
  execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '160', '-y', String(height), '-c', repo, cmd], {
    env: { ...process.env, TERM: 'xterm-256color', CI: '', NO_COLOR: '' },
  });
  const frames: string[] = [];
  try {
    let screen = '';
    for (let i = 0; i < 600 && !/EXIT=\d/.test(screen); i++) {
      await new Promise((r) => setTimeout(r, 200));
      screen = execFileSync('tmux', ['capture-pane', '-p', '-t', session]).toString();
      frames.push(screen);
    }
    return { screen, frames };
  } finally {
    spawnSync('tmux', ['kill-session', '-t', session]);
  }
}

describe.skipIf(!hasTmux)(`terminal output${hasTmux ? '' : ' (not run: tmux is not installed)'}`, () => {
  it('shows one listr2 row per host with its recap, then the details and the verdict', async () => {
    await reset();
    const { screen } = await inTerminal(
      `run ${dir}/pb.yaml -i ${dir}/inv.yaml --state-dir ${dir}/state`,
      { TRUSTPLAY_LOCK_DIR: dir },
      40,
    );
    expect(screen).toMatch(/EXIT=0/);
    expect(screen).toMatch(/PLAY Wipe credentials/);
    expect(screen).toMatch(/✔ alpha\s+ok=0\s+changed=1/);
    expect(screen).toMatch(/✔ beta\s+ok=0\s+changed=1/);
    expect(screen).toMatch(/alpha \| changed \| Wipe stale creds/);
    // Two hosts fit the terminal: rows and a line per host in the recap, no bar.
    expect(screen).not.toMatch(/remaining \d/);
    expect(screen).toMatch(/^RECAP\nalpha\s+ok=0\s+changed=1.*\nbeta\s+ok=0\s+changed=1/m);
    expect(screen).toMatch(/^success in /m);
    expect(screen).not.toContain('dXNlcjpodW50ZXIy');
    expect(JSON.parse(await readFile(join(dir, 'alpha.json'), 'utf8'))).toEqual({
      auths: { 'other.example:5000': { auth: 'eDp5' } },
    });
  });

  it('shows a 200-host fleet as one bar with live counts and the slowest hosts, rows for failures only, and a grouped recap', async () => {
    // 200 local hosts: 10 with a stale credential (changed), 2 whose file is not JSON (failed),
    // 3 reached over SSH at a loopback port where no sshd listens (unreachable), the rest ok.
    const fleet = join(dir, 'fleet');
    await mkdir(fleet, { recursive: true });
    const unreachable = ['n17', 'n102', 'n181'];
    const failing = ['n50', 'n150'];
    const clean = JSON.stringify({ auths: { 'other.example:5000': { auth: 'eDp5' } } }) + '\n';
    let inv = 'hosts:\n';
    for (let i = 1; i <= 200; i++) {
      const h = `n${i}`;
      inv += unreachable.includes(h)
        ? `  ${h}: { connection: ssh, address: 127.0.0.1, port: 9 }\n`
        : `  ${h}: { connection: local }\n`;
      await writeFile(join(fleet, `${h}.json`), failing.includes(h) ? '{not json' : i % 20 === 5 ? stale : clean);
    }
    await writeFile(join(fleet, 'inv.yaml'), inv);
    await writeFile(
      join(fleet, 'pb.yaml'),
      `- name: Fleet\n  hosts: all\n  tasks:\n    - name: Wipe stale creds\n      node.creds.wipe:\n        registry: registry.test:5000\n        paths: ["${fleet}/{{ inventory_hostname }}.json"]\n        containerd_auth: false\n`,
    );
    const { screen, frames } = await inTerminal(
      `run ${fleet}/pb.yaml -i ${fleet}/inv.yaml --state-dir ${fleet}/state --forks 10`,
      { TRUSTPLAY_LOCK_DIR: fleet },
      40,
    );
    expect(screen).toMatch(/EXIT=1/);
    // While it ran: the bar with its counts, and the hosts in flight longest.
    expect(frames.join('\n')).toMatch(
      /^PLAY Fleet {2}\[[█░]{30}\] {2}\d+\/200 {2}ok \d+ {2}changed \d+ {2}failed \d+ {2}unreachable \d+ {2}remaining [1-9]\d*\n {2}\d+ in flight, slowest: n\d+ \d+\.\d+s \(Wipe stale creds\)/m,
    );
    // At the end: the full bar, a row for each host that failed or was unreachable, none for the others.
    expect(screen).toMatch(
      /^PLAY Fleet {2}\[█{30}\] {2}200\/200 {2}ok 185 {2}changed 10 {2}failed 2 {2}unreachable 3 {2}remaining 0$/m,
    );
    for (const h of failing) expect(screen).toMatch(new RegExp(`^${h} \\| FAILED \\| Wipe stale creds$`, 'm'));
    for (const h of unreachable) expect(screen).toMatch(new RegExp(`^${h} \\| UNREACHABLE \\| `, 'm'));
    expect(screen).not.toMatch(/\| (changed|ok) \|/);
    expect(screen.match(/^n\d+ \|/gm)).toHaveLength(5);
    expect(screen).toContain('RECAP\n185 hosts ok, 10 changed, 2 failed: n50, n150; 3 unreachable: n17, n102, n181\n');
    expect(screen).toMatch(/^ {2}185 hosts {2}ok=1 {2}changed=0 {2}failed=0 {2}skipped=0 {2}unreachable=0$/m);
    expect(screen).toMatch(/^ {3}10 hosts {2}ok=0 {2}changed=1 {2}failed=0 {2}skipped=0 {2}unreachable=0$/m);
    expect(screen).toMatch(
      /^ {4}3 hosts {2}ok=0 {2}changed=0 {2}failed=0 {2}skipped=0 {2}unreachable=1 {2}n17, n102, n181$/m,
    );
    expect(screen).toMatch(
      /^ {4}2 hosts {2}ok=0 {2}changed=0 {2}failed=1 {2}skipped=0 {2}unreachable=0 {2}n50, n150$/m,
    );
    expect(screen).not.toContain('dXNlcjpodW50ZXIy');
  }, 180_000);
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
    // The recap keeps a line per host without a terminal, whatever the fleet's size.
    expect(r.stdout).toMatch(/^RECAP\nalpha\s+ok=0\s+changed=1.*\nbeta\s+ok=0\s+changed=1/m);
  });

  it('groups the recap only when --recap grouped asks', async () => {
    await reset();
    const r = await trustplay(
      ['run', `${dir}/pb.yaml`, '-i', `${dir}/inv.yaml`, '--state-dir', `${dir}/state`, '--recap', 'grouped'],
      { env: { TRUSTPLAY_LOCK_DIR: dir, NO_COLOR: '' } },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^RECAP\n2 hosts changed\n {2}2 hosts {2}ok=0 {2}changed=1 {2}failed=0 {2}skipped=0 {2}unreachable=0 {2}alpha, beta$/m,
    );
    const bad = await trustplay(['check', `${dir}/pb.yaml`, '--progress', 'bars']);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/--progress must be auto, bar or rows, not `bars` \(did you mean `bar`\?\)/);
  });
});
