/**
 * The snapshot store: before any change is applied, the prior state of every resource it touches is
 * saved here, so `trustplay restore` can put it back. Layout under the state dir (0700):
 *   blobs/sha256/<hex>      content-addressed file contents (0600)
 *   runs/<run-id>.json      one manifest per run (0600), rewritten atomically after every save,
 *                           so a crash mid-run leaves a readable record of what was applied so far.
 * Snapshots hold credentials: nothing here is ever printed.
 *
 * Restore runs as root on every host, so nothing in the state dir is trusted as it is: the dir and
 * its files must be owned by this user and writable by no one else (checked like OpenSSH's
 * StrictModes), and a manifest is read only when its HMAC (key.ts, kept outside the state dir)
 * verifies and it passes the strict schema (manifest-schema.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from '../connection/connection.js';
import { managedEntry, readNode } from '../connection/read-files.js';
import type { HandlerRequest, Resource } from '../engine/module.js';
import type { ReadBack } from '../engine/apply.js';
import type { SnapshotSink } from '../engine/run.js';
import {
  defaultSnapshotKeyFile,
  loadOrCreateSnapshotKey,
  macEquals,
  macOf,
  readSnapshotKey,
  SnapshotKeyError,
  type SnapshotKey,
} from './key.js';
import { MANIFEST_VERSION, READABLE_VERSIONS, schemaProblem, semanticProblem } from './manifest-schema.js';

export { MANIFEST_VERSION } from './manifest-schema.js';

/** A file as it was before the run changed it. */
export interface SavedFile {
  kind: 'file';
  /** The module whose change saved it (format 2; absent in format 1). */
  module?: string;
  path: string;
  exists: boolean;
  mode?: number;
  uid?: number;
  gid?: number;
  /** sha256 of the content (blob name). */
  blob?: string;
  size?: number;
  /** For a containerd config: restoring it needs this restart (data only; the command comes from the inventory). */
  restart?: { configFile: string; socket?: string; unit?: string };
}

/** A ServiceAccount's imagePullSecrets as they were (null: the account did not exist). */
export interface SavedServiceAccount {
  kind: 'serviceaccount';
  module?: string;
  namespace: string;
  name: string;
  kubeconfig?: string;
  context?: string;
  imagePullSecrets: Array<{ name: string }> | null;
}

export type SavedResource = SavedFile | SavedServiceAccount;

export interface Manifest {
  version: number;
  runId: string;
  time: string;
  command: string;
  playbook?: { path: string; digest: string };
  inventory?: string;
  /** False while the run is going on (or if it crashed). */
  complete: boolean;
  /**
   * Set when a signal stopped the run (`{ signal: 'SIGINT' | 'SIGTERM', time }`): what it saved is
   * complete up to there. May later carry what another run found of this one.
   */
  interrupted?: Record<string, unknown>;
  hosts: Record<string, { facts: Record<string, unknown>; resources: SavedResource[] }>;
}

/** A manifest as read: verified (signed with our key) or an old unsigned format. */
export interface ReadManifest {
  manifest: Manifest;
  /** False for a format-1 manifest, which predates signing: restore needs --allow-unsigned. */
  signed: boolean;
}

/** One snapshot as `list` sees it: its manifest, or why it cannot be used. */
export interface SnapshotEntry {
  runId: string;
  /** The manifest's time, or the file's mtime when unreadable. */
  time: string;
  manifest?: Manifest;
  /** Format 1, before signing: listed, restorable only with --allow-unsigned. */
  unsigned?: boolean;
  /** Why the manifest fails verification (damaged, edited, another key, bad shape). */
  error?: string;
}

/** What `prune` deleted. */
export interface PruneResult {
  removedSnapshots: string[];
  removedBlobs: number;
  freedBytes: number;
  /** Set when blobs were left alone, with the reason. */
  blobsKeptBecause?: string;
  /** Manifests that could not be read: neither counted nor removed (except by --all). */
  unreadable?: string[];
}

/** Reads a ServiceAccount's pull secrets on a host (the k8s module provides it). */
export type ServiceAccountReader = (
  conn: Connection,
  r: Extract<Resource, { kind: 'serviceaccount' }>,
) => Promise<Array<{ name: string }> | null>;

