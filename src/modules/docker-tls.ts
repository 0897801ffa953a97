/**
 * `docker.tls`: make Docker Engine trust a registry's TLS: its CA (and, for mutual TLS, a client
 * pair) in `/etc/docker/certs.d/<host[:port]>/` (`ca.crt`, `client.cert`, `client.key`).
 *
 * dockerd reads that directory at every request to the registry (moby's registry.ReadCertsDirectory,
 * called for each endpoint it tries), so a change takes effect at the next pull: no restart, no
 * reload. Measured in the lab on docker.io 20.10.24: a pull through the Engine API fails with
 * `x509: certificate signed by unknown authority`, and the next one succeeds once ca.crt is there,
 * the daemon's pid unchanged.
 *
 * Rules that are not obvious:
 * - dockerd verifies nothing for a registry it counts as insecure: one listed in daemon.json's
 *   `insecure-registries`, or one whose name resolves to 127.0.0.0/8 (the default insecure CIDR).
 *   The files are still written; a warning says the CA is not used there.
 * - In certs.d every `*.cert` needs its `*.key` and every `*.key` its `*.cert` (moby refuses the
 *   whole directory otherwise, and every pull from the registry fails): files trustplay does not
 *   manage that break that rule are named in a warning.
 * - `state: absent` removes the three files this module manages and the directory when nothing
 *   else is left in it; other files there (another `*.crt` a person put) stay.
 * - A node with no Docker Engine (no dockerd on PATH, no /run/docker.sock) fails the task with
 *   what was looked for: green means checked. /etc/docker alone says nothing (Debian's
 *   docker-registry package makes it).
 */
import type { NodeRead } from '../connection/read-files.js';
import { hostsDirFor } from '../containerd/facts.js';
import { DOCKER_SOCKET, programsPrelude, runtimeEvidence } from '../containerd/node-facts.js';
import { TaskError } from '../engine/errors.js';
import { defineModule, type ArgsOf, type Change, type TaskContext } from '../engine/module.js';
import { registryArg } from '../playbook/schema/args-common.js';
import {
  certsDirMaterialProps,
  gatherCertsDir,
  observeCertsDir,
  planCertsDir,
  recordCertsDirRegistry,
  type CertsDirObserved,
} from './certs-dir.js';
import type { TlsMaterial } from './containerd-tls.js';

const schema = {
  type: 'object',
  title: 'docker.tls',
  description:
    "Make Docker Engine trust a registry's TLS: its CA (and optionally a client certificate pair) in /etc/docker/certs.d/<host[:port]>/, which dockerd reads at every pull (no restart).",
  additionalProperties: false,
  required: ['registry'],
  properties: {
    registry: registryArg,
    ...certsDirMaterialProps(),
    certs_dir: {
      type: 'string',
      minLength: 1,
      pattern: '^/',
      default: '/etc/docker/certs.d',
      description:
        'The directory dockerd reads registry certificates from (a rootless dockerd: ~/.config/docker/certs.d).',
    },
    daemon_json: {
      type: 'string',
      minLength: 1,
      pattern: '^/',
      default: '/etc/docker/daemon.json',
      description: "dockerd's configuration file, read (never written) for `insecure-registries`.",
    },
  },
  'x-together': [['client_cert', 'client_key']],
} as const;

/** Arguments of `docker.tls` as the engine hands them over (schema defaults filled in). */
export type DockerTlsArgs = ArgsOf<typeof schema>;

/** What `docker.tls` reads of a node. */
export interface DockerTlsObserved extends CertsDirObserved {
  material: TlsMaterial;
  materialWarnings: string[];
  /** What says Docker Engine is on the node; empty: nothing found. */
  engine: string[];
  /** daemon.json's `insecure-registries`; null when the file is absent or unreadable as JSON. */
  insecureRegistries: string[] | null;
  /** daemon.json exists but is not a JSON object (dockerd would not start with it). */
  daemonJsonProblem?: string;
}

// Which dockerd PATH finds, in the same remote command as the files.
const PRELUDE = programsPrelude(['dockerd']);

/** The directory name dockerd looks up for an image's registry: the name as images spell it. */
export function dockerCertsDir(args: Pick<DockerTlsArgs, 'certs_dir' | 'registry'>): string {
  return hostsDirFor(args.certs_dir, args.registry);
}

