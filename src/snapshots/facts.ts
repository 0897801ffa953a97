/**
 * Node facts for `trustplay facts` and snapshot manifests: containerd's version, config.toml's
 * version and registry settings, the certs.d host directories, and which registries the credential
 * files hold entries for. Secret-free by construction: auth tables and credential entries are
 * reduced to "present" and key names before anything leaves this file.
 */
import type { Connection } from '../connection/connection.js';
import { describeExit } from '../connection/exit-codes.js';
import { inspectConfig } from '../containerd/config.js';
import { isManagedByTrustplay, parseHostsToml } from '../containerd/hosts-toml.js';
import { TaskError } from '../engine/errors.js';
import { gatherContainerdFacts } from '../containerd/facts.js';
import { containerdSocket, describeVersionSource, runningContainerdVersion } from '../containerd/daemon-version.js';
import { detectFlavour, MICROK8S_SNAP_DATA, type FlavourKind } from '../containerd/flavour.js';
import { inspectRegistries } from '../containerd/registries-yaml.js';

/** Where to look; defaults are containerd's and the seed's. */
export interface NodeFactsOptions {
  configFile?: string;
  /** certs.d directories to list when config.toml sets none. */
  configPath?: string;
  credentialFiles?: string[];
  /** The host's CRI socket (`cri_socket`), else found as a task would find it. */
  criSocket?: string;
}

export const DEFAULT_CREDENTIAL_FILES = ['/root/.docker/config.json', '/var/lib/kubelet/config.json'];

/** What `trustplay facts` prints for one host (no secret values anywhere). */
export interface NodeFacts {
  /** Which containerd this is (packaged, k3s, RKE2, microk8s, Bottlerocket) and why trustplay thinks so. */
  flavour: { kind: FlavourKind; evidence: string[]; unit?: string; registries_file?: string };
  /** The running daemon's version (CRI Version, else its process), PATH's only when none runs; `source` says which. */
  containerd: { version: string | null; major: number | null; source: string | null };
  config: {
    path: string;
    exists: boolean;
    version: number | null;
    error?: string;
    /** `config_path` as written (null: not set). */
    config_path: string | null;
    /**
     * The registry host directories the running containerd reads: config_path's directories
     * (microk8s's ${SNAP_DATA} resolved), or the version's default when unset (none before 2.2).
     */
    effective_config_path: string[];
    registries: Record<string, { mirrors?: string[]; tls?: Record<string, unknown>; auth_present: boolean }>;
    imports: string[];
  };
  /** Host directories under config_path: `<dir>/<registry>` with what they hold. */
  certs_d: Array<{
    dir: string;
    registry: string;
    hosts_toml: boolean;
    managed_by_trustplay: boolean;
    server?: string | null;
    ca?: string[];
    skip_verify?: boolean;
    files: string[];
    error?: string;
  }>;
  credential_files: Array<{ path: string; exists: boolean; registries: string[]; helpers?: string[]; error?: string }>;
  /**
   * Per registry named anywhere above: where the running containerd takes its TLS trust from, in
   * the order it looks (the first config_path directory holding its hosts.toml, else the legacy
   * config.toml table when that version and config still read it, else the system roots).
   */
  trust: Record<string, string>;
  /** k3s/RKE2: registries.yaml, which their agent renders config.toml and certs.d from (no values). */
  registries_yaml?: {
    path: string;
    exists: boolean;
    error?: string;
    registries: Record<string, { mirrors?: string[]; tls?: Record<string, unknown>; auth_present: boolean }>;
  };
}

/**
 * The directories a containerd of `version` reads hosts.toml from, given config_path as written:
 * containerd 2.2 made `/etc/containerd/certs.d:/etc/docker/certs.d` the default; before it an
 * unset config_path means no host directory at all. microk8s writes `${SNAP_DATA}` in its template.
 */
export function effectiveConfigPath(
  configPath: string | null,
  version: { major: number; minor: number } | null,
): string[] {
  const p = (configPath ?? '').replaceAll('${SNAP_DATA}', MICROK8S_SNAP_DATA);
  if (p !== '') return p.split(':').filter((d) => d !== '');
  if (version && (version.major > 2 || (version.major === 2 && version.minor >= 2)))
    return ['/etc/containerd/certs.d', '/etc/docker/certs.d'];
  return [];
}