export function defaultStateDir(): string {
  const xdg = process.env['XDG_STATE_HOME'];
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.local', 'state'), 'trustplay');
}

/** Write a file atomically with mode 0600: temp file, fsync, rename. */
export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await chmod(tmp, mode);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/** A snapshot store problem the user can fix (permissions, damage, verification): one sentence. */
export class SnapshotError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotError';
  }
}

const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
const DIGEST = /^[0-9a-f]{64}$/;
/** Far above any real manifest (1,000 hosts x 10 resources is ~3 MB); bounds what a read allocates. */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

const myUid = () => process.getuid?.() ?? 0;
const octal4 = (m: number) => (m & 0o7777).toString(8).padStart(4, '0');

/**
 * StrictModes: `path` must be owned by this user and not writable by group or others, or anyone
 * who can write it can make restore (run as root) do what they want. The message says the fix.
 */
export function strictModesProblem(path: string, st: Stats, what: string): string | null {
  const uid = myUid();
  if (st.uid !== uid)
    return `${what} ${path} is owned by uid ${st.uid}, not by you (uid ${uid}); fix with: chown ${uid} ${path}`;
  if (st.mode & 0o022)
    return `${what} ${path} is writable by ${st.mode & 0o020 ? 'its group' : 'others'} (mode ${octal4(st.mode)}); fix with: chmod go-w ${path}`;
  return null;
}

export class SnapshotStore {
  readonly dir: string;
  readonly keyFile: string;
  private key: Promise<SnapshotKey> | undefined;

  constructor(dir?: string, opts: { keyFile?: string } = {}) {
    this.dir = dir ?? defaultStateDir();
    this.keyFile = opts.keyFile ?? defaultSnapshotKeyFile();
  }

