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
import { managedEntry, namesIn, readNode, ReadFailed, type NodeRead } from '../connection/read-files.js';
import { hostsDirFor, type HostsDirFacts } from '../containerd/facts.js';
import { sha256 } from '../engine/apply.js';
import { TaskError } from '../engine/errors.js';
import { defineModule, type ArgsOf, type Change, type TaskContext } from '../engine/module.js';
import { registryArg } from '../playbook/schema/args-common.js';
import {
  FILE_NAMES,
  pushRmdir,
  readMaterial,
  removeChange,
  writeChange,
  type DesiredFile,
  type TlsMaterial,
} from './containerd-tls.js';

const schema = {
  type: 'object',
  title: 'docker.tls',
  description:
    "Make Docker Engine trust a registry's TLS: its CA (and optionally a client certificate pair) in /etc/docker/certs.d/<host[:port]>/, which dockerd reads at every pull (no restart).",
  additionalProperties: false,
  required: ['registry'],
  properties: {
    registry: registryArg,
    ca: {
      type: 'string',
      minLength: 1,
      description:
        "The registry's CA certificate: a PEM file path on the controller, or inline PEM. Written as certs.d/<registry>/ca.crt.",
      'x-file': 'controller-certificate',
    },
    client_cert: {
      type: 'string',
      minLength: 1,
      description:
        'Client certificate for mutual TLS: a PEM file path on the controller or inline PEM (client.cert). Requires `client_key`.',
      'x-file': 'controller-certificate',
    },
    client_key: {
      type: 'string',
      minLength: 1,
      description:
        'Client private key for mutual TLS: a PEM file path on the controller or inline PEM (client.key, written 0600). Requires `client_cert`.',
      'x-secret': true,
      'x-file': 'controller-private-key',
    },
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
    state: {
      type: 'string',
      enum: ['present', 'absent'],
      default: 'present',
      description: '`absent` removes the ca.crt, client.cert and client.key this task manages for the registry.',
    },
  },
  'x-together': [['client_cert', 'client_key']],
} as const;

/** Arguments of `docker.tls` as the engine hands them over (schema defaults filled in). */
export type DockerTlsArgs = ArgsOf<typeof schema>;

/** Where dockerd listens by default. */
const DOCKER_SOCKET = '/run/docker.sock';

