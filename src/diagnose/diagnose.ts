/**
 * `trustplay diagnose` for one node: from the node's own network view (a TCP connection the node
 * opens, through containerd's proxy when it uses one), the handshake a registry client makes, the
 * served chain evaluated against what the node trusts for the registry, and one named cause with
 * its evidence and the secure fix.
 */
import { ConnectionError, TcpOpenError } from '../connection/errors.js';
import type { Connection } from '../connection/connection.js';
import { splitHostPort } from '../containerd/registry-host.js';
import { evidenceOf, isSelfSigned, type Cert, type CertEvidence } from './certificate.js';
import { evaluateChain, type Anchor, type ChainFinding } from './evaluate.js';
import { fixFor, type Fix } from './fixes.js';
import { gatherNodeView, proxyFor, type NodeView, type NodeViewOptions } from './node-view.js';
import { connectThroughProxy, probePlain, probeTls, type TlsProbe } from './probe.js';
import { sClientProbe } from './s-client.js';
import { CAUSE_SUMMARY, type DiagnoseCause } from './causes.js';
// runtime-trust.ts is imported when used: it reads through the modules, and containerd.tls's pre-flight imports this file.
import type { RuntimesRead, RuntimeTrust } from './runtime-trust.js';
import { RUNTIME_NAMES } from './runtime-names.js';
import type { Runtime } from '../modules/runtimes.js';

/** A CA file given with `--ca`, already parsed. */
export interface ExtraCa {
  file: string;
  certs: Cert[];
  /**
   * Evaluate the file instead of the CA files the node has for the registry (with the OS store
   * only), as it will be once containerd.tls has written it; default: in addition to them.
   */
  replaceTrust?: boolean;
}

/**
 * Causes a CA can fix: the chain does not reach it. The others (name, dates, a SHA-1 signature on a
 * chain that does reach the CA) are the leaf's or the clock's: only the registry's owner fixes them.
 */
export const CHAIN_CAUSES: ReadonlySet<ChainFinding['cause']> = new Set([
  'unknown-authority',
  'self-signed',
  'missing-intermediate',
]);

/** Whether a CA file validates a served chain for a name from a node: diagnose's `--ca` and containerd.tls's pre-flight. */
export interface CaCheck {
  file: string;
  /** Nothing found: Go would accept the chain with this CA. */
  validates: boolean;
  /** The chain reaches the CA (what is left, if anything, is the leaf's name or dates, or the clock). */
  completes_chain: boolean;
  detail: string;
  findings: ChainFinding[];
}

/** Evaluates `ca` (with `anchors`) against the served chain, with diagnose's chain evaluation. */
export function checkCa(i: {
  served: Cert[];
  ca: ExtraCa;
  anchors: Anchor[];
  hostname: string;
  hostPort: string;
  now: Date;
  controllerNow?: Date;
}): CaCheck {
  const withCa = evaluateChain({
    served: i.served,
    anchors: [...i.anchors, ...i.ca.certs.map((cert) => ({ cert, source: `--ca ${i.ca.file}` }))],
    hostname: i.hostname,
    now: i.now,
    ...(i.controllerNow ? { controllerNow: i.controllerNow } : {}),
  });
  const chainOk = !withCa.findings.some((f) => CHAIN_CAUSES.has(f.cause));
  return {
    file: i.ca.file,
    validates: withCa.findings.length === 0,
    completes_chain: chainOk,
    detail:
      withCa.findings.length === 0
        ? `${i.ca.file} validates the chain ${i.hostPort} serves to this node`
        : chainOk
          ? `${i.ca.file} completes the chain, but: ${withCa.findings.map((f) => f.detail).join('; ')}`
          : `${i.ca.file} does not validate the chain ${i.hostPort} serves to this node: ${withCa.findings[withCa.findings.length - 1]?.detail ?? ''}`,
    findings: withCa.findings,
  };
}

