/**
 * Node facts for `trustplay facts` (the node.facts module): containerd's version, config.toml's
 * version and registry settings, the certs.d host directories, and which registries the credential
 * files hold entries for. Secret-free by construction: auth tables and credential entries are
 * reduced to "present" and key names before anything leaves this file.
 */
import type { Connection } from '../connection/connection.js';
import {
  namesIn,
  readNode,
  ReadFailed,
  withoutSlash,
  type NodeEntry,
  type NodeRead,
} from '../connection/read-files.js';
import { inspectConfig } from './config.js';
import { hostsTomlRejection, isManagedByTrustplay, parseHostsToml } from './hosts-toml.js';
import { TaskError } from '../engine/errors.js';
import { gatherContainerdFacts } from './facts.js';
import { containerdSocket, describeVersionSource, runningContainerdVersion } from './daemon-version.js';
import { detectFlavour, MICROK8S_SNAP_DATA, type FlavourKind } from './flavour.js';
import { inspectRegistries } from './registries-yaml.js';
import { defined } from '../defined.js';
import { describeKubeletRuntime, KUBELET_PRELUDE, kubeletRuntime, type KubeletRuntime } from './kubelet-runtime.js';

/** Where to look; defaults are containerd's and the seed's. */
export interface NodeFactsOptions {
  configFile?: string;
  /** certs.d directories to list when config.toml sets none. */
  configPath?: string;
  credentialFiles?: string[];
  /** The host's CRI socket (`cri_socket`), else found as a task would find it. */
  criSocket?: string;
}

// A link is never read through, here either: its target could be any file on the node.
const LINK_NOT_READ = 'a symbolic link: not read';

/**
 * The docker-format credential files a registry client on the node reads as root: Docker's and
 * kubelet's, and containers/image's (podman, skopeo, CRI-O: root's runtime file, then the
 * persistent one; rootless users' files under their own runtime dir are not root's to manage).
 */
export const DEFAULT_CREDENTIAL_FILES = [
  '/root/.docker/config.json',
  '/var/lib/kubelet/config.json',
  '/run/containers/0/auth.json',
  '/root/.config/containers/auth.json',
] as const;

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
    /**
     * Why the running containerd ignores this hosts.toml (then server, ca and skip_verify are left
     * out: none of the file applies, the directory's *.crt/*.cert files do, as Docker's certs.d).
     */
    rejected?: string;
    error?: string;
  }>;
  /**
   * `registries`: its `auths` keys; `helpers`: the registries its `credHelpers` names a helper for;
   * `creds_store`: its `credsStore` (Docker's default helper for the others). Names only.
   */
  credential_files: Array<{
    path: string;
    exists: boolean;
    registries: string[];
    helpers?: string[];
    creds_store?: string;
    error?: string;
  }>;
  /**
   * Per registry named anywhere above: where the running containerd takes its TLS trust from, in
   * the order it looks (the first config_path directory holding its hosts.toml, else the legacy
   * config.toml table when that version and config still read it, else the system roots).
   */
  trust: Record<string, string>;
  /**
   * The other registry clients on the node, each with what says it is there and the registries its
   * certs.d directory holds: Docker Engine (/etc/docker/certs.d) and containers/image (podman,
   * buildah, skopeo, CRI-O: /etc/containers/certs.d). Absent: none found.
   */
  runtimes: Array<{
    runtime: 'docker' | 'containers/image';
    evidence: string[];
    certs_dir: string;
    registries: Array<{ registry: string; files: string[] }>;
  }>;
  /** Which runtime kubelet uses (its endpoint, the runtime behind it, and why), or that there is no kubelet. */
  kubelet: KubeletRuntime;
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

