/**
 * `containers.tls`: make containers/image trust a registry's TLS — the library podman, buildah,
 * skopeo and CRI-O pull through: its CA (and, for mutual TLS, a client pair) in
 * `/etc/containers/certs.d/<host[:port]>/` (`ca.crt`, `client.cert`, `client.key`).
 *
 * containers/image reads that directory at every request to the registry (its tlsclientconfig
 * SetupCertificates, the same rules as Docker's certs.d: every `*.crt` is a CA, every `*.cert`
 * needs its `*.key`), so a change takes effect at the next pull: no restart. Measured in the lab
 * with Debian's skopeo 1.9.3: `skopeo inspect` fails with `x509: certificate signed by unknown
 * authority`, and succeeds once ca.crt is there. CRI-O is the same library; it is not packaged
 * here, so it is covered by that shared code, not by a CRI-O in the lab.
 *
 * Rules that are not obvious:
 * - A registry that registries.conf (or a drop-in in registries.conf.d) marks `insecure = true`
 *   (the `[[registry]]` whose prefix matches it, or the v1 `[registries.insecure]` list) is not
 *   verified at all: the files are still written, and a warning says the CA is not used there.
 * - A node with none of podman, buildah, skopeo or crio on PATH fails the task with what was
 *   looked for: green means checked. /etc/containers alone says nothing (containers-common
 *   installs it with no runtime).
 */
import TOML from '@iarna/toml';
import type { NodeRead } from '../connection/read-files.js';
import { dropInDir, registriesConfFiles } from '../containers-image/registries-conf.js';
import { hostsDirFor } from '../containerd/facts.js';
import { CONTAINERS_IMAGE_PROGRAMS, programsFound, programsPrelude } from '../containerd/node-facts.js';
import { TaskError } from '../engine/errors.js';
import { defineModule, type ArgsOf, type Change, type TaskContext } from '../engine/module.js';
import { registryArg, registriesConfArg } from '../playbook/schema/args-common.js';
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
  title: 'containers.tls',
  description:
    "Make containers/image (podman, buildah, skopeo, CRI-O) trust a registry's TLS: its CA (and optionally a client certificate pair) in /etc/containers/certs.d/<host[:port]>/, read at every pull (no restart).",
  additionalProperties: false,
  required: ['registry'],
  properties: {
    registry: registryArg,
    ...certsDirMaterialProps(),
    certs_dir: {
      type: 'string',
      minLength: 1,
      pattern: '^/',
      default: '/etc/containers/certs.d',
      description:
        'The directory containers/image reads registry certificates from (rootless podman: ~/.config/containers/certs.d).',
    },
    registries_conf: registriesConfArg(
      'registries.conf, read (never written) with its registries.conf.d drop-ins for a registry marked `insecure`.',
    ),
  },
  'x-together': [['client_cert', 'client_key']],
} as const;

/** Arguments of `containers.tls` as the engine hands them over (schema defaults filled in). */
export type ContainersTlsArgs = ArgsOf<typeof schema>;

const PROGRAMS = CONTAINERS_IMAGE_PROGRAMS;

// Which of them PATH finds, in the same remote command as the files.
const PRELUDE = programsPrelude(PROGRAMS);

/** What `containers.tls` reads of a node. */
export interface ContainersTlsObserved extends CertsDirObserved {
  material: TlsMaterial;
  materialWarnings: string[];
  /** The containers/image programs on PATH; empty: none. */
  programs: string[];
  /** Where the registry is marked insecure (a file and the entry), if it is. */
  insecure?: string;
  /** A registries.conf file that is not TOML (containers/image refuses to pull with it). */
  confProblems: string[];
}

/**
 * Whether a registries.conf (v2 `[[registry]]` tables, or the v1 `[registries.insecure]` list)
 * marks `registry` insecure: the entry, else null. A `[[registry]]` applies by its `prefix`
 * (default: its `location`), the longest matching one winning, `*.domain` matching subdomains.
 */
export function insecureEntry(text: string, registry: string): { entry: string; insecure: boolean } | null {
  const doc = TOML.parse(text) as Record<string, unknown>;
  const v1 = (doc['registries'] as { insecure?: { registries?: unknown } } | undefined)?.insecure?.registries;
  if (Array.isArray(v1) && v1.includes(registry))
    return { entry: `[registries.insecure] registries = [..."${registry}"...]`, insecure: true };
  const host = registry.replace(/:\d+$/, '');
  let best: { entry: string; insecure: boolean; len: number } | null = null;
  for (const r of (doc['registry'] as Array<Record<string, unknown>> | undefined) ?? []) {
    const prefix = String(r['prefix'] ?? r['location'] ?? '');
    const matches = prefix.startsWith('*.')
      ? host.endsWith(prefix.slice(1))
      : prefix === registry || registry.startsWith(`${prefix}/`);
    if (!matches || (best && best.len >= prefix.length)) continue;
    best = { entry: `[[registry]] prefix "${prefix}"`, insecure: r['insecure'] === true, len: prefix.length };
  }
  return best ? { entry: best.entry, insecure: best.insecure } : null;
}

