/**
 * What each registry client of a node besides containerd trusts for the registry, for `trustplay
 * diagnose`: Docker Engine and containers/image (podman, buildah, skopeo, CRI-O).
 *
 * Nothing of their rules is repeated here: which runtimes a node has is runtimes.ts
 * (`detectRuntimes`, `selectRuntimes` with `auto`, as registry.trust selects them), and what each
 * one has for the registry is its own module's gather (docker.tls, containers.tls: the certs.d
 * directory, daemon.json's insecure-registries, registries.conf's `insecure`), run read-only. The
 * served chain is judged with the evaluation containerd's view gets (evaluate.ts), against the
 * directory's `*.crt` files and the OS store (both runtimes add their certs.d CAs to Go's system
 * pool).
 *
 * containers/image reads the first registry directory that exists of
 * `/etc/containers/certs.d/<host[:port]>` and `/etc/docker/certs.d/<host[:port]>` (a rootless
 * user's ~/.config/containers/certs.d comes before them and is not read here).
 */
import type { Connection } from '../connection/connection.js';
import type { TaskContext } from '../engine/module.js';
import { unpairedClientFiles, type CertsDirObserved } from '../modules/certs-dir.js';
import containersTls, { type ContainersTlsObserved } from '../modules/containers-tls.js';
import dockerTls, { insecureBecause, type DockerTlsObserved } from '../modules/docker-tls.js';
import { detectRuntimes, selectRuntimes, type Runtime } from '../modules/runtimes.js';
import { certsFromPem, evidenceOf, type Cert } from './certificate.js';
import { evaluateChain, type Anchor, type ChainCause, type ChainFinding } from './evaluate.js';
import { RUNTIME_NAMES, TRUST_MODULES } from './runtime-names.js';

export { RUNTIME_NAMES, TRUST_MODULES };

/** The runtimes besides containerd. */
export type OtherRuntime = Exclude<Runtime, 'containerd'>;

/** What one runtime besides containerd trusts for the registry, and its verdict on the served chain. */
export interface RuntimeTrust {
  runtime: OtherRuntime;
  /** What says the runtime is on the node (`dockerd at /usr/bin/dockerd`). */
  evidence: string[];
  /** The registry's directory the runtime reads (or would read: `exists` says). */
  certs_dir: string;
  exists: boolean;
  /** Its `*.crt` files: the CAs the runtime adds to the OS store for this registry. */
  ca_files: string[];
  /** The client pair it presents (paths only). */
  client_cert?: string[];
  /** Why it does not verify the registry at all (insecure-registries, registries.conf `insecure`). */
  insecure?: string;
  /** What keeps it from using its settings (an unpaired client file, a file it cannot parse). */
  problems?: string[];
  /** The verdict on the served chain: absent when no chain was seen. */
  cause?: ChainCause | 'healthy' | 'insecure';
  /** One sentence: what the runtime trusts and what it decides. */
  detail?: string;
  /** The chain problems it would report (the first is `cause`). */
  findings?: ChainFinding[];
  trusted_by?: string;
  /** What fixes it, in one sentence (the task itself is the diagnosis's fix). */
  fix?: string;
}

/** A runtime's trust as read, with its CA certificates (not reported). */
export interface RuntimeTrustRead {
  trust: RuntimeTrust;
  anchors: Anchor[];
}

/** The node's runtimes as diagnose reads them. */
export interface RuntimesRead {
  /** The runtimes registry.trust (runtimes: auto) would configure on the node, in its order. */
  runtimes: Runtime[];
  notes: string[];
  others: RuntimeTrustRead[];
}

/** A read-only task context for the modules' gather: no facts kept, warnings kept as notes. */
function readOnlyContext(conn: Connection, hostState: Map<string, unknown>, notes: string[], criSocket?: string) {
  const ctx: TaskContext = {
    conn,
    host: conn.host,
    vars: criSocket !== undefined ? { cri_socket: criSocket } : {},
    check: true,
    warn: (m) => notes.push(m),
    fact: () => undefined,
    hostState,
  };
  return ctx;
}

