/**
 * One lab node: a private mount namespace (held by a `sleep` started under `unshare -m`) in which
 * the node's own files are bind-mounted over /etc/hosts, /etc/resolv.conf (loopback DNS only),
 * /etc/passwd, /etc/containerd, /run, /var/lib, /root and /usr/local/sbin; a containerd with a realistic config; and an sshd on the
 * node's own loopback address. Nothing is mounted in this machine's namespace.
 */
import { spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { ContainerdBuild, ContainerdVersionKey } from './containerd-versions.js';
import { DROPIN_DIR, SHIM_PIDFILE, systemctlShim, type ShimUnit } from './systemctl-shim.js';
import { FIXED_RELEASE, PRE_FIX_RELEASE, paths as rancherPaths } from './k3s-standin.js';
import { namespacePasswd } from './passwd.js';
import type { LabDocker } from './docker-engine.js';
import { processName, run, startDetached, tcpAnswers, waitFor } from './procs.js';

/** What the lab records about one node (lab.json). */
export interface LabNode {
  name: string;
  /** Loopback address sshd listens on, 127.0.0.(10+i). */
  address: string;
  sshPort: number;
  /** The process holding the node's mount namespace: enter with `nsenter -t <nsPid> -m`. */
  nsPid: number;
  /** containerd's pid when the lab came up (a restart changes it; `labState` re-reads it). */
  containerdPid: number;
  sshdPid: number;
  /** The CRI socket as the node sees it. */
  criSocket: string;
  /** The same socket reached from this machine (the node's /run is a directory of the lab). */
  hostSocket: string;
  /** The node's files on this machine; `files` maps each node path to its directory here. */
  root: string;
  files: {
    '/etc/containerd': string;
    '/run': string;
    '/var/lib': string;
    '/root': string;
    '/etc/hosts': string;
  };
  /** The containerd this node runs: version key, Debian release and the binary its unit starts. */
  containerd: { version: ContainerdVersionKey; release: string; binary: string };
  /**
   * `containerd`: a packaged containerd run by its own unit. `k3s` / `rke2`: the k3s stand-in
   * (k3s-standin.ts) renders /etc/rancher/<flavour>/registries.yaml at each start of the unit of
   * that name (`k3s`, `rke2-server`) and runs the containerd binary with k3s's paths and socket.
   */
  flavour: NodeFlavour;
  /** containerd's pidfile and log on this machine. */
  containerdPidFile: string;
  containerdLog: string;
  /** How trustplay logs in: root, or a sudo user (NOPASSWD, or with the lab's sudo password). */
  login: { user: string; sudo?: NodeSudo };
  /** Docker Engine on this node (`useLab({ docker: [...] })`, docker-engine.ts). */
  docker?: LabDocker;
  /** containers/image's programs are visible in this node (`useLab({ containers: [...] })`); else hidden. */
  containers?: boolean;
}

/** How a non-root login user escalates: NOPASSWD, or a password every time (no credential cache). */
export type NodeSudo = 'nopasswd' | 'password';

/** The non-root login user of a lab whose nodes are reached with become. */
export interface LabLoginUser {
  name: string;
  uid: number;
  /** crypt(3) hash of the lab's sudo password. */
  passwordHash: string;
}

/** What every node shares. */
export interface NodeContext {
  labDir: string;
  /** Lines appended to the node's copy of /etc/hosts. */
  hostsLines: string[];
  authorizedKey: string;
  registryHost: string;
  /** Called as soon as a process starts, so a failed `up` can still be cleaned up by pid. */
  track: (pid: number, comm: string, what: string) => void;
  /** containerd unit drop-ins (file name -> content) under the node's /run/systemd/system/containerd.service.d. */
  dropIns?: Record<string, string>;
  /** The login user of nodes reached with become (absent: every node logs in as root). */
  loginUser?: LabLoginUser;
}

/**
 * Debian's shipped sudoers defaults (env_reset, secure_path, use_pty), so the sudo wrapper meets
 * what a real node has, then the login user's rule. With a password there is no credential cache:
 * every command really authenticates.
 */
function sudoersFor(user: string, sudo: NodeSudo): string {
  return [
    '# sudoers of a trustplay lab node (bind-mounted over /etc/sudoers inside the node only)',
    'Defaults env_reset',
    'Defaults mail_badpass',
    'Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
    'Defaults use_pty',
    // No DNS lookup of this machine's name on every sudo.
    'Defaults !fqdn',
    ...(sudo === 'password' ? ['Defaults timestamp_timeout=0'] : []),
    'root ALL=(ALL:ALL) ALL',
    sudo === 'password' ? `${user} ALL=(ALL:ALL) ALL` : `${user} ALL=(ALL:ALL) NOPASSWD: ALL`,
    // A sudoers.d drop-in can be added by a test (requiretty, other users).
    '@includedir /etc/sudoers.d',
    '',
  ].join('\n');
}

/**
 * The node's /etc/resolv.conf. This machine's resolver is outside 127.0.0.0/8, and containerd asks
 * DNS for any name its /etc/hosts lacks (a test pulling a made-up host, docker.io): nothing listens
 * on 127.0.0.1:53, so such a lookup fails at once with "connection refused" and no query ever
 * leaves the machine.
 */
export const LOOPBACK_RESOLV_CONF = [
  '# trustplay lab node: DNS only on loopback, where nothing answers (names the lab serves are in /etc/hosts)',
  'nameserver 127.0.0.1',
  'options timeout:1 attempts:1',
  '',
].join('\n');

/** Paths the node's namespace mounts over; the lab directory must not live under any of them. */
export const NODE_MOUNTS = [
  '/etc/hosts',
  '/etc/resolv.conf',
  '/etc/passwd',
  '/etc/containerd',
  '/run',
  '/var/lib',
  '/root',
  '/usr/local/sbin',
];

/** What a node runs: a containerd build and its config.toml. */
export interface NodeContainerd {
  build: ContainerdBuild;
  config: string;
}

/** How a node runs containerd: packaged, or embedded in k3s / RKE2 (the lab's stand-in). */
export type NodeFlavour = 'containerd' | 'k3s' | 'rke2';

/** The unit name of a k3s / RKE2 stand-in node (a server node's). */
export const RANCHER_UNIT = { k3s: 'k3s', rke2: 'rke2-server' } as const;

/**
 * The registries.yaml a k3s/RKE2 lab node starts with: a person's file with comments and a
 * docker.io mirror whose endpoint must keep working, and nothing for the lab registry.
 */
export function initialRegistriesYaml(flavour: 'k3s' | 'rke2'): string {
  return [
    `# /etc/rancher/${flavour}/registries.yaml: read by ${flavour} at every start (ops ticket OPS-1234)`,
    'mirrors:',
    '  docker.io:',
    '    endpoint:',
    '      - "https://mirror.corp.test:5000"   # pull-through cache',
    'configs:',
    '  "mirror.corp.test:5000":',
    '    tls:',
    '      insecure_skip_verify: true   # lab cache, self-signed',
    '',
  ].join('\n');
}

/** The repository root (the k3s stand-in runs from there with tsx). */
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `containerd config default` of the given build, with the comment header a real node's file has. */
export async function realisticContainerdConfig(build: ContainerdBuild): Promise<string> {
  const { stdout } = await run(path.join(build.binDir, 'containerd'), ['config', 'default']);
  return [
    '# /etc/containerd/config.toml: generated with `containerd config default` at node provisioning.',
    '# Registry trust belongs in hosts.toml files under the CRI registry config_path (containerd',
    '# docs/hosts.md); config_path is still unset on this node.',
    '',
    stdout,
  ].join('\n');
}

/** A docker-style config.json with a stale entry for the lab registry and one for another registry. */
function staleCredentials(registryKey: string): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return `${JSON.stringify(
    {
      auths: {
        [registryKey]: { auth: b64('ci-bot:expired-token-2023') },
        'other.example:5000': { auth: b64('other-user:other-pass') },
      },
    },
    null,
    '\t',
  )}\n`;
}

