/**
 * Why a pull failed, in the terms an operator fixes it in: the causes containerd's own error can
 * show. `trustplay diagnose` names these and finer ones (TrustCause), each mapped back to what
 * containerd shows by CONTAINERD_SHOWS, so a pull's failure and a diagnosis speak one vocabulary.
 */
export type PullFailureClass =
  | 'unknown-authority'
  | 'name-mismatch'
  | 'cn-only'
  | 'sha1-signature'
  | 'expired'
  | 'not-yet-valid'
  | 'client-cert-required'
  | 'plain-http'
  | 'not-tls'
  | 'unauthorized'
  | 'not-found'
  | 'unreachable'
  | 'dns'
  | 'timeout'
  | 'other';

/** A classified pull failure: `summary` says what is wrong, `hint` which trustplay knob fixes it. */
export interface PullFailure {
  class: PullFailureClass;
  summary: string;
  hint: string;
}

/** Every cause trustplay names: what containerd can show, plus what only a look at the chain tells apart. */
export type TrustCause =
  | PullFailureClass
  | 'missing-intermediate'
  | 'self-signed'
  | 'tls-interception'
  | 'clock-skew'
  | 'healthy'
  | 'host-unreachable';

/**
 * What containerd's error says for each cause diagnose can name (a missing intermediate, a
 * self-signed leaf and an intercepting proxy all reach containerd as an unknown authority; a wrong
 * node clock as an expired or not yet valid certificate).
 */
export const CONTAINERD_SHOWS: Record<Exclude<TrustCause, 'healthy' | 'host-unreachable'>, PullFailureClass[]> = {
  'unknown-authority': ['unknown-authority'],
  'missing-intermediate': ['unknown-authority'],
  'self-signed': ['unknown-authority'],
  'tls-interception': ['unknown-authority'],
  'name-mismatch': ['name-mismatch'],
  'cn-only': ['cn-only'],
  'sha1-signature': ['sha1-signature'],
  expired: ['expired'],
  'not-yet-valid': ['not-yet-valid'],
  'clock-skew': ['expired', 'not-yet-valid'],
  'client-cert-required': ['client-cert-required'],
  'plain-http': ['plain-http'],
  'not-tls': ['not-tls'],
  unauthorized: ['unauthorized'],
  'not-found': ['not-found'],
  unreachable: ['unreachable'],
  dns: ['dns'],
  timeout: ['timeout'],
  other: ['other'],
};

/**
 * Which program's text is classified: containerd's CRI (the default), Docker Engine (dockerd's
 * message from the Engine API) or containers/image (skopeo's stderr; podman, CRI-O). The classes
 * are the same (they are Go's crypto/x509 and net/http errors in each); the hints name the knob of
 * that runtime.
 */
export type PullRuntime = 'containerd' | 'docker' | 'containers';

/** The runtime as a sentence names it. */
const RUNTIME_NAME: Record<PullRuntime, string> = {
  containerd: 'containerd',
  docker: 'Docker Engine',
  containers: 'containers/image',
};

/** The trust module of each runtime. */
const TLS_MODULE: Record<PullRuntime, string> = {
  containerd: 'containerd.tls',
  docker: 'docker.tls',
  containers: 'containers.tls',
};

/** Turning verification off, each runtime's way: named only as the last resort it is. */
const INSECURE_KNOB: Record<PullRuntime, string> = {
  containerd: 'skip_verify',
  docker: "daemon.json's insecure-registries",
  containers: 'insecure = true in registries.conf',
};

interface Rule {
  class: PullFailureClass;
  test: RegExp;
  summary: (m: RegExpExecArray, where: string, rt: PullRuntime) => string;
  hint: (rt: PullRuntime) => string;
}

const PLAIN_HTTP_HINT: Record<PullRuntime, string> = {
  containerd: 'the registry speaks plain HTTP: containerd.tls with `plain_http: true` (or serve the registry over TLS)',
  docker:
    "the registry speaks plain HTTP: list it in daemon.json's `insecure-registries` and restart dockerd (or serve the registry over TLS)",
  containers:
    'the registry speaks plain HTTP: `insecure = true` in its [[registry]] table of registries.conf (or serve the registry over TLS)',
};

const UNAUTHORIZED_HINT: Record<PullRuntime, string> = {
  containerd:
    'give credentials: image.pull.verify `auth` (and kubelet / imagePullSecrets for pods); node.creds.wipe removes stale ones',
  docker:
    'give credentials: image.pull.verify `auth` (dockerd takes them with each pull; `docker login` keeps them for the docker CLI)',
  containers:
    "give credentials: image.pull.verify `auth` (`podman login` / `skopeo login` keep them in containers' auth.json)",
};

