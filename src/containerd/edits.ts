/**
 * The config.toml edits the modules make, as pure functions: text in, new text (or a refusal) out.
 * Each edit touches only the keys trustplay owns; everything else stays byte-for-byte.
 *
 * containerd rules these edits enforce (sources read through the code search):
 * - containerd 1.6/1.7, pkg/cri/config/config.go ValidatePluginConfig: "`mirrors` cannot be set when
 *   `config_path` is provided" and "`configs.tls` cannot be set when `config_path` is provided" are
 *   errors, and the CRI plugin then fails to load (the config_test.go cases "conflicting mirror
 *   registry config" / "conflicting tls registry config"). A non-empty `mirrors` map counts; the
 *   empty `[...registry.mirrors]` header of `containerd config default` does not.
 * - containerd 2.x, internal/cri/config ValidateImageConfig keeps the mirrors error but no longer has
 *   the tls one: `configs.*.tls` is deprecated and not used for pulls, so writing it is pointless.
 * - containerd 2.1+ pulls through the transfer service by default, which treats `config_path` as one
 *   directory, so `a:b` silently matches nothing (containerd issues #12415 and #12808), while 1.x's
 *   CRI pull searches each directory in order.
 * - docs/hosts.md: config_path lives at `[plugins."io.containerd.grpc.v1.cri".registry]` (version 2)
 *   or `[plugins."io.containerd.cri.v1.images".registry]` (version 3); credentials may stay in
 *   `registry.configs."<host>".auth`.
 */
import { MICROK8S_SNAP_DATA } from './flavour.js';
import { defaultVersionFor, inspectConfig, type ContainerdConfigInfo, type LegacyTls } from './config.js';
import {
  defaultServer,
  hostNamespaceDir,
  MIGRATED_MARKER,
  renderHostsModel,
  type HostsTomlHost,
  type HostsTomlModel,
} from './hosts-toml.js';
import { registryKeyMatches, registryNameProblem } from './registry-host.js';
import { getIn, parsePlain } from '../toml/model.js';
import { removeKey, removeTable, setKey, type EditResult } from '../toml/splicer.js';
import { refusal, type Refusal, type Result } from '../result.js';

/** A successful edit: the new text, whether it differs, and notes for the run output (no secrets). */
export interface EditOk {
  text: string;
  changed: boolean;
  notes: string[];
}

/** Either outcome. */
export type EditOutcome = Result<EditOk>;

/** What every edit needs to know about the node. */
export interface EditOptions {
  /** containerd's major version on the node (1 or 2). */
  containerdMajor: number;
}

/** Legacy TLS keys trustplay owns inside `configs."<host>".tls`. */
const TLS_KEYS = ['insecure_skip_verify', 'ca_file', 'cert_file', 'key_file'] as const;

/** A TOML edit's refusal, worded for config.toml. */
function unsafe(r: Refusal): Refusal {
  return refusal(`config.toml cannot be edited safely: ${r.error.replace(/\.$/, '')}.`);
}

/** Applies TOML edits in order, threading the text and `changed`; the first refusal stops them. */
function chain(start: Text, edits: Array<(text: string) => EditResult>): Result<Text> {
  let cur = start;
  for (const edit of edits) {
    const r = edit(cur.text);
    if (!r.ok) return unsafe(r);
    cur = { text: r.text, changed: cur.changed || r.changed };
  }
  return { ok: true, ...cur };
}

/** A text and whether it differs from where the edits started. */
interface Text {
  text: string;
  changed: boolean;
}

/** Adds `version = N` to a file that has no content yet (missing, empty or only comments). */
function withVersion(text: string | null, info: ContainerdConfigInfo): Result<Text> {
  if (info.exists) return { ok: true, text: text ?? '', changed: false };
  return chain({ text: text ?? '', changed: false }, [(t) => setKey(t, [], 'version', info.version)]);
}

function sameDir(a: string, b: string): boolean {
  const norm = (d: string): string => (d.length > 1 ? d.replace(/\/+$/, '') : d);
  return norm(snapExpanded(a)) === norm(snapExpanded(b));
}

/**
 * microk8s's containerd-template.toml says `${SNAP_DATA}/args/certs.d`, which the snap expands to
 * its data directory when it renders the template: the same directory, to be kept as written.
 */
