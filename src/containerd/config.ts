/**
 * The read side of containerd's config.toml: which config version it is, where the CRI registry
 * table lives, and what registry settings it holds. Pure: text in, model out.
 */
import { getIn, parsePlain, type PlainTable, type PlainValue } from '../toml/model.js';
import type { Result } from '../result.js';

/** CRI registry table path for config version 2 (containerd 1.x, also read by 2.x after migration). */
export const CRI_REGISTRY_V2 = ['plugins', 'io.containerd.grpc.v1.cri', 'registry'] as const;
/** CRI registry table path for config version 3 (containerd 2.x). */
export const CRI_REGISTRY_V3 = ['plugins', 'io.containerd.cri.v1.images', 'registry'] as const;

/** Plugin ids that, in `disabled_plugins`, mean this containerd serves no CRI (short and full ids, 1.x and 2.x). */
const CRI_PLUGIN_IDS = ['cri', 'io.containerd.grpc.v1.cri', 'io.containerd.cri.v1.images'];

/** The CRI plugin ids a parsed config.toml lists in `disabled_plugins` (none: the CRI may serve). */
function disabledCriPlugins(doc: PlainTable): string[] {
  return Array.isArray(doc['disabled_plugins'])
    ? doc['disabled_plugins'].filter((p): p is string => typeof p === 'string' && CRI_PLUGIN_IDS.includes(p))
    : [];
}

/**
 * The CRI plugin ids a config.toml text disables: non-empty means this containerd serves Docker,
 * not Kubernetes (Docker's packaged config). An unparsable file says nothing here (empty).
 */
export function criPluginsDisabledIn(text: string | null): string[] {
  if (text === null) return [];
  try {
    return disabledCriPlugins(parsePlain(text));
  } catch {
    return [];
  }
}

/** The refusal for a config that disables the CRI plugin (Docker's packaged config does). */
export function criDisabledRefusal(ids: string[]): string {
  return `config.toml disables containerd's CRI plugin (disabled_plugins = ${JSON.stringify(ids)}): this containerd serves Docker, not Kubernetes, so CRI registry settings do nothing here; for Docker put the CA in /etc/docker/certs.d/<registry>/ca.crt, or remove ${ids.map((i) => JSON.stringify(i)).join(', ')} from disabled_plugins (and restart containerd) if this node should serve Kubernetes.`;
}

/** The refusal for version 1 files (no `version` key, or `version = 1`). */
export const VERSION_1_REFUSAL =
  'config.toml is a version 1 containerd config (it has no `version = 2` line), which trustplay does not edit; convert it to version 2 (CRI settings under plugins."io.containerd.grpc.v1.cri") and run again.';

/** TLS settings of the legacy `registry.configs."<host>".tls` table. */
export interface LegacyTls {
  insecure_skip_verify?: boolean;
  ca_file?: string;
  cert_file?: string;
  key_file?: string;
}

/** Credentials of the legacy `registry.configs."<host>".auth` table (never print these). */
export interface LegacyAuth {
  username?: string;
  password?: string;
  auth?: string;
  identitytoken?: string;
}

/** What trustplay needs to know about a config.toml. */
export interface ContainerdConfigInfo {
  version: 1 | 2 | 3;
  /** Whether the file exists and holds at least one key or table (comments alone do not count). */
  exists: boolean;
  /** `plugins."io.containerd.grpc.v1.cri".registry` or `plugins."io.containerd.cri.v1.images".registry`. */
  criRegistryTable: string;
  /** The same table as path segments, for the editor. */
  criRegistryPath: string[];
  /** `config_path` exactly as written, null when absent. */
  configPath: string | null;
  /** `config_path` split on `:` (containerd uses filepath.SplitList), empty entries dropped. */
  configPathDirs: string[];
  /**
   * containerd 2.x pulls through its local (1.x-style) path instead of the transfer service: set by
   * `use_local_image_pull = true` or `discard_unpacked_layers = true` in the images plugin table.
   * Measured on containerd 2.1.9: a multi-directory config_path is read in local mode and ignored
   * by the transfer service (x509 with the CA in the first directory).
   */
  localPull: boolean;
  mirrors: Record<string, { endpoint: string[] }>;
  configs: Record<string, { tls?: LegacyTls; auth?: LegacyAuth }>;
  imports: string[];
}

/** Options for reading a config: the containerd major version decides the version of a missing file. */
export interface InspectOptions {
  containerdMajor?: number;
}

/** Result of `inspectConfig`. */
export type InspectResult = Result<{ info: ContainerdConfigInfo }>;

/** The config version containerd writes by default: 3 from containerd 2.0, else 2. */
export function defaultVersionFor(containerdMajor: number | undefined): 2 | 3 {
  return containerdMajor !== undefined && containerdMajor >= 2 ? 3 : 2;
}