/** The CAs and client pair of a certs.d directory as the module observed it. */
function fromDir(
  runtime: OtherRuntime,
  evidence: string[],
  o: CertsDirObserved,
  reader: string,
): { trust: RuntimeTrust; anchors: Anchor[] } {
  const names = Object.keys(o.dir.files).sort();
  const crt = names.filter((n) => n.endsWith('.crt'));
  const anchors: Anchor[] = [];
  const problems: string[] = [];
  for (const n of crt) {
    const path = `${o.dir.path}/${n}`;
    const certs = certsFromPem(o.dir.files[n]!.content.toString('utf8'));
    if (certs.length === 0) problems.push(`${path} holds no PEM certificate: ${reader} cannot load it`);
    anchors.push(...certs.map((cert) => ({ cert, source: `certs.d ${path}` })));
  }
  const unpaired = unpairedClientFiles([...names, ...o.otherNames], true);
  if (unpaired.length)
    problems.push(
      `${o.dir.path} holds ${unpaired.join(', ')} without its pair (*.cert needs its *.key): ${reader} refuses the whole directory, and every pull from the registry fails`,
    );
  const cert = names.find((n) => n.endsWith('.cert') && names.includes(n.replace(/\.cert$/, '.key')));
  const trust: RuntimeTrust = {
    runtime,
    evidence,
    certs_dir: o.dir.path,
    exists: o.dir.exists,
    ca_files: crt.map((n) => `${o.dir.path}/${n}`),
    ...(cert ? { client_cert: [`${o.dir.path}/${cert}`, `${o.dir.path}/${cert.replace(/\.cert$/, '.key')}`] } : {}),
    ...(problems.length ? { problems } : {}),
  };
  return { trust, anchors };
}

/**
 * Reads the node's runtimes and, for Docker Engine and containers/image, their trust for
 * `registry`. `configFile` is containerd's config (for its CRI plugin). A node where no runtime
 * is found gives `null` (diagnose then reads containerd's trust alone, as it always did).
 */
export async function gatherRuntimeTrust(
  conn: Connection,
  i: {
    registry: string;
    configFile: string;
    addresses: string[];
    hostState: Map<string, unknown>;
    criSocket?: string;
  },
): Promise<RuntimesRead | null> {
  const notes: string[] = [];
  const ctx = readOnlyContext(conn, i.hostState, [], i.criSocket);
  let selected: { runtimes: Runtime[]; notes: string[] };
  try {
    const found = await detectRuntimes(ctx, i.configFile);
    selected = selectRuntimes(conn.host, found, 'auto', 'diagnose reads containerd only');
  } catch {
    return null;
  }
  notes.push(...selected.notes);
  // Imported here: the argument validators import the module list, which imports the modules.
  const { resolveArgs } = await import('../engine/args.js');
  const argsOf = (m: typeof dockerTls | typeof containersTls, extra: Record<string, unknown> = {}) =>
    resolveArgs(m.name, m.schema, { registry: i.registry, state: 'absent', ...extra }, {});
  const others: RuntimeTrustRead[] = [];
  for (const runtime of selected.runtimes) {
    if (runtime === 'containerd') continue;
    try {
      if (runtime === 'docker') {
        const args = argsOf(dockerTls) as Parameters<typeof dockerTls.gather>[1];
        const o = (await dockerTls.gather(ctx, args)) as DockerTlsObserved;
        const r = fromDir('docker', o.engine, o, 'dockerd');
        const insecure = insecureBecause(i.registry, o.insecureRegistries, i.addresses);
        if (insecure) r.trust.insecure = insecure;
        if (o.daemonJsonProblem)
          (r.trust.problems ??= []).push(`${o.daemonJsonProblem}: dockerd does not start with it`);
        others.push(r);
      } else {
        const args = argsOf(containersTls) as Parameters<typeof containersTls.gather>[1];
        let o = (await containersTls.gather(ctx, args)) as ContainersTlsObserved;
        const programs = o.programs;
        // Its own directory first, else Docker's: the first that exists is the one it reads.
        if (!o.dir.exists) {
          const docker = (await containersTls.gather(
            ctx,
            argsOf(containersTls, { certs_dir: '/etc/docker/certs.d' }) as typeof args,
          )) as ContainersTlsObserved;
          if (docker.dir.exists) o = { ...o, dir: docker.dir, otherNames: docker.otherNames };
        }
        const r = fromDir('containers', programs, o, 'containers/image');
        if (o.insecure) r.trust.insecure = `${i.registry} is marked insecure (${o.insecure})`;
        for (const p of o.confProblems)
          (r.trust.problems ??= []).push(`${p}: containers/image refuses to pull with it`);
        others.push(r);
      }
    } catch (e) {
      notes.push(`${RUNTIME_NAMES[runtime]}: its trust could not be read: ${(e as Error).message}`);
    }
  }
  return { runtimes: selected.runtimes, notes, others };
}

