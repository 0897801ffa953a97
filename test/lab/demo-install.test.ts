/**
 * The demo's first step on a fresh machine (README's first command): it installs the lab's missing
 * Debian packages itself, saying which in one line, only as root on a Debian-family system; anywhere
 * else it prints the exact command and exits 3 without running apt-get.
 *
 * "Missing" is made by running the real demo with a PATH that holds none of the lab's binaries, and
 * apt-get is a recorder on that PATH (this test must not install anything on the machine). The
 * non-Debian case runs the demo in a mount namespace of its own (unshare -m) where /etc/os-release
 * says Fedora: nothing outside that namespace and this test's temp dir is touched.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = process.getuid?.() === 0;
const debian = existsSync('/etc/debian_version');
const demo = new URL('./demo.ts', import.meta.url).pathname;
const repo = new URL('../..', import.meta.url).pathname;

// The lab's packages, as the demo names them when none of its binaries is on PATH (it also looks in
// /usr/sbin and /sbin, where this machine's sshd is: then openssh-server is not missing).
const sshdInSbin = existsSync('/usr/sbin/sshd') || existsSync('/sbin/sshd');
const ALL = [
  'containerd',
  'docker-registry',
  ...(sshdInSbin ? [] : ['openssh-server']),
  'openssh-client',
  'apache2-utils',
  'openssl',
  'util-linux',
];

let dir: string;
let bin: string;
let log: string;

function fakeAptGet(installExit: number): void {
  const script = `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\ncase "$1" in install) exit ${installExit};; esac\nexit 0\n`;
  writeFileSync(join(bin, 'apt-get'), script);
  chmodSync(join(bin, 'apt-get'), 0o755);
}

function runDemo(wrap: string[] = []): { code: number | null; stderr: string; stdout: string } {
  const cmd = [...wrap, process.execPath, '--import', 'tsx', demo];
  const r = spawnSync(cmd[0]!, cmd.slice(1), {
    cwd: repo,
    env: { PATH: bin, HOME: dir, TERM: 'dumb' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

const suite = root && debian ? describe : describe.skip;
if (!(root && debian) && process.env.CI === 'true')
  it('runs as root on a Debian-family machine (required in CI)', () => {
    throw new Error('the demo install test needs root on Debian');
  });

suite('demo on a fresh machine: installs the lab packages itself only as root on Debian', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'trustplay-demo-install-'));
    bin = join(dir, 'bin');
    log = join(dir, 'apt-get.log');
    spawnSync('mkdir', [bin]);
    // Only what the demo itself needs to start: node (by absolute path) and the recorder apt-get.
    symlinkSync(process.execPath, join(bin, 'node'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('as root on Debian: one notice naming the packages, then apt-get update and install of exactly those', () => {
    writeFileSync(log, '');
    fakeAptGet(100);
    const r = runDemo();
    expect(r.stdout + r.stderr).toMatch(new RegExp(`Installing the lab's Debian packages: ${ALL.join(' ')} \\(`));
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual([
      'update -qq',
      `install -y -qq --no-install-recommends ${ALL.join(' ')}`,
    ]);
    // apt-get failed: the demo stops there, says which command failed and what to run after fixing apt.
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /`apt-get install .*` failed \(exit 100\); fix apt, then run: apt-get update && apt-get install -y/,
    );
  });

  it('when the install leaves the lab unable to start, it says what is still missing and exits 3', () => {
    writeFileSync(log, '');
    fakeAptGet(0);
    const r = runDemo();
    expect(readFileSync(log, 'utf8')).toMatch(/^update -qq\ninstall /);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot start here:\n {2}- `containerd` is missing \(Debian package containerd\)/);
  });

  it('on a system that is not Debian-family: prints the exact command, runs no apt-get, exits 3', () => {
    writeFileSync(log, '');
    fakeAptGet(0);
    const osRelease = join(dir, 'os-release');
    writeFileSync(osRelease, 'NAME="Fedora Linux"\nID=fedora\n');
    const unshare = spawnSync('sh', ['-c', 'command -v unshare'], { encoding: 'utf8' }).stdout.trim();
    const mount = spawnSync('sh', ['-c', 'command -v mount'], { encoding: 'utf8' }).stdout.trim();
    const r = runDemo([
      unshare,
      '-m',
      '--propagation',
      'private',
      '/bin/sh',
      '-c',
      `${mount} --bind '${osRelease}' /etc/os-release && exec "$@"`,
      'sh',
    ]);
    expect(readFileSync(log, 'utf8')).toBe('');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `The demo's lab needs Debian packages that are not installed: ${ALL.join(' ')}. Install them as root, then run the demo again:\n  sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends ${ALL.join(' ')}'`,
    );
  });
});