function sshdConfig(node: { address: string; port: number; dir: string }): string {
  return [
    '# sshd for a trustplay lab node (runs inside the node mount namespace)',
    `ListenAddress ${node.address}:${node.port}`,
    `HostKey ${node.dir}/ssh/ssh_host_ed25519_key`,
    `PidFile ${node.dir}/ssh/sshd.pid`,
    'PermitRootLogin prohibit-password',
    'AuthorizedKeysFile .ssh/authorized_keys',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'MaxSessions 10',
    'PrintMotd no',
    'PrintLastLog no',
    'UseDNS no',
    'AcceptEnv LANG LC_*',
    'Subsystem sftp internal-sftp',
    'LogLevel ERROR',
    '',
  ].join('\n');
}

/** Starts `unshare -m` running a mount script then `sleep infinity`; resolves with its pid once mounted. */
function startHolder(
  binds: [string, string][],
  log: string,
  etcOverlay?: { upper: string; work: string },
): Promise<number> {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = [
    'set -e',
    // A k3s node needs /etc/rancher, which this machine does not have: the node's /etc is an
    // overlay whose changes land in the node's own directory (this machine's /etc is the read-only lower layer).
    ...(etcOverlay
      ? [`mount -t overlay overlay -o lowerdir=/etc,upperdir=${q(etcOverlay.upper)},workdir=${q(etcOverlay.work)} /etc`]
      : []),
    ...binds.map(([src, dst]) => `mount --bind ${q(src)} ${q(dst)}`),
    'echo ready',
    'exec sleep infinity </dev/null >/dev/null 2>&1',
  ].join('\n');
  return new Promise((resolve, reject) => {
    // Private propagation: the binds exist only in the new namespace, never on this machine.
    const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error('timed out')), 10_000);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      writeFileSync(log, `${out}${err}`);
      reject(new Error(`could not set up the node's mount namespace: ${err.trim() || e.message}`));
    };
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`unshare exited with code ${String(code)}`)));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (!out.includes('ready\n') || child.pid === undefined) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.stdout.destroy();
      child.stderr.destroy();
      child.unref();
      resolve(child.pid);
    });
  });
}

