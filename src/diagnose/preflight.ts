/**
 * containerd.tls's `verify_ca` pre-flight: before a CA is written, diagnose runs from the node (the
 * same handshake over the host's connection, through containerd's proxy when it uses one, and the
 * same chain evaluation) and says whether that CA validates what the registry serves to this node
 * for this name. Gather calls `preflightCa`; plan decides with `preflightOutcome` (pure).
 */
import type { Connection } from '../connection/connection.js';
import { certsFromPem } from './certificate.js';
import { diagnoseNode, expiringSoon, type Diagnosis, type ExpiryWarning } from './diagnose.js';
import type { NodeViewOptions } from './node-view.js';

/** `verify_ca` as the schema gives it. */
export type VerifyCa = 'auto' | boolean;

/** What the pre-flight saw. */
export type CaPreflight =
  /** The handshake ran; `validates` / `completesChain` say what the CA does with the served chain. */
  | {
      kind: 'checked';
      validates: boolean;
      completesChain: boolean;
      /** One sentence: the CA against the chain, with the evidence. */
      detail: string;
      /** The diagnosis of the node as it is now (cause and summary). */
      diagnosis: string;
      /** The served chain, one line per certificate (subject, issuer, sha256). */
      chain: string[];
      /** The node's clock (ISO) when the view was read. */
      nodeTime?: string;
      /** With expiryWarningDays: diagnose's list (the served chain, what the node trusts for the registry now). */
      expiring?: ExpiryWarning[];
    }
  /** No served chain to check against (registry down, name not resolved, not TLS...). */
  | { kind: 'unchecked'; reason: string };

/** What `preflightCa` needs. */
export interface PreflightInput extends NodeViewOptions {
  registry: string;
  /** The CA bundle the task will write (PEM). */
  caPem: string;
  /** How the CA is named in messages (the task's argument, or `the inline CA`). */
  caLabel: string;
  /** Also report certificates (the CA's, the served chain's) expiring within this many days. */
  expiryWarningDays?: number;
}

function chainLines(d: Diagnosis): string[] {
  return (d.evidence.chain ?? []).map((c) => `subject "${c.subject}", issuer "${c.issuer}", ${c.sha256}`);
}

/** Runs diagnose on the node with the task's CA in place of the registry's current CA files. */
export async function preflightCa(conn: Connection, i: PreflightInput): Promise<CaPreflight> {
  const certs = certsFromPem(i.caPem);
  const d = await diagnoseNode(conn, {
    registry: i.registry,
    ca: { file: i.caLabel, certs, replaceTrust: true },
    ...(i.configFile !== undefined ? { configFile: i.configFile } : {}),
    ...(i.configPath !== undefined ? { configPath: i.configPath } : {}),
    ...(i.facts !== undefined ? { facts: i.facts } : {}),
    ...(i.credentialFiles !== undefined ? { credentialFiles: i.credentialFiles } : {}),
    ...(i.expiryWarningDays !== undefined ? { expiryWarningDays: i.expiryWarningDays } : {}),
  });
  if (!d.ca_check) return { kind: 'unchecked', reason: d.summary };
  return {
    kind: 'checked',
    validates: d.ca_check.validates,
    completesChain: d.ca_check.completes_chain,
    detail: d.ca_check.detail,
    diagnosis: `${d.cause}: ${d.summary}`,
    chain: chainLines(d),
    ...(d.evidence.node_time ? { nodeTime: d.evidence.node_time } : {}),
    ...(d.expiry_warnings?.length ? { expiring: d.expiry_warnings } : {}),
  };
}

/**
 * The pre-flight's verdict for plan: `refuse` (a message for the task's failure) or warnings. A
 * CA that does not reach the served chain is refused; one that does, with a leaf or clock problem
 * left (a name mismatch, an expired leaf: what a CA cannot fix), is written with a warning.
 */
export function preflightOutcome(
  verify: VerifyCa,
  registry: string,
  p: CaPreflight | undefined,
): { refuse?: string; warnings: string[] } {
  if (verify === false || p === undefined) return { warnings: [] };
  if (p.kind === 'unchecked') {
    const what = `verify_ca: the CA could not be checked against what ${registry} serves to this node (${p.reason})`;
    if (verify === true)
      return {
        refuse: `${what}; verify_ca: true requires the check, so nothing was written (use verify_ca: auto to write it anyway when the registry cannot be reached)`,
        warnings: [],
      };
    return { warnings: [`${what}; the CA is written unchecked`] };
  }
  if (!p.completesChain)
    return {
      refuse: `verify_ca: ${p.detail}; nothing was written. The node sees now: ${p.diagnosis}. Served chain: ${p.chain.join(' | ') || '(none)'}. Give the CA that signed this chain (\`trustplay diagnose ${registry}\` names it), or verify_ca: false to write it anyway.`,
      warnings: [],
    };
  if (!p.validates)
    return {
      warnings: [
        `verify_ca: ${p.detail} (a CA cannot fix that: the pull will still fail until it is fixed where it lies)`,
      ],
    };
  return { warnings: [] };
}

/**
 * `--expiry-warning` for a task that trusts a CA: the CA file the node has for the registry, the
 * task's CA and, where the pre-flight ran, the served chain, expiring within `days` (by the node's
 * clock when the pre-flight read it, else the controller's). diagnose's expiry rule, deduplicated.
 */
export function trustExpiry(i: {
  days: number;
  nodeCa?: { path: string; pem: string };
  taskCa?: { label: string; pem: string };
  preflight?: CaPreflight;
  now?: Date;
}): ExpiryWarning[] {
  const p = i.preflight?.kind === 'checked' ? i.preflight : undefined;
  const now = p?.nodeTime ? new Date(p.nodeTime) : (i.now ?? new Date());
  const own = expiringSoon(
    [
      ...(i.nodeCa
        ? certsFromPem(i.nodeCa.pem).map((cert) => ({ cert, where: `trusted by the node (${i.nodeCa?.path})` }))
        : []),
      ...(i.taskCa
        ? certsFromPem(i.taskCa.pem).map((cert) => ({ cert, where: `the task's ca (${i.taskCa?.label})` }))
        : []),
    ],
    now,
    i.days,
  );
  const out = [...own];
  for (const w of p?.expiring ?? []) if (!out.some((o) => o.sha256 === w.sha256)) out.push(w);
  return out;
}

/** One warning line per expiring certificate, naming the certificate, where it is trusted and the days left. */
export function expiryLines(registry: string, ws: ExpiryWarning[]): string[] {
  // A task's warnings are shown under its host already: the line does not name it again.
  return ws.map(
    (w) =>
      `expiry: certificate "${w.subject}" (${w.sha256}), ${w.where} for ${registry}, expires in ${w.days_left} day${w.days_left === 1 ? '' : 's'} (${w.not_after})`,
  );
}
