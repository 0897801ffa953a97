/**
 * A benchmark fleet: N loopback SSH hosts, each a real sshd in its own mount namespace whose
 * /etc/containerd and /root are bind mounts of that host's own directory here, so every host has
 * its own config.toml, certs.d and /root/.docker/config.json and the controller can reset or
 * inspect them with plain file operations (no SSH, nothing timed). No containerd daemon runs: each
 * host's /run/containerd/containerd.sock is served by one CRI stand-in in this process (Version and
 * a verbose Status naming config_path, as containerd 1.6 answers), so trustplay's pre-flight finds
 * a serving CRI; config_path is already set, so neither tool restarts anything.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CRI_LOADER_OPTIONS } from '../src/cri/client.js';
import { CRI_IMAGE_DESCRIPTOR } from '../src/cri/proto/cri-image-descriptor.js';
import { makeKeyPair, startSshd, type Sshd } from '../test/support/sshd.js';
import { root } from './util.js';

/** Registry whose trust and credentials the benchmark changes. */
export const BENCH_REGISTRY = 'registry.test:5000';
/** An unrelated registry whose credentials must survive. */
export const OTHER_REGISTRY = 'other.example:5000';
export const CERTS_D = '/etc/containerd/certs.d';

/** One host of the fleet. */
export interface FleetHost {
  name: string;
  address: string;
  port: number;
  /** The host's own files: `etc-containerd/` is its /etc/containerd, `root/` its /root. */
  dir: string;
  sshd: Sshd;
}

/** SSH counters from sshd's log (LogLevel VERBOSE) between two marks. */
export interface SshCounts {
  /** "Accepted publickey" lines: SSH connections that logged in. */
  connections: number;
  /** "Starting session:" lines: exec/shell session channels (forwarding channels are not logged at VERBOSE). */
  sessions: number;
}

export interface Fleet {
  dir: string;
  hosts: FleetHost[];
  /** The one client key every host authorizes. */
  identityFile: string;
  /** known_hosts with every host's key as `[address]:port`. */
  knownHosts: string;
  /** Puts every host back to the unconverged state (no certs.d entry, stale credentials present). */
  reset(): Promise<void>;
  /** Marks the current end of every host's sshd log. */
  mark(): number[];
  /** Per-host counts since `mark`. */
  countsSince(mark: number[]): SshCounts[];
  stop(): Promise<void>;
}

/** config.toml every host starts with: containerd 1.6's default with config_path already set (no restart needed). */
export function fleetConfigToml(): string {
  const text = readFileSync(join(root, 'src/containerd/fixtures/v1.6-default.toml'), 'utf8');
  const set = text.replace(/^(\s*)config_path = ""$/m, `$1config_path = "${CERTS_D}"`);
  if (set === text) throw new Error('the v1.6 fixture has no `config_path = ""` line to set');
  return set;
}

/** The docker config.json every unconverged host holds: stale credentials for the bench registry and another registry's entry. */
export function staleDockerConfig(): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return `${JSON.stringify({ auths: { [BENCH_REGISTRY]: { auth: b64('ci-bot:expired-token') }, [OTHER_REGISTRY]: { auth: b64('other:secret') } } }, null, '\t')}\n`;
}

async function resetHost(h: FleetHost, config: string, docker: string): Promise<void> {
  await rm(join(h.dir, 'etc-containerd'), { recursive: true, force: true });
  await mkdir(join(h.dir, 'etc-containerd', 'certs.d'), { recursive: true });
  await writeFile(join(h.dir, 'etc-containerd', 'config.toml'), config, { mode: 0o644 });
  await mkdir(join(h.dir, 'root', '.docker'), { recursive: true, mode: 0o700 });
  await writeFile(join(h.dir, 'root', '.docker', 'config.json'), docker, { mode: 0o600 });
}

/** Runs `fn` over `items` with at most `limit` at once. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  // Every worker finishes before a failure is thrown, so nothing started is left unaccounted for.
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length && !failure) {
        const i = next++;
        try {
          out[i] = await fn(items[i]!, i);
        } catch (error) {
          failure ??= { error };
        }
      }
    }),
  );
  if (failure) throw failure.error;
  return out;
}

/**
 * One grpc-js CRI server bound to every host's socket: what a containerd 1.6 with config_path set
 * answers to the calls a converged run makes (Version; Status verbose with the registry settings).
 */
async function startCriStandIn(sockets: string[]): Promise<() => Promise<void>> {
  const def = protoLoader.fromJSON(
    CRI_IMAGE_DESCRIPTOR as Parameters<typeof protoLoader.fromJSON>[0],
    CRI_LOADER_OPTIONS,
  );
  const server = new grpc.Server();
  server.addService(def['runtime.v1.RuntimeService'] as grpc.ServiceDefinition, {
    Version: (_call: unknown, cb: grpc.sendUnaryData<object>) =>
      cb(null, { version: '0.1.0', runtimeName: 'containerd', runtimeVersion: '1.6.20', runtimeApiVersion: 'v1' }),
    Status: (_call: unknown, cb: grpc.sendUnaryData<object>) =>
      cb(null, {
        status: { conditions: [{ type: 'RuntimeReady', status: true }] },
        info: { config: JSON.stringify({ registry: { configPath: CERTS_D } }) },
      }),
  });
  for (const socket of sockets) {
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }
  return () => new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
}

