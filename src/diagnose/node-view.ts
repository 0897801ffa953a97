/**
 * What a node knows that decides its trust in a registry, read from the node: which CA files
 * containerd uses for it (hosts.toml `ca`, the legacy CRI `tls.ca_file`, the OS store Go loads),
 * the node's clock, how it resolves the registry's name, the proxy environment of the containerd
 * service (its unit, drop-ins and the running process's environment) and which credentials it holds
 * for the registry (names only: values are dropped as soon as the text is parsed).
 *
 * Two remote commands: containerd's facts (shared with containerd.tls, whose pre-flight passes its
 * gather's), then one script for the rest.
 */
import { posix } from 'node:path';
import type { Connection } from '../connection/connection.js';
import { describeExit } from '../connection/exit-codes.js';
import { inspectConfig } from '../containerd/config.js';
import { gatherContainerdFacts, hostsDirFor, type ContainerdFacts } from '../containerd/facts.js';
import { hostsTomlRejection, parseHostsToml } from '../containerd/hosts-toml.js';
import { detectFlavour } from '../containerd/flavour.js';
import { CONTAINERD_DAEMON_SH, containerdSocket, runningContainerdVersion } from '../containerd/daemon-version.js';
import { DEFAULT_CRI_SOCKETS } from '../cri/client.js';
import { registryKeyMatches, splitHostPort } from '../containerd/registry-host.js';
import { credentialKeys, DEFAULT_CREDENTIAL_FILES } from '../containerd/node-facts.js';
import { maskUrlUserinfo } from '../secrets/url.js';
import { certsFromPem, type Cert } from './certificate.js';
import type { Anchor } from './evaluate.js';

/** Where to look; defaults are containerd's. */
export interface NodeViewOptions {
  configFile?: string;
  configPath?: string;
  credentialFiles?: string[];
  /**
   * containerd's facts for this `configFile`, `configPath` and registry, read moments ago by the
   * caller (containerd.tls's gather, for its pre-flight): used instead of reading them again.
   */
  facts?: ContainerdFacts;
}

/** Proxy settings that apply to containerd, with where each was found (userinfo in URLs masked). */
export interface ProxyEnv {
  /** `HTTPS_PROXY` as the running daemon has it (else as its unit sets it). */
  httpsProxy?: string;
  noProxy?: string;
  /** Where the values were read: `/proc/<pid>/environ`, a unit file or drop-in. */
  sources: string[];
  /** Proxy lines in the unit and drop-ins, masked, for the report. */
  unitLines: string[];
  /** The unmasked HTTPS_PROXY, only to open the tunnel: never printed or reported. */
  rawHttpsProxy?: string;
}

/** The node's own view. */
export interface NodeView {
  /** containerd's config.toml as read (the inventory's, the flavour's or the default): not reported. */
  configFile: string;
  /** The node's clock when the script ran. */
  clock: Date;
  /** What the node's resolver answers for the registry host (`getent ahosts`), empty when nothing. */
  addresses: string[];
  /** Anchors containerd uses for this registry: the registry's own CA files, then the OS store. */
  registryAnchors: Anchor[];
  osAnchors: Anchor[];
  /** The trust settings found for the registry, for the report. */
  trust: {
    hosts_toml?: string;
    /**
     * Why the node's containerd ignores that hosts.toml (containerd 1.x and a file without a [host]
     * table): its ca, client and skip_verify are not used; the directory's *.crt files are, as CAs.
     */
    hosts_toml_ignored?: string;
    /** The CA files the ignored hosts.toml names (not anchors). */
    ignored_ca?: string[];
    ca_files: string[];
    skip_verify: boolean;
    legacy_ca_file?: string;
    os_store?: string;
    /** Paths of the client certificate and key containerd presents (never their content). */
    client_cert?: string[];
  };
  proxy: ProxyEnv;
  /** Credential entries the node holds for this registry: `file: key` names only. */
  credentials: string[];
  /** Which tools the node has for the fallback view. */
  hasOpenssl: boolean;
  /**
   * The client certificate pair containerd presents to this registry, read to make the same
   * handshake. The key is a secret: it stays in memory and is never reported (only its path is).
   */
  clientPair?: { cert: string; key: string };
}