// Per certs.d dir: its host directories, their file names, and hosts.toml (base64). Per credential
// file: its content (base64), parsed here and reduced to key names.
// Paths arrive as positional parameters ($1 = how many certs.d dirs come first), never through an
// unquoted expansion: a config_path read from the node may hold spaces or glob characters.
const SCRIPT = `n=$1; shift; i=0
for d do
  i=$((i + 1)); [ "$i" -le "$n" ] || break
  [ -d "$d" ] || continue
  for h in "$d"/*/; do
    [ -d "$h" ] || continue
    h=\${h%/}
    printf '@@host %s %s\\n' "$(printf '%s' "$d" | base64 | tr -d '\\n')" "$(printf '%s' "\${h##*/}" | base64 | tr -d '\\n')"
    for f in "$h"/* ; do [ -f "$f" ] && printf '@@name %s\\n' "$(printf '%s' "\${f##*/}" | base64 | tr -d '\\n')"; done
    if [ -f "$h/hosts.toml" ]; then echo '@@toml'; base64 < "$h/hosts.toml"; fi
  done
done
shift "$n"
for c in "$@"; do
  if [ -f "$c" ]; then printf '@@cred %s\\n' "$(printf '%s' "$c" | base64 | tr -d '\\n')"; base64 < "$c"; else printf '@@nocred %s\\n' "$(printf '%s' "$c" | base64 | tr -d '\\n')"; fi
done
echo '@@end'
`;

const b64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

/** Registry keys (and credential helpers) of a docker/kubelet config.json; values are dropped here. */
export function credentialKeys(text: string): { registries: string[]; helpers?: string[] } {
  const doc = JSON.parse(text) as { auths?: Record<string, unknown>; credHelpers?: Record<string, unknown> };
  const registries = Object.keys(doc.auths ?? {}).sort();
  const helpers = Object.keys(doc.credHelpers ?? {}).sort();
  return { registries, ...(helpers.length ? { helpers } : {}) };
}

