import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConnectionError,
  FileOperationError,
  SshConnection,
  createConnection,
  describeExit,
  type SshConnectionOptions,
} from '../../src/connection/index.js';
import { expectManagedLinksRefused } from '../support/file-safety.js';
import { freePort, makeKeyPair, sshdUnavailable, startSshd, type Sshd } from '../support/sshd.js';

const run = promisify(execFile);
const unavailable = sshdUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`SSH connection tests cannot run in CI: ${unavailable}`);

/** OpenSSH's own fingerprint for a public key file, to check ours against. */
function opensshFingerprint(pubFile: string): string {
  const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', pubFile], { encoding: 'utf8' });
  const fp = out.split(/\s+/)[1];
  if (!fp) throw new Error(`unexpected ssh-keygen -l output: ${out}`);
  return fp;
}

async function expectConnectionError(promise: Promise<unknown>): Promise<ConnectionError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectionError);
  return err as ConnectionError;
}

describe.skipIf(unavailable !== undefined)('SshConnection against a real OpenSSH sshd', () => {
  let sshd: Sshd;
  let conn: SshConnection;
  let work: string;
  const opened: SshConnection[] = [];

  function connect(extra: Partial<SshConnectionOptions> = {}, server: Sshd = sshd): SshConnection {
    const c = new SshConnection({
      host: 'node1',
      address: server.address,
      port: server.port,
      identityFile: server.clientKey,
      knownHostsFiles: [server.knownHosts],
      ...extra,
    });
    opened.push(c);
    return c;
  }

  beforeAll(async () => {
    sshd = await startSshd({
      address: '127.0.0.1',
      hostKeyTypes: ['ed25519', 'rsa'],
      // A 64 KiB filesystem inside sshd's namespace, to make a remote write fail halfway.
      namespaceSetup: ['mkdir -p "$1/small"', 'mount -t tmpfs -o size=64k,mode=0755 tmpfs "$1/small"'],
    });
    work = join(sshd.dir, 'work');
    await run('mkdir', ['-p', work]);
    conn = connect();
    await conn.connect();
  });

  afterAll(async () => {
    await Promise.all(opened.map((c) => c.close()));
    await sshd?.stop();
  });

  describe('exec', () => {
    it('returns stdout, stderr and a non-zero exit code as a value', async () => {
      const r = await conn.exec({ script: 'echo out; echo err >&2; exit 3' });
      expect(r.code).toBe(3);
      expect(r.stdout.toString()).toBe('out\n');
      expect(r.stderr.toString()).toBe('err\n');
      const missing = await conn.exec({ argv: ['no-such-command-trustplay'] });
      expect(missing.code).toBe(127);
      expect(describeExit(missing.code)).toMatch(/command not found/);
    });

    it('feeds stdin, binary-safe', async () => {
      const data = randomBytes(200_000);
      const r = await conn.exec({ argv: ['cat'] }, { stdin: data });
      expect(r.code).toBe(0);
      expect(r.stdout.equals(data)).toBe(true);
    });

    it('passes environment variables inside the command line', async () => {
      const value = `it's "quoted" $(echo no) \`no\` \n * ~`;
      const r = await conn.exec(
        { script: 'printf "%s|%s" "$TP_ONE" "$TP_TWO"' },
        { env: { TP_ONE: value, TP_TWO: '' } },
      );
      expect(r.stdout.toString()).toBe(`${value}|`);
    });

    it('passes nasty argv words through unchanged and never evaluates them', async () => {
      const marker = join(work, 'pwned');
      const words = [
        `it's`,
        `"double"`,
        'a b  c',
        'line1\nline2\n',
        `$(touch ${marker})`,
        `\`touch ${marker}\``,
        '*',
        '~',
        '$HOME',
        ';|&<>(){}',
        '',
        '-n',
        'back\\slash',
        'ünïcødé ✓',
        "'",
      ];
      const r = await conn.exec({ argv: ['printf', '%s\\0', ...words] });
      expect(r.code).toBe(0);
      expect(r.stdout.toString().split('\0').slice(0, -1)).toEqual(words);
      expect((await conn.stat(marker)).exists).toBe(false);
    });

    it('runs scripts with sh', async () => {
      const r = await conn.exec({ script: 'set -- a "b c"; echo $#; [ -z "${BASH_VERSION:-}" ] && echo posix' });
      expect(r.stdout.toString()).toBe('2\nposix\n');
    });

    it('kills a command at its timeout: exit 124, timedOut, process group gone', async () => {
      const tag = `31.${Date.now() % 1000}7`;
      const r = await conn.exec({ script: `sleep ${tag} & sleep ${tag}; echo never` }, { timeoutMs: 300 });
      expect(r.code).toBe(124);
      expect(r.timedOut).toBe(true);
      expect(r.stdout.toString()).toBe('');
      // The remote `timeout` wrapper kills the whole group shortly after the client gives up.
      let left = '';
      for (let i = 0; i < 100; i++) {
        left = (await conn.exec({ argv: ['pgrep', '-f', `[s]leep ${tag}`] })).stdout.toString();
        if (left === '') break;
        await new Promise((r2) => setTimeout(r2, 100));
      }
      expect(left).toBe('');
    });

    it('becomes root through sudo -n, or says why it cannot', async () => {
      // This machine has no sudo; the command line must still reach the host and fail as a value.
      const r = await conn.exec({ argv: ['id', '-u'] }, { become: true });
      const hasSudo = (await conn.exec({ script: 'command -v sudo' })).code === 0;
      if (hasSudo) {
        expect(r.code).toBe(0);
        expect(r.stdout.toString().trim()).toBe('0');
      } else {
        expect(r.code).toBe(127);
        expect(r.stderr.toString()).toMatch(/sudo/);
      }
    });
  });

  describe('files', () => {
    it('readFile: null for a missing file, bytes for a binary one', async () => {
      expect(await conn.readFile(join(work, 'missing'))).toBeNull();
      const data = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(100_000)]);
      await writeFile(join(work, 'bin'), data);
      expect((await conn.readFile(join(work, 'bin')))?.equals(data)).toBe(true);
      await expect(conn.readFile(work)).rejects.toBeInstanceOf(FileOperationError);
    });

    it('writeFile creates a new file 0644 by default, or with the given mode', async () => {
      const data = Buffer.concat([randomBytes(70_000), Buffer.from('\0\n\r\xff')]);
      await conn.writeFile(join(work, 'new'), data);
      expect((await readFile(join(work, 'new'))).equals(data)).toBe(true);
      expect((await stat(join(work, 'new'))).mode & 0o7777).toBe(0o644);
      await conn.writeFile(join(work, 'secret'), 'key', { mode: 0o600 });
      expect((await stat(join(work, 'secret'))).mode & 0o7777).toBe(0o600);
    });

    it('writeFile preserves an existing file’s mode and owner, unless told otherwise', async () => {
      const path = join(work, 'kept');
      await writeFile(path, 'old');
      await run('chmod', ['0640', path]);
      await run('chown', ['1234:5678', path]);
      const inodeBefore = (await stat(path)).ino;
      await conn.writeFile(path, 'new content');
      const st = await stat(path);
      expect(await readFile(path, 'utf8')).toBe('new content');
      expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o640, 1234, 5678]);
      // A new inode proves it was replaced by rename, not rewritten in place.
      expect(st.ino).not.toBe(inodeBefore);
      await conn.writeFile(path, 'again', { mode: 0o600, uid: 0, gid: 0 });
      const st2 = await stat(path);
      expect([st2.mode & 0o7777, st2.uid, st2.gid]).toEqual([0o600, 0, 0]);
    });

    it('writeFile creates parents on request', async () => {
      const deep = join(work, 'a', 'b', 'c.toml');
      await expect(conn.writeFile(deep, 'x')).rejects.toBeInstanceOf(FileOperationError);
      await conn.writeFile(deep, 'x', { mkdirs: true });
      expect(await readFile(deep, 'utf8')).toBe('x');
    });

    it('a link at a managed path is refused, and so is a parent others can write', async () => {
      const d = join(work, 'links');
      await mkdir(d);
      await expectManagedLinksRefused(conn, d);
    });

    it('leaves no temp file behind, after success or after a failed write', async () => {
      const small = join(sshd.dir, 'small');
      await conn.writeFile(join(small, 'conf'), 'original');
      const err = await conn.writeFile(join(small, 'conf'), randomBytes(256 * 1024)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(FileOperationError);
      expect((err as Error).message).toMatch(/No space left/);
      expect((await conn.readFile(join(small, 'conf')))?.toString()).toBe('original');
      const listing = (await conn.exec({ argv: ['ls', '-A', small] })).stdout.toString();
      expect(listing).toBe('conf\n');
      const workListing = (await conn.exec({ argv: ['ls', '-A', work] })).stdout.toString();
      expect(workListing).not.toMatch(/trustplay-/);
    });

    it('stat reports files, directories and absence', async () => {
      await writeFile(join(work, 'st'), '12345');
      await run('chmod', ['0751', join(work, 'st')]);
      expect(await conn.stat(join(work, 'st'))).toEqual({
        exists: true,
        isFile: true,
        isDirectory: false,
        mode: 0o751,
        uid: 0,
        gid: 0,
        size: 5,
      });
      const dir = await conn.stat(work);
      expect([dir.exists, dir.isDirectory, dir.isFile]).toEqual([true, true, false]);
      expect(await conn.stat(join(work, 'nope'))).toEqual({ exists: false });
    });

    it('remove deletes a file; an absent one is fine', async () => {
      await writeFile(join(work, 'gone'), 'x');
      await conn.remove(join(work, 'gone'));
      expect((await conn.stat(join(work, 'gone'))).exists).toBe(false);
      await conn.remove(join(work, 'gone'));
      await expect(conn.remove(work)).rejects.toBeInstanceOf(FileOperationError);
    });
  });

  it('openUnixSocket round-trips bytes to a unix socket on the host', async () => {
    const path = join(sshd.dir, 'echo.sock');
    const server: Server = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => server.listen(path, r));
    try {
      const stream = await conn.openUnixSocket(path);
      const payload = randomBytes(50_000);
      const received: Buffer[] = [];
      const done = new Promise<void>((resolve) => {
        stream.on('data', (b: Buffer) => {
          received.push(b);
          if (Buffer.concat(received).length >= payload.length) resolve();
        });
      });
      stream.write(payload);
      await done;
      expect(Buffer.concat(received).equals(payload)).toBe(true);
      stream.end();
      await expect(conn.openUnixSocket(join(sshd.dir, 'no.sock'))).rejects.toThrow(/no\.sock/);
    } finally {
      server.close();
    }
  });

  it('multiplexes 30 concurrent commands over ONE connection within MaxSessions 10', async () => {
    const server = await startSshd({ maxSessions: 10 });
    try {
      const c = connect({}, server);
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) => c.exec({ script: `sleep 0.2; echo ${i}` })),
      );
      expect(results.map((r) => r.code)).toEqual(Array(30).fill(0));
      expect(results.map((r) => r.stdout.toString())).toEqual(Array.from({ length: 30 }, (_, i) => `${i}\n`));
      await Promise.all([
        c.writeFile(join(server.dir, 'f'), 'x'),
        c.readFile(join(server.dir, 'f')),
        c.stat(server.dir),
      ]);
      expect(c.stats()).toEqual({ connections: 1, channels: 33, carried: 0 });
      // The kernel agrees: one established TCP connection to that sshd.
      const ss = execFileSync('ss', ['-Htn', 'state', 'established', 'dst', `${server.address}:${server.port}`], {
        encoding: 'utf8',
      });
      expect(ss.trim().split('\n').filter(Boolean)).toHaveLength(1);
      await c.close();
      // And so does sshd: one connection. (A session it refuses in the instant between a close and
      // its bookkeeping is retried by the connection, so every command above still succeeded.)
      expect(server.log().match(/Connection from /g)).toHaveLength(1);
    } finally {
      await server.stop();
    }
  });

  it('shares one handshake between concurrent first callers (built by createConnection)', async () => {
    const c = createConnection({
      name: 'node1',
      connection: 'ssh',
      address: sshd.address,
      port: sshd.port,
      identityFile: sshd.clientKey,
      knownHosts: [sshd.knownHosts],
    });
    expect(c).toBeInstanceOf(SshConnection);
    opened.push(c as SshConnection);
    await Promise.all([c.exec({ argv: ['true'] }), c.exec({ argv: ['true'] }), c.connect(), c.stat('/')]);
    expect((c as SshConnection).stats().connections).toBe(1);
  });

  it('a dropped connection fails the command in flight as unreachable, and the next call reconnects', async () => {
    const c = connect();
    const pidFile = join(work, 'session.pid');
    await c.exec({ argv: ['true'] });
    // The per-connection sshd is the parent of this command's shell.
    const running = c.exec({ script: `echo $PPID > ${pidFile}; exec sleep 30` });
    let sessionPid = '';
    while (!sessionPid) sessionPid = (await readFile(pidFile, 'utf8').catch(() => '')).trim();
    // The [priv] parent of the session process owns the TCP connection; kill it.
    const ppid = (await readFile(`/proc/${sessionPid}/stat`, 'utf8')).split(' ')[3] ?? '';
    process.kill(Number(ppid), 'SIGKILL');
    const err = await expectConnectionError(running);
    expect(err.kind).toBe('unreachable');
    expect((await c.exec({ argv: ['echo', 'back'] })).stdout.toString()).toBe('back\n');
    expect(c.stats().connections).toBe(2);
  });

  describe('host keys', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'trustplay-kh-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('refuses an unknown host key, giving its fingerprint and how to trust it', async () => {
      const kh = join(dir, 'empty');
      await writeFile(kh, '');
      const err = await expectConnectionError(connect({ knownHostsFiles: [kh] }).connect());
      expect(err.kind).toBe('host-key');
      expect(err.host).toBe('node1');
      expect(err.message).toContain(opensshFingerprint(`${sshd.hostKeys[0]?.path}.pub`));
      expect(err.message).toContain(`ssh-keyscan -p ${sshd.port} ${sshd.address}`);
      expect(err.message).toContain('--accept-new-host-keys');
    });

    it('refuses a changed host key, naming the known_hosts line, even with accept-new', async () => {
      const other = await makeKeyPair(join(dir, 'other_host_key'));
      const kh = join(dir, 'changed');
      const content = `# comment\n[${sshd.address}]:${sshd.port} ${(await readFile(`${other}.pub`, 'utf8')).trim()}\n`;
      await writeFile(kh, content);
      for (const acceptNewHostKeys of [false, true]) {
        const err = await expectConnectionError(connect({ knownHostsFiles: [kh], acceptNewHostKeys }).connect());
        expect(err.kind).toBe('host-key');
        expect(err.message).toContain('HOST KEY CHANGED');
        expect(err.message).toContain(`${kh}:2`);
      }
      expect(await readFile(kh, 'utf8')).toBe(content);
    });

    it('a key-type switch is a changed key: pinned ECDSA, the server offers only ed25519/RSA, refused even with accept-new', async () => {
      const ecdsa = await makeKeyPair(join(dir, 'ecdsa_host_key'), 'ecdsa');
      const kh = join(dir, 'switched');
      const content = `[${sshd.address}]:${sshd.port} ${(await readFile(`${ecdsa}.pub`, 'utf8')).trim()}\n`;
      await writeFile(kh, content);
      for (const acceptNewHostKeys of [false, true]) {
        const err = await expectConnectionError(connect({ knownHostsFiles: [kh], acceptNewHostKeys }).connect());
        expect(err.kind).toBe('host-key');
        expect(err.message).toContain('HOST KEY CHANGED');
        expect(err.message).toContain(
          'known_hosts pins a key of type ecdsa-sha2-nistp256 for this host, which the server no longer offers',
        );
      }
      expect(await readFile(kh, 'utf8')).toBe(content);
    });

    it('refuses a key marked @revoked', async () => {
      const kh = join(dir, 'revoked');
      await writeFile(kh, `${await readFile(sshd.knownHosts, 'utf8')}@revoked * ${sshd.hostKeys[0]?.pub}\n`);
      const err = await expectConnectionError(connect({ knownHostsFiles: [kh] }).connect());
      expect(err.kind).toBe('host-key');
      expect(err.message).toMatch(/revoked/);
    });

    it('accept-new records the key (0600 file created), and the next connect trusts it', async () => {
      const kh = join(dir, 'sub', 'known_hosts');
      await connect({ knownHostsFiles: [kh], acceptNewHostKeys: true }).connect();
      const recorded = await readFile(kh, 'utf8');
      expect(recorded).toMatch(
        new RegExp(`^\\[${sshd.address.replace(/\./g, '\\.')}\\]:${sshd.port} ssh-ed25519 \\S+\\n$`),
      );
      expect((await stat(kh)).mode & 0o777).toBe(0o600);
      await connect({ knownHostsFiles: [kh] }).connect();
      // OpenSSH reads what we wrote the same way.
      const lookup = await run('ssh-keygen', ['-F', `[${sshd.address}]:${sshd.port}`, '-f', kh]);
      expect(lookup.stdout).toContain('ssh-ed25519');
    });

    it('accepts hashed entries written by ssh-keygen -H', async () => {
      const kh = join(dir, 'hashed');
      await writeFile(kh, await readFile(sshd.knownHosts));
      await run('ssh-keygen', ['-H', '-f', kh]);
      const text = await readFile(kh, 'utf8');
      expect(text).toMatch(/^\|1\|/);
      expect(text).not.toContain(sshd.address);
      await connect({ knownHostsFiles: [kh] }).connect();
    });

    it('asks for the key type known_hosts has when the server offers several', async () => {
      const rsa = sshd.hostKeys.find((k) => k.type === 'ssh-rsa');
      const kh = join(dir, 'rsa-only');
      await writeFile(kh, `[${sshd.address}]:${sshd.port} ${rsa?.pub}\n`);
      const c = connect({ knownHostsFiles: [kh] });
      await c.connect();
      expect((await c.exec({ argv: ['true'] })).code).toBe(0);
    });
  });

  describe('errors', () => {
    it('connection refused → unreachable, in one sentence', async () => {
      const port = await freePort('127.0.0.1');
      const err = await expectConnectionError(connect({ host: 'node9', address: '127.0.0.1', port }).connect());
      expect(err.kind).toBe('unreachable');
      expect(err.message).toBe(`node9 (127.0.0.1:${port}): connection refused — is sshd running and listening there?`);
    });

    it('a key the server does not accept → auth', async () => {
      const wrong = await makeKeyPair(join(sshd.dir, 'wrong_key'));
      const err = await expectConnectionError(connect({ identityFile: wrong }).connect());
      expect(err.kind).toBe('auth');
      expect(err.message).toContain(`authentication failed for user root with key ${wrong} (publickey)`);
    });

    it('a passphrase-protected key works with passphraseEnv and fails clearly without it', async () => {
      const key = await makeKeyPair(join(sshd.dir, 'locked_key'), 'ecdsa', 'correct horse');
      await appendFile(sshd.authorizedKeys, await readFile(`${key}.pub`));
      process.env.TP_TEST_PASSPHRASE = 'correct horse';
      try {
        const ok = connect({ identityFile: key, passphraseEnv: 'TP_TEST_PASSPHRASE' });
        expect((await ok.exec({ argv: ['true'] })).code).toBe(0);
        const err = await expectConnectionError(
          connect({ identityFile: key, passphraseEnv: 'TP_NOT_SET_ANYWHERE' }).connect(),
        );
        expect(err.kind).toBe('auth');
        expect(err.message).toContain('TP_NOT_SET_ANYWHERE is not set');
        expect(err.message).not.toContain('correct horse');
      } finally {
        delete process.env.TP_TEST_PASSPHRASE;
      }
    });
  });

  describe('ProxyJump', () => {
    let bastion1: Sshd;
    let bastion2: Sshd;
    let target: Sshd;
    let kh: string;
    beforeAll(async () => {
      [bastion1, bastion2, target] = await Promise.all([
        startSshd({ address: '127.0.0.1' }),
        startSshd({ address: '127.0.0.1' }),
        startSshd({ address: '127.0.0.1', extraConfig: ['AllowTcpForwarding no'] }),
      ]);
      // Every hop logs in with the same key: authorise the target's client key on the bastions.
      const pub = await readFile(`${target.clientKey}.pub`);
      await Promise.all([appendFile(bastion1.authorizedKeys, pub), appendFile(bastion2.authorizedKeys, pub)]);
      kh = join(target.dir, 'all_known_hosts');
      await writeFile(
        kh,
        Buffer.concat(await Promise.all([bastion1, bastion2, target].map((s) => readFile(s.knownHosts)))),
      );
    });
    afterAll(async () => {
      await Promise.all([bastion1?.stop(), bastion2?.stop(), target?.stop()]);
    });

    it('reaches the target through two bastions, each host-key-checked', async () => {
      const c = connect(
        {
          knownHostsFiles: [kh],
          proxyJump: [
            { address: bastion1.address, port: bastion1.port },
            { address: bastion2.address, port: bastion2.port },
          ],
        },
        target,
      );
      const r = await c.exec({ script: 'echo "$HOME"' });
      expect(r.stdout.toString().trim()).toBe(target.home);
      expect(c.stats().connections).toBe(3);
      await c.close();
      // Each bastion saw one login and forwarded to the next hop.
      expect(bastion1.log().match(/Accepted publickey/g)).toHaveLength(1);
      expect(bastion2.log().match(/Accepted publickey/g)).toHaveLength(1);
      expect(target.log().match(/Accepted publickey/g)).toHaveLength(1);
    });

    it('refuses a bastion whose key is unknown, saying it is the bastion', async () => {
      const only = join(target.dir, 'target_only');
      await writeFile(only, await readFile(target.knownHosts));
      const err = await expectConnectionError(
        connect(
          { knownHostsFiles: [only], proxyJump: [{ address: bastion1.address, port: bastion1.port }] },
          target,
        ).connect(),
      );
      expect(err.kind).toBe('host-key');
      expect(err.message).toContain(`via bastion ${bastion1.address}:${bastion1.port}`);
    });
  });
});
