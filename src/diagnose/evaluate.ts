/**
 * Chain evaluation: what containerd's Go client would decide about a served chain, in Go's own
 * order (crypto/x509 Certificate.Verify): the leaf's validity period first, then the host name, then
 * a chain to a trusted root through the served intermediates. The first failure is the cause
 * containerd reports; the later ones are returned too, since fixing the first reveals them.
 *
 * Pure: the served chain, the trust anchors, the name and the node's clock come in as values.
 */
import { isIP } from 'node:net';
import { type Cert, isSelfSigned, isSha1, safeVerify } from './certificate.js';

/** A certificate a node trusts, and where the trust comes from (`hosts.toml ca /etc/...`, `OS store`, `--ca FILE`). */
export interface Anchor {
  cert: Cert;
  source: string;
}

/** The chain-level causes (a subset of diagnose's causes). */
export type ChainCause =
  | 'expired'
  | 'not-yet-valid'
  | 'clock-skew'
  | 'name-mismatch'
  | 'cn-only'
  | 'sha1-signature'
  | 'self-signed'
  | 'missing-intermediate'
  | 'unknown-authority';

/** One finding about the chain. */
export interface ChainFinding {
  cause: ChainCause;
  /** One sentence with the evidence (names, dates, fingerprints). */
  detail: string;
}

/** What evaluating a chain found: no findings means Go would accept it. */
export interface ChainVerdict {
  findings: ChainFinding[];
  /** The verified path (leaf first, anchor last) when the chain is trusted. */
  path?: Cert[];
  /** The anchor that validated it. */
  anchor?: Anchor;
}

/** What to evaluate. */
export interface ChainInput {
  /** As served, leaf first. */
  served: Cert[];
  anchors: Anchor[];
  /** The registry host (no port). */
  hostname: string;
  /** The node's clock. */
  now: Date;
  /** The controller's clock, to tell a wrong node clock from a wrong certificate. */
  controllerNow?: Date;
  /** Anchors given for this registry specifically (hosts.toml ca, --ca), to tell a missing intermediate from an unknown CA. */
  registryAnchors?: Anchor[];
}

const MAX_DEPTH = 8;

function validAt(c: Cert, t: Date): 'ok' | 'expired' | 'not-yet-valid' {
  if (t.getTime() < new Date(c.x509.validFrom).getTime()) return 'not-yet-valid';
  if (t.getTime() > new Date(c.x509.validTo).getTime()) return 'expired';
  return 'ok';
}

/** The Common Name of a distinguished name as Node prints it, else the whole name on one line. */
function cnOf(dn: string): string {
  return (
    dn
      .split('\n')
      .find((l) => l.startsWith('CN='))
      ?.slice(3) ?? dn.replace(/\n/g, ', ')
  );
}
const name = (c: Cert): string => cnOf(c.x509.subject);
const issuerName = (c: Cert): string => cnOf(c.x509.issuer);

/** The time finding for one certificate, telling a node clock problem from a certificate one. */
function timeFinding(c: Cert, role: string, now: Date, controllerNow?: Date): ChainFinding | undefined {
  const v = validAt(c, now);
  if (v === 'ok') return undefined;
  const window = `valid from ${c.x509.validFrom} to ${c.x509.validTo}`;
  if (controllerNow && validAt(c, controllerNow) === 'ok')
    return {
      cause: 'clock-skew',
      detail: `the ${role} "${name(c)}" is ${window}: valid by the controller's clock (${controllerNow.toISOString()}) but not by the node's (${now.toISOString()}), so the node's clock is wrong`,
    };
  return {
    cause: v,
    detail:
      v === 'expired'
        ? `the ${role} "${name(c)}" expired on ${c.x509.validTo} (node time ${now.toISOString()})`
        : `the ${role} "${name(c)}" is not valid before ${c.x509.validFrom} (node time ${now.toISOString()})`,
  };
}

