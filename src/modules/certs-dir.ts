/**
 * A registry's certificate directory as Docker Engine and containers/image (podman, buildah,
 * skopeo, CRI-O) read it: `<certs.d>/<host[:port]>/` with `ca.crt` (trusted CAs: every `*.crt`),
 * and a client pair `client.cert` + `client.key` (every `*.cert` needs its `*.key` and the
 * reverse, or the whole directory is refused and every pull from the registry fails). Both read
 * the directory at each request: a change takes effect at the next pull, with no restart.
 *
 * One implementation of that directory for `docker.tls` and `containers.tls`: what is read of it,
 * the files wanted, the plan against them (`state: absent` included), and the unpaired-file check.
 * Each module keeps only what is its runtime's own (how the runtime is detected, where insecure
 * registries are configured).
 */
import {
  managedEntry,
  namesIn,
  readNode,
  ReadFailed,
  type NodeRead,
  type ReadRequest,
} from '../connection/read-files.js';
import type { HostsDirFacts } from '../containerd/facts.js';
import { TaskError } from '../engine/errors.js';
import { sha256 } from '../engine/apply.js';
import type { Change, TaskContext } from '../engine/module.js';
import { caArg, clientCertArg, clientKeyArg } from '../playbook/schema/args-common.js';
import {
  FILE_NAMES,
  pushRmdir,
  readMaterial,
  removeChange,
  writeChange,
  type DesiredFile,
  type TlsMaterial,
} from './containerd-tls.js';

/** The registry's directory and what else is in it. */
export interface CertsDirObserved {
  /** The directory and the regular files trustplay may manage in it (ca.crt, client.cert, client.key) and others. */
  dir: HostsDirFacts;
  /** Other names in the directory (links, subdirectories, files too big to be certificates). */
  otherNames: string[];
}

/** The managed names of a certs.d directory (no hosts.toml: that is containerd's). */
const MANAGED = [FILE_NAMES.ca, FILE_NAMES.cert, FILE_NAMES.key] as const;

/** Reads `path` (a registry's certs.d directory) out of what `readNode` returned; `reader` names the daemon that reads it. */
export function observeCertsDir(host: string, read: NodeRead, path: string, reader: string): CertsDirObserved {
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
      `${host}: ${path} is not a directory: move it away so ${reader} can read certificates there`,
      'refused',
    );
  if (dir.exists)
    for (const name of namesIn(read, path)) {
      const managed = (MANAGED as readonly string[]).includes(name);
      const e = managed ? entry(`${path}/${name}`) : read.entries.get(`${path}/${name}`)!;
      if (e.kind === 'file') dir.files[name] = { content: e.content, mode: e.mode, uid: e.uid, gid: e.gid };
      else if (managed && e.kind === 'meta')
        throw new TaskError(
          `${host}: ${path}/${name} is ${e.size} bytes, too big for a certificate or key: move it out of the registry's directory.`,
          'refused',
        );
      else otherNames.push(name);
    }
  return { dir, otherNames };
}