// Go's crypto/x509 root files on Linux, in its order (root_linux.go); the first that exists is used.
const GO_CERT_FILES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/pki/tls/cacert.pem',
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem',
  '/etc/ssl/cert.pem',
];

const UNIT_FILES = [
  '/etc/systemd/system/containerd.service',
  '/run/systemd/system/containerd.service',
  '/lib/systemd/system/containerd.service',
  '/usr/lib/systemd/system/containerd.service',
];
const DROPIN_DIRS = ['/etc/systemd/system/containerd.service.d', '/run/systemd/system/containerd.service.d'];

// $1 host, $2 OS store candidates (newline separated), $3 unit files, $4 drop-in dirs, $5 CRI
// sockets, then CA and credential files.
// The containerd process: systemd's MainPID, else the containerd in this mount namespace that holds
// the CRI socket (a shared pid namespace with several daemons, as the lab's nodes have, must not pick
// another node's; a \`containerd --version\` beside it, from another diagnose or a run's fact
// gathering, is named containerd too but has its caller's environment, not the daemon's).
const SCRIPT = `${CONTAINERD_DAEMON_SH}
host=$1; stores=$2; units=$3; dropins=$4; sockets=$5; shift 5
b() { base64 | tr -d '\\n'; echo; }
echo "@@clock $(date -u +%s)"
echo "@@addrs $(getent ahosts "$host" 2>/dev/null | awk '{print $1}' | sort -u | tr '\\n' ' ')"
command -v openssl >/dev/null 2>&1 && echo "@@openssl"
pid=$(systemctl show -p MainPID --value containerd 2>/dev/null)
case "$pid" in ''|0|*[!0-9]*)
  pid=$(set -f; IFS='
'; set -- $sockets; set +f; IFS=' 	
'; containerd_daemon "$@" && [ "$dheld" = 1 ] && echo "$dpid");;
esac
# A containerd on its way out (a restart's old daemon) has released its memory and its environ
# reads empty: that is never "no proxy"; then the unit's environment applies.
if [ -n "$pid" ] && penv=$(tr '\\0' '\\n' < "/proc/$pid/environ" 2>/dev/null) && [ -n "$penv" ]; then
  echo "@@environ $pid"; printf '%s\\n' "$penv" | grep -i -E '^(https?_proxy|no_proxy|all_proxy|ssl_cert_file|ssl_cert_dir)=' | b
fi
# A path the controller gave is named by its index in its list (no process to encode it); a
# drop-in, found by a glob, by its path in base64.
i=0; echo "$units" | while IFS= read -r u; do [ -f "$u" ] && { echo "@@unitn $i"; grep -i -E 'proxy|ssl_cert' "$u" | b; }; i=$((i + 1)); done
echo "$dropins" | while IFS= read -r d; do for u in "$d"/*.conf; do [ -f "$u" ] && { echo "@@unit $(printf '%s' "$u" | b)"; grep -i -E 'proxy|ssl_cert' "$u" | b; }; done; done
i=0; for s in $stores; do [ -f "$s" ] && { echo "@@store $i"; b < "$s"; break; }; i=$((i + 1)); done
i=0; for f do
  if [ -f "$f" ]; then echo "@@file $i"; b < "$f"; else echo "@@nofile $i"; fi
  i=$((i + 1))
done
echo "@@end"
`;

const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

/** The path the script names by its index in `list` (what the controller passed it). */
function listed(list: readonly string[], index: string | undefined): string {
  const path = list[Number(index)];
  if (path === undefined || !/^\d+$/.test(index ?? ''))
    throw new Error(
      `the node's trust settings named file ${index ?? '(none)'} of ${list.length}: not one it was given`,
    );
  return path;
}