/** The observation from what the reader returned (exported for tests). */
export function observedFromRead(
  host: string,
  read: NodeRead,
  args: DockerTlsArgs,
  material: TlsMaterial,
  materialWarnings: string[],
): DockerTlsObserved {
  const { dir, otherNames } = observeCertsDir(host, read, dockerCertsDir(args), 'dockerd');
  const engine = runtimeEvidence(read, 'docker');
  const observed: DockerTlsObserved = { dir, otherNames, material, materialWarnings, engine, insecureRegistries: null };
  const daemonJson = read.entries.get(args.daemon_json);
  if (daemonJson?.kind === 'file') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(daemonJson.content.toString('utf8'));
    } catch (e) {
      observed.daemonJsonProblem = `${args.daemon_json} is not valid JSON (${(e as Error).message})`;
    }
    if (observed.daemonJsonProblem === undefined) {
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        observed.daemonJsonProblem = `${args.daemon_json} is not a JSON object`;
      else {
        const list = (parsed as Record<string, unknown>)['insecure-registries'];
        observed.insecureRegistries = Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : [];
      }
    }
  }
  return observed;
}

/**
 * Whether dockerd counts `registry` as insecure (no verification), and why; null when it verifies.
 * `addresses`: what the node resolves the name to, when known (dockerd counts a name that resolves
 * into 127.0.0.0/8 as insecure too).
 */
export function insecureBecause(registry: string, insecure: string[] | null, addresses: string[] = []): string | null {
  if (insecure?.includes(registry)) return `${registry} is listed in daemon.json's insecure-registries`;
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.replace(/:\d+$/, '');
  if (host === 'localhost' || /^127\./.test(host))
    return `${host} is a loopback address, which dockerd treats as an insecure registry (127.0.0.0/8)`;
  const loopback = addresses.find((a) => /^(::ffff:)?127\./.test(a));
  if (loopback !== undefined)
    return `${host} resolves to ${loopback} on the node, a loopback address, which dockerd treats as an insecure registry (127.0.0.0/8)`;
  return null;
}

/** The pure plan: desired files vs the registry's directory on the node. */
export function planDockerTls(
  args: DockerTlsArgs,
  observed: DockerTlsObserved,
  host = 'host',
): { changes: Change[]; warnings: string[] } {
  if (observed.engine.length === 0)
    throw new TaskError(
      `${host}: no Docker Engine found (looked for dockerd on PATH and the socket ${DOCKER_SOCKET}): docker.tls has nothing to configure here; use the module for this host's runtime (containerd.tls).`,
      'refused',
    );
  const warnings = [...observed.materialWarnings];
  if (args.state !== 'absent') {
    if (observed.daemonJsonProblem !== undefined)
      warnings.push(`${observed.daemonJsonProblem}: dockerd will not start with it; fix it by hand`);
    const insecure = insecureBecause(args.registry, observed.insecureRegistries);
    if (insecure)
      warnings.push(
        `${insecure}: dockerd does not verify its certificate at all, so the CA written here is not used until that changes`,
      );
  }
  const plan = planCertsDir({
    module: 'docker.tls',
    reader: 'dockerd',
    registry: args.registry,
    state: args.state,
    observed,
    material: observed.material,
  });
  return { changes: plan.changes, warnings: [...warnings, ...plan.warnings] };
}

/** Facts for the snapshot manifest and `facts` (no secrets): merged across docker.tls tasks of the host. */
function recordFacts(ctx: TaskContext, args: DockerTlsArgs, observed: DockerTlsObserved): void {
  const registries = recordCertsDirRegistry(ctx, 'docker.tls', args.registry, observed);
  ctx.fact('docker', {
    engine: observed.engine,
    certsDir: args.certs_dir,
    insecureRegistries: observed.insecureRegistries,
    registries,
  });
}

/** The `docker.tls` module. */
export default defineModule({
  schema,
  name: 'docker.tls',
  description:
    "Make Docker Engine trust a registry's TLS: ca.crt (and a client pair) in /etc/docker/certs.d/<host[:port]>/, read by dockerd at every pull (no restart).",
  async gather(ctx, args) {
    const dir = dockerCertsDir(args);
    const { material, warnings, read } = await gatherCertsDir(
      ctx,
      args,
      { prelude: PRELUDE, files: [DOCKER_SOCKET, args.daemon_json], dirs: [dir] },
      `${dir} and ${args.daemon_json}`,
    );
    const observed = observedFromRead(ctx.host, read, args, material, warnings);
    recordFacts(ctx, args, observed);
    return observed;
  },
  plan(args, observed, ctx) {
    const plan = planDockerTls(args, observed, ctx.host);
    for (const w of plan.warnings) ctx.warn(w);
    return plan.changes;
  },
});
