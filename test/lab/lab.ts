/**
 * The lab: a private CA, distribution registries (one per TLS failure class), N containerd nodes
 * each in its own mount namespace with its own sshd, an inventory for trustplay, and (when its
 * module is present) the Kubernetes API emulator. `labUp` writes everything it started into
 * `<dir>/lab.json`, so `labDown` (or `npm run lab -- down`, from another process) stops it all by
 * pid and removes the directory. Nothing on this machine outside that directory is modified.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makePki, makeVariantPki, type VariantPki } from './certs.js';
import { IMAGE_REPO, IMAGE_TAG, buildImage, pushImage } from './oci-image.js';
import {
  type LabRegistry,
  type RegistryName,
  type VariantName,
  VARIANT_NAMES,
  startIpv6Registry,
  startRegistries,
  startVariantRegistries,
} from './registry.js';
import { DROPIN_DIR } from './systemctl-shim.js';
import { ownEtcContainers } from './containers-image.js';
import { CONTAINERS_IMAGE_PROGRAMS } from '../../src/containerd/node-facts.js';
import { dockerHostsLines, ownEtcDocker, startDockerd } from './docker-engine.js';
import {
  type LabNode,
  type NodeContainerd,
  type NodeFlavour,
  type NodeSudo,
  NODE_MOUNTS,
  currentContainerdPid,
  realisticContainerdConfig,
  startNode,
  hidePrograms,
} from './node.js';
import { type ContainerdVersionKey, ensureContainerd } from './containerd-versions.js';
import { writeInventory } from './inventory.js';
import { startKube, type LabKube } from './kube.js';
import { freePort, freePorts, processName, run, rssKb, startDetached, stopPid, tcpAnswers, waitFor } from './procs.js';
import { connect as netConnect } from 'node:net';
import { fileURLToPath } from 'node:url';

export type { LabNode, NodeSudo } from './node.js';

/** How trustplay logs into a node: as root, or as the lab's sudo user (NOPASSWD or with a password). */
export type NodeLogin = 'root' | NodeSudo;

export { LAB_SUDO_PASSWORD_ENV } from './inventory.js';
export type { LabRegistry, RegistryName, VariantName } from './registry.js';
export type { LabKube } from './kube.js';

/** Default lab directory of `npm run lab`. */
export const DEFAULT_LAB_DIR = '/tmp/trustplay-lab';

/** A process the lab started; `comm` guards against killing a recycled pid. */
export interface LabProcess {
  pid: number;
  comm: string;
  what: string;
}

/** Everything a test needs to use a running lab; serialised as `<dir>/lab.json`. */
export interface Lab {
  version: 1;
  dir: string;
  createdAt: string;
  /** The lab CA certificate (PEM file) that a fixed node must trust. */
  ca: string;
  registries: Record<RegistryName, LabRegistry>;
  image: {
    repo: string;
    tag: string;
    /** `registry.test:<port>/aegis/aegis-hc-install:latest` */
    ref: string;
    /** Same image on the basic-auth registry. */
    authRef: string;
    /** Manifest digest (`sha256:...`), identical on every registry. */
    digest: string;
  };
  nodes: LabNode[];
  ssh: { user: 'root'; identityFile: string; publicKeyFile: string; knownHosts: string };
  inventoryPath: string;
  /**
   * The non-root login user, when some node is reached with become: `password` is what sudo asks
   * on `password` nodes (export it as LAB_SUDO_PASSWORD_ENV to run against the lab).
   */
  loginUser?: { name: string; uid: number; password: string };
  /** Host-side kubeconfig for the emulator (server https://127.0.0.1:<port>), when it runs. */
  kubeconfig?: string;
  kube?: LabKube;
  processes: LabProcess[];
  /** Milliseconds `labUp` took. */
  upMs: number;
  /** The TLS failure variants, when started with `tlsVariants`. */
  variants?: LabVariants;
  /** The main registry on [::1] (same port and storage), when some node runs Docker Engine. */
  registryIpv6?: LabRegistry;
}

/** The TLS failure variants of a lab (`tlsVariants: true`) and what fixes each. */
export interface LabVariants {
  registries: Record<VariantName, LabRegistry>;
  pki: VariantPki;
  /** The TLS-intercepting proxy every node's containerd uses (HTTPS_PROXY in its unit's drop-in). */
  proxy: { url: string; port: number; pid: number; dropIn: string };
}