/** Creates node `index` (1-based), starts its namespace, containerd and sshd. */
export async function startNode(
  ctx: NodeContext,
  index: number,
  sshPort: number,
  containerd: NodeContainerd,
  flavour: NodeFlavour = 'containerd',
  sudo?: NodeSudo,
): Promise<LabNode> {
  const name = `node${index}`;
  const address = `127.0.0.${10 + index}`;
  const dir = path.join(ctx.labDir, 'nodes', name);
  const files = {
    '/etc/containerd': path.join(dir, 'etc-containerd'),
    '/run': path.join(dir, 'run'),
    '/var/lib': path.join(dir, 'var-lib'),
    '/root': path.join(dir, 'root'),
    '/etc/hosts': path.join(dir, 'etc-hosts'),
  };
  const passwd = path.join(dir, 'etc-passwd');
  const resolvConf = path.join(dir, 'etc-resolv.conf');
  const sbin = path.join(dir, 'usr-local-sbin');
  for (const d of [
    files['/etc/containerd'],
    files['/run'],
    path.join(files['/run'], 'lab'),
    files['/var/lib'],
    sbin,
    path.join(dir, 'ssh'),
  ]) {
    mkdirSync(d, { recursive: true });
  }
  // sshd refuses to start without its privilege-separation directory.
  mkdirSync(path.join(files['/run'], 'sshd'), { recursive: true, mode: 0o755 });
  mkdirSync(path.join(files['/var/lib'], 'containerd'), { recursive: true, mode: 0o711 });
  mkdirSync(path.join(files['/var/lib'], 'kubelet'), { recursive: true, mode: 0o700 });
  mkdirSync(path.join(files['/root'], '.ssh'), { recursive: true, mode: 0o700 });
  mkdirSync(path.join(files['/root'], '.docker'), { recursive: true, mode: 0o700 });
  chmodSync(files['/root'], 0o700);

  const hostsFile = readFileSync('/etc/hosts', 'utf8');
  writeFileSync(
    files['/etc/hosts'],
    `${hostsFile.endsWith('\n') ? hostsFile : `${hostsFile}\n`}# trustplay lab (${name}'s own /etc/hosts)\n${ctx.hostsLines.join('\n')}\n`,
  );
  const users = namespacePasswd('/root');
  // A node reached as a sudo user: the user, its group, its password (for sudo's PAM) and home, and
  // sudoers exist inside the node only. Its managed files are closed to that user, so any module
  // that read or wrote them without become would fail.
  const loginBinds: [string, string][] = [];
  const login = ctx.loginUser && sudo ? ctx.loginUser : undefined;
  if (login && sudo) {
    users.push(`${login.name}:x:${login.uid}:${login.uid}::/home/${login.name}:/bin/sh`);
    const shadow = readFileSync('/etc/shadow', 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    // A last change date that is not 0: 0 makes sshd demand a password change at login.
    shadow.push(`${login.name}:${sudo === 'password' ? login.passwordHash : '*'}:19000:0:99999:7:::`);
    const group = readFileSync('/etc/group', 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    group.push(`${login.name}:x:${login.uid}:`);
    const home = path.join(dir, 'home');
    mkdirSync(path.join(home, login.name, '.ssh'), { recursive: true, mode: 0o700 });
    writeFileSync(path.join(home, login.name, '.ssh', 'authorized_keys'), `${ctx.authorizedKey.trim()}\n`, {
      mode: 0o600,
    });
    await run('chown', ['-R', `${login.uid}:${login.uid}`, path.join(home, login.name)]);
    chmodSync(home, 0o755);
    const sudoersD = path.join(dir, 'etc-sudoers.d');
    mkdirSync(sudoersD, { mode: 0o755 });
    writeFileSync(path.join(dir, 'etc-shadow'), `${shadow.join('\n')}\n`, { mode: 0o640 });
    writeFileSync(path.join(dir, 'etc-group'), `${group.join('\n')}\n`, { mode: 0o644 });
    // sudo refuses a sudoers file that is writable by anyone or not owned by root.
    writeFileSync(path.join(dir, 'etc-sudoers'), sudoersFor(login.name, sudo), { mode: 0o440 });
    loginBinds.push(
      [path.join(dir, 'etc-shadow'), '/etc/shadow'],
      [path.join(dir, 'etc-group'), '/etc/group'],
      [path.join(dir, 'etc-sudoers'), '/etc/sudoers'],
      [sudoersD, '/etc/sudoers.d'],
      [home, '/home'],
    );
    // Root-only, as on a hardened node: the login user cannot even list what trustplay manages.
    chmodSync(files['/etc/containerd'], 0o700);
  }
  writeFileSync(passwd, `${users.join('\n')}\n`);
  writeFileSync(resolvConf, LOOPBACK_RESOLV_CONF);
  const rancher = flavour === 'containerd' ? undefined : rancherPaths(flavour);
  let unit: ShimUnit | undefined;
  if (rancher && flavour !== 'containerd') {
    // k3s unpacks its own containerd under its data dir; a link (or copy) of the build stands in.
    const bin = path.join(files['/var/lib'], 'rancher', flavour, 'data', 'lab', 'bin');
    mkdirSync(bin, { recursive: true });
    for (const b of readdirSync(containerd.build.binDir)) {
      try {
        linkSync(path.join(containerd.build.binDir, b), path.join(bin, b));
      } catch {
        copyFileSync(path.join(containerd.build.binDir, b), path.join(bin, b));
        chmodSync(path.join(bin, b), 0o755);
      }
    }
    const etc = path.join(dir, 'etc-upper', 'rancher', flavour);
    mkdirSync(etc, { recursive: true });
    mkdirSync(path.join(dir, 'etc-work'), { recursive: true });
    writeFileSync(path.join(etc, 'registries.yaml'), initialRegistriesYaml(flavour), { mode: 0o600 });
    // The unit file k3s's and RKE2's installers write (flavour detection asks systemctl about a
    // unit only when its file exists, as on a real node); the lab's systemctl shim runs the unit.
    const units = path.join(dir, 'etc-upper', 'systemd', 'system');
    mkdirSync(units, { recursive: true });
    writeFileSync(
      path.join(units, `${RANCHER_UNIT[flavour]}.service`),
      `[Unit]\nDescription=${flavour} (trustplay lab stand-in; the lab's systemctl shim runs it)\n\n[Service]\nType=notify\nExecStart=/usr/local/sbin/${flavour} server\n\n[Install]\nWantedBy=multi-user.target\n`,
    );
    // The release the stand-in emulates goes with the containerd it runs, as k3s ships them: 2.x
    // the fixed release, 1.x one before the k3s#9839 fix (see k3s-standin.ts).
    const release = containerd.build.version.startsWith('1.') ? PRE_FIX_RELEASE : FIXED_RELEASE;
    writeFileSync(
      path.join(sbin, flavour),
      `#!/bin/sh\n# ${flavour} (trustplay lab stand-in: only renders registries.yaml, see test/lab/k3s-standin.ts)\necho "${flavour} version ${release}+${flavour}1 (lab stand-in)"\n`,
      { mode: 0o755 },
    );
    unit = {
      name: RANCHER_UNIT[flavour],
      description: `${flavour} (trustplay lab stand-in)`,
      socket: rancher.socket,
      config: rancher.config,
      binary: `/var/lib/rancher/${flavour}/data/lab/bin/containerd`,
      preStart: `(cd '${REPO}' && '${process.execPath}' --import tsx test/lab/k3s-standin.ts ${flavour} ${release})`,
    };
  } else
    writeFileSync(path.join(files['/etc/containerd'], 'config.toml'), containerd.config, {
      mode: login ? 0o600 : 0o644,
    });
  writeFileSync(path.join(files['/root'], '.ssh', 'authorized_keys'), `${ctx.authorizedKey.trim()}\n`, { mode: 0o600 });
  writeFileSync(path.join(files['/root'], '.docker', 'config.json'), staleCredentials(ctx.registryHost), {
    mode: 0o600,
  });
  writeFileSync(
    path.join(files['/var/lib'], 'kubelet', 'config.json'),
    staleCredentials(`https://${ctx.registryHost}`),
    { mode: 0o600 },
  );
  writeFileSync(path.join(sbin, 'systemctl'), systemctlShim(containerd.build.binDir, unit), { mode: 0o755 });
  if (ctx.dropIns) {
    const d = path.join(files['/run'], DROPIN_DIR.replace(/^\/run\//, ''));
    mkdirSync(d, { recursive: true });
    for (const [f, text] of Object.entries(ctx.dropIns)) writeFileSync(path.join(d, f), text);
  }
  // A node installed with this version has its binaries first on PATH, as the package puts them
  // (k3s keeps its containerd off PATH: there `containerd` is whatever else is installed).
  if (containerd.build.binDir !== '/usr/bin' && !unit) {
    for (const bin of readdirSync(containerd.build.binDir)) {
      symlinkSync(path.join(containerd.build.binDir, bin), path.join(sbin, bin));
    }
  }

  const hostKey = path.join(dir, 'ssh', 'ssh_host_ed25519_key');
  const sshdCfg = path.join(dir, 'ssh', 'sshd_config');
  writeFileSync(sshdCfg, sshdConfig({ address, port: sshPort, dir }));
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${name}`, '-f', hostKey]);

  const nsPid = await startHolder(
    [
      [files['/etc/hosts'], '/etc/hosts'],
      // Before /run: a resolv.conf symlinked into /run must be resolved while /run is still this
      // machine's. Without any resolv.conf, resolvers already default to 127.0.0.1.
      ...(existsSync('/etc/resolv.conf') ? [[resolvConf, '/etc/resolv.conf'] as [string, string]] : []),
      [passwd, '/etc/passwd'],
      [files['/etc/containerd'], '/etc/containerd'],
      [files['/run'], '/run'],
      [files['/var/lib'], '/var/lib'],
      [files['/root'], '/root'],
      [sbin, '/usr/local/sbin'],
      ...loginBinds,
    ],
    path.join(dir, 'holder.log'),
    unit ? { upper: path.join(dir, 'etc-upper'), work: path.join(dir, 'etc-work') } : undefined,
  );
  ctx.track(nsPid, 'sleep', `${name} namespace holder`);

  const node: LabNode = {
    name,
    address,
    sshPort,
    nsPid,
    containerdPid: 0,
    sshdPid: 0,
    criSocket: rancher?.socket ?? '/run/containerd/containerd.sock',
    hostSocket: path.join(
      files['/run'],
      (rancher?.socket ?? '/run/containerd/containerd.sock').replace(/^\/run\//, ''),
    ),
    root: dir,
    files,
    containerd: {
      version: containerd.build.version,
      release: containerd.build.release,
      binary: path.join(containerd.build.binDir, 'containerd'),
    },
    flavour,
    containerdPidFile: path.join(files['/run'], SHIM_PIDFILE.replace(/^\/run\//, '')),
    containerdLog: path.join(files['/run'], 'lab', 'containerd.log'),
    login: login && sudo ? { user: login.name, sudo } : { user: 'root' },
  };
  const [, sshdPid] = await Promise.all([
    run('nsenter', ['-t', String(nsPid), '-m', '--', '/usr/local/sbin/systemctl', 'start', unit?.name ?? 'containerd']),
    (async () => {
      const log = path.join(dir, 'ssh', 'sshd.log');
      // nsenter execs sshd in place, so the pid we get is sshd's own.
      const pid = startDetached(
        'nsenter',
        ['-t', String(nsPid), '-m', '--', '/usr/sbin/sshd', '-D', '-e', '-f', sshdCfg],
        log,
      );
      ctx.track(pid, 'sshd', `${name} sshd`);
      await waitFor(`${name}'s sshd on ${address}:${sshPort} (see ${log})`, async () => {
        if (processName(pid) === undefined)
          throw new Error(readFileSync(log, 'utf8').trim().split('\n').slice(-2).join(' | '));
        return tcpAnswers(address, sshPort);
      });
      return pid;
    })(),
  ]);
  node.sshdPid = sshdPid;
  node.containerdPid = currentContainerdPid(node) ?? 0;
  if (!node.containerdPid) throw new Error(`${name}'s containerd did not start: see ${node.containerdLog}`);
  return node;
}

