// A real OpenSSH sshd for tests, on a loopback address, in its own mount namespace so the login
// sees a private /etc/passwd (root's shell /bin/sh, a temp home: none of this machine's slow root
// shell start-up) and a private /run (sshd insists on /run/sshd). The machine's files are never
// modified: everything lives in a temp dir and in bind mounts that vanish with the namespace.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { namespacePasswd } from '../lab/passwd.js';

const run = promisify(execFile);

/** Host key algorithms sshd can be given. */
export type HostKeyType = 'ed25519' | 'ecdsa' | 'rsa';

export interface SshdOptions {
  /** Loopback address to listen on (default 127.0.0.1). */
  address?: string;
  /** Default: a free port. */
  port?: number;
  /** sshd MaxSessions (default 10, OpenSSH's default). */
  maxSessions?: number;
  /** Default ['ed25519']. */
  hostKeyTypes?: HostKeyType[];
  /** Extra sshd_config lines. */
  extraConfig?: string[];
  /** Shell commands run inside the namespace (as root) before sshd starts, e.g. more bind mounts. */
  namespaceSetup?: string[];
  /** Extra login users, seen only inside the namespace; each logs in with clientKey. */
  users?: SshdUser[];
  /** sshd LogLevel (default VERBOSE); DEBUG3 also logs each exec request's command line. */
  logLevel?: 'VERBOSE' | 'DEBUG' | 'DEBUG1' | 'DEBUG2' | 'DEBUG3';
  /** When set, the namespace's /etc/sudoers is exactly these lines (the machine's is never read). */
  sudoers?: string[];
}

/** An unprivileged login user that exists only inside sshd's namespace. */
export interface SshdUser {
  name: string;
  /** Also its primary group's gid. */
  uid: number;
  /** crypt(3) hash for /etc/shadow (e.g. `openssl passwd -6`); default `*`: no password, not locked. */
  passwordHash?: string;
}

export interface HostKey {
  type: string;
  /** The public key line (`ssh-ed25519 AAAA...`). */
  pub: string;
  /** Private key file. */
  path: string;
}

/** A running sshd; stop() kills every process in its namespace and removes its temp dir. */
export interface Sshd {
  address: string;
  port: number;
  pid: number;
  /** Temp dir holding config, keys, home and logs. */
  dir: string;
  /** root's home inside the namespace. */
  home: string;
  /** Home of each extra user (owned by it, with .ssh/authorized_keys holding clientKey). */
  userHomes: Record<string, string>;
  hostKeys: HostKey[];
  /** Private key (ed25519, no passphrase) in authorized_keys. */
  clientKey: string;
  /** authorized_keys for root; append to it to allow more keys. */
  authorizedKeys: string;
  /** A known_hosts file with this server's keys under `[address]:port`. */
  knownHosts: string;
  /** sshd's log so far (LogLevel VERBOSE unless options.logLevel). */
  log(): string;
  stop(): Promise<void>;
}

/** Makes an ssh key pair; returns the private key path (public key beside it as .pub). */
export async function makeKeyPair(path: string, type: HostKeyType = 'ed25519', passphrase = ''): Promise<string> {
  const bits = type === 'rsa' ? ['-b', '2048'] : type === 'ecdsa' ? ['-b', '256'] : [];
  await run('ssh-keygen', ['-q', '-t', type, ...bits, '-N', passphrase, '-C', '', '-f', path]);
  return path;
}