/** Go's VerifyHostname: SANs only (Go >= 1.15 ignores the Common Name), IPs against IP SANs. */
function hostFinding(leaf: Cert, hostname: string): ChainFinding | undefined {
  const x = leaf.x509;
  const ip = isIP(hostname) !== 0;
  if (!leaf.hasSan) {
    const cn = name(leaf);
    // Node's checkHost falls back to the subject CN when there is no SAN: exactly the legacy match Go refuses.
    if (!ip && x.checkHost(hostname) !== undefined)
      return {
        cause: 'cn-only',
        detail: `the certificate names ${hostname} only in its Common Name ("${cn}") and has no subjectAltName; Go (containerd) ignores the Common Name since 1.15`,
      };
    return {
      cause: 'name-mismatch',
      detail: `the certificate has no subjectAltName and its Common Name "${cn}" is not ${hostname}`,
    };
  }
  const ok = ip ? x.checkIP(hostname) !== undefined : x.checkHost(hostname, { subject: 'never' }) !== undefined;
  if (ok) return undefined;
  return {
    cause: 'name-mismatch',
    detail: `the certificate is valid for ${x.subjectAltName ?? '(no names)'}, not ${hostname}`,
  };
}

interface Built {
  path?: Cert[];
  anchor?: Anchor;
  /** A candidate issuer whose SHA-1 signature Go would refuse. */
  sha1?: { cert: Cert; issuer: Cert };
  /** A certificate on the way whose validity period is wrong. */
  time?: { cert: Cert };
}

/** Depth-first path building as Go's buildChains: anchors first, then served intermediates. */
function build(c: Cert, served: Cert[], anchors: Anchor[], now: Date, seen: Set<string>, depth: number): Built {
  const out: Built = {};
  if (depth > MAX_DEPTH) return out;
  for (const a of anchors) {
    if (!c.x509.checkIssued(a.cert.x509)) continue;
    if (!safeVerify(c.x509, a.cert.x509)) continue;
    if (isSha1(c)) {
      out.sha1 ??= { cert: c, issuer: a.cert };
      continue;
    }
    if (validAt(a.cert, now) !== 'ok') {
      out.time ??= { cert: a.cert };
      continue;
    }
    return { path: [c, a.cert], anchor: a };
  }
  for (const i of served) {
    const fp = i.x509.fingerprint256;
    if (seen.has(fp) || !c.x509.checkIssued(i.x509) || !safeVerify(c.x509, i.x509)) continue;
    if (isSha1(c)) {
      out.sha1 ??= { cert: c, issuer: i };
      continue;
    }
    if (validAt(i, now) !== 'ok') {
      out.time ??= { cert: i };
      continue;
    }
    const next = build(i, served, anchors, now, new Set([...seen, fp]), depth + 1);
    if (next.path && next.anchor) return { path: [c, ...next.path], anchor: next.anchor };
    out.sha1 ??= next.sha1;
    out.time ??= next.time;
  }
  return out;
}