const OTHER_HINT: Record<PullRuntime, string> = {
  containerd: "read containerd's message below and its log on the node (journalctl -u containerd)",
  docker: "read dockerd's message below and its log on the node (journalctl -u docker)",
  containers: 'read the message below; `skopeo --debug inspect docker://IMAGE` on the node shows each request',
};

// Order matters: a TLS failure mentions the URL and a DNS timeout says "i/o timeout", so the
// specific causes are tried before the generic ones. Patterns are Go's own error strings (crypto/x509,
// net, net/http) as containerd passes them through, matched without the "tls: failed to verify
// certificate:" prefix that Go >= 1.20 adds and older builds (containerd 1.6 on Go 1.19) lack.
// dockerd and skopeo pass the same Go errors through; skopeo's logrus line escapes the quotes
// inside its msg (`\"x509: ...\"`), so a quote in a pattern may follow a backslash.
const RULES: Rule[] = [
  {
    // Go >= 1.18 refuses SHA-1 while building the chain and reports it as an unknown authority with a hint.
    class: 'sha1-signature',
    test: /x509: certificate signed by unknown authority \(possibly because of \\?"x509: cannot verify signature: insecure algorithm ([\w-]+)/,
    summary: (m, where, rt) =>
      `${where}'s certificate is signed with ${m[1] ?? 'SHA-1'}, which ${RUNTIME_NAME[rt]} refuses`,
    hint: (rt) =>
      `only the registry's owner can fix this: reissue the certificate signed with SHA-256 (no trust setting makes ${RUNTIME_NAME[rt]} accept SHA-1)`,
  },
  {
    class: 'unknown-authority',
    test: /x509: certificate signed by unknown authority|x509: certificate is not trusted/,
    summary: (_m, where) => `${where} presents a certificate signed by a CA this node does not trust`,
    hint: (rt) =>
      `trust the registry's CA: ${TLS_MODULE[rt]} with \`ca: <registry CA PEM>\` (\`trustplay diagnose\` tells a missing intermediate or an intercepting proxy apart)`,
  },
  {
    class: 'name-mismatch',
    test: /x509: certificate is valid for (.+?), not ([^\s:"\\]+)/,
    summary: (m, where) =>
      `${where}'s certificate is valid for ${m[1] ?? '?'}, not for ${m[2] ?? 'the name pulled from'}`,
    hint: (rt) =>
      `the certificate does not cover the name you pull from: use the name in the certificate (or reissue it); ${INSECURE_KNOB[rt]} only as a last resort`,
  },
  {
    class: 'cn-only',
    test: /x509: certificate relies on legacy Common Name field/,
    summary: (_m, where) => `${where}'s certificate names the host only in its Common Name, with no subjectAltName`,
    hint: () =>
      "only the registry's owner can fix this: reissue the certificate with the name in subjectAltName (Go ignores the Common Name since 1.15)",
  },
  {
    class: 'name-mismatch',
    test: /x509: (certificate is not valid for any names|cannot validate certificate for \S+ because it doesn't contain any IP SANs)/,
    summary: (m, where) => `${where}'s certificate does not name the host pulled from (${m[1] ?? ''})`,
    hint: (rt) =>
      `the certificate does not cover the name you pull from: reissue it with that name (or IP) in subjectAltName; ${INSECURE_KNOB[rt]} only as a last resort`,
  },
  {
    class: 'not-yet-valid',
    test: /x509: certificate has expired or is not yet valid: (current time \S+ is before [^"\s\\]+)/,
    summary: (m, where) => `${where}'s certificate is not valid yet (${m[1] ?? ''})`,
    hint: () =>
      "the certificate starts in the future: the registry's owner reissues it, or the node's clock is behind (check with `date -u`)",
  },
  {
    class: 'expired',
    test: /x509: certificate has expired or is not yet valid(?::\s*([^"\\]*?))?(?:$|\\?")/,
    summary: (m, where) => `${where}'s certificate has expired or is not yet valid${m[1] ? ` (${m[1].trim()})` : ''}`,
    hint: () =>
      "renew the registry's certificate, or fix the node's clock if it is wrong (check with `date -u`); no trust setting fixes this",
  },
  {
    class: 'client-cert-required',
    test: /tls: certificate required|remote error: tls: bad certificate|tls: handshake failure/,
    summary: (_m, where) => `${where} requires a client certificate (mutual TLS) and the node sent none it accepts`,
    hint: (rt) =>
      `give the node a client certificate from the registry's owner: ${TLS_MODULE[rt]} with \`client_cert\` and \`client_key\``,
  },
  {
    class: 'not-tls',
    test: /first record does not look like a TLS handshake|tls: oversized record received/,
    summary: (_m, where) => `${where} does not speak TLS on this port`,
    hint: () => "check the registry's port: it answers something other than TLS or HTTP there",
  },
  {
    class: 'plain-http',
    test: /server gave HTTP response to HTTPS client/,
    summary: (_m, where) => `${where} speaks plain HTTP, but the node pulls over HTTPS`,
    hint: (rt) => PLAIN_HTTP_HINT[rt],
  },
  {
    class: 'unauthorized',
    test: /401 Unauthorized|403 Forbidden|pull access denied|authorization failed|no basic auth credentials|insufficient_scope|\bunauthorized\b|\bdenied\b/i,
    summary: (_m, where) => `${where} refused the pull: missing or wrong credentials`,
    hint: (rt) => UNAUTHORIZED_HINT[rt],
  },
  {
    class: 'dns',
    test: /no such host|server misbehaving|lookup \S+ on \S+: .*(?:i\/o timeout|connection refused)|Temporary failure in name resolution/,
    summary: (_m, where) => `the node cannot resolve ${where}`,
    hint: () => "check the registry name for typos and the node's DNS (/etc/resolv.conf, /etc/hosts)",
  },
  {
    class: 'unreachable',
    // "Bad Gateway" / "Gateway Timeout": containerd's HTTPS_PROXY could not reach the registry.
    test: /connection refused|no route to host|network is unreachable|host is unreachable|connection reset by peer|: Bad Gateway|: Gateway Timeout/,
    summary: (_m, where) => `the node cannot connect to ${where}`,
    hint: () => 'check the registry host and port, that the registry is running, and firewalls between the node and it',
  },
  {
    class: 'timeout',
    test: /i\/o timeout|context deadline exceeded|TLS handshake timeout|Client\.Timeout exceeded|did not finish within|DeadlineExceeded/,
    summary: (_m, where) => `the pull from ${where} timed out`,
    hint: () =>
      'check that the registry answers from the node (firewall dropping packets, proxy); raise image.pull.verify `pull_timeout` for large images',
  },
  {
    class: 'not-found',
    test: /no match for platform in manifest/,
    summary: (_m, where) => `${where} has the image but no variant for this node's platform`,
    hint: () => "push the image for the node's architecture, or pull a multi-arch tag",
  },
  {
    class: 'not-found',
    test: /not found|manifest unknown|name unknown|404 Not Found/i,
    summary: (_m, where) => `${where} does not have this image (repository or tag not found)`,
    hint: () => 'check the image name and tag (or digest) against the registry',
  },
];

/** Registry host[:port] named in the message: the request URL, else the image reference. */
export function registryFromMessage(message: string): string | undefined {
  const url =
    /\b(?:Head|Get|GET|HEAD|Post|Put) \\?"https?:\/\/([^/"\\]+)/.exec(message) ??
    /https?:\/\/([^/"\s\\]+)/.exec(message);
  if (url?.[1]) return url[1];
  // containerd: image "R"; skopeo: docker://R; dockerd: manifest for R not found.
  const ref = /image "([^"]+)"|reference "([^"]+)"|docker:\/\/([^\s"\\]+)|manifest for (\S+) not found/.exec(message);
  const image = ref?.[1] ?? ref?.[2] ?? ref?.[3] ?? ref?.[4];
  if (!image) return undefined;
  const first = image.split('/')[0] ?? '';
  return image.includes('/') && /[.:]|^localhost$/.test(first) ? first : 'docker.io';
}

/**
 * Classifies a pull error message, raw as the runtime gave it: containerd's CRI error (the
 * default), dockerd's Engine API message, or skopeo's stderr. `runtime` picks the hints' knobs.
 */
export function classifyPullError(message: string, runtime: PullRuntime = 'containerd'): PullFailure {
  const where = registryFromMessage(message) ?? 'the registry';
  for (const rule of RULES) {
    const m = rule.test.exec(message);
    if (m) return { class: rule.class, summary: rule.summary(m, where, runtime), hint: rule.hint(runtime) };
  }
  return {
    class: 'other',
    summary: `pulling from ${where} failed for a reason trustplay does not recognise`,
    hint: OTHER_HINT[runtime],
  };
}