/** Where the fleet's registry names resolve: a loopback address nothing listens on. */
const NO_REGISTRY_ADDRESS = '127.0.8.1';

/** Most hosts a fleet can have: one loopback address each, 250 per /24 over 127.0.9-12.x. */
export const MAX_FLEET = 1000;

/** Host i's loopback address: 127.0.9.1..250, then 127.0.10.1.., up to 127.0.12.250. */
export function fleetAddress(i: number): string {
  return `127.0.${9 + Math.floor(i / 250)}.${(i % 250) + 1}`;
}

/**
 * Starts `n` hosts (n <= 1,000). What 1,000 takes on a 2-core, 24 GiB machine: one sshd listener
 * per host (each host needs its own mount namespace; an idle sshd is ~6 MB RSS, mostly pages shared
 * with the others), two ssh-keygen runs per host to start (~2 min in all), one CRI stand-in socket
 * per host in this process, and file descriptors: ~3 per host here (sshd's stderr pipe, the CRI
 * socket) and 1 per connected host in trustplay (it connects `--forks` hosts at a time).
 */
export async function startFleet(n: number): Promise<Fleet> {
  if (n < 1 || n > MAX_FLEET)
    throw new Error(`--hosts must be between 1 and ${MAX_FLEET} (one loopback address each), not ${n}`);
  if (!existsSync('/usr/sbin/sshd'))
    throw new Error('the fleet needs /usr/sbin/sshd: apt-get install -y openssh-server');
  const dir = await mkdtemp(join(tmpdir(), 'trustplay-fleet-'));
  const hosts: FleetHost[] = [];
  const config = fleetConfigToml();
  const docker = staleDockerConfig();
  let stopCri: () => Promise<void> = async () => undefined;
  try {
    const identityFile = await makeKeyPair(join(dir, 'client_ed25519'));
    // The registries' names resolve on every host to a loopback address where nothing listens: a
    // first run's CA pre-flight (a TCP connection from the host to the registry) is refused at
    // once, and no name is ever looked up in DNS (nothing off loopback is contacted).
    const hostsFile = join(dir, 'etc-hosts');
    await writeFile(
      hostsFile,
      `${await readFile('/etc/hosts', 'utf8').catch(() => '127.0.0.1 localhost\n')}\n${NO_REGISTRY_ADDRESS} ${BENCH_REGISTRY.split(':')[0]} ${OTHER_REGISTRY.split(':')[0]}\n`,
    );
    const pub = await readFile(`${identityFile}.pub`);
    const started = await pool(
      Array.from({ length: n }, (_, i) => i),
      8,
      async (i) => {
        const hdir = join(dir, 'hosts', `h${i + 1}`);
        await mkdir(join(hdir, 'root'), { recursive: true, mode: 0o700 });
        const h = { name: `h${i + 1}`, dir: hdir } as FleetHost;
        await resetHost(h, config, docker);
        await mkdir(join(hdir, 'run-containerd'), { recursive: true });
        const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
        const sshd = await startSshd({
          address: fleetAddress(i),
          namespaceSetup: [
            `mount --bind ${q(join(hdir, 'etc-containerd'))} /etc/containerd`,
            `mount --bind ${q(join(hdir, 'root'))} /root`,
            `mkdir -p /run/containerd && mount --bind ${q(join(hdir, 'run-containerd'))} /run/containerd`,
            `mount --bind ${q(hostsFile)} /etc/hosts`,
          ],
        });
        hosts[i] = { ...h, address: sshd.address, port: sshd.port, sshd };
        await writeFile(sshd.authorizedKeys, pub, { flag: 'a' });
        return sshd;
      },
    );
    stopCri = await startCriStandIn(hosts.map((h) => join(h.dir, 'run-containerd', 'containerd.sock')));
    const knownHosts = join(dir, 'known_hosts');
    await writeFile(knownHosts, (await Promise.all(started.map((s) => readFile(s.knownHosts, 'utf8')))).join(''), {
      mode: 0o600,
    });
    let stopped: Promise<void> | undefined;
    return {
      dir,
      hosts,
      identityFile,
      knownHosts,
      // The bind mounts are of whole directories, so resetting replaces contents, never the dir itself.
      reset: async () => {
        await pool(hosts, 16, async (h) => {
          await rm(join(h.dir, 'etc-containerd', 'certs.d'), { recursive: true, force: true });
          await mkdir(join(h.dir, 'etc-containerd', 'certs.d'));
          await writeFile(join(h.dir, 'etc-containerd', 'config.toml'), config);
          await writeFile(join(h.dir, 'root', '.docker', 'config.json'), docker);
        });
      },
      mark: () => hosts.map((h) => h.sshd.log().length),
      countsSince: (mark) =>
        hosts.map((h, i) => {
          const log = h.sshd.log().slice(mark[i] ?? 0);
          return {
            connections: (log.match(/Accepted publickey/g) ?? []).length,
            sessions: (log.match(/Starting session:/g) ?? []).length,
          };
        }),
      stop: () => (stopped ??= stopCri().then(() => stopAll(hosts, dir))),
    };
  } catch (e) {
    await stopCri();
    await stopAll(hosts, dir);
    throw e;
  }
}

async function stopAll(hosts: FleetHost[], dir: string): Promise<void> {
  await Promise.all(hosts.filter(Boolean).map((h) => h.sshd.stop()));
  await rm(dir, { recursive: true, force: true });
}