/** A TCP port nobody listens on right now at `address`. */
export function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, address, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function mountNamespace(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** Pids of every process in the same mount namespace as `pid` (sshd and its sessions). */
function namespacePids(pid: number): number[] {
  const ns = mountNamespace(pid);
  if (!ns || ns === mountNamespace(process.pid)) return [pid];
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if (mountNamespace(Number(entry)) === ns) pids.push(Number(entry));
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts sshd -D -e and waits until it listens. */
export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  const address = options.address ?? '127.0.0.1';
  const dir = await mkdtemp(join(tmpdir(), 'trustplay-sshd-'));
  const home = join(dir, 'home');
  await mkdir(home, { mode: 0o700 });
  await mkdir(join(dir, 'run', 'sshd'), { recursive: true, mode: 0o755 });
  await chmod(join(dir, 'run'), 0o755);

  const types = options.hostKeyTypes ?? ['ed25519'];
  const clientKey = join(dir, 'client_ed25519');
  await Promise.all([...types.map((t) => makeKeyPair(join(dir, `ssh_host_${t}_key`), t)), makeKeyPair(clientKey)]);
  const hostKeys: HostKey[] = [];
  for (const t of types) {
    const path = join(dir, `ssh_host_${t}_key`);
    const [type = '', b64 = ''] = (await readFile(`${path}.pub`, 'utf8')).trim().split(/\s+/);
    hostKeys.push({ type, pub: `${type} ${b64}`, path });
  }
  const authorizedKeys = join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, await readFile(`${clientKey}.pub`), { mode: 0o600 });

  const users = options.users ?? [];
  const userHomes: Record<string, string> = {};
  const passwd = namespacePasswd(home);
  const mounts = ['mount --bind "$1/passwd" /etc/passwd'];
  if (users.length > 0) {
    // Other users must reach their homes below the temp dir; 0711 lets them through without
    // listing it, and every secret in it is 0600 root.
    await chmod(dir, 0o711);
    const shadow = (await readFile('/etc/shadow', 'utf8')).split('\n').filter((line) => line !== '');
    const group = (await readFile('/etc/group', 'utf8')).split('\n').filter((line) => line !== '');
    for (const u of users) {
      if (!/^[a-z_][a-z0-9_-]*$/.test(u.name) || u.uid <= 0) throw new Error(`bad test user ${u.name} (${u.uid})`);
      const uhome = join(dir, 'users', u.name);
      await mkdir(join(uhome, '.ssh'), { recursive: true, mode: 0o700 });
      await writeFile(join(uhome, '.ssh', 'authorized_keys'), await readFile(`${clientKey}.pub`), { mode: 0o600 });
      await run('chown', ['-R', `${u.uid}:${u.uid}`, uhome]);
      await chmod(join(dir, 'users'), 0o755);
      userHomes[u.name] = uhome;
      passwd.push(`${u.name}:x:${u.uid}:${u.uid}::${uhome}:/bin/sh`);
      // A last change date that is not 0: 0 makes sshd demand a password change at login.
      shadow.push(`${u.name}:${u.passwordHash ?? '*'}:19000:0:99999:7:::`);
      group.push(`${u.name}:x:${u.uid}:`);
    }
    await writeFile(join(dir, 'shadow'), `${shadow.join('\n')}\n`, { mode: 0o600 });
    await writeFile(join(dir, 'group'), `${group.join('\n')}\n`, { mode: 0o644 });
    mounts.push('mount --bind "$1/shadow" /etc/shadow', 'mount --bind "$1/group" /etc/group');
  }
  await writeFile(join(dir, 'passwd'), `${passwd.join('\n')}\n`, { mode: 0o644 });
  if (options.sudoers) {
    // sudo refuses a sudoers file that is not owned by root or is writable by anyone.
    await writeFile(join(dir, 'sudoers'), `${options.sudoers.join('\n')}\n`, { mode: 0o440 });
    await chmod(join(dir, 'sudoers'), 0o440);
    mounts.push('mount --bind "$1/sudoers" /etc/sudoers');
  }

  const port = options.port ?? (await freePort(address));
  const knownHosts = join(dir, 'known_hosts');
  await writeFile(knownHosts, hostKeys.map((k) => `[${address}]:${port} ${k.pub}\n`).join(''), { mode: 0o600 });

  const config = [
    `ListenAddress ${address}:${port}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    ...hostKeys.map((k) => `HostKey ${k.path}`),
    `AuthorizedKeysFile ${authorizedKeys}`,
    'StrictModes no',
    'UsePAM no',
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    `MaxSessions ${options.maxSessions ?? 10}`,
    // Engine tests and benchmarks open many connections at once; OpenSSH's 10:30:100 drops some.
    'MaxStartups 200',
    'AllowTcpForwarding yes',
    'AllowStreamLocalForwarding yes',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    `LogLevel ${options.logLevel ?? 'VERBOSE'}`,
    ...(options.extraConfig ?? []),
    // Last: a Match block runs to the end of the file.
    ...(users.length > 0
      ? [`Match User ${users.map((u) => u.name).join(',')}`, '  AuthorizedKeysFile %h/.ssh/authorized_keys']
      : []),
    '',
  ].join('\n');
  const configPath = join(dir, 'sshd_config');
  await writeFile(configPath, config, { mode: 0o600 });

  const script = [
    'set -e',
    ...mounts,
    'mount --bind "$1/run" /run',
    ...(options.namespaceSetup ?? []),
    'exec /usr/sbin/sshd -D -e -f "$1/sshd_config"',
  ].join('\n');
  // No --fork: unshare execs sh, which execs sshd, so the pid we hold is sshd's.
  const child = spawn('unshare', ['-m', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', dir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    log += s;
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start unshare/sshd');

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`sshd on ${address}:${port} did not start listening within 10 s:\n${log}`));
    }, 10_000);
    const onData = (): void => {
      if (log.includes('Server listening on')) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`sshd on ${address}:${port} exited (${code}) before listening:\n${log}`));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stderr.off('data', onData);
      child.off('exit', onExit);
    };
    child.stderr.on('data', onData);
    child.on('exit', onExit);
    onData();
  }).catch(async (err: unknown) => {
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  });

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      // Session processes outlive a SIGTERM'd listener; they share its namespace, so find them there.
      const pids = alive(pid) ? namespacePids(pid) : [];
      for (const p of pids) {
        try {
          process.kill(p, 'SIGTERM');
        } catch {
          // already gone
        }
      }
      const deadline = Date.now() + 3000;
      while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      for (const p of pids.filter(alive)) process.kill(p, 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  return {
    address,
    port,
    pid,
    dir,
    home,
    userHomes,
    hostKeys,
    clientKey,
    authorizedKeys,
    knownHosts,
    log: () => log,
    stop,
  };
}

/** Whether this machine can run startSshd (root, sshd, unshare); a reason when not. */
export function sshdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mount namespaces and sshd)';
  if (!existsSync('/usr/sbin/sshd')) return 'needs /usr/sbin/sshd (Debian package openssh-server)';
  return undefined;
}