/** Evaluates a served chain as containerd's Go client would, against the given anchors. */
export function evaluateChain(input: ChainInput): ChainVerdict {
  const { served, anchors, hostname, now, controllerNow } = input;
  const leaf = served[0];
  if (!leaf) return { findings: [{ cause: 'unknown-authority', detail: 'the server sent no certificate' }] };
  const findings: ChainFinding[] = [];
  const t = timeFinding(leaf, 'certificate', now, controllerNow);
  if (t) findings.push(t);
  const h = hostFinding(leaf, hostname);
  if (h) findings.push(h);

  // Go: a leaf that is itself in the root pool is trusted as it is (how a self-signed registry is trusted).
  const exact = anchors.find((a) => a.cert.x509.fingerprint256 === leaf.x509.fingerprint256);
  if (exact) return { findings, path: [leaf], anchor: exact };

  const intermediates = served.slice(1);
  const b = build(leaf, intermediates, anchors, now, new Set([leaf.x509.fingerprint256]), 0);
  if (b.path && b.anchor) return { findings, path: b.path, anchor: b.anchor };
  if (b.sha1) {
    findings.push({
      cause: 'sha1-signature',
      detail: `"${name(b.sha1.cert)}" is signed with ${b.sha1.cert.signatureName} by "${name(b.sha1.issuer)}"; Go (containerd) refuses SHA-1 signatures since 1.18 (containerd reports it as "signed by unknown authority (possibly because of ... insecure algorithm ...)")`,
    });
    return { findings };
  }
  if (b.time) {
    const tf = timeFinding(b.time.cert, 'CA certificate', now, controllerNow);
    // A wrong node clock already named on the leaf is the same cause for its CA.
    if (tf && !findings.some((f) => f.cause === tf.cause)) findings.push(tf);
    return { findings };
  }
  if (isSelfSigned(leaf)) {
    findings.push({
      cause: 'self-signed',
      detail: `the certificate is self-signed ("${name(leaf)}", ${leaf.x509.fingerprint256}) and the node does not trust it`,
    });
    return { findings };
  }
  const top = served.at(-1) ?? leaf;
  const sendsRoot = served.length > 1 && isSelfSigned(top);
  const registryAnchors = input.registryAnchors ?? [];
  const servedIssuer = intermediates.some((i) => leaf.x509.checkIssued(i.x509));
  const direct = registryAnchors.filter(
    (a) => leaf.x509.checkIssued(a.cert.x509) && safeVerify(leaf.x509, a.cert.x509),
  );
  const roots = registryAnchors.filter((a) => isSelfSigned(a.cert));
  // A root given for this registry with the very name of the leaf's issuer, that did not sign it:
  // the same CA name with another key (a CA that was re-created), not a missing intermediate.
  const sameName =
    served.length === 1 && !servedIssuer && direct.length === 0
      ? roots.find((a) => a.cert.x509.subject === leaf.x509.issuer)
      : undefined;
  if (sameName) {
    const keys = leaf.aki
      ? ` (key id ${leaf.aki}${sameName.cert.ski ? `; the given root's is ${sameName.cert.ski}` : ''})`
      : '';
    findings.push({
      cause: 'unknown-authority',
      detail: `the root given for this registry, "${name(sameName.cert)}" (${sameName.source}, ${sameName.cert.x509.fingerprint256}), has the name of the leaf's issuer but did not sign it: another CA of that name${keys} issued the registry's certificate (was the CA re-created?); trust that one`,
    });
    return { findings };
  }
  // An intermediate is missing when the leaf comes alone and either its issuer, given for this
  // registry, is itself not a root, or the root given for this registry did not sign it directly.
  // The second cannot be told from a root that is simply another registry's: the detail says both.
  const missing =
    served.length === 1 &&
    !servedIssuer &&
    (direct.some((a) => !isSelfSigned(a.cert)) || (direct.length === 0 && roots.length > 0));
  if (missing) {
    const rootList = roots.map((a) => `"${name(a.cert)}" (${a.source})`).join(', ');
    const unsure = direct.length === 0;
    findings.push({
      cause: 'missing-intermediate',
      detail: `the server sends only its leaf, issued by "${issuerName(leaf)}"${leaf.aki ? ` (key id ${leaf.aki})` : ''}, an intermediate it does not send${rootList ? `; the root given for this registry is ${rootList}` : ''}${unsure ? `, which did not sign the leaf itself: if "${issuerName(leaf)}" is not an intermediate under it, that root is not this registry's CA at all` : ''}`,
    });
    return { findings };
  }
  const chainTop = sendsRoot
    ? `the server sends its root "${name(top)}" (${top.x509.fingerprint256}), which the node does not trust`
    : `the server does not send its root; the certificate at the top of what it sends is issued by "${issuerName(top)}"${top.aki ? ` (authority key id ${top.aki})` : ''}`;
  findings.push({
    cause: 'unknown-authority',
    detail: `no CA the node trusts signed this chain: ${chainTop}; the CA that would fix it is "${issuerName(top)}"${top.aki && !sendsRoot ? ` with key id ${top.aki}` : ''}`,
  });
  return { findings };
}