/** Reads a config.toml text (null = file missing) into a model, or says in one sentence why it cannot. */
export function inspectConfig(text: string | null, opts: InspectOptions = {}): InspectResult {
  let doc: PlainTable = {};
  if (text !== null) {
    try {
      doc = parsePlain(text);
    } catch (e) {
      return { ok: false, error: syntaxError(e) };
    }
  }
  const exists = Object.keys(doc).length > 0;
  // Before the version: Docker's packaged config has no version line AND disables CRI, and the
  // disabled CRI is the cause to report (following "convert it to version 2" breaks containerd).
  const disabled = disabledCriPlugins(doc);
  if (disabled.length > 0) return { ok: false, error: criDisabledRefusal(disabled) };
  const rawVersion = doc['version'];
  let version: 1 | 2 | 3;
  if (!exists) version = defaultVersionFor(opts.containerdMajor);
  else if (rawVersion === undefined || rawVersion === 1) return { ok: false, error: VERSION_1_REFUSAL };
  else if (rawVersion === 2 || rawVersion === 3) version = rawVersion;
  else
    return {
      ok: false,
      error: `config.toml declares version = ${JSON.stringify(rawVersion)}, which containerd does not know; fix the version line and run again.`,
    };
  if (version === 3 && opts.containerdMajor !== undefined && opts.containerdMajor < 2) {
    return {
      ok: false,
      error: `config.toml declares version = 3, which containerd ${opts.containerdMajor}.x cannot load; use version = 2 with plugins."io.containerd.grpc.v1.cri" on this node.`,
    };
  }
  const criRegistryPath = [...registryTableFor(doc, version, opts.containerdMajor)];
  const registry = getIn(doc, criRegistryPath);
  const reg = isTable(registry) ? registry : {};
  const configPath = typeof reg['config_path'] === 'string' ? reg['config_path'] : null;
  return {
    ok: true,
    info: {
      version,
      exists,
      criRegistryTable: `plugins."${criRegistryPath[1] as string}".registry`,
      criRegistryPath,
      configPath,
      configPathDirs: configPath === null ? [] : configPath.split(':').filter((d) => d !== ''),
      localPull: localPullFor(doc, criRegistryPath),
      mirrors: readMirrors(reg['mirrors']),
      configs: readConfigs(reg['configs']),
      imports: Array.isArray(doc['imports']) ? doc['imports'].filter((i): i is string => typeof i === 'string') : [],
    },
  };
}

/**
 * The registry table the running containerd actually uses. A version 2 file read by containerd
 * 2.x is migrated in memory: `plugins."io.containerd.grpc.v1.cri".registry`, when present, becomes
 * the images plugin's registry table (replacing it whole); when absent, a 2.x-style
 * `plugins."io.containerd.cri.v1.images".registry` written in the version 2 file (AKS does this) is
 * the one in force. Editing the grpc table in that second case would replace AKS's table, headers
 * and all, at the next restart.
 */
function registryTableFor(doc: PlainTable, version: 2 | 3, containerdMajor: number | undefined): readonly string[] {
  if (version === 3) return CRI_REGISTRY_V3;
  if (containerdMajor !== undefined && containerdMajor >= 2 && !isTable(getIn(doc, [...CRI_REGISTRY_V2]))) {
    if (isTable(getIn(doc, [...CRI_REGISTRY_V3]))) return CRI_REGISTRY_V3;
  }
  return CRI_REGISTRY_V2;
}

/** Whether the images plugin table next to `registryPath` asks for 2.x's local pull path. */
function localPullFor(doc: PlainTable, registryPath: readonly string[]): boolean {
  const images = getIn(doc, registryPath.slice(0, -1));
  const legacyContainerd = getIn(doc, ['plugins', 'io.containerd.grpc.v1.cri', 'containerd']);
  return (
    (isTable(images) && (images['use_local_image_pull'] === true || images['discard_unpacked_layers'] === true)) ||
    // A version 2 file keeps discard_unpacked_layers under the CRI plugin's containerd table.
    (isTable(legacyContainerd) && legacyContainerd['discard_unpacked_layers'] === true)
  );
}

function isTable(v: PlainValue | undefined): v is PlainTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readMirrors(v: PlainValue | undefined): ContainerdConfigInfo['mirrors'] {
  const out: ContainerdConfigInfo['mirrors'] = {};
  if (!isTable(v)) return out;
  for (const [host, m] of Object.entries(v)) {
    const endpoint = isTable(m) && Array.isArray(m['endpoint']) ? m['endpoint'] : [];
    out[host] = { endpoint: endpoint.filter((e): e is string => typeof e === 'string') };
  }
  return out;
}

function readConfigs(v: PlainValue | undefined): ContainerdConfigInfo['configs'] {
  const out: ContainerdConfigInfo['configs'] = {};
  if (!isTable(v)) return out;
  for (const [host, c] of Object.entries(v)) {
    const entry: { tls?: LegacyTls; auth?: LegacyAuth } = {};
    if (isTable(c) && isTable(c['tls'])) {
      const t = c['tls'];
      const tls: LegacyTls = {};
      if (typeof t['insecure_skip_verify'] === 'boolean') tls.insecure_skip_verify = t['insecure_skip_verify'];
      for (const k of ['ca_file', 'cert_file', 'key_file'] as const) if (typeof t[k] === 'string') tls[k] = t[k];
      entry.tls = tls;
    }
    if (isTable(c) && isTable(c['auth'])) {
      const a = c['auth'];
      const auth: LegacyAuth = {};
      for (const k of ['username', 'password', 'auth', 'identitytoken'] as const)
        if (typeof a[k] === 'string') auth[k] = a[k];
      entry.auth = auth;
    }
    out[host] = entry;
  }
  return out;
}

function syntaxError(e: unknown): string {
  const err = e as { message?: unknown; line?: unknown; col?: unknown };
  const first = String(err.message ?? e).split('\n')[0] ?? '';
  const reason = first.replace(/ at row \d+, col \d+, pos \d+:?$/, '').replace(/\.$/, '');
  if (typeof err.line === 'number' && typeof err.col === 'number') {
    return `config.toml is not valid TOML at line ${err.line + 1}:${err.col + 1}: ${reason}; fix it by hand before running trustplay.`;
  }
  return `config.toml is not valid TOML: ${reason}; fix it by hand before running trustplay.`;
}
