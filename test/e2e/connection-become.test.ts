// become (sudo) for real: a real sshd whose mount namespace alone has the users `deploy`
// (password, `ALL`), `nopass` (`NOPASSWD: ALL`) and `partial` (NOPASSWD for cat only, else
// password), a real Debian sudo with PAM checking the namespace's /etc/shadow, and sudo's
// credential cache off so every command really authenticates. The machine's /etc is never touched.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ConnectionError,
  FileOperationError,
  LocalConnection,
  SshConnection,
  type SshConnectionOptions,
} from '../../src/connection/index.js';
import { ConnectionPool, connectionSpec } from '../../src/engine/connect.js';
import { parseInventory, type Inventory } from '../../src/playbook/inventory.js';
import { trustplay } from '../support/cli.js';
import { sshdUnavailable, startSshd, type Sshd } from '../support/sshd.js';

const unavailable =
  sshdUnavailable() ?? (existsSync('/usr/bin/sudo') ? undefined : 'needs /usr/bin/sudo (Debian package sudo)');
if (unavailable && process.env.CI === 'true') throw new Error(`become tests cannot run in CI: ${unavailable}`);

// Unique enough that finding it anywhere means it leaked.
const PASSWORD = `become-pw-${randomBytes(12).toString('hex')}`;

/** A crypt(3) SHA-512 hash, the password given on stdin (never on openssl's command line). */
async function passwordHash(password: string): Promise<string> {
  const child = execFile('openssl', ['passwd', '-6', '-stdin']);
  child.stdin?.end(`${password}\n`);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0 || !out.startsWith('$6$')) throw new Error(`openssl passwd failed (${code})`);
  return out.trim();
}

/** Every readable /proc/<pid>/cmdline and environ on this machine (one pid namespace with sshd's). */
function processTexts(): { cmdlines: string[]; environs: string[] } {
  const cmdlines: string[] = [];
  const environs: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      cmdlines.push(readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' '));
      environs.push(readFileSync(`/proc/${entry}/environ`, 'utf8'));
    } catch {
      // exited meanwhile
    }
  }
  return { cmdlines, environs };
}

/** The sudo wrapper's fifo dirs that the namespace-only test users left in this machine's /tmp. */
function wrapperLeftovers(): string[] {
  return readdirSync('/tmp').filter((n) => {
    if (!n.startsWith('trustplay-sudo.')) return false;
    try {
      return statSync(join('/tmp', n)).uid >= 4242 && statSync(join('/tmp', n)).uid <= 4244;
    } catch {
      return false;
    }
  });
}