/** Go's httpproxy: whether NO_PROXY exempts `host` (exact names, `.suffix`/`suffix` domains, `*`, host:port). */
export function noProxyMatches(noProxy: string | undefined, host: string, port: string): boolean {
  if (!noProxy) return false;
  for (const raw of noProxy.split(',')) {
    const e = raw.trim().toLowerCase();
    if (!e) continue;
    if (e === '*') return true;
    const [eh, ep] =
      e.includes(':') && !e.includes(']') ? [e.slice(0, e.lastIndexOf(':')), e.slice(e.lastIndexOf(':') + 1)] : [e, ''];
    if (ep && ep !== port) continue;
    const h = host.toLowerCase();
    const bare = eh.replace(/^\*?\./, '');
    if (h === bare || h.endsWith(`.${bare}`)) return true;
  }
  return false;
}

/** Go's ProxyFromEnvironment for an https URL: the proxy containerd uses for `registry`, or undefined. */
export function proxyFor(proxy: ProxyEnv, registry: string): string | undefined {
  const { host, port } = splitHostPort(registry);
  const h = host.replace(/^\[|\]$/g, '');
  // Go never proxies requests to localhost or loopback addresses.
  if (h === 'localhost' || /^127\./.test(h) || h === '::1') return undefined;
  if (!proxy.httpsProxy) return undefined;
  if (noProxyMatches(proxy.noProxy, h, port ?? '443')) return undefined;
  return proxy.httpsProxy;
}

function envValue(lines: string[], name: string): string | undefined {
  // Go reads the upper-case name first, then the lower-case one.
  for (const n of [name.toUpperCase(), name.toLowerCase()]) {
    // The last assignment wins, as systemd applies a unit's Environment= lines in order.
    const l = lines.findLast((x) => x.startsWith(`${n}=`));
    if (l !== undefined) return l.slice(n.length + 1);
  }
  return undefined;
}

