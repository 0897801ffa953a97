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
  hostKeys: HostKey[];
  /** Private key (ed25519, no passphrase) in authorized_keys. */
  clientKey: string;
  /** authorized_keys for root; append to it to allow more keys. */
  authorizedKeys: string;
  /** A known_hosts file with this server's keys under `[address]:port`. */
  knownHosts: string;
  /** sshd's log so far (LogLevel VERBOSE). */
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

  const passwd = (await readFile('/etc/passwd', 'utf8'))
    .split('\n')
    .map((line) => (line.startsWith('root:') ? `root:x:0:0:root:${home}:/bin/sh` : line))
    .join('\n');
  await writeFile(join(dir, 'passwd'), passwd, { mode: 0o644 });

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
    'LogLevel VERBOSE',
    ...(options.extraConfig ?? []),
    '',
  ].join('\n');
  const configPath = join(dir, 'sshd_config');
  await writeFile(configPath, config, { mode: 0o600 });

  const script = [
    'set -e',
    'mount --bind "$1/passwd" /etc/passwd',
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

  return { address, port, pid, dir, home, hostKeys, clientKey, authorizedKeys, knownHosts, log: () => log, stop };
}

/** Whether this machine can run startSshd (root, sshd, unshare); a reason when not. */
export function sshdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mount namespaces and sshd)';
  if (!existsSync('/usr/sbin/sshd')) return 'needs /usr/sbin/sshd (Debian package openssh-server)';
  return undefined;
}