function snapExpanded(d: string): string {
  return d.replaceAll('${SNAP_DATA}', MICROK8S_SNAP_DATA);
}

function legacyTlsHosts(info: ContainerdConfigInfo): string[] {
  return Object.entries(info.configs)
    .filter(([, c]) => c.tls !== undefined)
    .map(([h]) => h);
}

/** Options of `ensureConfigPath`. */
export interface EnsureConfigPathOptions extends EditOptions {
  /** Move legacy `mirrors` / `configs.*.tls` into hosts.toml files instead of refusing. */
  migrateLegacy?: boolean;
}

/** Result of `ensureConfigPath`: the edit plus hosts.toml files a migration produced (dir name → text). */
export type EnsureConfigPathOutcome = Result<EditOk & { hostsFiles: Record<string, string> }>;

/**
 * Points the CRI registry `config_path` at exactly `dir`.
 *
 * Rules: legacy mirrors (any containerd) or legacy configs.*.tls (containerd 1.x) next to
 * config_path break the CRI plugin, so they are refused unless `migrateLegacy`. A multi-directory
 * config_path: on 1.x (and 2.x pulling locally: use_local_image_pull or discard_unpacked_layers)
 * it is kept when `dir` is one of its directories (each is searched) and refused otherwise; on 2.x
 * pulling through the transfer service it is replaced by `dir` when `dir` is one of them (that path
 * reads none of them) and refused otherwise. A different single directory is refused (registries configured
 * under it would stop working): the caller passes that directory to write there.
 */
export function ensureConfigPath(
  text: string | null,
  dir: string,
  opts: EnsureConfigPathOptions,
): EnsureConfigPathOutcome {
  if (!dir.startsWith('/') || dir.includes(':'))
    return refusal(`config_path must be one absolute directory without ":", got ${JSON.stringify(dir)}.`);
  const inspected = inspectConfig(text, opts);
  if (!inspected.ok) return inspected;
  const info = inspected.info;
  const notes: string[] = [];
  let hostsFiles: Record<string, string> = {};
  const versioned = withVersion(text, info);
  if (!versioned.ok) return versioned;
  let cur: Text = versioned;
  let changed = cur.changed;

  const mirrorHosts = Object.keys(info.mirrors);
  const tlsHosts = legacyTlsHosts(info);
  const conflicting = opts.containerdMajor < 2 ? [...mirrorHosts, ...tlsHosts] : mirrorHosts;
  if (conflicting.length > 0 || (opts.migrateLegacy === true && tlsHosts.length > 0)) {
    if (opts.migrateLegacy !== true) {
      const what = [
        mirrorHosts.length > 0 ? `registry.mirrors for ${mirrorHosts.join(', ')}` : '',
        opts.containerdMajor < 2 && tlsHosts.length > 0 ? `registry.configs.*.tls for ${tlsHosts.join(', ')}` : '',
      ]
        .filter((s) => s !== '')
        .join(' and ');
      return refusal(
        `config.toml has legacy ${what}, and containerd's CRI plugin refuses to load when those are set together with config_path; pass migrate_legacy: true to move them into hosts.toml files, or remove them by hand.`,
      );
    }
    const m = migrateLegacy(cur.text, opts);
    if (!m.ok) return m;
    cur = { text: m.text, changed: true };
    changed = true;
    hostsFiles = m.hostsFiles;
    notes.push(...m.notes);
  } else if (tlsHosts.length > 0) {
    notes.push(
      `containerd ${opts.containerdMajor}.x ignores the legacy registry.configs.*.tls settings for ${tlsHosts.join(', ')}; migrate_legacy: true moves them into hosts.toml files`,
    );
  }

  const dirs = info.configPathDirs;
  let target: string | null = dir;
  if (dirs.length === 1 && sameDir(dirs[0] as string, dir)) {
    target = info.configPath === dir || snapExpanded(info.configPath ?? '') === dir ? null : dir;
  } else if (dirs.length > 1) {
    const listed = dirs.some((d) => sameDir(d, dir));
    if (!listed) {
      return refusal(
        `config.toml's config_path lists several directories (${info.configPath ?? ''}) and ${dir} is not one of them; pass config_path: ${dirs[0] as string} to use the first one, or set config_path by hand.`,
      );
    }
    if (opts.containerdMajor < 2 || info.localPull) {
      // 1.x, and 2.x in local pull mode, search each directory in order: nothing to narrow.
      target = null;
      if (!sameDir(dirs[0] as string, dir)) {
        notes.push(
          `config_path ${info.configPath ?? ''} searches ${dirs[0] as string} before ${dir}; a host directory for the same registry there wins`,
        );
      }
    } else {
      const dropped = dirs.filter((d) => !sameDir(d, dir));
      notes.push(
        `config_path was ${info.configPath ?? ''}; containerd 2.1+ reads config_path as a single directory when it pulls through the transfer service, so it is set to ${dir} and ${dropped.join(', ')} is no longer read`,
      );
    }
  } else if (dirs.length === 1) {
    // k3s and microk8s point config_path at a directory of their own, with registries configured
    // under it: repointing it would silently stop every one of them.
    return refusal(
      `config.toml's config_path already names ${dirs[0] as string}, and registries configured under it would stop working if it were repointed to ${dir}; pass config_path: ${dirs[0] as string} to write this registry's hosts.toml there.`,
    );
  }
  if (target !== null) {
    const r = chain(cur, [(t) => setKey(t, info.criRegistryPath, 'config_path', target)]);
    if (!r.ok) return r;
    cur = r;
    changed = changed || r.changed;
  }
  // Only with a change to make: a run that changes nothing has nothing to warn about.
  if (info.imports.length > 0 && changed) {
    notes.push(
      `config.toml imports ${info.imports.join(', ')}; containerd merges those over this file, so a registry setting there would override this one`,
    );
  }
  return { ok: true, text: cur.text, changed, notes, hostsFiles };
}