function unitEnv(lines: string[]): string[] {
  // Environment="A=b" "C=d" / Environment=A=b
  const out: string[] = [];
  for (const l of lines) {
    const m = /^\s*Environment\s*=\s*(.*)$/.exec(l);
    if (!m?.[1]) continue;
    for (const w of m[1].match(/"[^"]*"|\S+/g) ?? []) out.push(w.replace(/^"|"$/g, ''));
  }
  return out;
}

const storeCache = new Map<string, Anchor[]>();

/** Reads the node's view for `registry` (`host` or `host:port`). */
export async function gatherNodeView(
  conn: Connection,
  registry: string,
  o: NodeViewOptions = {},
  hostState?: Map<string, unknown>,
): Promise<NodeView> {
  // A k3s/RKE2/microk8s node's containerd reads its own config and certs.d, not /etc/containerd's:
  // what it trusts is read there unless the inventory names the files.
  const flavour =
    o.configFile === undefined && o.configPath === undefined ? await detectFlavour(conn, hostState) : undefined;
  const configFile = o.configFile ?? flavour?.configFile ?? '/etc/containerd/config.toml';
  const defaultDir = o.configPath ?? flavour?.certsDir ?? '/etc/containerd/certs.d';
  const cf = o.facts ?? (await gatherContainerdFacts(conn, { configFile, configPath: defaultDir, registry }));
  // An embedded containerd (k3s/RKE2) is not the one on PATH: its config is read as the running version reads it.
  if (flavour?.socket !== undefined)
    cf.version =
      (await runningContainerdVersion(conn, () => containerdSocket(conn, flavour.socket), cf.version))?.version ?? null;
  const inspected = inspectConfig(cf.config.text, cf.version ? { containerdMajor: cf.version.major } : {});
  const trust: NodeView['trust'] = { ca_files: [], skip_verify: false };
  const caPaths: string[] = [];
  const credentialNames: string[] = [];
  if (inspected.ok) {
    const info = inspected.info;
    const dirs = info.configPathDirs;
    // containerd reads the first of config_path's directories that has the registry's hosts.toml.
    let hostsText: { dir: string; text: string } | undefined;
    if (dirs.length === 0 || dirs[0] === defaultDir) {
      const t = cf.hostsDir.files['hosts.toml'];
      if (dirs.length > 0 && t) hostsText = { dir: cf.hostsDir.path, text: t.content.toString('utf8') };
    }
    for (const d of dirs) {
      if (hostsText) break;
      const p = `${hostsDirFor(d, registry)}/hosts.toml`;
      // The facts read that directory already: a hosts.toml it does not hold is not there.
      if (cf.hostsDir.path !== '' && posix.dirname(p) === cf.hostsDir.path) continue;
      const text = await conn.readFile(p);
      if (text) hostsText = { dir: posix.dirname(p), text: text.toString('utf8') };
    }
    if (hostsText) {
      trust.hosts_toml = `${hostsText.dir}/hosts.toml`;
      const parsed = parseHostsToml(hostsText.text);
      const rejected = parsed.ok ? hostsTomlRejection(parsed.hostTable, cf.version) : null;
      if (parsed.ok && rejected !== null) {
        const dir = hostsText.dir;
        trust.hosts_toml_ignored = `containerd ${cf.version?.major ?? ''}.${cf.version?.minor ?? ''} ignores ${trust.hosts_toml}: ${rejected}`;
        trust.ignored_ca = parsed.model.serverCa.map((ca) => (posix.isAbsolute(ca) ? ca : posix.join(dir, ca)));
        // containerd then reads the directory as Docker's certs.d: its *.crt files are the CAs.
        if (dir === cf.hostsDir.path)
          for (const name of Object.keys(cf.hostsDir.files).sort())
            if (name.endsWith('.crt')) caPaths.push(posix.join(dir, name));
      } else if (parsed.ok) {
        const m = parsed.model;
        const server = m.server ?? `https://${registry}`;
        const cas = [
          ...m.serverCa,
          ...m.hosts.filter((h) => h.url.replace(/\/+$/, '') === server.replace(/\/+$/, '')).flatMap((h) => h.ca),
        ];
        for (const ca of new Set(cas)) caPaths.push(posix.isAbsolute(ca) ? ca : posix.join(hostsText.dir, ca));
        const pair = [...m.serverClient, ...m.hosts.flatMap((h) => h.client)][0];
        if (pair) trust.client_cert = pair.map((p) => (posix.isAbsolute(p) ? p : posix.join(hostsText!.dir, p)));
        trust.skip_verify = m.serverSkipVerify || m.hosts.some((h) => h.skipVerify);
      }
    }
    if (dirs.length === 0) {
      for (const [key, c] of Object.entries(info.configs)) {
        if (!registryKeyMatches(key, registry)) continue;
        if (c.tls?.ca_file) {
          trust.legacy_ca_file = c.tls.ca_file;
          caPaths.push(c.tls.ca_file);
        }
        if (c.tls?.insecure_skip_verify) trust.skip_verify = true;
        if (c.tls?.cert_file && c.tls.key_file) trust.client_cert = [c.tls.cert_file, c.tls.key_file];
        if (c.auth && Object.values(c.auth).some((v) => typeof v === 'string' && v !== ''))
          credentialNames.push(`${configFile}: registry.configs."${key}".auth`);
      }
    }
  }
  trust.ca_files = [...new Set(caPaths)];
  const credFiles = o.credentialFiles ?? [...DEFAULT_CREDENTIAL_FILES];
  const { host } = splitHostPort(registry);
  const files = [...trust.ca_files, ...(trust.client_cert ?? []), ...credFiles];
  const r = await conn.exec({
    argv: [
      'sh',
      '-c',
      SCRIPT,
      'sh',
      host,
      GO_CERT_FILES.join('\n'),
      UNIT_FILES.join('\n'),
      DROPIN_DIRS.join('\n'),
      (flavour?.socket !== undefined ? [flavour.socket] : DEFAULT_CRI_SOCKETS).join('\n'),
      ...files,
    ],
  });
  const out = r.stdout.toString('utf8');
  if (r.code !== 0 || !out.includes('@@end'))
    throw new Error(
      `${conn.host}: could not read the node's trust settings (${describeExit(r.code, r.signal)}): ${r.stderr.toString().trim().split('\n').slice(-2).join('; ')}`,
    );
  const view: NodeView = {
    configFile,
    clock: new Date(),
    addresses: [],
    registryAnchors: [],
    osAnchors: [],
    trust,
    proxy: { sources: [], unitLines: [] },
    credentials: credentialNames,
    hasOpenssl: false,
  };
  const lines = out.split('\n');
  let environ: string[] | undefined;
  const clientPem: string[] = [];
  const unitLines: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const [tag, a, ...rest] = line.split(' ');
    const next = () => unb64(lines[++i]);
    switch (tag) {
      case '@@clock':
        view.clock = new Date(Number(a) * 1000);
        break;
      case '@@addrs':
        view.addresses = [a ?? '', ...rest].filter(Boolean);
        break;
      case '@@openssl':
        view.hasOpenssl = true;
        break;
      case '@@environ':
        environ = next().split('\n').filter(Boolean);
        view.proxy.sources.push(`/proc/${a ?? '?'}/environ`);
        break;
      case '@@unit':
      case '@@unitn': {
        const path = tag === '@@unitn' ? listed(UNIT_FILES, a) : unb64(a);
        const found = next().split('\n').filter(Boolean);
        if (found.length) view.proxy.sources.push(path);
        unitLines.push(...found);
        view.proxy.unitLines.push(
          ...found.map((l) => `${path}: ${maskUrlUserinfo(l.trim()).replace(/(PROXY=)([^"\s]*@)/i, '$1***@')}`),
        );
        break;
      }
      case '@@store': {
        const path = listed(GO_CERT_FILES, a);
        const text = lines[++i] ?? '';
        view.trust.os_store = path;
        let anchors = storeCache.get(text);
        if (!anchors) {
          anchors = certsFromPem(unb64(text)).map((cert) => ({ cert, source: `OS store ${path}` }));
          storeCache.set(text, anchors);
        }
        view.osAnchors = anchors;
        break;
      }
      case '@@file': {
        const path = listed(files, a);
        const text = next();
        const ci = trust.client_cert?.indexOf(path) ?? -1;
        if (ci >= 0) {
          clientPem[ci] = text;
          break;
        }
        if (trust.ca_files.includes(path))
          view.registryAnchors.push(
            ...certsFromPem(text).map((cert: Cert) => ({
              cert,
              source:
                trust.legacy_ca_file === path
                  ? `config.toml tls.ca_file ${path}`
                  : trust.hosts_toml_ignored !== undefined
                    ? `certs.d *.crt ${path}`
                    : `hosts.toml ca ${path}`,
            })),
          );
        else {
          try {
            const keys = credentialKeys(text);
            for (const k of [...keys.registries, ...(keys.helpers ?? [])])
              if (registryKeyMatches(k, registry)) view.credentials.push(`${path}: ${k}`);
          } catch {
            // Not JSON: not a credential file containerd or kubelet could read either.
          }
        }
        break;
      }
      default:
        break;
    }
  }
  // The running daemon's environment is what applies; the unit's is what the next start will have.
  const env = environ ?? unitEnv(unitLines);
  const httpsProxy = envValue(env, 'https_proxy');
  const noProxy = envValue(env, 'no_proxy');
  if (httpsProxy) view.proxy.httpsProxy = maskUrlUserinfo(httpsProxy);
  if (noProxy) view.proxy.noProxy = noProxy;
  if (httpsProxy) view.proxy.rawHttpsProxy = httpsProxy;
  if (clientPem[0] && clientPem[1]) view.clientPair = { cert: clientPem[0], key: clientPem[1] };
  return view;
}