/** Options of `labUp`. */
export interface LabUpOptions {
  /** Number of nodes (default 3). */
  nodes?: number;
  /**
   * The containerd version of each node, in node order (default: 1.6 everywhere). A shorter list
   * repeats its last version; nodes of one lab may mix versions, as fleets do during an upgrade.
   */
  containerd?: ContainerdVersionKey[];
  /** Each node's flavour, in node order like `containerd` (default: a packaged containerd everywhere). */
  flavour?: NodeFlavour[];
  /**
   * How trustplay logs into each node, in node order (a shorter list repeats its last entry;
   * default root everywhere): `nopasswd` and `password` nodes are reached as the user `ops` with
   * become, through the node's own sudo.
   */
  login?: NodeLogin[];
  /** Lab directory (default: a new temp dir); must not exist or be empty. */
  dir?: string;
  log?: (s: string) => void;
  /**
   * Also start the TLS failure variants (chain/nochain/cnonly/sha1/notyet/mtls/proxied.test) and
   * the intercepting proxy, which every node's containerd then uses through HTTPS_PROXY.
   */
  tlsVariants?: boolean;
  /**
   * Nodes that also run Docker Engine, in node order (missing entries: no). Their registry.test
   * resolves to ::1, where the main registry is served a second time (docker-engine.ts says why).
   */
  docker?: boolean[];
  /**
   * Nodes that have containers/image's programs (skopeo; podman, buildah and crio when installed),
   * in node order (missing entries: no). A lab node is a containerd Kubernetes node: this machine's
   * dockerd and skopeo are hidden in it (lab-node `hidePrograms`) unless `docker` / `containers`
   * says otherwise, so runtime detection sees what such a node has.
   */
  containers?: boolean[];
}

const BINARIES: [string, string][] = [
  ['containerd', 'containerd'],
  ['ctr', 'containerd'],
  ['docker-registry', 'docker-registry'],
  ['sshd', 'openssh-server'],
  ['ssh', 'openssh-client'],
  ['ssh-keygen', 'openssh-client'],
  ['htpasswd', 'apache2-utils'],
  ['openssl', 'openssl'],
  ['unshare', 'util-linux'],
  ['nsenter', 'util-linux'],
  ['setsid', 'util-linux'],
];

function onPath(bin: string): boolean {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin']);
  return dirs.some((d) => d && existsSync(path.join(d, bin)));
}

/** The Debian packages the lab needs that are not installed here (by the binaries they provide). */
export function labMissingPackages(): string[] {
  const pkgs = new Set<string>();
  for (const [bin, pkg] of BINARIES) if (!onPath(bin)) pkgs.add(pkg);
  // A node's /etc/containerd is a bind mount, which needs the directory to exist here (the package makes it).
  if (!existsSync('/etc/containerd')) pkgs.add('containerd');
  return [...pkgs];
}

/** The command that installs `pkgs` on Debian/Ubuntu. */
export function aptInstallCommand(pkgs: string[]): string {
  return `apt-get update && apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
}

/** What this machine lacks to run the lab, one sentence each; empty when the lab can run. */
export function labPrerequisites(): string[] {
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push('the lab needs Linux (mount namespaces)');
  if (process.getuid?.() !== 0) missing.push('the lab needs root (it creates mount namespaces); run it as root');
  for (const [bin, pkg] of BINARIES) if (!onPath(bin)) missing.push(`\`${bin}\` is missing (Debian package ${pkg})`);
  if (!existsSync('/etc/containerd')) missing.push('/etc/containerd is missing (Debian package containerd creates it)');
  const pkgs = labMissingPackages();
  if (pkgs.length > 0) missing.push(`install with: ${aptInstallCommand(pkgs)}`);
  return missing;
}

function labJson(dir: string): string {
  return path.join(dir, 'lab.json');
}

function save(lab: Partial<Lab> & { dir: string }): void {
  writeFileSync(labJson(lab.dir), `${JSON.stringify(lab, null, 2)}\n`, { mode: 0o600 });
}

/** Reads the lab at `dir` (its lab.json), with each node's current containerd pid. */
export function labState(dir: string = process.env.TRUSTPLAY_LAB_DIR ?? DEFAULT_LAB_DIR): Lab {
  let lab: Lab;
  try {
    lab = JSON.parse(readFileSync(labJson(dir), 'utf8')) as Lab;
  } catch {
    throw new Error(`No lab at ${dir} (no readable lab.json): start one with \`npm run lab -- up --dir ${dir}\`.`);
  }
  for (const node of lab.nodes ?? []) node.containerdPid = currentContainerdPid(node) ?? 0;
  return lab;
}

