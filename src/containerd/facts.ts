/**
 * Everything the containerd modules need to know about a node, read in ONE remote command: the
 * containerd version, config.toml (content, mode, owner) and one registry's certs.d directory
 * (every regular file in it, with mode and owner). Shared by containerd.tls, node.creds.wipe and
 * `trustplay facts`.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Connection } from '../connection/connection.js';
import { LinkRefused, namesIn, readNode, ReadFailed, withoutSlash, type NodeRead } from '../connection/read-files.js';
import { pendingMarkerPath, restartRecordPath } from '../engine/restart-backup.js';
import { hostNamespaceDir } from './hosts-toml.js';
import { registryNameProblem } from './registry-host.js';
import { FLAVOUR_PRELUDE, flavourFromRecords, type Flavour } from './flavour.js';
import { TaskError } from '../engine/errors.js';
import { macEquals } from '../snapshots/key.js';

import { parseContainerdVersion, type ContainerdVersion } from '../containerd/daemon-version.js';

export { parseContainerdVersion, type ContainerdVersion };

/** One file on the node with its metadata. */
export interface NodeFile {
  content: Buffer;
  mode: number;
  uid: number;
  gid: number;
}

/** A directory on the node and the regular files directly in it. */
export interface HostsDirFacts {
  path: string;
  exists: boolean;
  files: Record<string, NodeFile>;
}

/** Facts about containerd on one node. */
export interface ContainerdFacts {
  version: ContainerdVersion | null;
  /** config.toml: `text` is its content as UTF-8, `content` the exact bytes (for a byte-exact rollback). */
  config: { exists: boolean; text: string | null; content?: Buffer; mode?: number; uid?: number; gid?: number };
  /** The registry's host directory under config_path (path '' when no registry was asked for). */
  hostsDir: HostsDirFacts;
  /** Every directory in `extraDirs`, by path. */
  extraDirs: Record<string, HostsDirFacts>;
  /** Identity of the containerd binary (device:inode:size:mtime) the version was read from. */
  versionKey?: string;
  /** The content of config.toml's pending-restart marker (an interrupted change of trustplay's own). */
  pendingMarker?: string;
  /** The content of config.toml's restart record (the config trustplay last restarted containerd with). */
  restartRecord?: string;
}

/** What to read. */
export interface ContainerdFactsOptions {
  configFile: string;
  /** The certs.d directory (the CRI registry config_path trustplay manages). */
  configPath: string;
  /** `host` or `host:port`: read `<configPath>/<registry>/`. */
  registry?: string;
  /** More directories to list and read the same way (e.g. the targets of a legacy migration). */
  extraDirs?: string[];
}

/** What a gather may read in the same command besides containerd's own files. */
export interface AlongsideFacts {
  /** Detect the node's flavour too (FLAVOUR_PRELUDE): `flavour` in the answer. */
  flavour?: boolean;
  /** More files to read (e.g. the CRI socket candidates): their entries in `read`. */
  files?: string[];
}

// `containerd --version` starts a ~50 MB Go binary (~20 ms of CPU, the biggest single cost of a
// converged run on a fleet): ask it once per host and binary. The answer is kept in memory, keyed
// by the binary's device, inode, size and mtime as the node reports them, and between runs in the
// controller's state dir (loadContainerdVersions / saveContainerdVersions); nothing is written on
// the node (check only reads). A package upgrade gives the binary a new inode and mtime: asked again.
const versions = new Map<string, { key: string; raw: string }>();
let versionsChanged = false;

/**
 * Signs a document (the snapshot key's HMAC): the state dir may be writable by others than the
 * key's owner (DECISIONS: tampered snapshots), and a version is what a config edit is shaped by
 * when no daemon answers, so an entry is believed only under its MAC.
 */
export type VersionsMac = (doc: unknown) => string;