/** What `docker.tls` reads of a node. */
export interface DockerTlsObserved {
  /** The registry's directory under certs_dir and the regular files in it. */
  dir: HostsDirFacts;
  /** Other names in the directory (links, subdirectories, files too big to be certificates). */
  otherNames: string[];
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
const PRELUDE = `if p=$(command -v dockerd 2>/dev/null); then echo "@@dockerd $(b64 "$p")"; fi`;

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
  const path = dockerCertsDir(args);
  const entry = (p: string) => {
    try {
      return managedEntry(read, p);
    } catch (e) {
      throw new TaskError(`${host}: ${(e as Error).message}`, 'refused');
    }
  };
  const top = entry(path);
  const dir: HostsDirFacts = { path, exists: top.kind === 'dir', files: {} };
  const otherNames: string[] = [];
  if (top.kind !== 'dir' && top.kind !== 'absent')
    throw new TaskError(
      `${host}: ${path} is not a directory: move it away so dockerd can read certificates there`,
      'refused',
    );
  if (dir.exists)
    for (const name of namesIn(read, path)) {
      const managed = (Object.values(FILE_NAMES) as string[]).includes(name) && name !== FILE_NAMES.hosts;
      const e = managed ? entry(`${path}/${name}`) : read.entries.get(`${path}/${name}`)!;
      if (e.kind === 'file') dir.files[name] = { content: e.content, mode: e.mode, uid: e.uid, gid: e.gid };
      else if (managed && e.kind === 'meta')
        throw new TaskError(
          `${host}: ${path}/${name} is ${e.size} bytes, too big for a certificate or key: move it out of the registry's directory.`,
          'refused',
        );
      else otherNames.push(name);
    }
  const engine: string[] = [];
  const dockerd = read.records.find((r) => r.tag === 'dockerd');
  if (dockerd?.fields[0]) engine.push(`dockerd at ${Buffer.from(dockerd.fields[0], 'base64').toString('utf8')}`);
  if (read.entries.get(DOCKER_SOCKET)?.kind === 'other') engine.push(`the socket ${DOCKER_SOCKET}`);
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

/** Files the task wants in the registry's directory. */
function desiredFiles(material: TlsMaterial): DesiredFile[] {
  const out: DesiredFile[] = [];
  if (material.ca !== undefined)
    out.push({ name: FILE_NAMES.ca, content: Buffer.from(material.ca), mode: 0o644, what: 'CA certificate' });
  if (material.clientCert !== undefined && material.clientKey !== undefined) {
    // The key before the certificate: dockerd refuses a client.cert whose client.key is not there yet.
    out.push({
      name: FILE_NAMES.key,
      content: Buffer.from(material.clientKey),
      mode: 0o600,
      what: 'client key',
      secret: true,
    });
    out.push({
      name: FILE_NAMES.cert,
      content: Buffer.from(material.clientCert),
      mode: 0o644,
      what: 'client certificate',
    });
  }
  return out;
}

/** Whether dockerd counts `registry` as insecure (no verification), and why; null when it verifies. */
function insecureBecause(registry: string, insecure: string[] | null): string | null {
  if (insecure?.includes(registry)) return `${registry} is listed in daemon.json's insecure-registries`;
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.replace(/:\d+$/, '');
  if (host === 'localhost' || /^127\./.test(host))
    return `${host} is a loopback address, which dockerd treats as an insecure registry (127.0.0.0/8)`;
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
  const { dir, material } = observed;
  const warnings = [...observed.materialWarnings];
  const changes: Change[] = [];
  const push = (c: Change | null): void => {
    if (c) changes.push(c);
  };
  if (args.state === 'absent') {
    for (const name of [FILE_NAMES.cert, FILE_NAMES.key, FILE_NAMES.ca])
      push(removeChange(dir, name, 'written by docker.tls'));
    const left = [...Object.keys(dir.files), ...observed.otherNames].filter(
      (n) => !changes.some((c) => c.op === 'file.remove' && c.path === `${dir.path}/${n}`),
    );
    if (left.length === 0) pushRmdir(dir, changes, push);
    else if (changes.length > 0)
      warnings.push(`${dir.path} keeps ${left.join(', ')}, which docker.tls did not write, so the directory stays`);
    return { changes, warnings };
  }
  if (material.ca === undefined && material.clientCert === undefined)
    throw new TaskError(
      "docker.tls needs `ca` (the registry's CA certificate) or a `client_cert`/`client_key` pair to know what to write (to stop trusting the registry, use state: absent).",
      'refused',
    );
  if (observed.daemonJsonProblem !== undefined)
    warnings.push(`${observed.daemonJsonProblem}: dockerd will not start with it; fix it by hand`);
  const insecure = insecureBecause(args.registry, observed.insecureRegistries);
  if (insecure)
    warnings.push(
      `${insecure}: dockerd does not verify its certificate at all, so the CA written here is not used until that changes`,
    );
  const wanted = desiredFiles(material);
  for (const f of wanted) push(writeChange(dir, f));
  // Files this task wrote for a setting that is gone (mTLS dropped, a client pair without a CA).
  for (const name of [FILE_NAMES.cert, FILE_NAMES.key, FILE_NAMES.ca])
    if (!wanted.some((w) => w.name === name)) push(removeChange(dir, name, 'no longer configured'));
  const unpaired = unpairedClientFiles([...Object.keys(dir.files), ...observed.otherNames]);
  if (unpaired.length)
    warnings.push(
      `${dir.path} holds ${unpaired.join(', ')} without the matching ${unpaired.map((n) => (n.endsWith('.key') ? n.replace(/\.key$/, '.cert') : n.replace(/\.cert$/, '.key'))).join(', ')}: dockerd refuses the whole directory then, and every pull from ${args.registry} fails; remove or complete them`,
    );
  return { changes, warnings };
}

/** `*.cert` files without their `*.key` and the reverse (not the pair this module manages). */
function unpairedClientFiles(names: string[]): string[] {
  const has = new Set(names);
  return names
    .filter((n) => n !== FILE_NAMES.cert && n !== FILE_NAMES.key)
    .filter(
      (n) =>
        (n.endsWith('.cert') && !has.has(n.replace(/\.cert$/, '.key'))) ||
        (n.endsWith('.key') && !has.has(n.replace(/\.key$/, '.cert'))),
    );
}

/** Facts for the snapshot manifest and `facts` (no secrets): merged across docker.tls tasks of the host. */
function recordFacts(ctx: TaskContext, args: DockerTlsArgs, observed: DockerTlsObserved): void {
  const key = 'docker.tls:registries';
  const registries = (ctx.hostState.get(key) as Record<string, unknown> | undefined) ?? {};
  const ca = observed.dir.files[FILE_NAMES.ca];
  registries[args.registry] = {
    dir: observed.dir.path,
    caFile: ca ? `sha256:${sha256(ca.content)}` : null,
    clientCert: observed.dir.files[FILE_NAMES.cert] !== undefined,
  };
  ctx.hostState.set(key, registries);
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
    const { material, warnings } = await readMaterial(args);
    if (material.clientKey !== undefined) ctx.secret?.(material.clientKey);
    const dir = dockerCertsDir(args);
    let read: NodeRead;
    try {
      read = await readNode(ctx.conn, {
        prelude: PRELUDE,
        files: [DOCKER_SOCKET, args.daemon_json],
        dirs: [dir],
        maxFileBytes: 1024 * 1024,
      });
    } catch (e) {
      if (!(e instanceof ReadFailed)) throw e;
      throw new TaskError(`${ctx.host}: could not read ${dir} and ${args.daemon_json} (${e.why})`, 'command');
    }
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