  /** Creates the store (0700) for writing, refusing a dir someone else owns; loads or creates the key. */
  async init(): Promise<void> {
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true, mode: 0o700 });
    await mkdir(join(this.dir, 'runs'), { recursive: true, mode: 0o700 });
    // mkdir's mode does not apply to directories that already existed: enforce it, on dirs we own.
    for (const d of [this.dir, join(this.dir, 'blobs'), join(this.dir, 'blobs', 'sha256'), join(this.dir, 'runs')]) {
      const st = await lstat(d);
      if (!st.isDirectory()) throw new SnapshotError(`snapshot state dir ${d} is not a directory; move it away`);
      if (st.uid !== myUid()) throw new SnapshotError(strictModesProblem(d, st, 'snapshot state dir')!);
      await chmod(d, 0o700);
    }
    await this.signingKey();
  }

  private signingKey(): Promise<SnapshotKey> {
    return (this.key ??= loadOrCreateSnapshotKey(this.keyFile).catch((e: unknown) => {
      this.key = undefined;
      throw e;
    }));
  }

  /** The state dir and `runs/` pass StrictModes (checked before anything in them is read). */
  async checkModes(): Promise<'absent' | 'ok'> {
    for (const d of [this.dir, join(this.dir, 'runs'), join(this.dir, 'blobs'), join(this.dir, 'blobs', 'sha256')]) {
      let st: Stats;
      try {
        st = await lstat(d);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
          if (d === this.dir) return 'absent';
          continue;
        }
        throw new SnapshotError(`cannot read the snapshot state dir ${d}: ${(e as Error).message}`);
      }
      if (!st.isDirectory())
        throw new SnapshotError(`snapshot state dir ${d} is not a directory (a link?); replace it with a directory`);
      const p = strictModesProblem(d, st, 'snapshot state dir');
      if (p) throw new SnapshotError(`refusing to use snapshots: ${p}`);
    }
    return 'ok';
  }

  blobPath(digest: string): string {
    if (!DIGEST.test(digest)) throw new SnapshotError(`invalid blob digest \`${digest.slice(0, 80)}\``);
    return join(this.dir, 'blobs', 'sha256', digest);
  }

  manifestPath(runId: string): string {
    if (!RUN_ID.test(runId)) throw new SnapshotError(`invalid snapshot id \`${runId.slice(0, 200)}\``);
    return join(this.dir, 'runs', `${runId}.json`);
  }

  async putBlob(data: Buffer): Promise<string> {
    const digest = createHash('sha256').update(data).digest('hex');
    const p = this.blobPath(digest);
    const exists = await stat(p).then(
      () => true,
      () => false,
    );
    if (!exists) await writeFileAtomic(p, data);
    return digest;
  }

  /** A blob's content, verified against its digest (a damaged blob is refused); never follows a link. */
  async getBlob(digest: string): Promise<Buffer> {
    const data = await readPrivateFile(this.blobPath(digest), 'snapshot blob');
    const actual = createHash('sha256').update(data).digest('hex');
    if (actual !== digest)
      throw new SnapshotError(
        `snapshot blob ${digest.slice(0, 12)} is damaged (its content hashes to ${actual.slice(0, 12)})`,
      );
    return data;
  }

  /**
   * Every snapshot in the store, newest first; a manifest that fails verification is listed with
   * its reason instead of failing the listing. Reads only: never creates the key or the dir.
   */
  async list(): Promise<SnapshotEntry[]> {
    if ((await this.checkModes()) === 'absent') return [];
    let names: string[];
    try {
      names = await readdir(join(this.dir, 'runs'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const key = await this.verifyKey();
    const entries = await Promise.all(
      names
        .filter((n) => n.endsWith('.json'))
        .map(async (n): Promise<SnapshotEntry> => {
          const runId = n.slice(0, -'.json'.length);
          const mtime = await lstat(join(this.dir, 'runs', n)).then(
            (s) => s.mtime.toISOString(),
            () => new Date(0).toISOString(),
          );
          try {
            const r = await this.readWith(runId, key);
            return { runId, time: r.manifest.time, manifest: r.manifest, ...(r.signed ? {} : { unsigned: true }) };
          } catch (e) {
            return { runId, time: mtime, error: (e as Error).message };
          }
        }),
    );
    return entries.sort((a, b) => b.time.localeCompare(a.time) || b.runId.localeCompare(a.runId));
  }

  /**
   * Keeps the `keep` newest snapshots (`keep: 'all'` removes every one), deletes the older manifests,
   * then every blob no kept manifest references (and temp files a crash left behind). Everything is
   * decided before the first deletion. If a kept manifest cannot be read, its blobs cannot be
   * known, so no blob is deleted.
   */
  async prune(keep: number | 'all'): Promise<PruneResult> {
    if (keep !== 'all' && (!Number.isInteger(keep) || keep < 1))
      throw new SnapshotError(
        `prune keeps at least 1 snapshot (got ${String(keep)}); to remove every snapshot use --all`,
      );
    const entries = await this.list();
    const runsDir = join(this.dir, 'runs');
    const blobDir = join(this.dir, 'blobs', 'sha256');
    // An unreadable manifest is neither counted nor removed (someone should look at it), except by
    // --all; while it is there, the blobs it may need are unknown, so none is deleted.
    const readable = entries.filter((e) => e.manifest);
    const unreadable = entries.filter((e) => !e.manifest);
    const kept = keep === 'all' ? [] : readable.slice(0, keep);
    const removeManifests = (keep === 'all' ? entries : readable.slice(keep)).map((e) => ({
      runId: e.runId,
      path: join(runsDir, `${e.runId}.json`),
    }));
    const result: PruneResult = { removedSnapshots: [], removedBlobs: 0, freedBytes: 0 };
    let removeBlobs: Array<{ path: string; size: number; counted: boolean }> = [];
    if (keep !== 'all' && unreadable.length) {
      const u = unreadable[0]!;
      result.unreadable = unreadable.map((e) => e.runId);
      result.blobsKeptBecause = `snapshot ${u.runId} cannot be read (${u.error ?? 'unknown error'}), so the blobs it needs are unknown; look at it, then remove ${join(runsDir, `${u.runId}.json`)} or use --all`;
    } else {
      const referenced = new Set(
        kept.flatMap((e) =>
          Object.values(e.manifest!.hosts).flatMap((h) =>
            h.resources.flatMap((r) => (r.kind === 'file' && r.blob ? [r.blob] : [])),
          ),
        ),
      );
      const blobs = await readdir(blobDir).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [] as string[];
        throw e;
      });
      removeBlobs = await Promise.all(
        blobs
          .filter((b) => !referenced.has(b))
          .map(async (b) => {
            const p = join(blobDir, b);
            return { path: p, size: (await lstat(p)).size, counted: DIGEST.test(b) };
          }),
      );
    }
    const temps = (await readdir(runsDir).catch(() => [] as string[]))
      .filter((x) => x.includes('.tmp-'))
      .map((x) => join(runsDir, x));
    // Everything is decided: now delete, manifests first, so no remaining manifest ever lacks a blob.
    for (const m of removeManifests) {
      await unlink(m.path).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      });
      result.removedSnapshots.push(m.runId);
    }
    for (const b of removeBlobs) {
      await unlink(b.path).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      });
      if (b.counted) {
        result.removedBlobs++;
        result.freedBytes += b.size;
      }
    }
    for (const t of temps) await unlink(t).catch(() => undefined);
    return result;
  }

  /** Signs and writes a manifest (format 2). */
  async writeManifest(m: Manifest): Promise<void> {
    const key = await this.signingKey();
    const { mac: _old, ...body } = m as Manifest & { mac?: unknown };
    const doc = { ...body, version: MANIFEST_VERSION };
    const signed = { ...doc, mac: { alg: 'hmac-sha256', keyId: key.id, value: macOf(key, doc) } };
    await writeFileAtomic(this.manifestPath(m.runId), JSON.stringify(signed, null, 2) + '\n');
  }

  /** The key for verification, or why there is none (reading never creates one). */
  private async verifyKey(): Promise<SnapshotKey | SnapshotKeyError> {
    try {
      return await (this.key ?? readSnapshotKey(this.keyFile));
    } catch (e) {
      if (e instanceof SnapshotKeyError) return e;
      throw e;
    }
  }

  /**
   * A verified manifest. A format-1 (unsigned) one is refused unless `allowUnsigned`: it still has to
   * pass the strict schema, and the caller must verify its blobs before using it.
   */
  async readManifest(runId: string, opts: { allowUnsigned?: boolean } = {}): Promise<Manifest> {
    await this.checkModes();
    const r = await this.readWith(runId, await this.verifyKey());
    if (!r.signed && !opts.allowUnsigned)
      throw new SnapshotError(
        `snapshot \`${runId}\` is in format 1, written before snapshots were signed, so it cannot be verified; check it with \`trustplay snapshots show ${runId}\`, then restore it with --allow-unsigned`,
      );
    return r.manifest;
  }

  /** Reads, authenticates and validates one manifest; throws one sentence. */
  async readWith(runId: string, key: SnapshotKey | SnapshotKeyError): Promise<ReadManifest> {
    const path = this.manifestPath(runId);
    let bytes: Buffer;
    try {
      bytes = await readPrivateFile(path, 'snapshot manifest');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new SnapshotError(`no snapshot \`${runId}\` in ${this.dir} (see \`trustplay snapshots list\`)`);
      throw e;
    }
    const damaged = (why: string) => new SnapshotError(`snapshot \`${runId}\` is damaged: ${why}`);
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch {
      throw damaged('its manifest is not valid JSON');
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw damaged('its manifest is not an object');
    const version = (doc as { version?: unknown }).version;
    if (!READABLE_VERSIONS.includes(version as 1 | 2))
      throw new SnapshotError(
        `snapshot \`${runId}\` is in manifest format ${JSON.stringify(version)?.slice(0, 20) ?? 'none'}, which this trustplay cannot read (it reads formats ${READABLE_VERSIONS.join(' and ')}); use the trustplay that wrote it`,
      );
    const v = version as 1 | 2;
    if (v === 2) {
      const mac = (doc as { mac?: { value?: unknown; keyId?: unknown } }).mac;
      if (!mac || typeof mac.value !== 'string') throw damaged('its manifest has no signature');
      if (key instanceof SnapshotKeyError)
        throw new SnapshotError(`snapshot \`${runId}\` cannot be verified: ${key.message}`);
      const { mac: _m, ...body } = doc as Record<string, unknown>;
      if (!macEquals(macOf(key, body), mac.value))
        throw new SnapshotError(
          mac.keyId !== key.id
            ? `snapshot \`${runId}\` was signed with another snapshot key (key id ${String(mac.keyId).slice(0, 16)}, this one is ${key.id} in ${key.file}); point --snapshot-key at the key that wrote it`
            : `snapshot \`${runId}\` fails verification: its manifest was changed after trustplay wrote it; nothing in it will be used`,
        );
    }
    const shape = schemaProblem(doc, v);
    if (shape) throw damaged(`its manifest is invalid ${shape}`);
    const m = doc as Manifest & { mac?: unknown };
    if (m.runId !== runId) throw damaged(`its manifest names run \`${m.runId}\`, not \`${runId}\``);
    const sem = semanticProblem(m);
    if (sem) throw damaged(sem);
    const { mac: _mac, ...manifest } = m;
    if (v === 1) {
      // Format 1 recorded a kubectl binary; never used (it comes from the inventory now).
      for (const h of Object.values(manifest.hosts))
        for (const r of h.resources) delete (r as { kubectl?: unknown }).kubectl;
    }
    return { manifest, signed: v === 2 };
  }
}