/** Files the task wants in the registry's directory. */
function desiredFiles(material: TlsMaterial): DesiredFile[] {
  const out: DesiredFile[] = [];
  if (material.ca !== undefined)
    out.push({ name: FILE_NAMES.ca, content: Buffer.from(material.ca), mode: 0o644, what: 'CA certificate' });
  if (material.clientCert !== undefined && material.clientKey !== undefined) {
    // The key before the certificate: a client.cert whose client.key is not there yet is refused.
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

/**
 * The pure plan of the directory: the files `material` wants (or, with `state: absent`, the ones
 * this module manages removed, and the directory when nothing else is left). `module` and `reader`
 * name the task and the daemon in messages.
 */
export function planCertsDir(i: {
  module: string;
  reader: string;
  registry: string;
  state: 'present' | 'absent';
  observed: CertsDirObserved;
  material: TlsMaterial;
}): { changes: Change[]; warnings: string[] } {
  const { dir, otherNames } = i.observed;
  const warnings: string[] = [];
  const changes: Change[] = [];
  const push = (c: Change | null): void => {
    if (c) changes.push(c);
  };
  if (i.state === 'absent') {
    for (const name of [FILE_NAMES.cert, FILE_NAMES.key, FILE_NAMES.ca])
      push(removeChange(dir, name, `written by ${i.module}`));
    const left = [...Object.keys(dir.files), ...otherNames].filter(
      (n) => !changes.some((c) => c.op === 'file.remove' && c.path === `${dir.path}/${n}`),
    );
    if (left.length === 0) pushRmdir(dir, changes, push);
    else if (changes.length > 0)
      warnings.push(`${dir.path} keeps ${left.join(', ')}, which ${i.module} did not write, so the directory stays`);
    return { changes, warnings };
  }
  if (i.material.ca === undefined && i.material.clientCert === undefined)
    throw new TaskError(
      `${i.module} needs \`ca\` (the registry's CA certificate) or a \`client_cert\`/\`client_key\` pair to know what to write (to stop trusting the registry, use state: absent).`,
      'refused',
    );
  const wanted = desiredFiles(i.material);
  for (const f of wanted) push(writeChange(dir, f));
  // Files this task wrote for a setting that is gone (mTLS dropped, a client pair without a CA).
  for (const name of [FILE_NAMES.cert, FILE_NAMES.key, FILE_NAMES.ca])
    if (!wanted.some((w) => w.name === name)) push(removeChange(dir, name, 'no longer configured'));
  const unpaired = unpairedClientFiles([...Object.keys(dir.files), ...otherNames]);
  if (unpaired.length)
    warnings.push(
      `${dir.path} holds ${unpaired.join(', ')} without the matching ${unpaired.map((n) => (n.endsWith('.key') ? n.replace(/\.key$/, '.cert') : n.replace(/\.cert$/, '.key'))).join(', ')}: ${i.reader} refuses the whole directory then, and every pull from ${i.registry} fails; remove or complete them`,
    );
  return { changes, warnings };
}

/**
 * `*.cert` files without their `*.key` and the reverse (not the pair this module manages, unless
 * `managedToo`: diagnose reads the directory as it is, not as a task is about to write it).
 */
export function unpairedClientFiles(names: string[], managedToo = false): string[] {
  const has = new Set(names);
  return names
    .filter((n) => managedToo || (n !== FILE_NAMES.cert && n !== FILE_NAMES.key))
    .filter(
      (n) =>
        (n.endsWith('.cert') && !has.has(n.replace(/\.cert$/, '.key'))) ||
        (n.endsWith('.key') && !has.has(n.replace(/\.key$/, '.cert'))),
    );
}

/** The schema properties every certs.d module shares: the CA, the client pair and `state`. */
export function certsDirMaterialProps() {
  return {
    ca: caArg(
      "The registry's CA certificate: a PEM file path on the controller, or inline PEM. Written as certs.d/<registry>/ca.crt. A list (old and new CA together) is written as one bundle, for a CA rotation without an outage.",
    ),
    client_cert: clientCertArg(
      'Client certificate for mutual TLS: a PEM file path on the controller or inline PEM (client.cert). Requires `client_key`.',
    ),
    client_key: clientKeyArg(
      'Client private key for mutual TLS: a PEM file path on the controller or inline PEM (client.key, written 0600). Requires `client_cert`.',
    ),
    state: {
      type: 'string',
      enum: ['present', 'absent'],
      default: 'present',
      description: '`absent` removes the ca.crt, client.cert and client.key this task manages for the registry.',
    },
  } as const;
}

/**
 * The snapshot manifest's and `facts`' entry for the registry's directory (no secrets: the CA's
 * hash, whether a client pair is there), merged into the host's map of `module`'s registries
 * across its tasks; returns the map.
 */
export function recordCertsDirRegistry(
  ctx: TaskContext,
  module: string,
  registry: string,
  observed: CertsDirObserved,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const key = `${module}:registries`;
  const registries = (ctx.hostState.get(key) as Record<string, unknown> | undefined) ?? {};
  const ca = observed.dir.files[FILE_NAMES.ca];
  registries[registry] = {
    dir: observed.dir.path,
    caFile: ca ? `sha256:${sha256(ca.content)}` : null,
    clientCert: observed.dir.files[FILE_NAMES.cert] !== undefined,
    ...extra,
  };
  ctx.hostState.set(key, registries);
  return registries;
}

/**
 * The first half of a certs.d module's gather: the task's material (the client key marked a
 * secret of the run), then one read of the node (`read`: the registry's directory and whatever the
 * module's runtime needs beside it); a read that fails is the task's failure, naming `what`.
 */
export async function gatherCertsDir(
  ctx: TaskContext,
  args: Parameters<typeof readMaterial>[0],
  read: ReadRequest,
  what: string,
): Promise<{ material: TlsMaterial; warnings: string[]; read: NodeRead }> {
  const { material, warnings } = await readMaterial(args);
  if (material.clientKey !== undefined) ctx.secret?.(material.clientKey);
  try {
    return { material, warnings, read: await readNode(ctx.conn, { maxFileBytes: 1024 * 1024, ...read }) };
  } catch (e) {
    if (!(e instanceof ReadFailed)) throw e;
    throw new TaskError(`${ctx.host}: could not read ${what} (${e.why})`, 'command');
  }
}
