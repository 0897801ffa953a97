/**
 * One SSH session per host (issue 21): the host lock's holder session also runs every command of
 * the run through its driver, counted on a real sshd's log. Output bytes, exit codes, stdin,
 * timeouts and a lost connection behave as with a session per command; the driver leaves nothing
 * on the node; and a shell that cannot run the driver (no working mktemp) falls back to one session
 * per command.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionError } from '../../src/connection/errors.js';
import { SshConnection } from '../../src/connection/ssh.js';
import { acquireHostLock } from '../../src/engine/lock.js';
import { startSshd, sshdUnavailable, type Sshd } from '../support/sshd.js';

const unavailable = sshdUnavailable();
if (unavailable && process.env['CI'] === 'true') throw new Error(`driver tests cannot run in CI: ${unavailable}`);

const sessions = (sshd: Sshd): number => (sshd.log().match(/Starting session:/g) ?? []).length;

/**
 * Running processes whose parent is `pid` (the test nodes share this machine's process table); an
 * exited child its shell has not reaped yet (a zombie, state Z) runs nothing and is left out.
 */
const liveChildrenOf = (pid: string): string[] =>
  readdirSync('/proc').filter((d) => {
    if (!/^\d+$/.test(d)) return false;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // After the command name (in parentheses, may hold spaces): the state, then the parent's pid.
      const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return parent === pid && state !== 'Z';
    } catch {
      return false;
    }
  });