/** What to diagnose and how. */
export interface DiagnoseOptions extends NodeViewOptions {
  /** `host` or `host:port`. */
  registry: string;
  ca?: ExtraCa;
  /** The controller's clock (injectable so a test can stub it, as the node's clock cannot be moved). */
  controllerNow?: () => Date;
  /** Replaces the node's clock read (tests only: a Go daemon's clock cannot be skewed in a namespace). */
  nodeClock?: (read: Date) => Date;
  /** `--expiry-warning`: warn about certificates in the chain or trusted for the registry expiring within this many days. */
  expiryWarningDays?: number;
  /**
   * Also read the trust of every other runtime the node has (Docker Engine, containers/image), as
   * `trustplay diagnose` does; without it, containerd's alone (containerd.tls's pre-flight).
   */
  allRuntimes?: boolean;
  /** The inventory's `cri_socket`, for runtime detection. */
  criSocket?: string;
}

/** A certificate that expires soon (`--expiry-warning`). */
export interface ExpiryWarning {
  subject: string;
  /** `served`, or where the node trusts it from. */
  where: string;
  not_after: string;
  days_left: number;
  sha256: string;
}

/** Where the handshake was seen from. */
export type ViewKind =
  | 'node (direct TCP channel)'
  | 'node through containerd proxy'
  | 'node (openssl s_client: TCP forwarding is forbidden)'
  | 'controller only';

/** One node's diagnosis, as printed and as JSON. */
export interface Diagnosis {
  host: string;
  registry: string;
  cause: DiagnoseCause;
  /** One sentence: what is wrong, with the evidence that decided it. */
  summary: string;
  /** Every problem found, in the order containerd meets them (the first is `cause`). */
  findings: ChainFinding[];
  view?: ViewKind;
  evidence: {
    chain?: CertEvidence[];
    /** The certificate that validated the chain (when trusted). */
    trusted_by?: string;
    trust?: NodeView['trust'];
    node_time?: string;
    controller_time?: string;
    clock_skew_seconds?: number;
    addresses?: string[];
    proxy?: { https_proxy?: string; no_proxy?: string; used: boolean; sources: string[] };
    http_status?: number;
    www_authenticate?: string;
    credentials?: string[];
    tls_error?: string;
    /** First bytes a non-TLS port answered. */
    answered?: string;
    /** Leaf the node sees directly when the proxy's differs (interception). */
    direct_leaf?: CertEvidence;
  };
  /** Certificates expiring within `--expiry-warning` days, by the node's clock. */
  expiry_warnings?: ExpiryWarning[];
  /** `--ca` pre-flight: whether that file validates the served chain for this name from this node. */
  ca_check?: CaCheck;
  fix: Fix | null;
  /**
   * The runtimes the node pulls through, as registry.trust (runtimes: auto) selects them; absent
   * when none was found or they were not read (then containerd's trust is the one diagnosed).
   */
  runtimes?: Runtime[];
  /** Why a runtime was left out, or its trust could not be read. */
  runtime_notes?: string[];
  /** What each runtime besides containerd trusts for the registry, and its verdict on the chain. */
  other_runtimes?: RuntimeTrust[];
  /**
   * The self-signed certificate at the top of the served chain (a root, or a self-signed leaf), for
   * `--fetch-ca`; absent when the registry does not send one or a proxy re-signs the traffic.
   */
  offered_ca?: { subject: string; sha256: string; pem: string };
}

function finding(cause: DiagnoseCause, detail: string): ChainFinding {
  return { cause: cause as ChainFinding['cause'], detail };
}

