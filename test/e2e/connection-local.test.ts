import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileOperationError, LocalConnection, createConnection } from '../../src/connection/index.js';
import { expectManagedLinksRefused } from '../support/file-safety.js';

const run = promisify(execFile);

/** Sends `size` random bytes through a stream to an echo server and expects them back, then ends it. */
async function expectEcho(s: Duplex, size: number): Promise<void> {
  const payload = randomBytes(size);
  const chunks: Buffer[] = [];
  await new Promise<void>((r) => {
    s.on('data', (b: Buffer) => {
      chunks.push(b);
      if (Buffer.concat(chunks).length >= payload.length) r();
    });
    s.write(payload);
  });
  expect(Buffer.concat(chunks).equals(payload)).toBe(true);
  s.end();
}
const isRoot = process.getuid?.() === 0;

describe('LocalConnection', () => {
  let dir: string;
  const conn = new LocalConnection({ host: 'localhost' });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trustplay-local-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is what createConnection returns for a local host', () => {
    const c = createConnection({ name: 'here', connection: 'local' });
    expect(c).toBeInstanceOf(LocalConnection);
    expect([c.host, c.kind]).toEqual(['here', 'local']);
  });

  describe('exec', () => {
    it('returns stdout, stderr and exit codes as values; a missing command is 127', async () => {
      const r = await conn.exec({ script: 'echo out; echo err >&2; exit 3' });
      expect([r.code, r.stdout.toString(), r.stderr.toString()]).toEqual([3, 'out\n', 'err\n']);
      const missing = await conn.exec({ argv: ['no-such-command-trustplay'] });
      expect(missing.code).toBe(127);
    });

    it('feeds binary stdin and passes env', async () => {
      const data = randomBytes(300_000);
      expect((await conn.exec({ argv: ['cat'] }, { stdin: data })).stdout.equals(data)).toBe(true);
      const r = await conn.exec({ script: 'printf %s "$TP_V"' }, { env: { TP_V: `a'b $(no) \n` } });
      expect(r.stdout.toString()).toBe(`a'b $(no) \n`);
    });

    it('passes argv words without a shell', async () => {
      const marker = join(dir, 'pwned');
      const words = [`it's`, 'a b', 'x\ny', `$(touch ${marker})`, '*', '', '-n'];
      const r = await conn.exec({ argv: ['printf', '%s\\0', ...words] });
      expect(r.stdout.toString().split('\0').slice(0, -1)).toEqual(words);
      await expect(stat(marker)).rejects.toThrow(/ENOENT/);
    });

    it('kills the whole process group at the timeout: exit 124, timedOut', async () => {
      const tag = `32.${Date.now() % 1000}3`;
      const r = await conn.exec({ script: `sleep ${tag} & sleep ${tag}; echo never` }, { timeoutMs: 200 });
      expect([r.code, r.timedOut, r.stdout.toString()]).toEqual([124, true, '']);
      const left = await conn.exec({ argv: ['pgrep', '-f', `[s]leep ${tag}`] });
      expect(left.stdout.toString()).toBe('');
    });

    it.skipIf(!isRoot)('runs become commands directly when already root', async () => {
      const r = await new LocalConnection({ become: true }).exec({ argv: ['id', '-u'] });
      expect(r.stdout.toString().trim()).toBe('0');
    });
  });

  describe('files', () => {
    it('readFile: null when missing, exact bytes otherwise', async () => {
      expect(await conn.readFile(join(dir, 'missing'))).toBeNull();
      expect(await conn.readFile(join(dir, 'missing', 'below'))).toBeNull();
      const data = randomBytes(10_000);
      await writeFile(join(dir, 'bin'), data);
      expect((await conn.readFile(join(dir, 'bin')))?.equals(data)).toBe(true);
      await expect(conn.readFile(dir)).rejects.toBeInstanceOf(FileOperationError);
    });

    it('writeFile: new files 0644 or the given mode; existing mode/owner kept; replaced by rename', async () => {
      await conn.writeFile(join(dir, 'new'), 'x');
      expect((await stat(join(dir, 'new'))).mode & 0o7777).toBe(0o644);
      await conn.writeFile(join(dir, 'key'), 'k', { mode: 0o600 });
      expect((await stat(join(dir, 'key'))).mode & 0o7777).toBe(0o600);

      const path = join(dir, 'kept');
      await writeFile(path, 'old');
      await chmod(path, 0o640);
      if (isRoot) await chown(path, 1234, 5678);
      const before = await stat(path);
      const data = randomBytes(5000);
      await conn.writeFile(path, data);
      const after = await stat(path);
      expect((await readFile(path)).equals(data)).toBe(true);
      expect([after.mode & 0o7777, after.uid, after.gid]).toEqual([0o640, before.uid, before.gid]);
      expect(after.ino).not.toBe(before.ino);
      await conn.writeFile(path, 'y', { mode: 0o600 });
      expect((await stat(path)).mode & 0o7777).toBe(0o600);
    });

    it('writeFile: mkdirs', async () => {
      const deep = join(dir, 'a', 'b', 'c');
      await expect(conn.writeFile(deep, 'x')).rejects.toBeInstanceOf(FileOperationError);
      await conn.writeFile(deep, 'x', { mkdirs: true });
      expect(await readFile(deep, 'utf8')).toBe('x');
      expect((await readdir(dir)).filter((n) => n.includes('.trustplay-'))).toEqual([]);
    });

    it.skipIf(!isRoot)('a link at a managed path is refused, and so is a parent others can write', async () => {
      const d = join(dir, 'links');
      await mkdir(d);
      await expectManagedLinksRefused(conn, d);
    });

    it('stat and remove', async () => {
      await writeFile(join(dir, 'st'), '123');
      await chmod(join(dir, 'st'), 0o751);
      expect(await conn.stat(join(dir, 'st'))).toMatchObject({
        exists: true,
        isFile: true,
        isDirectory: false,
        mode: 0o751,
        size: 3,
      });
      expect(await conn.stat(dir)).toMatchObject({ exists: true, isDirectory: true });
      expect(await conn.stat(join(dir, 'none'))).toEqual({ exists: false });
      await conn.remove(join(dir, 'st'));
      expect((await conn.stat(join(dir, 'st'))).exists).toBe(false);
      await conn.remove(join(dir, 'st'));
      await expect(conn.remove(dir)).rejects.toBeInstanceOf(FileOperationError);
    });

    // A write that fails halfway (disk full) must leave the old file and no temp file. The disk is
    // a 64 KiB tmpfs in a private mount namespace, so the check runs in a child process there.
    it.skipIf(!isRoot)('a failed write leaves the old content and no temp file', async () => {
      const small = join(dir, 'small');
      await mkdir(small);
      const script = join(dir, 'fill.mts');
      const local = pathToFileURL(resolve(fileURLToPath(import.meta.url), '../../../src/connection/local.ts')).href;
      await writeFile(
        script,
        `import { LocalConnection } from ${JSON.stringify(local)};
const dir = process.argv[2];
const c = new LocalConnection();
await c.writeFile(dir + '/conf', 'original');
const err = await c.writeFile(dir + '/conf', Buffer.alloc(256 * 1024, 1)).then(() => 'no error', (e) => e.constructor.name + ': ' + e.message);
const { readdirSync, readFileSync } = await import('node:fs');
console.log(JSON.stringify({ err, files: readdirSync(dir), content: readFileSync(dir + '/conf', 'utf8') }));
`,
      );
      const { stdout } = await run(
        'unshare',
        [
          '-m',
          '--propagation',
          'private',
          '--',
          'sh',
          '-c',
          'mount -t tmpfs -o size=64k,mode=0755 tmpfs "$1" && exec node --import tsx "$2" "$1"',
          'sh',
          small,
          script,
        ],
        { cwd: process.cwd() },
      );
      const out = JSON.parse(stdout) as { err: string; files: string[]; content: string };
      expect(out.err).toMatch(/^FileOperationError: .*ENOSPC/);
      expect(out.files).toEqual(['conf']);
      expect(out.content).toBe('original');
    });
  });

  it('openUnixSocket round-trips bytes', async () => {
    const path = join(dir, 'echo.sock');
    const server = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => server.listen(path, r));
    try {
      await expectEcho(await conn.openUnixSocket(path), 20_000);
      await expect(conn.openUnixSocket(join(dir, 'none.sock'))).rejects.toThrow(/none\.sock/);
    } finally {
      server.close();
    }
  });

  // become as another user than the one trustplay runs as: sockets go through the relay sudo runs
  // (as root here, sudo -u daemon needs no password), as they do over SSH.
  it.skipIf(!isRoot)('with become_user, openUnixSocket goes through the sudo relay, as that user', async () => {
    const open = await mkdtemp(join(tmpdir(), 'trustplay-local-relay-'));
    await chmod(open, 0o755);
    const path = join(open, 'who.sock');
    const server = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => server.listen(path, r));
    await chmod(path, 0o666);
    const c = new LocalConnection({ host: 'here', become: true, becomeUser: 'daemon' });
    try {
      await c.connect();
      expect(c.socketRelay()).toBe('socat');
      await expectEcho(await c.openUnixSocket(path), 50_000);
      // The relay really runs as daemon: a root-only socket refuses it, with the relay's own words.
      await chmod(path, 0o600);
      const refused = await c.openUnixSocket(path);
      const err = await new Promise<Error>((r) => refused.on('error', r).resume());
      expect(err.message).toMatch(
        /^the socat relay run through sudo could not connect to .*who\.sock \(exit 1: .*Permission denied\)$/,
      );
    } finally {
      server.close();
      await rm(open, { recursive: true, force: true });
    }
  });
});