/** Registry keys (and credential helpers) of a docker/kubelet config.json; values are dropped here. */
export function credentialKeys(text: string): { registries: string[]; helpers?: string[]; creds_store?: string } {
  const doc = JSON.parse(text) as {
    auths?: Record<string, unknown>;
    credHelpers?: Record<string, unknown>;
    credsStore?: unknown;
  };
  const registries = Object.keys(doc.auths ?? {}).sort();
  const helpers = Object.keys(doc.credHelpers ?? {}).sort();
  const store = typeof doc.credsStore === 'string' && doc.credsStore !== '' ? doc.credsStore : undefined;
  return { registries, ...(helpers.length ? { helpers } : {}), ...(store !== undefined ? { creds_store: store } : {}) };
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
      ...defined({ unit: flavour.unit, registries_file: flavour.registriesFile }),
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
    runtimes: [],
    kubelet: { kubelet: 'none', endpoint: null, source: null, runtime: null, cri: null, evidence: [] },
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

  const creds = o.credentialFiles ?? [...DEFAULT_CREDENTIAL_FILES];
  const yaml = flavour.registriesFile;
  let read: NodeRead;
  try {
    read = await readNode(conn, {
      prelude: `${OTHER_RUNTIMES_PRELUDE}\n${KUBELET_PRELUDE}`,
      trees: [...new Set([...certDirs, ...OTHER_RUNTIMES.map((r) => r.certsDir)])],
      treeContent: 'hosts.toml',
      files: [...creds, ...(yaml !== undefined ? [yaml] : []), DOCKER_SOCKET],
    });
  } catch (e) {
    if (!(e instanceof ReadFailed)) throw e;
    throw new TaskError(`${conn.host}: could not list certs.d and credential files (${e.why})`, 'command');
  }
  for (const dir of certDirs) {
    if (read.entries.get(withoutSlash(dir))?.kind !== 'dir') continue;
    for (const registry of namesIn(read, dir)) {
      const hostDir = `${withoutSlash(dir)}/${registry}`;
      if (read.entries.get(hostDir)?.kind !== 'dir') continue;
      const entry: NodeFacts['certs_d'][number] = {
        dir,
        registry,
        hosts_toml: false,
        managed_by_trustplay: false,
        files: namesIn(read, hostDir),
      };
      const hosts = read.entries.get(`${hostDir}/hosts.toml`);
      if (hosts?.kind === 'link') Object.assign(entry, { hosts_toml: true, error: LINK_NOT_READ });
      else if (hosts?.kind === 'file') {
        Object.assign(entry, hostsTomlFacts(hosts.content.toString('utf8'), cf.version));
      }
      facts.certs_d.push(entry);
    }
  }
  for (const path of creds) {
    const e = read.entries.get(path) ?? { kind: 'absent' as const, path };
    if (e.kind === 'absent') facts.credential_files.push({ path, exists: false, registries: [] });
    else if (e.kind !== 'file')
      facts.credential_files.push({
        path,
        exists: true,
        registries: [],
        error: e.kind === 'link' ? LINK_NOT_READ : 'not a regular file',
      });
    else
      try {
        facts.credential_files.push({ path, exists: true, ...credentialKeys(e.content.toString('utf8')) });
      } catch {
        facts.credential_files.push({ path, exists: true, registries: [], error: 'not valid JSON' });
      }
  }
  if (yaml !== undefined) facts.registries_yaml = registriesFacts(yaml, read.entries.get(yaml));
  facts.trust = trustSources(facts);
  facts.runtimes = otherRuntimes(read);
  facts.kubelet = kubeletRuntime(read, flavour);
  return facts;
}

/** Docker Engine's socket: with dockerd on PATH, what says Docker Engine is there. */
export const DOCKER_SOCKET = '/run/docker.sock';

/** The programs that pull through containers/image (podman, buildah, skopeo, CRI-O). */
export const CONTAINERS_IMAGE_PROGRAMS = ['podman', 'buildah', 'skopeo', 'crio'] as const;

/** The registry clients besides containerd, the programs that say each is there, and its certs.d. */
export const OTHER_RUNTIMES = [
  { runtime: 'docker', programs: ['dockerd'], certsDir: '/etc/docker/certs.d' },
  {
    runtime: 'containers/image',
    programs: CONTAINERS_IMAGE_PROGRAMS,
    certsDir: '/etc/containers/certs.d',
  },
] as const;

/** A `readNode` prelude: `@@program <name> <path>` (base64) for each of `programs` PATH finds, in the same remote command as the files. */
export function programsPrelude(programs: readonly string[]): string {
  return `for p in ${programs.join(' ')}; do if w=$(command -v "$p" 2>/dev/null); then echo "@@program $(b64 "$p") $(b64 "$w")"; fi; done`;
}

const OTHER_RUNTIMES_PRELUDE = programsPrelude(OTHER_RUNTIMES.flatMap((r) => r.programs));

/** What `programsPrelude` found: program name → its path on the node. */
export function programsFound(read: NodeRead): Map<string, string> {
  return new Map(
    read.records
      .filter((r) => r.tag === 'program' && r.fields.length === 2)
      .map((r) => [
        Buffer.from(r.fields[0]!, 'base64').toString('utf8'),
        Buffer.from(r.fields[1]!, 'base64').toString('utf8'),
      ]),
  );
}

/**
 * What says `runtime` is on the node, in a read made with `programsPrelude` over its programs (and,
 * for Docker Engine, DOCKER_SOCKET among the files): `<program> at <path>`, `the socket ...`.
 * Empty: not found. docker.tls, containers.tls, `facts` and registry.trust all decide by this.
 */