/** containerd's pid as the node's systemctl recorded it, if that process is still containerd. */
export function currentContainerdPid(node: Pick<LabNode, 'containerdPidFile'>): number | undefined {
  try {
    const pid = Number(readFileSync(node.containerdPidFile, 'utf8').trim());
    return pid > 0 && processName(pid) === 'containerd' ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Hides programs inside `node` (as if not installed): an empty, non-executable file is bind-mounted
 * over each one's real path (links resolved) in the node's namespace only, so neither `command -v`
 * nor exec finds them there. A program already hidden (or absent) is left as it is. Returns the undo.
 */
export async function hidePrograms(
  node: { name: string; nsPid: number; root: string },
  names: string[],
): Promise<() => Promise<void>> {
  let out: string;
  try {
    out = (
      await run('nsenter', [
        '-t',
        String(node.nsPid),
        '-m',
        '--',
        'sh',
        '-c',
        [
          'set -e',
          'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          'blank="$1"; shift',
          ': > "$blank"',
          'chmod 0644 "$blank"',
          'for n in "$@"; do p=$(command -v "$n") || continue; p=$(readlink -f "$p"); mount --bind "$blank" "$p"; echo "$p"; done',
        ].join('\n'),
        'hide',
        path.join(node.root, 'hidden-program'),
        ...names,
      ])
    ).stdout;
  } catch (e) {
    throw new Error(`cannot hide ${names.join(', ')} on ${node.name}: ${(e as Error).message}`, { cause: e });
  }
  const hidden = out.split('\n').filter((l) => l !== '');
  return async () => {
    for (const p of hidden.reverse()) await run('nsenter', ['-t', String(node.nsPid), '-m', '--', 'umount', p]);
  };
}