/** Gathers the facts of one node (two remote commands: containerd's, then certs.d and credentials). */
export async function gatherNodeFacts(conn: Connection, o: NodeFactsOptions = {}): Promise<NodeFacts> {
  const flavour = await detectFlavour(conn);
  // On k3s/RKE2/microk8s the config containerd runs with is the flavour's own (generated or template).
  const configFile = o.configFile ?? flavour.configFile ?? '/etc/containerd/config.toml';
  const cf = await gatherContainerdFacts(conn, { configFile, configPath: o.configPath ?? '/etc/containerd/certs.d' });
  const running = await runningContainerdVersion(
    conn,
    () => containerdSocket(conn, o.criSocket ?? flavour.socket),
    cf.version,
  );
  cf.version = running?.version ?? null;
  const facts: NodeFacts = {
    flavour: {
      kind: flavour.kind,
      evidence: flavour.evidence,
      ...(flavour.unit !== undefined ? { unit: flavour.unit } : {}),
      ...(flavour.registriesFile !== undefined ? { registries_file: flavour.registriesFile } : {}),
    },
    containerd: {
      version: cf.version?.raw ?? null,
      major: cf.version?.major ?? null,
      source: running ? describeVersionSource(running.source) : null,
    },
    config: {
      path: configFile,
      exists: cf.config.exists,
      version: null,
      config_path: null,
      effective_config_path: [],
      registries: {},
      imports: [],
    },
    certs_d: [],
    credential_files: [],
    trust: {},
  };
  const inspected = inspectConfig(cf.config.text, { ...(cf.version ? { containerdMajor: cf.version.major } : {}) });
  let certDirs = [o.configPath ?? '/etc/containerd/certs.d'];
  if (inspected.ok) {
    const i = inspected.info;
    facts.config.version = i.version;
    facts.config.config_path = i.configPath;
    facts.config.effective_config_path = effectiveConfigPath(i.configPath, cf.version);
    facts.config.imports = i.imports;
    if (facts.config.effective_config_path.length) certDirs = facts.config.effective_config_path;
    const names = new Set([...Object.keys(i.mirrors), ...Object.keys(i.configs)]);
    for (const r of [...names].sort()) {
      const c = i.configs[r];
      const auth = c?.auth;
      facts.config.registries[r] = {
        ...(i.mirrors[r] ? { mirrors: i.mirrors[r].endpoint } : {}),
        ...(c?.tls ? { tls: { ...c.tls } } : {}),
        auth_present: !!auth && Object.values(auth).some((v) => typeof v === 'string' && v !== ''),
      };
    }
  } else facts.config.error = inspected.error;

  const creds = o.credentialFiles ?? DEFAULT_CREDENTIAL_FILES;
  const r = await conn.exec({ argv: ['sh', '-c', SCRIPT, 'sh', String(certDirs.length), ...certDirs, ...creds] });
  const out = r.stdout.toString('utf8');
  if (r.code !== 0 || !out.includes('@@end')) {
    throw new TaskError(
      `${conn.host}: could not list certs.d and credential files (${describeExit(r.code, r.signal)}): ${r.stderr.toString().trim().split('\n').slice(-2).join('; ')}`,
      'command',
    );
  }
  let sink: ((text: string) => void) | null = null;
  let chunks: string[] = [];
  const flush = () => {
    if (sink) sink(Buffer.from(chunks.join(''), 'base64').toString('utf8'));
    sink = null;
    chunks = [];
  };
  for (const line of out.split('\n')) {
    if (!line.startsWith('@@')) {
      if (sink) chunks.push(line.trim());
      continue;
    }
    flush();
    const [tag, a, b] = line.slice(2).split(' ');
    if (tag === 'host')
      facts.certs_d.push({ dir: b64(a), registry: b64(b), hosts_toml: false, managed_by_trustplay: false, files: [] });
    else if (tag === 'name') facts.certs_d.at(-1)?.files.push(b64(a));
    else if (tag === 'toml') {
      const entry = facts.certs_d.at(-1);
      sink = (text) => {
        if (!entry) return;
        entry.hosts_toml = true;
        entry.managed_by_trustplay = isManagedByTrustplay(text);
        const p = parseHostsToml(text);
        if (p.ok)
          Object.assign(entry, { server: p.model.server, ca: p.model.serverCa, skip_verify: p.model.serverSkipVerify });
        else entry.error = p.error;
      };
    } else if (tag === 'cred') {
      const path = b64(a);
      sink = (text) => {
        try {
          facts.credential_files.push({ path, exists: true, ...credentialKeys(text) });
        } catch {
          facts.credential_files.push({ path, exists: true, registries: [], error: 'not valid JSON' });
        }
      };
    } else if (tag === 'nocred') facts.credential_files.push({ path: b64(a), exists: false, registries: [] });
  }
  flush();
  if (flavour.registriesFile !== undefined) facts.registries_yaml = await registriesFacts(conn, flavour.registriesFile);
  facts.trust = trustSources(facts);
  return facts;
}

/** Where each registry's trust comes from (see NodeFacts.trust). */
export function trustSources(f: Omit<NodeFacts, 'trust'>): Record<string, string> {
  const out: Record<string, string> = {};
  const dirs = f.config.effective_config_path;
  const names = new Set([
    ...f.certs_d.map((c) => c.registry),
    ...Object.keys(f.config.registries),
    ...Object.keys(f.registries_yaml?.registries ?? {}),
  ]);
  const generated = f.registries_yaml ? ` (generated by ${f.flavour.kind} from ${f.registries_yaml.path})` : '';
  for (const r of [...names].sort()) {
    const hosts = dirs
      .map((d) => f.certs_d.find((c) => c.dir === d && c.registry === r && c.hosts_toml))
      .find((c) => c !== undefined);
    const legacy = f.config.registries[r]?.tls;
    if (hosts) {
      const what = hosts.skip_verify ? 'skip_verify' : hosts.ca?.length ? `ca ${hosts.ca.join(',')}` : 'system roots';
      out[r] = `${hosts.dir}/${r}/hosts.toml${generated}: ${what}`;
    } else if (legacy && (f.containerd.major ?? 1) < 2 && f.config.config_path === null) {
      out[r] = `${f.config.path} registry.configs."${r}".tls (legacy)`;
    } else if (legacy) {
      out[r] =
        `system roots only: ${f.config.path}'s legacy registry.configs."${r}".tls is ignored ${(f.containerd.major ?? 1) >= 2 ? 'by containerd 2.x' : 'next to config_path'}`;
    } else if (f.certs_d.some((c) => c.registry === r && c.hosts_toml))
      out[r] =
        `system roots only: its hosts.toml is not under a directory containerd reads (effective config_path: ${dirs.join(':') || 'none'})`;
    else out[r] = 'system roots only';
  }
  return out;
}