/** Names of the causes a CA for the registry fixes. */
const CA_FIXES: ReadonlySet<string> = new Set(['unknown-authority', 'self-signed', 'missing-intermediate']);

/**
 * Judges the served chain as a runtime besides containerd would (pure, exported for tests): its
 * certs.d CAs added to the OS store, Go's verification (evaluate.ts), no verification at all for an
 * insecure registry. Returns the runtime's trust with its verdict filled in.
 */
export function judgeRuntime(
  r: RuntimeTrustRead,
  i: {
    registry: string;
    served: Cert[];
    osAnchors: Anchor[];
    osStore?: string;
    hostname: string;
    now: Date;
    controllerNow?: Date;
    /** The runtimes of the node, for the fix's module. */
    runtimes: Runtime[];
  },
): RuntimeTrust {
  const t: RuntimeTrust = { ...r.trust };
  const who = RUNTIME_NAMES[t.runtime];
  const verdict = evaluateChain({
    served: i.served,
    anchors: [...r.anchors, ...i.osAnchors],
    hostname: i.hostname,
    now: i.now,
    ...(i.controllerNow ? { controllerNow: i.controllerNow } : {}),
    registryAnchors: r.anchors,
  });
  const trusts = t.ca_files.length
    ? `${who} trusts ${t.ca_files.join(', ')} and the OS store for ${i.registry}`
    : `${t.exists ? `${t.certs_dir} has no *.crt` : `no ${t.certs_dir}/ca.crt`}: ${who} verifies ${i.registry} against the system roots only (${i.osStore ?? 'no OS store found'})`;
  const module = TRUST_MODULES[t.runtime];
  const viaFix = `${module}${i.runtimes.length > 1 ? ' (or registry.trust, for every runtime of the node)' : ''}`;
  if (verdict.anchor) t.trusted_by = `${evidenceOf(verdict.anchor.cert).subject} (${verdict.anchor.source})`;
  if (t.insecure) {
    t.cause = 'insecure';
    t.detail = `${who} does not verify ${i.registry} at all: ${t.insecure}${verdict.findings[0] ? ` (verifying, it would fail: ${verdict.findings[0].detail})` : ''}`;
    t.fix = `once ${who} trusts the registry's CA (${viaFix} with ca: ...), take ${i.registry} out of its insecure list`;
    return t;
  }
  t.findings = verdict.findings;
  const first = verdict.findings[0];
  if (!first) {
    t.cause = 'healthy';
    t.detail = `${trusts}: the chain validates (trusted by ${t.trusted_by ?? '?'})`;
    return t;
  }
  t.cause = first.cause;
  t.detail = `${trusts}: ${first.detail}`;
  // containers.tls writes containers/image's own directory, which then comes before Docker's.
  const written =
    t.runtime === 'containers'
      ? t.certs_dir.replace(/^\/etc\/docker\/certs\.d\//, '/etc/containers/certs.d/')
      : t.certs_dir;
  if (CA_FIXES.has(first.cause)) t.fix = `${viaFix} with ca: <the registry's CA>, written as ${written}/ca.crt`;
  return t;
}