/**
 * Reads a file of the store without following a link (O_NOFOLLOW), refusing one that is not a
 * regular file, not ours, writable by others, or absurdly large.
 */
async function readPrivateFile(path: string, what: string): Promise<Buffer> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP')
      throw new SnapshotError(`${what} ${path} is a symbolic link; trustplay never follows links in its state dir`);
    throw e;
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new SnapshotError(`${what} ${path} is not a regular file`);
    const p = strictModesProblem(path, st, what);
    if (p) throw new SnapshotError(`refusing to use snapshots: ${p}`);
    if (st.size > MAX_MANIFEST_BYTES && what === 'snapshot manifest')
      throw new SnapshotError(`${what} ${path} is ${st.size} bytes, more than any real manifest; it is refused`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/**
 * Files' bytes with mode and owner (null: absent), all in one round trip. A managed path that is a
 * link is refused, never read through: its target may be any file on the host.
 */
export async function readFilesWithStat(conn: Connection, paths: string[]): Promise<ReadBack> {
  const out: ReadBack = new Map();
  if (!paths.length) return out;
  // Never an answer read ahead: the change's compare-and-swap uses these bytes as the node's now.
  const read = await readNode(conn, { files: paths, fresh: true });
  for (const path of paths) {
    const e = managedEntry(read, path);
    if (e.kind === 'absent') out.set(path, null);
    else if (e.kind === 'file') out.set(path, { data: e.content, mode: e.mode, uid: e.uid, gid: e.gid });
    else throw new Error(`cannot read ${path} on ${conn.host}: not a regular file`);
  }
  return out;
}

/** Where a save comes from: the task's module, and the handlers its change asks for. */
export interface SaveOrigin {
  module: string;
  notify?: HandlerRequest[];
}

/** The restart a change of `path` asks for (config file and socket only: never the command). */
function restartOf(path: string, notify: HandlerRequest[] | undefined): SavedFile['restart'] | undefined {
  for (const n of notify ?? []) {
    const a = n.args ?? {};
    if (n.module === 'containerd.restart' && a['config_file'] === path)
      return { configFile: path, ...(typeof a['socket'] === 'string' ? { socket: a['socket'] } : {}) };
  }
  return undefined;
}

/** The engine's snapshot hook for one run: first prior state of each resource wins. */
export class RunSnapshot implements SnapshotSink {
  private manifest: Manifest;
  private written = false;
  private queue: Promise<void> = Promise.resolve();
  private readonly seen = new Set<string>();

  constructor(
    readonly store: SnapshotStore,
    init: { runId: string; command: string; playbook?: { path: string; digest: string }; inventory?: string },
    private readonly readServiceAccount?: ServiceAccountReader,
  ) {
    this.manifest = {
      version: MANIFEST_VERSION,
      runId: init.runId,
      time: new Date().toISOString(),
      command: init.command,
      complete: false,
      hosts: {},
      ...(init.playbook ? { playbook: init.playbook } : {}),
      ...(init.inventory ? { inventory: init.inventory } : {}),
    };
  }

  get runId(): string {
    return this.manifest.runId;
  }

  /** True once anything was saved (a run that changed nothing leaves no snapshot). */
  get exists(): boolean {
    return this.written;
  }

  private hostEntry(host: string) {
    return (this.manifest.hosts[host] ??= { facts: {}, resources: [] });
  }

  facts(host: string, facts: Record<string, unknown>): void {
    Object.assign(this.hostEntry(host).facts, facts);
  }

  private initialised: Promise<void> | undefined;

  /** The files of `paths` not saved yet in this run, read in one round trip (see `save`'s `prefetched`). */
  async prefetch(host: string, conn: Connection, paths: string[]): Promise<ReadBack> {
    return readFilesWithStat(
      conn,
      paths.filter((p) => !this.seen.has(`${host}\0file:${p}`)),
    );
  }

  /**
   * Returns the files it read for this save (those not saved earlier in the run). A file in
   * `prefetched` (read for this task's changes by `prefetch`) is taken from there, once.
   */
  async save(
    host: string,
    conn: Connection,
    resources: Resource[],
    origin: SaveOrigin,
    prefetched?: ReadBack,
  ): Promise<ReadBack> {
    // The store is created on the first save: a run that changes nothing leaves nothing behind.
    await (this.initialised ??= this.store.init());
    const module = origin.module;
    const saved: SavedResource[] = [];
    const keyOf = (r: Resource) =>
      `${host}\0${r.kind === 'file' ? `file:${r.path}` : `sa:${r.kubeconfig ?? ''}:${r.context ?? ''}:${r.namespace}/${r.name}`}`;
    const fresh = resources.filter((r) => !this.seen.has(keyOf(r)));
    const wanted = fresh.flatMap((r) => (r.kind === 'file' ? [r.path] : []));
    // Every file of this save in one round trip (none when the task's prefetch read them).
    const files = await readFilesWithStat(
      conn,
      wanted.filter((p) => !prefetched?.has(p)),
    );
    for (const p of wanted)
      if (prefetched?.has(p)) {
        files.set(p, prefetched.get(p) ?? null);
        prefetched.delete(p);
      }
    for (const r of fresh) {
      const key = keyOf(r);
      if (this.seen.has(key)) continue;
      if (r.kind === 'file') {
        const f = files.get(r.path);
        const restart = restartOf(r.path, origin.notify);
        const common = { kind: 'file' as const, module, path: r.path, ...(restart ? { restart } : {}) };
        if (!f) saved.push({ ...common, exists: false });
        else {
          const blob = await this.store.putBlob(f.data);
          saved.push({ ...common, exists: true, blob, size: f.data.length, mode: f.mode, uid: f.uid, gid: f.gid });
        }
      } else {
        if (!this.readServiceAccount) throw new Error('cannot save a ServiceAccount: no reader registered');
        const ips = await this.readServiceAccount(conn, r);
        saved.push({
          kind: 'serviceaccount',
          module,
          namespace: r.namespace,
          name: r.name,
          imagePullSecrets: ips,
          ...(r.kubeconfig ? { kubeconfig: r.kubeconfig } : {}),
          ...(r.context ? { context: r.context } : {}),
        });
      }
      this.seen.add(key);
    }
    if (!saved.length) return files;
    this.hostEntry(host).resources.push(...saved);
    await this.flush();
    return files;
  }

  private pending: Promise<void> | undefined;

  /**
   * Serialise manifest writes (hosts save in parallel) with group commit: every save that arrives
   * while a write is queued shares it (the write has not started, so it includes their entries).
   * Still no change before its snapshot is durable, but 100 hosts x 3 saves become a handful of
   * manifest writes instead of 300 serialised write+fsync of a growing file.
   */
  private flush(): Promise<void> {
    if (this.pending) return this.pending;
    const run = async () => {
      this.pending = undefined;
      await this.store.writeManifest(this.manifest);
      this.written = true;
    };
    this.pending = this.queue = this.queue.then(run, run);
    return this.pending;
  }

  /** Mark the run finished (only when something was saved), naming the signal that stopped it, if any. */
  async complete(interrupted?: string): Promise<void> {
    if (!this.written) return;
    this.manifest.complete = true;
    if (interrupted) this.manifest.interrupted = { signal: interrupted, time: new Date().toISOString() };
    await this.flush();
  }
}