describe('become_password_env: the inventory names a variable, the connection gets its value', () => {
  const inventory = (text: string): Inventory => {
    const { inventory: inv, errors } = parseInventory('inventory.yaml', text);
    expect(errors).toEqual([]);
    return inv!;
  };
  const inv = inventory(
    [
      'ssh:',
      '  become_password_env: TP_UNIT_SUDO_PASS',
      'hosts:',
      '  a: { become: true }',
      '  b: { become: true, become_password_env: TP_UNIT_OTHER }',
      '  c: { become: false }',
      '',
    ].join('\n'),
  );
  const host = (name: string) => inv.hosts.get(name)!;
  const NAMES = ['TP_UNIT_SUDO_PASS', 'TP_UNIT_OTHER'];
  afterEach(() => {
    for (const n of NAMES) delete process.env[n];
  });

  it('reads the named variable at connect time; the ssh default applies to hosts without their own', () => {
    process.env['TP_UNIT_SUDO_PASS'] = 'pw-a';
    process.env['TP_UNIT_OTHER'] = 'pw-b';
    expect(connectionSpec(inv, host('a')).becomePassword).toBe('pw-a');
    expect(connectionSpec(inv, host('b')).becomePassword).toBe('pw-b');
    // Without become no password is read (and none is required).
    delete process.env['TP_UNIT_SUDO_PASS'];
    expect(connectionSpec(inv, host('c')).becomePassword).toBeUndefined();
    const err = (() => {
      try {
        connectionSpec(inv, host('a'));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toBe(
      'a: become_password_env names TP_UNIT_SUDO_PASS, which is not set — export it with the sudo password for user root',
    );
  });

  it('a pool hands out a connection that fails at connect() with that sentence', async () => {
    const pool = new ConnectionPool(inv);
    await expect(pool.get('a').connect()).rejects.toThrow(
      /become_password_env names TP_UNIT_SUDO_PASS, which is not set/,
    );
    await expect(pool.get('a').exec({ argv: ['true'] })).rejects.toThrow(ConnectionError);
  });

  it('takes a variable name, not something that looks like a password', () => {
    const { errors } = parseInventory(
      'inventory.yaml',
      'hosts:\n  a: { become: true, become_password_env: "hunter2 !" }\n',
    );
    expect(errors.length).toBeGreaterThan(0);
  });
});

describe.skipIf(unavailable !== undefined)('become through a real sudo over a real sshd', () => {
  let sshd: Sshd;
  const opened: SshConnection[] = [];
  let secure: string;

  function connect(user: string, extra: Partial<SshConnectionOptions> = {}): SshConnection {
    const c = new SshConnection({
      host: 'node1',
      address: sshd.address,
      port: sshd.port,
      user,
      identityFile: sshd.clientKey,
      knownHostsFiles: [sshd.knownHosts],
      become: true,
      ...extra,
    });
    opened.push(c);
    return c;
  }

  beforeAll(async () => {
    const hash = await passwordHash(PASSWORD);
    sshd = await startSshd({
      // DEBUG3 logs every exec request's command line, so the log check below means something.
      logLevel: 'DEBUG3',
      users: [
        { name: 'deploy', uid: 4242, passwordHash: hash },
        { name: 'nopass', uid: 4243 },
        { name: 'partial', uid: 4244, passwordHash: hash },
      ],
      sudoers: [
        // Debian's shipped defaults, so the wrapper meets what a real node has.
        'Defaults env_reset',
        'Defaults mail_badpass',
        'Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
        'Defaults use_pty',
        // No credential cache: every command authenticates again.
        'Defaults timestamp_timeout=0',
        // No DNS lookup of this machine's name on every sudo.
        'Defaults !fqdn',
        'root ALL=(ALL:ALL) ALL',
        'deploy ALL=(ALL) ALL',
        'nopass ALL=(ALL) NOPASSWD: ALL',
        'partial ALL=(ALL) ALL',
        'partial ALL=(ALL) NOPASSWD: /usr/bin/cat',
      ],
    });
    // Root-only, below the (0711) temp dir both sides of the namespace see at the same path.
    secure = join(sshd.dir, 'secure');
    await mkdir(secure, { mode: 0o700 });
    await chmod(secure, 0o700);
  });

  afterAll(async () => {
    await Promise.all(opened.map((c) => c.close()));
    await sshd?.stop();
  });

  it('the namespace really has the users, and a plain exec as deploy is not root', async () => {
    const plain = connect('deploy', { become: false });
    const r = await plain.exec({ script: 'id -un; id -u; sudo -n true' });
    expect(r.stdout.toString()).toBe('deploy\n4242\n');
    expect(r.code).toBe(1);
    expect(r.stderr.toString()).toMatch(/a password is required/);
    // The root-owned 0700 dir is closed to deploy without become, and says so rather than
    // reporting its files as absent.
    await writeFile(join(secure, 'present'), 'x');
    const ops = [
      () => plain.readFile(join(secure, 'present')),
      () => plain.stat(join(secure, 'present')),
      () => plain.readFile(join(secure, 'sub', 'absent')),
    ];
    for (const op of ops) {
      const err = await op().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(FileOperationError);
      expect((err as Error).message).toMatch(
        /permission denied: .*secure cannot be searched by deploy \(become needed\?\)/,
      );
    }
    await rm(join(secure, 'present'));
    // Really absent (in a dir deploy can search) is still `null`, not an error.
    expect(await plain.readFile(join(sshd.userHomes['deploy']!, 'absent', 'file'))).toBeNull();
    expect(await plain.stat(join(sshd.userHomes['deploy']!, 'absent'))).toEqual({ exists: false });
  });

  it('nopass with become runs as root (sudo -n)', async () => {
    const c = connect('nopass');
    const r = await c.exec({ argv: ['id', '-u'] });
    expect(r.stderr.toString()).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('0\n');
  });

  it('deploy with a password runs as root, and the command gets its stdin intact', async () => {
    const c = connect('deploy', { becomePassword: PASSWORD });
    const id = await c.exec({ argv: ['id', '-u'] });
    expect(id.stderr.toString()).toBe('');
    expect(id.code).toBe(0);
    expect(id.stdout.toString()).toBe('0\n');
    const cat = await c.exec({ argv: ['cat'] });
    expect(cat.stdout.toString()).toBe('');
    const payload = await c.exec({ argv: ['cat'] }, { stdin: 'payload' });
    expect(payload.code).toBe(0);
    expect(payload.stdout.toString()).toBe('payload');
    // Binary, multi-line and large stdin pass byte for byte.
    const big = Buffer.concat([randomBytes(200_000), Buffer.from('\nline\n\0tail')]);
    const sum = await c.exec({ script: 'id -u; wc -c' }, { stdin: big });
    expect(sum.stdout.toString().split(/\s+/).slice(0, 2)).toEqual(['0', String(big.length)]);
    // The environment reaches the command through sudo.
    const env = await c.exec({ script: 'echo "$TP_MARK:$(id -u)"' }, { env: { TP_MARK: 'x y' } });
    expect(env.stdout.toString()).toBe('x y:0\n');
  });

  it('a password line never reaches a command that sudo runs without asking for it', async () => {
    // partial may run cat without a password: sudo reads no password, so the line must not end
    // up in cat's stdin (and from there in a file or an output).
    const c = connect('partial', { becomePassword: PASSWORD });
    const r = await c.exec({ argv: ['cat'] }, { stdin: 'payload' });
    expect(r.stdout.toString()).toBe('payload');
    expect(r.code).toBe(0);
    const id = await c.exec({ argv: ['id', '-u'] });
    expect(id.stdout.toString()).toBe('0\n');
  });

  it('deploy without a password fails as a value saying a password is required', async () => {
    // become per command: a connection with become checks sudo when it connects (below).
    const c = connect('deploy', { become: false });
    const r = await c.exec({ argv: ['id', '-u'] }, { timeoutMs: 20_000, become: true });
    expect(r.timedOut).toBeUndefined();
    expect(r.code).not.toBe(0);
    expect(r.stdout.toString()).toBe('');
    expect(r.stderr.toString()).toMatch(/a password is required/);
  });

  it('a wrong password fails as a value after one attempt; the stdin is never tried as a password', async () => {
    const c = connect('deploy', { becomePassword: 'not-the-password', become: false });
    const r = await c.exec({ argv: ['id', '-u'] }, { timeoutMs: 20_000, become: true });
    expect(r.timedOut).toBeUndefined();
    expect(r.code).not.toBe(0);
    expect(r.stdout.toString()).toBe('');
    expect(r.stderr.toString()).toMatch(/incorrect password/);
    // A multi-line stdin (a file being written) must not become more password attempts.
    const target = join(secure, 'never-written');
    const w = await c.exec(
      { argv: ['sh', '-c', 'cat > "$1"', 'sh', target] },
      { stdin: 'line-one\nline-two\nline-three\n', timeoutMs: 20_000, become: true },
    );
    expect(w.timedOut).toBeUndefined();
    expect(w.code).not.toBe(0);
    expect(w.stderr.toString()).toMatch(/1 incorrect password attempt\b/);
    expect(existsSync(target)).toBe(false);
    // With become on the connection, sudo is tried once when it connects, and nothing runs after.
    const bad = connect('deploy', { becomePassword: 'not-the-password', becomePasswordEnv: 'TP_SUDO' });
    await expect(bad.writeFile(target, 'x\ny\nz\n')).rejects.toThrow(
      /^node1 \(127\.0\.0\.1:\d+\): sudo refused the password from TP_SUDO for user deploy — check the value of that variable$/,
    );
    expect(existsSync(target)).toBe(false);
    expect(wrapperLeftovers()).toEqual([]);
  });

  it('a connection with become fails when it connects, in one sentence, when sudo will not run commands', async () => {
    await expect(connect('deploy').connect()).rejects.toThrow(
      /^node1 \(127\.0\.0\.1:\d+\): sudo asks user deploy for a password — set become_password_env to the name of an environment variable holding it, or give deploy NOPASSWD in the host's sudoers$/,
    );
    await expect(connect('nopass', { becomeUser: 'nobody-here' }).connect()).rejects.toThrow(
      /become_user nobody-here does not exist on the host — fix become_user in the inventory$/,
    );
  });

  it('become_user other than root: commands and files run as that user, with and without a password', async () => {
    for (const c of [
      connect('nopass', { becomeUser: 'deploy' }),
      connect('deploy', { becomeUser: 'nopass', becomePassword: PASSWORD }),
    ]) {
      const me = await c.exec({ script: 'id -un; wc -c' }, { stdin: 'four' });
      const expected = c === opened.at(-1) ? 'nopass' : 'deploy';
      expect(me.stdout.toString()).toBe(`${expected}\n4\n`);
      // The root-only dir stays closed: this is not root.
      await expect(c.readFile(join(secure, 'present'))).rejects.toThrow(/permission denied/);
    }
    expect(wrapperLeftovers()).toEqual([]);
  });

  it("the password is on no command line, in no environment and not in sshd's log", async () => {
    const c = connect('deploy', { becomePassword: PASSWORD });
    const marker = `2.${process.pid}`;
    const running = c.exec({ argv: ['sleep', marker] }, { stdin: 'some stdin\n' });
    // Look while the whole chain (login shell, wrapper, sudo, the command) is alive.
    let seen: { cmdlines: string[]; environs: string[] } = { cmdlines: [], environs: [] };
    for (let i = 0; i < 400; i++) {
      seen = processTexts();
      if (seen.cmdlines.some((l) => l.startsWith(`sleep ${marker}`))) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(seen.cmdlines.some((l) => l.startsWith(`sleep ${marker}`))).toBe(true);
    expect(seen.cmdlines.some((l) => l.startsWith('sudo '))).toBe(true);
    // The wrapper's fifo dir exists while the command runs (so the leftover checks can see one).
    expect(wrapperLeftovers()).toHaveLength(1);
    for (const l of seen.cmdlines) expect(l).not.toContain(PASSWORD);
    for (const e of seen.environs) expect(e).not.toContain(PASSWORD);
    // From inside the session too, as any user on the node would look.
    const ps = await connect('nopass', { become: false }).exec({ argv: ['ps', '-eo', 'args'] });
    expect(ps.stdout.toString()).toContain(`sleep ${marker}`);
    expect(ps.stdout.toString()).not.toContain(PASSWORD);
    const r = await running;
    expect(r.code).toBe(0);
    const log = sshd.log();
    expect(log).toContain(`sleep ${marker}`);
    expect(log).not.toContain(PASSWORD);
  });

  it('file operations through become keep the file root-owned in a root-only directory', async () => {
    const c = connect('deploy', { becomePassword: PASSWORD });
    const path = join(secure, 'config.toml');
    await c.writeFile(path, 'a = 1\nb = "two"\n', { mode: 0o600 });
    expect(await c.readFile(path)).toEqual(Buffer.from('a = 1\nb = "two"\n'));
    expect(await c.stat(path)).toMatchObject({ exists: true, isFile: true, mode: 0o600, uid: 0, gid: 0, size: 16 });
    // A rewrite keeps mode and owner.
    await c.writeFile(path, 'a = 2\n');
    const st = await stat(path);
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([0, 0, 0o600]);
    expect(await readFile(path, 'utf8')).toBe('a = 2\n');
    expect(await c.stat(join(secure, 'absent'))).toEqual({ exists: false });
    expect(await c.readFile(join(secure, 'absent'))).toBeNull();
    await c.remove(path);
    expect(existsSync(path)).toBe(false);
    // No temp files or fifos left behind by the write or the wrapper.
    expect(readdirSync(secure)).toEqual([]);
    expect(wrapperLeftovers()).toEqual([]);
  });

  it('a timeout under become kills the command as a value, and the wrapper still cleans up', async () => {
    const c = connect('deploy', { becomePassword: PASSWORD });
    const marker = `31.${process.pid}`;
    const r = await c.exec({ argv: ['sleep', marker] }, { timeoutMs: 500, stdin: 'x\n' });
    expect(r.timedOut).toBe(true);
    expect(r.code).toBe(124);
    // The remote `timeout` runs as root inside sudo and ends the sleep about a second later.
    for (
      let i = 0;
      i < 200 &&
      (processTexts().cmdlines.some((l) => l.startsWith(`sleep ${marker}`)) || wrapperLeftovers().length > 0);
      i++
    ) {
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(processTexts().cmdlines.filter((l) => l.includes(`sleep ${marker}`))).toEqual([]);
    expect(wrapperLeftovers()).toEqual([]);
  });

  it('LocalConnection as root ignores become and runs directly', async () => {
    // The test runs as root; LocalConnection skips sudo then, so no password is asked for.
    const local = new LocalConnection({ become: true, becomePassword: 'unused' });
    const r = await local.exec({ argv: ['id', '-u'] }, { stdin: 'x' });
    expect(r.stdout.toString()).toBe('0\n');
  });

  describe('through the CLI: an inventory host with user deploy, become and become_password_env', () => {
    let work: string;
    let cred: string;
    const CONTENT = `{\n  "auths": {\n    "reg.test:5000": { "auth": "c3RhbGU6c2VjcmV0" },\n    "other.test": { "auth": "b3RoZXI6a2VlcA==" }\n  }\n}\n`;

    beforeAll(async () => {
      work = join(sshd.dir, 'cli');
      await mkdir(join(work, 'locks'), { recursive: true });
      cred = join(secure, 'config.json');
      await writeFile(cred, CONTENT, { mode: 0o600 });
      await writeFile(
        join(work, 'inventory.yaml'),
        [
          'ssh:',
          `  known_hosts: ${sshd.knownHosts}`,
          'hosts:',
          '  node1:',
          `    address: ${sshd.address}`,
          `    port: ${sshd.port}`,
          '    user: deploy',
          `    identity_file: ${sshd.clientKey}`,
          '    become: true',
          '    become_password_env: TP_TEST_SUDO_PASS',
          '',
        ].join('\n'),
      );
      await writeFile(
        join(work, 'wipe.yaml'),
        [
          '- hosts: node1',
          '  tasks:',
          '    - name: wipe',
          '      node.creds.wipe:',
          '        registry: reg.test:5000',
          '        containerd_auth: false',
          `        paths: [${cred}]`,
          '',
        ].join('\n'),
      );
    });

    const cli = (env: Record<string, string>) =>
      trustplay(
        ['run', join(work, 'wipe.yaml'), '-i', join(work, 'inventory.yaml'), '--state-dir', join(work, 'state')],
        {
          env: { TRUSTPLAY_LOCK_DIR: join(work, 'locks'), ...env },
          timeoutMs: 120_000,
        },
      );

    it('a missing variable is a clear unreachable error, and nothing changes', async () => {
      const r = await cli({});
      expect(r.code, r.stdout + r.stderr).toBe(4);
      expect(r.stdout + r.stderr).toContain('become_password_env names TP_TEST_SUDO_PASS, which is not set');
      expect(await readFile(cred, 'utf8')).toBe(CONTENT);
    });

    it('removes the entry from a root-owned 0600 file as deploy through sudo, keeping owner and mode', async () => {
      const r = await cli({ TP_TEST_SUDO_PASS: PASSWORD });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout + r.stderr).not.toContain(PASSWORD);
      const after = await readFile(cred, 'utf8');
      expect(JSON.parse(after)).toEqual({ auths: { 'other.test': { auth: 'b3RoZXI6a2VlcA==' } } });
      const st = await stat(cred);
      expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([0, 0, 0o600]);
      expect(sshd.log()).not.toContain(PASSWORD);
      // Twice is a no-op.
      const again = await cli({ TP_TEST_SUDO_PASS: PASSWORD });
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(await readFile(cred, 'utf8')).toBe(after);
    });
  });

  it('measures: a become exec vs a plain one (printed, not asserted)', async () => {
    const plain = connect('deploy', { become: false });
    const nopass = connect('nopass');
    const pw = connect('deploy', { becomePassword: PASSWORD });
    const median = async (c: SshConnection): Promise<number> => {
      await c.exec({ argv: ['true'] });
      const times: number[] = [];
      for (let i = 0; i < 15; i++) {
        const t0 = performance.now();
        const r = await c.exec({ argv: ['true'] });
        times.push(performance.now() - t0);
        expect(r.code).toBe(0);
      }
      times.sort((a, b) => a - b);
      return times[7]!;
    };
    const [a, b, d] = [await median(plain), await median(nopass), await median(pw)];
    console.log(
      `exec true over SSH, median of 15: plain ${a.toFixed(1)} ms, become NOPASSWD ${b.toFixed(1)} ms, become with password ${d.toFixed(1)} ms`,
    );
  });
});