/**
 * Sets (or with `tls === null` removes) the seed's legacy `registry.configs."<host>".tls` table.
 * trustplay owns the four TLS keys of that table: keys not given are removed, other keys stay.
 */
export function setLegacyTls(text: string | null, host: string, tls: LegacyTls | null, opts: EditOptions): EditOutcome {
  const inspected = inspectConfig(text, opts);
  if (!inspected.ok) return inspected;
  const info = inspected.info;
  const configs = [...info.criRegistryPath, 'configs'];
  if (tls === null) {
    if (text === null) return { ok: true, text: '', changed: false, notes: [] };
    const removed = chain({ text, changed: false }, [(t) => removeKey(t, [...configs, host], 'tls')]);
    if (!removed.ok) return removed;
    const cur = removed.changed ? dropIfEmpty(removed, [...configs, host]) : removed;
    if (!cur.ok) return cur;
    return {
      ok: true,
      text: cur.text,
      changed: cur.changed,
      notes: cur.changed ? [`removed registry.configs."${host}".tls`] : [],
    };
  }
  if (info.version === 3 || opts.containerdMajor >= 2) {
    return refusal(
      `containerd ${opts.containerdMajor}.x ignores registry.configs."${host}".tls, so it would have no effect; use style: hosts instead.`,
    );
  }
  if (info.configPath !== null && info.configPath !== '') {
    return refusal(
      `config.toml sets config_path to ${info.configPath}, and containerd 1.x's CRI plugin refuses to load when registry.configs.*.tls is set together with config_path; use style: hosts instead.`,
    );
  }
  if (TLS_KEYS.every((k) => tls[k] === undefined)) {
    return refusal('The legacy tls settings are empty; give ca_file, cert_file and key_file, or insecure_skip_verify.');
  }
  const versioned = withVersion(text, info);
  if (!versioned.ok) return versioned;
  const table = [...configs, host, 'tls'];
  const cur = chain(
    versioned,
    TLS_KEYS.map((k) => {
      const v = tls[k];
      return (t: string) => (v === undefined ? removeKey(t, table, k) : setKey(t, table, k, v));
    }),
  );
  if (!cur.ok) return cur;
  return { ok: true, text: cur.text, changed: cur.changed, notes: [] };
}

/** Removes the table at `tablePath` when the edits before left it empty. */
function dropIfEmpty(cur: Text, tablePath: string[]): Result<Text> {
  const v = getIn(parsePlain(cur.text), tablePath);
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0)
    return chain(cur, [(t) => removeTable(t, tablePath)]);
  return { ok: true, ...cur };
}