export function runtimeEvidence(read: NodeRead, runtime: (typeof OTHER_RUNTIMES)[number]['runtime']): string[] {
  const found = programsFound(read);
  const r = OTHER_RUNTIMES.find((x) => x.runtime === runtime)!;
  const evidence: string[] = r.programs.flatMap((p) => (found.has(p) ? [`${p} at ${found.get(p)!}`] : []));
  if (runtime === 'docker' && read.entries.get(DOCKER_SOCKET)?.kind === 'other')
    evidence.push(`the socket ${DOCKER_SOCKET}`);
  return evidence;
}

/**
 * The other runtimes found (see NodeFacts.runtimes) in a read made with `programsPrelude` over
 * OTHER_RUNTIMES' programs (more programs are ignored) and DOCKER_SOCKET among its files; a
 * certs.d not in the read's trees shows no registries.
 */
export function otherRuntimes(read: NodeRead): NodeFacts['runtimes'] {
  const out: NodeFacts['runtimes'] = [];
  for (const r of OTHER_RUNTIMES) {
    const evidence = runtimeEvidence(read, r.runtime);
    if (evidence.length === 0) continue;
    const registries =
      read.entries.get(r.certsDir)?.kind === 'dir'
        ? namesIn(read, r.certsDir)
            .filter((n) => read.entries.get(`${r.certsDir}/${n}`)?.kind === 'dir')
            .map((registry) => ({ registry, files: namesIn(read, `${r.certsDir}/${registry}`) }))
        : [];
    out.push({ runtime: r.runtime, evidence, certs_dir: r.certsDir, registries });
  }
  return out;
}

/** What a certs_d entry says of its hosts.toml, as the containerd of `version` reads it. */
export function hostsTomlFacts(
  text: string,
  version: { major: number; minor: number } | null,
): Pick<
  NodeFacts['certs_d'][number],
  'hosts_toml' | 'managed_by_trustplay' | 'server' | 'ca' | 'skip_verify' | 'rejected' | 'error'
> {
  const out: ReturnType<typeof hostsTomlFacts> = { hosts_toml: true, managed_by_trustplay: isManagedByTrustplay(text) };
  const p = parseHostsToml(text);
  if (!p.ok) return { ...out, error: p.error };
  const rejected = hostsTomlRejection(p.hostTable, version);
  if (rejected !== null)
    return { ...out, rejected: `rejected by containerd ${version?.major ?? ''}.${version?.minor ?? ''}: ${rejected}` };
  return { ...out, server: p.model.server, ca: p.model.serverCa, skip_verify: p.model.serverSkipVerify };
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
    if (hosts?.rejected !== undefined) {
      // containerd then reads the directory as Docker's certs.d: *.crt are CAs (on top of the system roots).
      const crt = hosts.files.filter((n) => n.endsWith('.crt'));
      out[r] =
        `${hosts.dir}/${r}/hosts.toml${generated}: ${hosts.rejected}; its settings are not used: ${crt.length ? `ca from the directory's *.crt files ${crt.map((n) => `${hosts.dir}/${r}/${n}`).join(',')}` : 'falls back to the system roots'}`;
    } else if (hosts) {
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
function registriesFacts(file: string, e: NodeEntry | undefined): NonNullable<NodeFacts['registries_yaml']> {
  if (e === undefined || e.kind === 'absent') return { path: file, exists: false, registries: {} };
  if (e.kind !== 'file')
    return {
      path: file,
      exists: true,
      error: e.kind === 'link' ? LINK_NOT_READ : 'not a regular file',
      registries: {},
    };
  const text = e.content;
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
      `  certs.d ${c.dir}/${c.registry}: ${c.hosts_toml ? `hosts.toml${c.managed_by_trustplay ? ' (trustplay)' : ''}${c.rejected ? ` ${c.rejected}` : ''}${c.server ? ` server ${c.server}` : ''}${c.ca?.length ? ` ca ${c.ca.join(',')}` : ''}${c.skip_verify ? ' skip_verify' : ''}` : 'no hosts.toml'}; files: ${c.files.join(', ') || '(none)'}`,
    );
  }
  for (const [r, t] of Object.entries(f.trust)) l.push(`  trust ${r}: ${t}`);
  for (const r of f.runtimes) {
    l.push(`  runtime ${r.runtime}: ${r.evidence.join(', ')}`);
    for (const g of r.registries)
      l.push(`    certs.d ${r.certs_dir}/${g.registry}: files: ${g.files.join(', ') || '(none)'}`);
  }
  l.push(`  kubelet: ${describeKubeletRuntime(f.kubelet)}`);
  for (const c of f.credential_files) {
    l.push(
      `  credentials ${c.path}: ${!c.exists ? 'absent' : c.error ? c.error : `entries for ${c.registries.join(', ') || '(none)'}`}${c.helpers ? `; helpers for ${c.helpers.join(', ')}` : ''}${c.creds_store !== undefined ? `; credsStore ${c.creds_store}` : ''}`,
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
