/**
 * The rooted local connection `trustplay agent` uses in a pod: the node's root mounted at a
 * directory (`/host`) for file operations, and commands run in the node's namespaces through a
 * prefix (`nsenter -t 1 -m -u -i -n -p --`). Here the "node" is a directory with this machine's
 * /usr bind-mounted into it inside a private mount namespace of the test's own, and the prefix is
 * `nsenter -t <that namespace> -m -- chroot <dir>`: a command sees the directory as `/`, exactly
 * as a pod's nsenter sees the node's root. Nothing is mounted in this machine's namespace.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileOperationError, LocalConnection } from '../../src/connection/index.js';
import { pathInRoot } from '../../src/connection/local.js';

let dir = '';
let root = '';
let ns: ChildProcess | undefined;
let conn: LocalConnection;
let echo: Server | undefined;

describe('LocalConnection rooted at a node directory, commands through a prefix', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trustplay-rooted-'));
    root = join(dir, 'host');
    for (const d of ['usr', 'etc/containerd', 'etc/alt', 'run', 'tmp']) await mkdir(join(root, d), { recursive: true });
    for (const d of ['bin', 'lib', 'lib64', 'sbin']) await symlink(`usr/${d}`, join(root, d));
    await writeFile(join(root, 'etc/containerd/config.toml'), 'version = 2\n');
    await writeFile(join(root, 'etc/hostname'), 'node-in-root\n');
    // The node's own links: an absolute one (resolved inside the root, never on this machine) and
    // one at a managed path.
    await symlink('/etc/alt', join(root, 'etc/containerd.d'));
    await symlink('config.toml', join(root, 'etc/containerd/link.toml'));
    const child = spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        `mount --rbind /usr "$1/usr" && echo up && exec sleep infinity`,
        'sh',
        root,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    ns = child;
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`unshare exited with ${String(code)}`)));
    });
    conn = new LocalConnection({
      host: 'node1',
      root,
      commandPrefix: ['nsenter', '-t', String(child.pid), '-m', '--', 'chroot', root],
    });
  });

  afterAll(async () => {
    echo?.close();
    ns?.kill('SIGKILL');
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('runs commands through the prefix, in the node’s view of its files, with the environment given', async () => {
    const r = await conn.exec({ script: 'cat /etc/hostname; printf "%s" "$GREETING"' }, { env: { GREETING: 'hi' } });
    expect(r.stderr.toString()).toBe('');
    expect([r.code, r.stdout.toString()]).toEqual([0, 'node-in-root\nhi']);
    const argv = await conn.exec({ argv: ['ls', '/etc/containerd'] });
    expect(argv.stdout.toString().split('\n').filter(Boolean)).toEqual(['config.toml', 'link.toml']);
  });

  it('writes under the root, and commands see what was written; reads, stats and removes the same files', async () => {
    await conn.writeFile('/etc/containerd/config.toml', 'version = 3\n', { mode: 0o600 });
    expect(await readFile(join(root, 'etc/containerd/config.toml'), 'utf8')).toBe('version = 3\n');
    expect((await conn.exec({ argv: ['cat', '/etc/containerd/config.toml'] })).stdout.toString()).toBe('version = 3\n');
    expect((await conn.readFile('/etc/containerd/config.toml'))?.toString()).toBe('version = 3\n');
    expect(await conn.stat('/etc/containerd/config.toml')).toMatchObject({ exists: true, isFile: true, mode: 0o600 });
    await conn.writeFile('/etc/containerd/certs.d/registry.test/ca.crt', 'CA\n', { mkdirs: true });
    expect(await readFile(join(root, 'etc/containerd/certs.d/registry.test/ca.crt'), 'utf8')).toBe('CA\n');
    await conn.remove('/etc/containerd/certs.d/registry.test/ca.crt');
    expect(await conn.stat('/etc/containerd/certs.d/registry.test/ca.crt')).toEqual({ exists: false });
    expect(await conn.readFile('/etc/nothing-here')).toBeNull();
  });

  it('follows a node’s absolute link inside the root, and `..` never climbs above it', async () => {
    await conn.writeFile('/etc/containerd.d/drop-in.toml', 'x = 1\n');
    expect(await readFile(join(root, 'etc/alt/drop-in.toml'), 'utf8')).toBe('x = 1\n');
    expect(existsSync('/etc/alt')).toBe(false);
    expect(await conn.stat('/etc/containerd.d')).toMatchObject({ exists: true, isDirectory: true });
    expect((await conn.readFile('/../../../etc/hostname'))?.toString()).toBe('node-in-root\n');
    expect(await pathInRoot(root, '/etc/containerd.d/../hostname')).toBe(join(root, 'etc/hostname'));
  });

  it('refuses a link at a managed path, as on any other host', async () => {
    const err = await conn.readFile('/etc/containerd/link.toml').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileOperationError);
    expect((err as Error).message).toContain('node1: cannot read /etc/containerd/link.toml');
    await expect(conn.writeFile('/etc/containerd/link.toml', 'y\n')).rejects.toThrow(/link/);
    expect(await readFile(join(root, 'etc/containerd/config.toml'), 'utf8')).toBe('version = 3\n');
  });

  it('opens a unix socket at the node’s path under the root', async () => {
    const server = createServer((s) => s.pipe(s));
    echo = server;
    await new Promise<void>((resolve) => server.listen(join(root, 'run/echo.sock'), resolve));
    const s = await conn.openUnixSocket('/run/echo.sock');
    const back = await new Promise<string>((resolve) => {
      s.once('data', (b: Buffer) => resolve(b.toString()));
      s.write('ping');
    });
    s.end();
    expect(back).toBe('ping');
  });
});