/** The versions kept by an earlier run (a missing, unreadable or unsigned file is an empty cache). */
export async function loadContainerdVersions(file: string, mac: VersionsMac): Promise<void> {
  let doc: { entries?: unknown; mac?: unknown };
  try {
    doc = JSON.parse(await readFile(file, 'utf8')) as typeof doc;
  } catch {
    return;
  }
  const entries = doc?.entries;
  if (!entries || typeof entries !== 'object' || Array.isArray(entries)) return;
  if (typeof doc.mac !== 'string' || !macEquals(doc.mac, mac(entries))) return;
  for (const [host, e] of Object.entries(entries as Record<string, unknown>)) {
    const { key, raw } = (e ?? {}) as { key?: unknown; raw?: unknown };
    // Only a version line containerd itself could print (`containerd <module> <version> ...`).
    if (
      typeof key === 'string' &&
      typeof raw === 'string' &&
      raw.length < 200 &&
      /^containerd\s/.test(raw) &&
      parseContainerdVersion(raw) &&
      !versions.has(host)
    )
      versions.set(host, { key, raw });
  }
}

/** Keeps this run's versions for the next (signed, atomically, 0600), when any was learnt. */
export async function saveContainerdVersions(file: string, mac: VersionsMac): Promise<void> {
  if (!versionsChanged) return;
  await mkdir(posix.dirname(file), { recursive: true, mode: 0o700 });
  const { writeFileAtomic } = await import('../snapshots/store.js');
  const entries = Object.fromEntries(versions);
  await writeFileAtomic(file, `${JSON.stringify({ entries, mac: mac(entries) }, null, 1)}\n`);
  versionsChanged = false;
}

// Files bigger than this in a host directory are not certificates or hosts.toml; their content is
// not shipped back (the size guard keeps one odd file from turning a gather into a download).
const MAX_FILE = 1024 * 1024;

// The version, before the files (src/connection/read-files.ts runs it first, in the same command):
// the binary's identity, and `containerd --version` only when that identity is not the one known.
const VERSION = `known=$1
if command -v containerd >/dev/null 2>&1; then
  k=$(stat -L -c '%d:%i:%s:%Y' "$(command -v containerd)" 2>/dev/null)
  if [ -n "$k" ] && [ "$k" = "$known" ]; then
    echo "@@version same"
  else
    echo "@@version 1 $k"; containerd --version 2>&1 | head -n 1 | base64
  fi
else
  echo "@@version 0"
fi`;

// Names a registry directory holds that trustplay manages: a link there is refused, other links are skipped.
const MANAGED_NAMES = new Set(['hosts.toml', 'ca.crt', 'client.cert', 'client.key']);

/** The host directory for a registry under config_path. */
export function hostsDirFor(configPath: string, registry: string): string {
  const name = hostNamespaceDir(registry);
  const why = name === '_default' ? null : registryNameProblem(name);
  if (why)
    throw new TaskError(
      `${JSON.stringify(name.slice(0, 100))} is not a registry name (${why}), so it cannot name a directory under ${configPath}; use host or host:port`,
      'refused',
    );
  const root = posix.normalize(configPath.replace(/\/+$/, '') || '/');
  const dir = `${root === '/' ? '' : root}/${name}`;
  // Whatever the name's origin (a playbook, -e, the node's own config.toml), the directory written
  // or removed is a direct child of config_path.
  if (posix.dirname(posix.normalize(dir)) !== root || posix.normalize(dir) !== dir)
    throw new TaskError(
      `${dir} does not resolve to a directory directly under ${root}; refusing to touch it`,
      'refused',
    );
  return dir;
}