/** Diagnoses one node (connects it if needed); never throws for what the node or registry does. */
export async function diagnoseNode(conn: Connection, o: DiagnoseOptions): Promise<Diagnosis> {
  const { host: hostname, port: portText } = splitHostPort(o.registry);
  const bareHost = hostname.replace(/^\[|\]$/g, '');
  const port = Number(portText ?? '443');
  const d: Diagnosis = {
    host: conn.host,
    registry: o.registry,
    cause: 'healthy',
    summary: '',
    findings: [],
    evidence: {},
    fix: null,
  };
  const done = (cause: DiagnoseCause, detail: string): Diagnosis => {
    d.findings.unshift(finding(cause, detail));
    return settle(d, o);
  };

  try {
    await conn.connect();
  } catch (e) {
    d.cause = 'host-unreachable';
    d.summary = (e as Error).message;
    return d;
  }
  let view: NodeView;
  let runtimes: RuntimesRead | null = null;
  try {
    const hostState = new Map<string, unknown>();
    view = await gatherNodeView(conn, o.registry, o, hostState);
    if (o.allRuntimes)
      runtimes = await (
        await import('./runtime-trust.js')
      ).gatherRuntimeTrust(conn, {
        registry: o.registry,
        configFile: view.configFile,
        addresses: view.addresses,
        hostState,
        ...(o.criSocket !== undefined ? { criSocket: o.criSocket } : {}),
      });
  } catch (e) {
    d.cause = 'other';
    d.summary = (e as Error).message;
    return d;
  }
  if (runtimes) {
    d.runtimes = runtimes.runtimes;
    if (runtimes.notes.length) d.runtime_notes = runtimes.notes;
    if (runtimes.others.length) d.other_runtimes = runtimes.others.map((r) => r.trust);
  }
  const controllerNow = (o.controllerNow ?? (() => new Date()))();
  const nodeNow = o.nodeClock ? o.nodeClock(view.clock) : view.clock;
  if (!d.runtimes || d.runtimes.includes('containerd')) d.evidence.trust = view.trust;
  d.evidence.node_time = nodeNow.toISOString();
  d.evidence.controller_time = controllerNow.toISOString();
  d.evidence.clock_skew_seconds = Math.round((nodeNow.getTime() - controllerNow.getTime()) / 1000);
  d.evidence.addresses = view.addresses;
  if (view.credentials.length) d.evidence.credentials = view.credentials;
  const proxy = proxyFor(view.proxy, o.registry);
  if (view.proxy.httpsProxy || view.proxy.noProxy)
    d.evidence.proxy = {
      ...(view.proxy.httpsProxy ? { https_proxy: view.proxy.httpsProxy } : {}),
      ...(view.proxy.noProxy ? { no_proxy: view.proxy.noProxy } : {}),
      used: proxy !== undefined,
      sources: view.proxy.sources,
    };

  // Go's dialer resolves through the node's resolver; a name it cannot resolve never gets a TCP connection.
  if (!proxy && /[a-z]/i.test(bareHost) && !bareHost.includes(':') && view.addresses.length === 0)
    return done(
      'dns',
      `the node cannot resolve ${bareHost} (getent ahosts found no address: check /etc/hosts and /etc/resolv.conf on the node)`,
    );

  const open = async (): Promise<{ stream: import('node:stream').Duplex } | { error: TcpOpenError }> => {
    try {
      if (!proxy) return { stream: await conn.openTcp(bareHost, port) };
      const p = new URL(view.proxy.rawHttpsProxy ?? proxy);
      const stream = await conn.openTcp(p.hostname, Number(p.port || (p.protocol === 'https:' ? 443 : 80)));
      const tunnel = await connectThroughProxy(stream, `${hostname}:${port}`);
      if (!tunnel.ok) {
        stream.destroy();
        return {
          error: new TcpOpenError(
            'other',
            `containerd's proxy ${view.proxy.httpsProxy ?? ''} refused the tunnel to ${hostname}:${port}: ${tunnel.status}`,
          ),
        };
      }
      return { stream };
    } catch (e) {
      // The host itself lost (its SSH connection ended) is unreachable, not a finding about the registry.
      if (e instanceof ConnectionError) throw e;
      return { error: e instanceof TcpOpenError ? e : new TcpOpenError('other', (e as Error).message) };
    }
  };

  d.view = proxy ? 'node through containerd proxy' : 'node (direct TCP channel)';
  const first = await open();
  if ('error' in first) {
    const e = first.error;
    switch (e.failure) {
      case 'dns':
        return done('dns', `the node cannot resolve ${bareHost}: ${e.message}`);
      case 'refused':
        return done(
          'unreachable',
          `the node's connection to ${hostname}:${port} was refused (nothing listens there, or a firewall rejects it): ${e.message}`,
        );
      case 'timeout':
        return done('timeout', `the node's connection to ${hostname}:${port} timed out: ${e.message}`);
      case 'forbidden': {
        // No direct-tcpip channel: the node's own openssl makes the handshake instead, when it has one.
        if (view.hasOpenssl) {
          const via = await sClientProbe(conn, {
            hostname: bareHost,
            port,
            proxy: view.proxy.rawHttpsProxy && proxy ? view.proxy.rawHttpsProxy : undefined,
            clientCert: view.trust.client_cert,
          });
          if (via.kind !== 'error') {
            d.view = 'node (openssl s_client: TCP forwarding is forbidden)';
            return classifyProbe(d, via.probe, {
              view,
              nodeNow,
              controllerNow,
              hostname: bareHost,
              port,
              open: async () => ({ error: e }),
              proxy: proxy !== undefined,
              conn,
              o,
              runtimes,
            });
          }
          if (via.failure !== 'other') {
            d.view = 'node (openssl s_client: TCP forwarding is forbidden)';
            return done(
              via.failure,
              `${via.message} (seen by openssl s_client on the node: its sshd forbids TCP forwarding)`,
            );
          }
        }
        d.view = 'controller only';
        return done(
          'other',
          `the node's sshd forbids TCP forwarding (AllowTcpForwarding no) and the node has no openssl, so the handshake cannot be seen from the node: ${e.message}`,
        );
      }
      default:
        return done('unreachable', e.message);
    }
  }
  const probe = await probeTls(first.stream, bareHost, `${hostname}:${port}`, view.clientPair);
  return classifyProbe(d, probe, {
    view,
    nodeNow,
    controllerNow,
    hostname: bareHost,
    port,
    open,
    proxy: proxy !== undefined,
    conn,
    o,
    runtimes,
  });
}