/** Brings a lab up and returns it; throws one sentence (after cleaning up) if anything fails. */
export async function labUp(opts: LabUpOptions = {}): Promise<Lab> {
  const started = Date.now();
  const log = opts.log ?? (() => undefined);
  const missing = labPrerequisites();
  if (missing.length > 0) throw new Error(`Cannot start the lab: ${missing.join('; ')}.`);
  const nodeCount = opts.nodes ?? 3;
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 200) {
    throw new Error(`The lab takes 1 to 200 nodes (got ${String(opts.nodes)}).`);
  }

  const dir = path.resolve(opts.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'trustplay-lab-'))));
  const shadowed = NODE_MOUNTS.find((m) => dir === m || dir.startsWith(`${m}/`));
  if (shadowed)
    throw new Error(
      `The lab directory ${dir} is under ${shadowed}, which nodes mount over; pick a directory under /tmp.`,
    );
  if (existsSync(labJson(dir)))
    throw new Error(`A lab is already up at ${dir}: run \`npm run lab -- down --dir ${dir}\` first.`);
  if (existsSync(dir) && readdirSync(dir).length > 0)
    throw new Error(`The lab directory ${dir} is not empty: pick another or remove it.`);
  // The node sockets live under the lab dir, and a unix socket path is limited to 107 bytes.
  if (`${dir}/nodes/node${nodeCount}/run/containerd/containerd.sock.ttrpc`.length > 107) {
    throw new Error(`The lab directory path ${dir} is too long for containerd's unix sockets; use a shorter one.`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });

  const state: Partial<Lab> & { dir: string; processes: LabProcess[] } = {
    version: 1,
    dir,
    createdAt: new Date().toISOString(),
    processes: [],
  };
  const track = (pid: number, comm: string, what: string): void => {
    state.processes.push({ pid, comm, what });
    save(state);
  };
  save(state);

  try {
    const names: RegistryName[] = ['registry', 'auth', 'selfsigned', 'expired', 'wrongname', 'plain', 'closed'];
    const regPorts = await freePorts(names.length + 1);
    const ports = Object.fromEntries(names.map((n, i) => [n, regPorts[i]])) as Record<RegistryName, number>;
    const kubePort = regPorts[names.length] ?? 0;

    const sshDir = path.join(dir, 'ssh');
    mkdirSync(sshDir, { recursive: true, mode: 0o700 });
    const identityFile = path.join(sshDir, 'id_ed25519');
    const versions = Array.from(
      { length: nodeCount },
      (_, i) => opts.containerd?.[Math.min(i, opts.containerd.length - 1)] ?? '1.6',
    );
    const [pki, , builds] = await Promise.all([
      makePki(path.join(dir, 'pki')),
      run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'trustplay-lab', '-f', identityFile]),
      nodeContainerds(versions, log),
    ]);
    state.ca = pki.ca.cert;
    log(`certificates made in ${Date.now() - started} ms`);

    const password = randomBytes(12).toString('hex');
    const registries = await startRegistries(path.join(dir, 'registries'), pki, ports, password);
    for (const r of Object.values(registries)) if (r.pid) track(r.pid, 'docker-registry', `registry ${r.hostname}`);
    state.registries = registries;
    const image = buildImage();
    const [digest] = await Promise.all([pushImage(registries.registry, image), pushImage(registries.auth, image)]);
    state.image = {
      repo: IMAGE_REPO,
      tag: IMAGE_TAG,
      ref: `${registries.registry.host}/${IMAGE_REPO}:${IMAGE_TAG}`,
      authRef: `${registries.auth.host}/${IMAGE_REPO}:${IMAGE_TAG}`,
      digest,
    };
    log(`registries up, image ${digest} pushed, at ${Date.now() - started} ms`);
    if (opts.tlsVariants) {
      state.variants = await startVariants(dir, pki, track);
      save(state);
      log(`TLS variants and the intercepting proxy up at ${Date.now() - started} ms`);
    }

    const docker = Array.from({ length: nodeCount }, (_, i) => opts.docker?.[i] === true);
    if (docker.some(Boolean)) {
      if (!existsSync('/usr/sbin/dockerd'))
        throw new Error('Docker Engine nodes need dockerd: install the Debian package docker.io');
      state.registryIpv6 = await startIpv6Registry(path.join(dir, 'registries'), pki, registries.registry.port);
      track(state.registryIpv6.pid!, 'docker-registry', 'registry registry.test on [::1]');
    }

    const hostsLines = [
      `127.0.0.1 ${[...Object.values(registries), ...Object.values(state.variants?.registries ?? {})]
        .map((r) => r.hostname)
        .join(' ')} kube.test`,
      ...Array.from({ length: nodeCount }, (_, i) => `127.0.0.${11 + i} node${i + 1}`),
    ];
    const authorizedKey = readFileSync(`${identityFile}.pub`, 'utf8');
    const sshPorts = await Promise.all(Array.from({ length: nodeCount }, (_, i) => freePort(`127.0.0.${11 + i}`)));
    const logins = Array.from(
      { length: nodeCount },
      (_, i): NodeLogin => opts.login?.[Math.min(i, opts.login.length - 1)] ?? 'root',
    );
    const loginUser = logins.some((l) => l !== 'root') ? await makeLoginUser() : undefined;
    if (loginUser) state.loginUser = { name: loginUser.name, uid: loginUser.uid, password: loginUser.password };
    const ctx = {
      labDir: dir,
      hostsLines,
      authorizedKey,
      registryHost: registries.registry.host,
      track,
      // Nodes reach each other directly (NO_PROXY), as internal hosts usually are.
      ...(state.variants
        ? {
            dropIns: {
              'http-proxy.conf': `[Service]\nEnvironment="HTTPS_PROXY=${state.variants.proxy.url}"\nEnvironment="NO_PROXY=${Array.from({ length: nodeCount }, (_, i) => `node${i + 1}`).join(',')}"\n`,
            },
          }
        : {}),
      ...(loginUser ? { loginUser } : {}),
    };
    // Bounded parallelism: each node start spawns a few processes, and this machine has 2 cores.
    const nodes: LabNode[] = new Array<LabNode>(nodeCount);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(4, nodeCount) }, async () => {
        while (next < nodeCount) {
          const i = next++;
          const login = logins[i] ?? 'root';
          nodes[i] = await startNode(
            docker[i] ? { ...ctx, hostsLines: dockerHostsLines(ctx.hostsLines, registries.registry.hostname) } : ctx,
            i + 1,
            sshPorts[i] ?? 0,
            builds.get(versions[i] ?? '1.6') as NodeContainerd,
            opts.flavour?.[Math.min(i, opts.flavour.length - 1)] ?? 'containerd',
            login === 'root' ? undefined : login,
          );
        }
      }),
    );
    for (const [i, n] of nodes.entries()) {
      await ownEtcDocker(n);
      await ownEtcContainers(n);
      const hide = [...(docker[i] ? [] : ['dockerd']), ...(opts.containers?.[i] ? [] : CONTAINERS_IMAGE_PROGRAMS)];
      if (hide.length > 0) await hidePrograms(n, hide);
      if (opts.containers?.[i]) n.containers = true;
      if (docker[i]) n.docker = await startDockerd(n, n.files['/run'], track);
    }
    state.nodes = nodes;
    save(state);
    log(`${nodeCount} nodes up at ${Date.now() - started} ms`);

    const knownHosts = path.join(sshDir, 'known_hosts');
    writeFileSync(
      knownHosts,
      nodes
        .map((n) => {
          const pub = readFileSync(path.join(n.root, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8')
            .trim()
            .split(' ');
          return `[${n.address}]:${n.sshPort} ${pub[0]} ${pub[1]}`;
        })
        .join('\n') + '\n',
    );
    state.ssh = { user: 'root', identityFile, publicKeyFile: `${identityFile}.pub`, knownHosts };

    const kube = await startKube({ dir, port: kubePort, pki, node1: nodes[0], track, log });
    if (kube) {
      state.kube = kube;
      state.kubeconfig = kube.hostKubeconfig;
    }
    state.inventoryPath = writeInventory(dir, {
      nodes,
      identityFile,
      knownHosts,
      registry: registries.registry.host,
      ca: pki.ca.cert,
      image: state.image.ref,
      kubeconfig: kube ? kube.nodeKubeconfig : undefined,
    });
    state.upMs = Date.now() - started;
    save(state);
    log(`lab up in ${state.upMs} ms`);
    return state as Lab;
  } catch (err) {
    await labDown(dir).catch(() => undefined);
    throw new Error(`Lab start failed and was cleaned up: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

/** Starts the TLS failure variants and the intercepting proxy (in front of proxied.test). */
async function startVariants(
  dir: string,
  pki: Awaited<ReturnType<typeof makePki>>,
  track: (pid: number, comm: string, what: string) => void,
): Promise<LabVariants> {
  const vpki = await makeVariantPki(path.join(dir, 'pki'), pki.ca);
  const ports = await freePorts(VARIANT_NAMES.length + 1);
  const byName = Object.fromEntries(VARIANT_NAMES.map((n, i) => [n, ports[i]])) as Record<VariantName, number>;
  const registries = await startVariantRegistries(path.join(dir, 'registries'), pki, vpki, byName);
  for (const r of Object.values(registries)) if (r.pid) track(r.pid, 'docker-registry', `registry ${r.hostname}`);
  const proxyPort = ports[VARIANT_NAMES.length] ?? 0;
  const home = path.join(dir, 'proxy');
  mkdirSync(home, { recursive: true });
  const config = path.join(home, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({ port: proxyPort, intercept: 'proxied.test', ...vpki.proxyLeaf, upstreamCa: pki.ca.cert }),
  );
  const script = fileURLToPath(new URL('./intercepting-proxy.ts', import.meta.url));
  const pid = startDetached(
    process.execPath,
    ['--import', import.meta.resolve('tsx'), script, config],
    path.join(home, 'proxy.log'),
  );
  track(pid, processName(pid) ?? 'node', 'intercepting proxy');
  await waitFor('the intercepting proxy', () => portOpen(proxyPort));
  return {
    registries,
    pki: vpki,
    proxy: { url: `http://127.0.0.1:${proxyPort}`, port: proxyPort, pid, dropIn: `${DROPIN_DIR}/http-proxy.conf` },
  };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * The lab's sudo user: `ops` with the first uid from 2017 this machine does not use (it exists
 * only inside the nodes), and a fresh password, hashed for the nodes' /etc/shadow.
 */
async function makeLoginUser(): Promise<{ name: string; uid: number; password: string; passwordHash: string }> {
  if (!existsSync('/usr/bin/sudo'))
    throw new Error('nodes reached with become need sudo: install the Debian package sudo');
  const used = new Set(
    readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .map((l) => Number(l.split(':')[2])),
  );
  let uid = 2017;
  while (used.has(uid)) uid++;
  const password = `lab-sudo-${randomBytes(9).toString('hex')}`;
  const { stdout } = await run('openssl', ['passwd', '-6', '-stdin'], { input: `${password}\n` });
  return { name: 'ops', uid, password, passwordHash: stdout.trim() };
}

/** Each distinct version's build (fetched into the cache when needed) and its default config. */
async function nodeContainerds(
  versions: ContainerdVersionKey[],
  log: (s: string) => void,
): Promise<Map<ContainerdVersionKey, NodeContainerd>> {
  const out = new Map<ContainerdVersionKey, NodeContainerd>();
  for (const v of new Set(versions)) {
    const build = await ensureContainerd(v, log);
    out.set(v, { build, config: await realisticContainerdConfig(build) });
  }
  return out;
}

/** The mount namespace id of a process (`mnt:[...]`), or undefined when it is gone. */
function mountNs(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** Pids of every process in the mount namespace held by `holder`, holder excluded. */
export function processesInNamespace(holder: number): number[] {
  const ns = mountNs(holder);
  if (!ns || ns === mountNs('self')) return [];
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === holder) continue;
    if (mountNs(pid) === ns) out.push(pid);
  }
  return out;
}