/** Containerd facts from what the reader returned (exported for tests). */
export function factsFromRead(
  host: string,
  read: NodeRead,
  o: { configFile: string; hostsDir: string; dirs: string[] },
  knownVersion?: string,
): ContainerdFacts {
  const facts: ContainerdFacts = {
    version: null,
    config: { exists: false, text: null },
    hostsDir: { path: o.hostsDir, exists: false, files: {} },
    extraDirs: {},
  };
  const refuse = (path: string): never => {
    throw new TaskError(`${host}: ${new LinkRefused(path).message}`, 'refused');
  };
  const v = read.records.find((r) => r.tag === 'version');
  if (v && (v.fields[0] === '1' || v.fields[0] === 'same')) {
    const raw = v.fields[0] === 'same' ? knownVersion : v.content?.toString('utf8');
    if (raw === undefined)
      throw new TaskError('the containerd facts command reused a version it was never given', 'command');
    facts.version = parseContainerdVersion(raw) ?? { raw: raw.trim(), major: 0, minor: 0 };
    if (v.fields[1]) facts.versionKey = v.fields[1];
  }
  const cfg = read.entries.get(o.configFile);
  if (cfg?.kind === 'link') refuse(o.configFile);
  if (cfg?.kind === 'file')
    facts.config = {
      exists: true,
      text: cfg.content.toString('utf8'),
      content: cfg.content,
      mode: cfg.mode,
      uid: cfg.uid,
      gid: cfg.gid,
    };
  const pending = read.entries.get(pendingMarkerPath(o.configFile));
  if (pending?.kind === 'link') refuse(pending.path);
  if (pending?.kind === 'file') facts.pendingMarker = pending.content.toString('utf8');
  const record = read.entries.get(restartRecordPath(o.configFile));
  if (record?.kind === 'link') refuse(record.path);
  if (record?.kind === 'file') facts.restartRecord = record.content.toString('utf8');
  for (const path of o.dirs) {
    const e = read.entries.get(withoutSlash(path));
    if (e?.kind === 'link') refuse(path);
    const dir: HostsDirFacts = { path, exists: e?.kind === 'dir', files: {} };
    if (dir.exists)
      for (const name of namesIn(read, path)) {
        const f = read.entries.get(`${withoutSlash(path)}/${name}`)!;
        if (f.kind === 'link' && MANAGED_NAMES.has(name)) refuse(f.path);
        if (f.kind === 'meta' && f.big)
          throw new TaskError(
            `${path}/${name} is ${f.size} bytes, too big for a certificate or hosts.toml: move it out of the registry's host directory.`,
            'refused',
          );
        if (f.kind === 'file') dir.files[name] = { content: f.content, mode: f.mode, uid: f.uid, gid: f.gid };
      }
    if (path === o.hostsDir) facts.hostsDir = dir;
    else facts.extraDirs[path] = dir;
  }
  return facts;
}

/** Reads containerd's version, config.toml and one registry's certs.d directory in one remote command. */
export async function gatherContainerdFacts(conn: Connection, o: ContainerdFactsOptions): Promise<ContainerdFacts> {
  return (await gatherContainerdFactsWith(conn, o, {})).facts;
}

/**
 * `gatherContainerdFacts`, reading in the same command what `also` asks for: the flavour (when it
 * did not run, e.g. an older read, `flavour` is undefined) and other files, by path in `read`.
 * One command where a first gather took three (flavour, files, CRI socket candidates).
 */
export async function gatherContainerdFactsWith(
  conn: Connection,
  o: ContainerdFactsOptions,
  also: AlongsideFacts,
): Promise<{ facts: ContainerdFacts; read: NodeRead; flavour?: Flavour }> {
  const dir = o.registry !== undefined ? hostsDirFor(o.configPath, o.registry) : '';
  const dirs = [...(dir ? [dir] : []), ...(o.extraDirs ?? []).filter((d) => d !== dir && d !== '')];
  const known = versions.get(conn.host);
  let read: NodeRead;
  try {
    read = await readNode(conn, {
      prelude: also.flavour ? `${VERSION}\n${FLAVOUR_PRELUDE}` : VERSION,
      preludeArgs: [known?.key ?? ''],
      files: [
        o.configFile,
        pendingMarkerPath(o.configFile),
        restartRecordPath(o.configFile),
        ...(also.files ?? []).filter((f) => f !== o.configFile),
      ],
      dirs,
      maxFileBytes: MAX_FILE,
    });
  } catch (e) {
    if (!(e instanceof ReadFailed)) throw e;
    throw new TaskError(
      `${conn.host}: could not read containerd's version, ${o.configFile}${dir ? ` and ${dir}` : ''} (${e.why})`,
      'command',
    );
  }
  const facts = factsFromRead(conn.host, read, { configFile: o.configFile, hostsDir: dir, dirs }, known?.raw);
  if (facts.versionKey && facts.version && versions.get(conn.host)?.key !== facts.versionKey) {
    versions.set(conn.host, { key: facts.versionKey, raw: facts.version.raw });
    versionsChanged = true;
  }
  const flavour = also.flavour ? flavourFromRecords(read.records) : undefined;
  return { facts, read, ...(flavour ? { flavour } : {}) };
}