interface Ctx {
  view: NodeView;
  nodeNow: Date;
  controllerNow: Date;
  hostname: string;
  port: number;
  open: () => Promise<{ stream: import('node:stream').Duplex } | { error: TcpOpenError }>;
  proxy: boolean;
  conn: Connection;
  o: DiagnoseOptions;
  runtimes: RuntimesRead | null;
}

async function classifyProbe(d: Diagnosis, probe: TlsProbe, c: Ctx): Promise<Diagnosis> {
  const done = (cause: DiagnoseCause, detail: string): Diagnosis => {
    d.findings.unshift(finding(cause, detail));
    return settle(d, c.o);
  };
  const hp = `${c.hostname}:${c.port}`;
  if (probe.kind === 'timeout')
    return done(
      'timeout',
      `the TLS handshake with ${hp} did not finish within 10 s (containerd's TLSHandshakeTimeout): something accepts the connection but does not answer`,
    );
  if (probe.kind === 'handshake-failed') {
    d.evidence.tls_error = probe.message;
    if (probe.clientCertRequired)
      return done(
        'client-cert-required',
        `${hp} requires a client certificate (mutual TLS) and ended the handshake when none was sent (${probe.message})`,
      );
    const again = await c.open();
    if ('stream' in again) {
      const plain = await probePlain(again.stream, hp);
      if (plain.http) {
        d.evidence.http_status = plain.http.status;
        return done(
          'plain-http',
          `${hp} answers plain HTTP (status ${plain.http.status} to GET /v2/ without TLS), so the HTTPS pull fails with "server gave HTTP response to HTTPS client"`,
        );
      }
      if (plain.first) d.evidence.answered = JSON.stringify(plain.first.replace(/[^\x20-\x7e]/g, '.'));
    }
    if (probe.notTls)
      return done(
        'not-tls',
        `${hp} does not speak TLS (the handshake failed: ${probe.message})${d.evidence.answered ? `; it answered ${d.evidence.answered}` : ''}: wrong port?`,
      );
    return done('other', `the TLS handshake with ${hp} failed: ${probe.message}`);
  }
  d.evidence.chain = probe.served.map(evidenceOf);
  if (probe.v2) d.evidence.http_status = probe.v2.status;
  if (probe.v2?.authenticate) d.evidence.www_authenticate = probe.v2.authenticate;

  const anchors: Anchor[] = [...c.view.registryAnchors, ...c.view.osAnchors];
  const verdict = evaluateChain({
    served: probe.served,
    anchors,
    hostname: c.hostname,
    now: c.nodeNow,
    controllerNow: c.controllerNow,
    registryAnchors: [
      ...c.view.registryAnchors,
      // containerd.tls's pre-flight (replaceTrust) reports the node as it is now, its CA apart.
      ...(c.o.ca && !c.o.ca.replaceTrust ? c.o.ca.certs.map((cert) => ({ cert, source: `--ca ${c.o.ca?.file}` })) : []),
    ],
  });
  // containerd's verdict is the node's unless the node does not pull through containerd; then, and
  // when containerd's is clean, the first other runtime the chain fails on names the cause.
  const containerdOut = c.runtimes !== null && !c.runtimes.runtimes.includes('containerd');
  if (!containerdOut) d.findings.push(...verdict.findings);
  if (c.runtimes?.others.length) {
    const { judgeRuntime } = await import('./runtime-trust.js');
    d.other_runtimes = c.runtimes.others.map((r) =>
      judgeRuntime(r, {
        registry: c.o.registry,
        served: probe.served,
        osAnchors: c.view.osAnchors,
        ...(c.view.trust.os_store ? { osStore: c.view.trust.os_store } : {}),
        hostname: c.hostname,
        now: c.nodeNow,
        controllerNow: c.controllerNow,
        runtimes: c.runtimes!.runtimes,
      }),
    );
    if (d.findings.length === 0) {
      const failing = d.other_runtimes.find((r) => r.findings?.length);
      if (failing)
        d.findings.push(
          ...(failing.findings ?? []).map((f) => ({ ...f, detail: `${RUNTIME_NAMES[failing.runtime]}: ${f.detail}` })),
        );
    }
  }
  // The node has a CA file for the registry in a hosts.toml its containerd ignores: that is why.
  const ignored = c.view.trust.hosts_toml_ignored;
  const untrusted = containerdOut ? undefined : verdict.findings.find((f) => CHAIN_CAUSES.has(f.cause));
  if (ignored !== undefined && untrusted)
    untrusted.detail += `; ${ignored}, so its ca (${c.view.trust.ignored_ca?.join(', ') || 'none'}) is not used`;
  if (c.o.expiryWarningDays !== undefined) {
    const soon = expiringSoon(
      [
        ...probe.served.map((cert) => ({ cert, where: 'served by the registry' })),
        ...c.view.registryAnchors.map((a) => ({ cert: a.cert, where: `trusted by the node (${a.source})` })),
        ...(verdict.anchor
          ? [{ cert: verdict.anchor.cert, where: `trusted by the node (${verdict.anchor.source})` }]
          : []),
      ],
      c.nodeNow,
      c.o.expiryWarningDays,
    );
    if (soon.length) d.expiry_warnings = soon;
  }
  if (verdict.anchor && !containerdOut)
    d.evidence.trusted_by = `${evidenceOf(verdict.anchor.cert).subject} (${verdict.anchor.source})`;
  if (c.o.ca) {
    d.ca_check = checkCa({
      served: probe.served,
      ca: c.o.ca,
      // What the node trusts now, plus the file: "would adding it fix the pull". containerd.tls's
      // pre-flight passes replaceTrust, as its CA file replaces the registry's CA.
      anchors: c.o.ca.replaceTrust ? c.view.osAnchors : anchors,
      hostname: c.hostname,
      hostPort: hp,
      now: c.nodeNow,
      controllerNow: c.controllerNow,
    });
  }
  if (c.proxy) {
    // What the registry serves without the proxy: a different leaf means the proxy re-signs the traffic.
    const direct = await c.conn.openTcp(c.hostname, c.port).catch(() => undefined);
    if (direct) {
      const seen = await probeTls(direct, c.hostname, hp, c.view.clientPair);
      const leaf = seen.kind === 'tls' ? seen.served[0] : undefined;
      if (leaf && probe.served[0] && leaf.x509.fingerprint256 !== probe.served[0].x509.fingerprint256) {
        d.evidence.direct_leaf = evidenceOf(leaf);
        const issuer = d.evidence.chain[0]?.issuer ?? '?';
        d.findings.unshift(
          finding(
            'tls-interception',
            `containerd's proxy ${c.view.proxy.httpsProxy ?? ''} intercepts TLS: through it the node sees a certificate issued by "${issuer}", while ${hp} itself serves one issued by "${d.evidence.direct_leaf.issuer}"`,
          ),
        );
      }
    }
  }
  const top = probe.served.at(-1);
  if (top && isSelfSigned(top) && !d.findings.some((f) => f.cause === ('tls-interception' as ChainFinding['cause'])))
    d.offered_ca = { subject: evidenceOf(top).subject, sha256: evidenceOf(top).sha256, pem: top.x509.toString() };
  if (d.findings.length) return settle(d, c.o);
  if (probe.clientCertRequired)
    return done(
      'client-cert-required',
      `${hp}'s certificate is trusted, but it requires a client certificate (mutual TLS) and ended the connection when none was sent (${probe.error ?? ''})`,
    );
  if (probe.v2?.status === 401 || probe.v2?.status === 403)
    return done(
      'unauthorized',
      `TLS is fine (the chain validates for ${c.hostname} from this node); ${hp} answers ${probe.v2.status} to GET /v2/${probe.v2.authenticate ? ` (${probe.v2.authenticate})` : ''}: look at credentials; the node holds ${c.view.credentials.length ? c.view.credentials.join(', ') : 'none for this registry'}`,
    );
  return settle(d, c.o);
}