/** Resident memory (kB) of every live lab process. */
export function labRssKb(lab: Lab): { totalKb: number; byKind: Record<string, number> } {
  const byKind: Record<string, number> = {};
  let totalKb = 0;
  const pids = new Map<number, string>();
  for (const p of lab.processes) pids.set(p.pid, p.comm);
  for (const n of lab.nodes) for (const pid of processesInNamespace(n.nsPid)) pids.set(pid, processName(pid) ?? '?');
  for (const [pid, comm] of pids) {
    const kb = rssKb(pid);
    totalKb += kb;
    byKind[comm] = (byKind[comm] ?? 0) + kb;
  }
  return { totalKb, byKind };
}

/** Lines of /proc/self/mountinfo whose mount point is inside `dir`. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => {
      const mp = line.split(' ')[4];
      return mp !== undefined && (mp === dir || mp.startsWith(`${dir}/`));
    });
}

/**
 * Stops everything a lab started (every process in each node's namespace, then the holders,
 * registries and emulator, each by pid), unmounts anything under its directory and removes it.
 */
export async function labDown(labOrDir: Lab | string): Promise<void> {
  const dir = path.resolve(typeof labOrDir === 'string' ? labOrDir : labOrDir.dir);
  if (!existsSync(dir)) return;
  let lab: Partial<Lab> & { processes?: LabProcess[] };
  try {
    lab = JSON.parse(readFileSync(labJson(dir), 'utf8')) as Partial<Lab>;
  } catch {
    throw new Error(`${dir} is not a lab directory (no readable lab.json), so it was left alone.`);
  }
  const processes = lab.processes ?? [];
  const holders = processes.filter((p) => p.comm === 'sleep' && processName(p.pid) === 'sleep');

  // Everything inside a node first (containerd, sshd and any session a test left running), so
  // the namespace dies with its holder.
  await Promise.all(
    holders.map(async (h) => {
      const inside = processesInNamespace(h.pid);
      await Promise.all(inside.map((pid) => stopPid(pid, processName(pid) ?? '')));
    }),
  );
  // containerd started by a node's systemctl after `up` is known only by its pidfile.
  const nodesDir = path.join(dir, 'nodes');
  if (existsSync(nodesDir)) {
    await Promise.all(
      readdirSync(nodesDir).map(async (n) => {
        const pid = currentContainerdPid({ containerdPidFile: path.join(nodesDir, n, 'run', 'lab', 'containerd.pid') });
        if (pid) await stopPid(pid, 'containerd');
      }),
    );
  }
  await Promise.all(processes.map((p) => stopPid(p.pid, p.comm)));

  for (const line of mountsUnder(dir).reverse()) {
    const mp = line.split(' ')[4];
    if (mp) await run('umount', ['-l', mp]).catch(() => undefined);
  }
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Fault injection (the chaos suite): stops one of the lab's registries as if it went down. The
 * process is killed at once (SIGKILL: clients see connection refused, not a graceful goodbye).
 */
export async function stopRegistry(lab: Lab, name: RegistryName): Promise<void> {
  const r = lab.registries[name];
  if (!r.pid || processName(r.pid) !== 'docker-registry') return;
  process.kill(r.pid, 'SIGKILL');
  await waitFor(`registry ${r.hostname} to stop`, () => Promise.resolve(processName(r.pid!) === undefined));
}

/** Starts a registry `stopRegistry` stopped, on its own port and config, and records its new pid. */
export async function startRegistry(lab: Lab, name: RegistryName): Promise<void> {
  const r = lab.registries[name];
  if (r.pid && processName(r.pid) === 'docker-registry') return;
  const home = path.join(lab.dir, 'registries', name);
  const log = path.join(home, 'registry.log');
  const pid = startDetached('/usr/bin/docker-registry', ['serve', path.join(home, 'config.yml')], log);
  const old = r.pid;
  r.pid = pid;
  lab.processes = lab.processes.filter((p) => p.pid !== old);
  lab.processes.push({ pid, comm: 'docker-registry', what: `registry ${r.hostname}` });
  // labDown finds what to stop in lab.json.
  const saved = JSON.parse(readFileSync(labJson(lab.dir), 'utf8')) as Lab;
  saved.registries[name].pid = pid;
  saved.processes = [...saved.processes.filter((p) => p.pid !== old), lab.processes.at(-1)!];
  save(saved);
  await waitFor(`registry ${r.hostname} (see ${log})`, () => tcpAnswers('127.0.0.1', r.port));
}

/** The sshd processes of a node: its listener and one per open connection. */
export function nodeSshdPids(node: LabNode): number[] {
  return processesInNamespace(node.nsPid).filter((pid) => processName(pid) === 'sshd');
}

/** Starts a node's sshd again after a fault killed it (inside the node's namespace: labDown stops it). */
export async function restartNodeSshd(node: LabNode): Promise<void> {
  if (nodeSshdPids(node).length > 0 && (await tcpAnswers(node.address, node.sshPort))) return;
  const ssh = path.join(node.root, 'ssh');
  const log = path.join(ssh, 'sshd.log');
  startDetached(
    'nsenter',
    ['-t', String(node.nsPid), '-m', '--', '/usr/sbin/sshd', '-D', '-e', '-f', path.join(ssh, 'sshd_config')],
    log,
  );
  await waitFor(`${node.name}'s sshd on ${node.address}:${node.sshPort} (see ${log})`, () =>
    tcpAnswers(node.address, node.sshPort),
  );
}