describe.skipIf(Boolean(unavailable))(`the command driver${unavailable ? ` (not run: ${unavailable})` : ''}`, () => {
  let sshd: Sshd;
  let broken: Sshd;
  let nodeTmp: string;
  const conns: SshConnection[] = [];
  const connect = (server: Sshd) => {
    const c = new SshConnection({
      host: 'node',
      address: server.address,
      port: server.port,
      user: 'root',
      identityFile: server.clientKey,
      knownHostsFiles: [server.knownHosts],
    });
    conns.push(c);
    return c;
  };
  beforeAll(async () => {
    // The node's TMPDIR is a directory of this test's own, so "nothing left" is checked there alone.
    nodeTmp = await mkdtemp(join(tmpdir(), 'trustplay-driver-test-'));
    sshd = await startSshd({ address: '127.0.0.61', extraConfig: [`SetEnv TMPDIR=${nodeTmp}`] });
    // A node whose mktemp always fails (a read-only or noexec /tmp fails the same way).
    broken = await startSshd({
      address: '127.0.0.62',
      namespaceSetup: ['mount --bind /bin/false "$(command -v mktemp)"'],
    });
  });
  afterAll(async () => {
    await Promise.all(conns.map((c) => c.close()));
    await sshd?.stop();
    await broken?.stop();
    await rm(nodeTmp, { recursive: true, force: true });
  });

  it('carries the lock and every command on one session, bytes and exit codes as sent', async () => {
    const before = sessions(sshd);
    const conn = connect(sshd);
    const release = await acquireHostLock(conn, { runId: 'run-driver-1' });
    expect(conn.driverStatus()).toBe('ok');

    const r = await conn.exec({ script: 'echo out; echo err >&2; exit 3' });
    expect([r.code, r.stdout.toString(), r.stderr.toString()]).toEqual([3, 'out\n', 'err\n']);
    // Binary output (NUL bytes, no final newline) and a megabyte of stdin, byte for byte.
    const bin = await conn.exec({ script: "printf 'a\\000b\\nc'" });
    expect(bin.stdout).toEqual(Buffer.from('a\0b\nc'));
    const big = Buffer.alloc(1 << 20, 'x');
    big.write('\0\n\x1eR 0 0 0\n', 1000);
    const sum = await conn.exec({ argv: ['cksum'] }, { stdin: big });
    expect(sum.code).toBe(0);
    expect(sum.stdout.toString()).toBe(execFileSync('cksum', { input: big }).toString());
    // A command that reads none of its stdin does not leave it for the next request.
    const ignored = await conn.exec({ argv: ['true'] }, { stdin: 'x x 5 5\nrelease\n' });
    expect(ignored.code).toBe(0);
    // The holder's own LC_ALL=C is not the commands': they get the session's environment.
    expect((await conn.exec({ script: 'printf %s "${LC_ALL-unset}"' })).stdout.toString()).toBe('unset');
    // A daemon a command leaves behind, still writing where its output went, adds nothing to an answer.
    const daemon = await conn.exec({ script: '(sleep 0.2; echo late; echo late >&2) & echo now' });
    expect([daemon.stdout.toString(), daemon.stderr.toString()]).toEqual(['now\n', '']);
    await new Promise((res) => setTimeout(res, 400));
    const env = await conn.exec({ script: 'printf %s "$GREETING"' }, { env: { GREETING: "it's ok" } });
    expect(env.stdout.toString()).toBe("it's ok");
    // No shell between the driver and a command: the driver's fork became the command, so its parent
    // is the driver itself (the lock holder's pid). A missing program is 127, as from sh.
    const holder = (await conn.readFile('/run/trustplay.lock/owner'))!.toString().split('\n')[1]!.split(' ')[1];
    const up = await conn.exec({ script: 'echo $PPID' });
    expect(up.stdout.toString().trim()).toBe(holder);
    // And no login shell between sshd and the holder: the login shell execs the holder's sh.
    const holderStat = readFileSync(`/proc/${holder}/stat`, 'utf8');
    const holderParent = holderStat.slice(holderStat.lastIndexOf(')') + 2).split(' ')[1]!;
    expect(readFileSync(`/proc/${holderParent}/comm`, 'utf8').trim()).toMatch(/^sshd/);
    const missing = await conn.exec({ argv: ['trustplay-no-such-program'] });
    expect([missing.code, missing.stderr.toString()]).toEqual([127, expect.stringMatching(/not found/)]);
    // Pipelined: answers come back to the command that asked.
    // (More than 32 of them: the driver removes older output files in batches of 32.)
    const many = await Promise.all(Array.from({ length: 40 }, (_, i) => conn.exec({ argv: ['echo', `n${i}`] })));
    expect(many.map((m) => m.stdout.toString().trim())).toEqual(Array.from({ length: 40 }, (_, i) => `n${i}`));
    // The file operations modules use.
    const file = join(nodeTmp, 'probe.txt');
    await conn.writeFile(file, 'hello\n', { mode: 0o600 });
    expect((await conn.readFile(file))?.toString()).toBe('hello\n');
    expect(await conn.stat(file)).toMatchObject({ exists: true, isFile: true, mode: 0o600 });
    await conn.remove(file);
    expect(await conn.readFile(file)).toBeNull();

    await release();
    await new Promise((res) => setTimeout(res, 200));
    expect(sessions(sshd) - before).toBe(1);
    expect(conn.stats()).toMatchObject({ connections: 1, channels: 1 });
    // Nothing of the driver's is left on the node once its session ended, nor the lock.
    expect(await readdir(nodeTmp)).toEqual([]);
    expect(await conn.readFile('/run/trustplay.lock/owner')).toBeNull();
    // After the lock session ended, commands go on sessions of their own again.
    expect((await conn.exec({ argv: ['echo', 'after'] })).stdout.toString()).toBe('after\n');
  });

  it('streams a contained command back (no output file on the node), bytes, stdin, stderr, timeouts as sent', async () => {
    const conn = connect(sshd);
    const release = await acquireHostLock(conn, { runId: 'run-driver-contained' });
    expect(conn.driverStatus()).toBe('ok');
    const driverDir = (await readdir(nodeTmp)).find((d) => d.startsWith('trustplay-driver.'));
    expect(driverDir).toBeDefined();
    // Output that holds what the protocol's own lines look like, NUL bytes, no final newline.
    const tricky = "printf 'a\\000\\n\\036R 9 9 9\\n\\036E0123 0 0\\n\\036O\\nz'; echo warn >&2; exit 3";
    const r = await conn.exec({ script: tricky }, { contained: true });
    expect([r.code, r.stdout, r.stderr.toString()]).toEqual([
      3,
      Buffer.from('a\0\n\x1eR 9 9 9\n\x1eE0123 0 0\n\x1eO\nz'),
      'warn\n',
    ]);
    // A megabyte of stdin in, its checksum out; a command that reads none of its stdin.
    const big = Buffer.alloc(1 << 20, 'y');
    big.write('\0\n\x1eR 0 0 0\n', 77);
    const sum = await conn.exec({ argv: ['cksum'] }, { stdin: big, contained: true });
    expect(sum.stdout.toString()).toBe(execFileSync('cksum', { input: big }).toString());
    expect((await conn.exec({ argv: ['true'] }, { stdin: 'x 5 5\n', contained: true })).code).toBe(0);
    // A megabyte of output, byte for byte.
    const out = await conn.exec({ script: 'head -c 1048576 /dev/zero | tr "\\000" q' }, { contained: true });
    expect(out.stdout.equals(Buffer.alloc(1 << 20, 'q'))).toBe(true);
    // Mixed with commands through files, pipelined: each answer to its own command.
    const mixed = await Promise.all(
      Array.from({ length: 12 }, (_, i) => conn.exec({ argv: ['echo', `m${i}`] }, { contained: i % 2 === 0 })),
    );
    expect(mixed.map((m) => m.stdout.toString())).toEqual(Array.from({ length: 12 }, (_, i) => `m${i}\n`));
    // A contained command with a timeout goes through files (a killed command may leave children
    // writing); it answers 124 and the next one reads its own output.
    const slow = await conn.exec({ script: 'echo before; sleep 30; echo after' }, { timeoutMs: 500, contained: true });
    expect(slow).toMatchObject({ code: 124, timedOut: true });
    expect((await conn.exec({ argv: ['echo', 'next'] }, { contained: true })).stdout.toString()).toBe('next\n');
    // The file operations are contained: what the driver made on the node holds no output file
    // of theirs, nor of any contained command: only those of the 6 commands through files above
    // (the 6th, 8th, ... 16th commands of the session) and of the one with a timeout (17th).
    const file = join(nodeTmp, 'contained.txt');
    await conn.writeFile(file, 'hi\n');
    expect((await conn.readFile(file))?.toString()).toBe('hi\n');
    await conn.remove(file);
    const made = (await readdir(join(nodeTmp, driverDir!))).filter((f) => /^o\d+$/.test(f));
    await release();
    expect(made.map((f) => Number(f.slice(1))).sort((x, y) => x - y)).toEqual([6, 8, 10, 12, 14, 16, 17]);
  });

  it('keeps the lock fresh while a long command runs (every 5 s), and only then; idle, no ticker', async () => {
    const lockDir = await mkdtemp(join(tmpdir(), 'trustplay-driver-lock-'));
    try {
      const conn = connect(sshd);
      // No refresh from the controller in this test's time: only the driver's ticker touches the lock.
      const release = await acquireHostLock(conn, { runId: 'run-driver-tick', dir: lockDir, refreshMs: 600_000 });
      const owner = join(lockDir, 'trustplay.lock', 'owner');
      const mtime = (): number => statSync(owner).mtimeMs;
      const holder = readFileSync(owner, 'utf8').split('\n')[1]!.split(' ')[1]!;
      // A first command starts the driver's ticker: a process under the holder's shell.
      expect((await conn.exec({ argv: ['true'] })).code).toBe(0);
      expect(liveChildrenOf(holder)).toHaveLength(1);
      const taken = mtime();
      await new Promise((r) => setTimeout(r, 6000));
      // Idle (no command running) for more than a tick: untouched, and the ticker left (an idle
      // session, a host waiting for the run's end, runs no process).
      expect(mtime()).toBe(taken);
      expect(liveChildrenOf(holder)).toEqual([]);
      // The next command starts another ticker, which refreshes the lock while it runs.
      const long = conn.exec({ argv: ['sleep', '7'] });
      await long;
      // Touched during the command, at least 5 s after it was taken; the owner's lines as written
      // (a refresh appends an empty line: no process, and nothing another run reads changes).
      expect(mtime()).toBeGreaterThan(taken + 5000);
      const lines = readFileSync(owner, 'utf8').split('\n');
      expect(lines[1]!.split(' ')[1]).toBe(holder);
      expect(lines.slice(2).every((l) => l === '')).toBe(true);
      expect(lines.length).toBeGreaterThan(3);
      await release();
      // The session's end removed the lock (and the driver's directory, checked in the first test).
      expect(existsSync(join(lockDir, 'trustplay.lock'))).toBe(false);
    } finally {
      await rm(lockDir, { recursive: true, force: true });
    }
  }, 30_000);

  it('a timed-out command answers 124 and the next command runs', async () => {
    const conn = connect(sshd);
    const release = await acquireHostLock(conn, { runId: 'run-driver-2' });
    const started = Date.now();
    const slow = await conn.exec({ argv: ['sleep', '30'] }, { timeoutMs: 500 });
    expect(slow).toMatchObject({ code: 124, timedOut: true });
    expect(Date.now() - started).toBeLessThan(5000);
    // Its `timeout` wrapper ends it on the node, then the driver answers the next one.
    expect((await conn.exec({ argv: ['echo', 'next'] }, { timeoutMs: 10_000 })).stdout.toString()).toBe('next\n');
    await release();
  });

  it('the controller gone (connection closed, no release) drops the lock and the driver dir on the node', async () => {
    const conn = connect(sshd);
    await acquireHostLock(conn, { runId: 'run-driver-3' });
    const inFlight = conn.exec({ argv: ['sleep', '5'] });
    await new Promise((res) => setTimeout(res, 300));
    await conn.close();
    const err = await inFlight.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as ConnectionError).kind).toBe('unreachable');
    // Another run gets the lock: the holder released it when its stdin ended.
    const other = connect(sshd);
    const release = await acquireHostLock(other, { runId: 'run-driver-4', timeoutMs: 15_000 });
    await release();
    for (let i = 0; i < 50 && (await readdir(nodeTmp)).length > 0; i++) await new Promise((r) => setTimeout(r, 200));
    expect(await readdir(nodeTmp)).toEqual([]);
  });

  it('falls back to one session per command where the shell cannot run the driver', async () => {
    const before = sessions(broken);
    const conn = connect(broken);
    const release = await acquireHostLock(conn, { runId: 'run-driver-5' });
    expect(conn.driverStatus()).toMatch(/^off mktemp: /);
    const r = await conn.exec({ script: 'echo out; exit 4' }, { stdin: 'ignored' });
    expect([r.code, r.stdout.toString()]).toEqual([4, 'out\n']);
    const file = join(broken.dir, 'fallback.txt');
    await writeFile(file, 'x');
    expect((await conn.readFile(file))?.toString()).toBe('x');
    expect(await conn.stat(file)).toMatchObject({ exists: true, isFile: true });
    await release();
    await new Promise((res) => setTimeout(res, 200));
    // The lock session, then one session for each of the three commands.
    expect(sessions(broken) - before).toBe(4);
    expect(conn.stats().carried).toBe(0);
  });
});