/** Result of `removeRegistryAuth`: which entries went (names only). */
export type RemoveAuthOutcome = Result<EditOk & { removed: string[] }>;

/**
 * Removes the credentials containerd holds for `registry` in config.toml: `configs."<key>".auth`
 * for every key naming it (`host`, `host:port`, `https://host`) and the deprecated
 * `auths."<key>"` entries. TLS settings and other registries stay untouched.
 */
export function removeRegistryAuth(
  text: string | null,
  registry: string,
  opts: { containerdMajor?: number } = {},
): RemoveAuthOutcome {
  if (text === null) return { ok: true, text: '', changed: false, notes: [], removed: [] };
  // The running daemon's major decides which registry table is in force (a 2.x daemon reads a
  // version 2 file's 2.x-named table, as AKS writes it); removing credentials is safe on any containerd.
  const inspected = inspectConfig(text, opts);
  if (!inspected.ok) return inspected;
  const info = inspected.info;
  let cur: Text = { text, changed: false };
  const removed: string[] = [];
  const configs = [...info.criRegistryPath, 'configs'];
  for (const [key, c] of Object.entries(info.configs)) {
    if (c.auth === undefined || !registryKeyMatches(key, registry)) continue;
    const r = chain(cur, [(t) => removeKey(t, [...configs, key], 'auth')]);
    const dropped = r.ok ? dropIfEmpty(r, [...configs, key]) : r;
    if (!dropped.ok) return dropped;
    cur = dropped;
    removed.push(`registry.configs."${key}".auth`);
  }
  const auths = getIn(parsePlain(cur.text), [...info.criRegistryPath, 'auths']);
  if (typeof auths === 'object' && auths !== null && !Array.isArray(auths)) {
    const keys = Object.keys(auths).filter((key) => registryKeyMatches(key, registry));
    const r = chain(
      cur,
      keys.map((key) => (t: string) => removeKey(t, [...info.criRegistryPath, 'auths'], key)),
    );
    if (!r.ok) return r;
    cur = r;
    removed.push(...keys.map((key) => `registry.auths."${key}"`));
  }
  return { ok: true, text: cur.text, changed: cur.changed, notes: removed.map((r) => `removed ${r}`), removed };
}

/**
 * Resets `config_path` when it is exactly `dir` (removes the key; containerd's default applies).
 * The `containerd.tls state: absent` rule is NOT to call this by default: other registries'
 * hosts.toml files may live under the same directory, so absent removes only the registry's own
 * host directory and leaves config_path. This is for a caller that knows the directory is unused.
 */
export function removeConfigPath(text: string | null, dir: string, opts: EditOptions): EditOutcome {
  if (text === null) return { ok: true, text: '', changed: false, notes: [] };
  const inspected = inspectConfig(text, opts);
  if (!inspected.ok) return inspected;
  const info = inspected.info;
  if (info.configPath === null || !sameDir(info.configPath, dir)) {
    return {
      ok: true,
      text,
      changed: false,
      notes: info.configPath ? [`config_path is ${info.configPath}, not ${dir}; left as it is`] : [],
    };
  }
  const r = chain({ text, changed: false }, [(t) => removeKey(t, info.criRegistryPath, 'config_path')]);
  if (!r.ok) return r;
  return { ok: true, text: r.text, changed: r.changed, notes: [`removed config_path ${dir}`] };
}

/** Result of `migrateLegacy`: config.toml without the legacy settings, and hosts.toml files (dir name → text). */
export type MigrateOutcome = Result<EditOk & { hostsFiles: Record<string, string> }>;

function tlsToHostFields(tls: LegacyTls | undefined): Pick<HostsTomlHost, 'ca' | 'client' | 'skipVerify'> {
  return {
    ca: tls?.ca_file ? [tls.ca_file] : [],
    client: tls?.cert_file ? [[tls.cert_file, tls.key_file ?? '']] : [],
    skipVerify: tls?.insecure_skip_verify === true,
  };
}

function endpointHost(endpoint: string): string {
  return endpoint.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
}