/** The observation from what the reader returned (exported for tests). */
export function observedFromRead(
  host: string,
  read: NodeRead,
  args: ContainersTlsArgs,
  material: TlsMaterial,
  materialWarnings: string[],
): ContainersTlsObserved {
  const { dir, otherNames } = observeCertsDir(
    host,
    read,
    hostsDirFor(args.certs_dir, args.registry),
    'containers/image',
  );
  const found = programsFound(read);
  const programs = PROGRAMS.flatMap((p) => found.get(p) ?? []);
  // registries.conf, then its drop-ins in name order: a later file's entry for a prefix wins.
  const confs = registriesConfFiles(read, args.registries_conf);
  const observed: ContainersTlsObserved = { dir, otherNames, material, materialWarnings, programs, confProblems: [] };
  let verdict: { where: string; insecure: boolean } | null = null;
  for (const [path, content] of confs) {
    try {
      const e = insecureEntry(content.toString('utf8'), args.registry);
      if (e) verdict = { where: `${path}: ${e.entry}`, insecure: e.insecure };
    } catch (err) {
      observed.confProblems.push(`${path} is not valid TOML (${(err as Error).message.split('\n')[0]})`);
    }
  }
  if (verdict?.insecure) observed.insecure = verdict.where;
  return observed;
}

/** The pure plan: desired files vs the registry's directory on the node. */
export function planContainersTls(
  args: ContainersTlsArgs,
  observed: ContainersTlsObserved,
  host = 'host',
): { changes: Change[]; warnings: string[] } {
  if (observed.programs.length === 0)
    throw new TaskError(
      `${host}: no containers/image program found (looked for ${PROGRAMS.join(', ')} on PATH): containers.tls has nothing to configure here; use the module for this host's runtime (containerd.tls, docker.tls).`,
      'refused',
    );
  const warnings = [...observed.materialWarnings];
  if (args.state !== 'absent') {
    for (const p of observed.confProblems)
      warnings.push(`${p}: podman, skopeo and CRI-O refuse to pull with it; fix it by hand`);
    if (observed.insecure)
      warnings.push(
        `${args.registry} is marked insecure (${observed.insecure}): containers/image does not verify its certificate at all, so the CA written here is not used until that changes`,
      );
  }
  const plan = planCertsDir({
    module: 'containers.tls',
    reader: 'containers/image',
    registry: args.registry,
    state: args.state,
    observed,
    material: observed.material,
  });
  return { changes: plan.changes, warnings: [...warnings, ...plan.warnings] };
}

/** Facts for the snapshot manifest and `facts` (no secrets): merged across containers.tls tasks of the host. */
function recordFacts(ctx: TaskContext, args: ContainersTlsArgs, observed: ContainersTlsObserved): void {
  const registries = recordCertsDirRegistry(
    ctx,
    'containers.tls',
    args.registry,
    observed,
    observed.insecure ? { insecure: observed.insecure } : {},
  );
  ctx.fact('containers', { programs: observed.programs, certsDir: args.certs_dir, registries });
}

/** The `containers.tls` module. */
export default defineModule({
  schema,
  name: 'containers.tls',
  description:
    "Make containers/image (podman, buildah, skopeo, CRI-O) trust a registry's TLS: ca.crt (and a client pair) in /etc/containers/certs.d/<host[:port]>/, read at every pull (no restart).",
  async gather(ctx, args) {
    const dir = hostsDirFor(args.certs_dir, args.registry);
    const { material, warnings, read } = await gatherCertsDir(
      ctx,
      args,
      { prelude: PRELUDE, files: [args.registries_conf], dirs: [dir, dropInDir(args.registries_conf)] },
      `${dir} and ${args.registries_conf}`,
    );
    const observed = observedFromRead(ctx.host, read, args, material, warnings);
    recordFacts(ctx, args, observed);
    return observed;
  },
  plan(args, observed, ctx) {
    const plan = planContainersTls(args, observed, ctx.host);
    for (const w of plan.warnings) ctx.warn(w);
    return plan.changes;
  },
});