describe.skipIf(Boolean(unavailable) || !existsSync('/usr/bin/sudo'))('the command driver under become', () => {
  let sshd: Sshd;
  const PASSWORD = `driver-pw-${randomBytes(12).toString('hex')}`;
  const conns: SshConnection[] = [];
  beforeAll(async () => {
    const hash = execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: `${PASSWORD}\n` })
      .toString()
      .trim();
    sshd = await startSshd({
      address: '127.0.0.63',
      logLevel: 'DEBUG3',
      users: [{ name: 'deploy', uid: 4252, passwordHash: hash }],
      // No credential cache: were sudo run per command, each would ask for the password again.
      sudoers: ['Defaults env_reset', 'Defaults timestamp_timeout=0', 'Defaults !fqdn', 'deploy ALL=(ALL) ALL'],
    });
  });
  afterAll(async () => {
    await Promise.all(conns.map((c) => c.close()));
    await sshd?.stop();
  });

  it('runs sudo once, for the session: every command of the run is root on that one session', async () => {
    const before = sessions(sshd);
    const conn = new SshConnection({
      host: 'node',
      address: sshd.address,
      port: sshd.port,
      user: 'deploy',
      identityFile: sshd.clientKey,
      knownHostsFiles: [sshd.knownHosts],
      become: true,
      becomePassword: PASSWORD,
    });
    conns.push(conn);
    await conn.connect();
    const afterProbe = sessions(sshd);
    const release = await acquireHostLock(conn, { runId: 'run-driver-become' });
    expect(conn.driverStatus()).toBe('ok');
    const ids = await Promise.all([1, 2, 3].map(() => conn.exec({ script: 'id -un' })));
    expect(ids.map((r) => r.stdout.toString())).toEqual(['root\n', 'root\n', 'root\n']);
    // A command asked to run without become is the login user's, on a session of its own.
    expect((await conn.exec({ script: 'id -un' }, { become: false })).stdout.toString()).toBe('deploy\n');
    await release();
    await new Promise((res) => setTimeout(res, 200));
    // The relay probe (deploy is not root), the lock's session, the one command without become.
    expect(afterProbe - before).toBe(1);
    expect(sessions(sshd) - afterProbe).toBe(2);
    expect(sshd.log()).not.toContain(PASSWORD);
  });
});