/** Fills `cause`, `summary` and `fix` from the findings. */
function settle(d: Diagnosis, o: DiagnoseOptions): Diagnosis {
  const first = d.findings[0];
  d.cause = first ? (first.cause as DiagnoseCause) : 'healthy';
  d.summary = first
    ? `${CAUSE_SUMMARY[d.cause]}: ${first.detail}`
    : `${CAUSE_SUMMARY.healthy}${d.evidence.http_status !== undefined ? ` (GET /v2/ answered ${d.evidence.http_status})` : ''}`;
  d.fix = fixFor(d, o);
  return d;
}

/** Certificates (deduplicated) still valid at `now` that expire within `days`. */
export function expiringSoon(certs: Array<{ cert: Cert; where: string }>, now: Date, days: number): ExpiryWarning[] {
  const seen = new Set<string>();
  const out: ExpiryWarning[] = [];
  for (const { cert, where } of certs) {
    const e = evidenceOf(cert);
    if (seen.has(e.sha256)) continue;
    seen.add(e.sha256);
    const left = (new Date(e.not_after).getTime() - now.getTime()) / 86_400_000;
    if (left >= 0 && left <= days)
      out.push({ subject: e.subject, where, not_after: e.not_after, days_left: Math.floor(left), sha256: e.sha256 });
  }
  return out;
}