/** registries.yaml reduced to what it configures per registry (auth only as present/absent). */
async function registriesFacts(conn: Connection, file: string): Promise<NonNullable<NodeFacts['registries_yaml']>> {
  const text = await conn.readFile(file);
  if (text === null) return { path: file, exists: false, registries: {} };
  const r = inspectRegistries(text.toString('utf8'), file);
  if (!r.ok) return { path: file, exists: true, error: r.error, registries: {} };
  const out: NonNullable<NodeFacts['registries_yaml']>['registries'] = {};
  for (const host of [...new Set([...Object.keys(r.info.mirrors), ...Object.keys(r.info.configs)])].sort()) {
    const c = r.info.configs[host];
    out[host] = {
      ...(r.info.mirrors[host] ? { mirrors: r.info.mirrors[host].endpoint } : {}),
      ...(c?.tls ? { tls: { ...c.tls } } : {}),
      auth_present: c?.auth ?? false,
    };
  }
  return { path: file, exists: true, registries: out };
}

/** Human-readable facts of one host. */
export function formatNodeFacts(host: string, f: NodeFacts): string {
  const l = [
    `${host}:`,
    `  flavour: ${f.flavour.kind}${f.flavour.evidence.length ? ` (${f.flavour.evidence.join(', ')})` : ''}`,
    `  containerd: ${f.containerd.version ?? 'not installed'}${f.containerd.source ? ` (from ${f.containerd.source})` : ''}`,
  ];
  l.push(
    `  config: ${f.config.path} ${f.config.exists ? `(version ${f.config.version ?? '?'})` : '(missing)'}${f.config.error ? `: ${f.config.error}` : ''}`,
  );
  l.push(
    `  config_path: ${f.config.config_path === null ? '(not set)' : JSON.stringify(f.config.config_path)}; effective: ${f.config.effective_config_path.join(':') || '(none: no hosts.toml is read)'}`,
  );
  if (f.registries_yaml) {
    const y = f.registries_yaml;
    l.push(`  registries.yaml: ${y.path}${y.exists ? '' : ' (missing)'}${y.error ? `: ${y.error}` : ''}`);
    for (const [r, s] of Object.entries(y.registries)) l.push(`    ${r}:${registrySettings(s)}`);
  }
  for (const [r, s] of Object.entries(f.config.registries)) l.push(`  legacy registry ${r}:${registrySettings(s)}`);
  for (const c of f.certs_d) {
    l.push(
      `  certs.d ${c.dir}/${c.registry}: ${c.hosts_toml ? `hosts.toml${c.managed_by_trustplay ? ' (trustplay)' : ''}${c.server ? ` server ${c.server}` : ''}${c.ca?.length ? ` ca ${c.ca.join(',')}` : ''}${c.skip_verify ? ' skip_verify' : ''}` : 'no hosts.toml'}; files: ${c.files.join(', ') || '(none)'}`,
    );
  }
  for (const [r, t] of Object.entries(f.trust)) l.push(`  trust ${r}: ${t}`);
  for (const c of f.credential_files) {
    l.push(
      `  credentials ${c.path}: ${!c.exists ? 'absent' : c.error ? c.error : `entries for ${c.registries.join(', ') || '(none)'}`}${c.helpers ? `; helpers for ${c.helpers.join(', ')}` : ''}`,
    );
  }
  return l.join('\n') + '\n';
}

/** " mirrors a,b tls ca_file=... auth present": one registry's settings, values of secrets never included. */
function registrySettings(s: { mirrors?: string[]; tls?: Record<string, unknown>; auth_present: boolean }): string {
  const tls = s.tls
    ? Object.entries(s.tls)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ')
    : '';
  return `${s.mirrors ? ` mirrors ${s.mirrors.join(',')}` : ''}${tls ? ` tls ${tls}` : ''} auth ${s.auth_present ? 'present' : 'absent'}`;
}