/**
 * Moves every legacy `mirrors."<ns>"` and `configs."<host>".tls` into hosts.toml texts, following
 * docs/hosts.md: a mirror's endpoints become `[host."<endpoint>"]` entries tried in order (pull and
 * resolve, as the legacy CRI resolver allowed), the namespace itself stays the `server` fallback
 * (legacy CRI also fell back to it), `"*"` becomes `_default`, and each endpoint host's legacy TLS
 * moves onto its entry. A TLS-only host gets a file of its own. Credentials (`auth`) stay in
 * config.toml, where containerd still reads them.
 */
export function migrateLegacy(text: string, opts: EditOptions): MigrateOutcome {
  const inspected = inspectConfig(text, opts);
  if (!inspected.ok) return inspected;
  const info = inspected.info;
  const files: Record<string, HostsTomlModel> = {};
  const notes: string[] = [];
  // Names read from the node's own config.toml become directories under certs.d: a name that is
  // not host[:port] (`..`, `../../etc`) is refused, whoever wrote it.
  for (const ns of [...Object.keys(info.mirrors), ...legacyTlsHosts(info)]) {
    const why = ns === '*' ? null : registryNameProblem(ns);
    if (why)
      return refusal(
        `config.toml names the registry ${JSON.stringify(ns.slice(0, 100))} (in registry.mirrors or registry.configs), which is not a registry name: ${why}; fix or remove that entry by hand, then run again.`,
      );
  }
  for (const [ns, m] of Object.entries(info.mirrors)) {
    const server = ns === '*' ? null : defaultServer(ns);
    const hosts: HostsTomlHost[] = [];
    let serverTls: LegacyTls | undefined;
    for (const ep of m.endpoint) {
      const url = /^[a-z]+:\/\//i.test(ep) ? ep.replace(/\/+$/, '') : `https://${ep.replace(/\/+$/, '')}`;
      const tls = info.configs[endpointHost(url)]?.tls;
      if (server !== null && url === server) serverTls = tls;
      else hosts.push({ url, capabilities: ['pull', 'resolve'], ...tlsToHostFields(tls) });
    }
    const st = tlsToHostFields(serverTls ?? (ns === '*' ? undefined : info.configs[ns]?.tls));
    files[hostNamespaceDir(ns)] = {
      server,
      serverCa: st.ca,
      serverClient: st.client,
      serverSkipVerify: st.skipVerify,
      hosts,
    };
    notes.push(`moved registry.mirrors."${ns}" to ${hostNamespaceDir(ns)}/hosts.toml`);
  }
  for (const host of legacyTlsHosts(info)) {
    if (files[hostNamespaceDir(host)] === undefined) {
      const server = defaultServer(host);
      const t = tlsToHostFields(info.configs[host]?.tls);
      // TLS on the server too, as hostsTomlModel does: a 404 from the entry falls through to `server`.
      files[hostNamespaceDir(host)] = {
        server,
        serverCa: t.ca,
        serverClient: t.client,
        serverSkipVerify: t.skipVerify,
        hosts: [{ url: server, capabilities: ['pull', 'resolve'], ...tlsToHostFields(info.configs[host]?.tls) }],
      };
    }
    notes.push(`moved registry.configs."${host}".tls to ${hostNamespaceDir(host)}/hosts.toml`);
  }

  const mirrorsGone = chain(
    { text, changed: false },
    Object.keys(info.mirrors).map((ns) => (t: string) => removeTable(t, [...info.criRegistryPath, 'mirrors', ns])),
  );
  if (!mirrorsGone.ok) return mirrorsGone;
  let cur: Text = mirrorsGone;
  for (const host of legacyTlsHosts(info)) {
    const table = [...info.criRegistryPath, 'configs', host];
    const r = chain(cur, [(t) => removeKey(t, table, 'tls')]);
    const dropped = r.ok ? dropIfEmpty(r, table) : r;
    if (!dropped.ok) return dropped;
    cur = dropped;
  }
  const hostsFiles: Record<string, string> = {};
  for (const [d, model] of Object.entries(files)) hostsFiles[d] = renderHostsModel(model, MIGRATED_MARKER);
  return { ok: true, text: cur.text, changed: cur.changed, notes, hostsFiles };
}

/** The config version a new config.toml gets on this node. */
export function versionForNewFile(opts: EditOptions): 2 | 3 {
  return defaultVersionFor(opts.containerdMajor);
}
