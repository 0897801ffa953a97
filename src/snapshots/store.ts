/**
 * The snapshot store: before any change is applied, the prior state of every resource it touches is
 * saved here, so `trustplay restore` can put it back. Layout under the state dir (0700):
 *   blobs/sha256/<hex>      content-addressed file contents (0600)
 *   runs/<run-id>.json      one manifest per run (0600), rewritten atomically after every save,
 *                           so a crash mid-run leaves a readable record of what was applied so far.
 * Snapshots hold credentials: nothing here is ever printed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from '../connection/connection.js';
import type { Resource } from '../engine/module.js';
import type { SnapshotSink } from '../engine/run.js';

export const MANIFEST_VERSION = 1;

/** A file as it was before the run changed it. */
export interface SavedFile {
  kind: 'file';
  path: string;
  exists: boolean;
  mode?: number;
  uid?: number;
  gid?: number;
  /** sha256 of the content (blob name). */
  blob?: string;
  size?: number;
}

/** A ServiceAccount's imagePullSecrets as they were (null: the account did not exist). */
export interface SavedServiceAccount {
  kind: 'serviceaccount';
  namespace: string;
  name: string;
  kubeconfig?: string;
  context?: string;
  /** kubectl binary the account was read with (when not plain `kubectl`). */
  kubectl?: string;
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
  hosts: Record<string, { facts: Record<string, unknown>; resources: SavedResource[] }>;
}

/** One snapshot as `list` sees it: its manifest, or why it cannot be read. */
export interface SnapshotEntry {
  runId: string;
  /** The manifest's time, or the file's mtime when unreadable. */
  time: string;
  manifest?: Manifest;
  error?: string;
}

/** What `prune` deleted. */
export interface PruneResult {
  removedSnapshots: string[];
  removedBlobs: number;
  freedBytes: number;
  /** Set when blobs were left alone, with the reason. */
  blobsKeptBecause?: string;
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

export class SnapshotStore {
  readonly dir: string;
  constructor(dir?: string) {
    this.dir = dir ?? defaultStateDir();
  }

  async init(): Promise<void> {
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true, mode: 0o700 });
    await mkdir(join(this.dir, 'runs'), { recursive: true, mode: 0o700 });
    // mkdir's mode does not apply to directories that already existed: enforce it.
    for (const d of [this.dir, join(this.dir, 'blobs'), join(this.dir, 'blobs', 'sha256'), join(this.dir, 'runs')])
      await chmod(d, 0o700);
  }

  blobPath(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', digest);
  }

  manifestPath(runId: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(runId)) throw new Error(`invalid snapshot id \`${runId}\``);
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

  /** A blob's content, verified against its digest (a damaged blob is refused). */
  async getBlob(digest: string): Promise<Buffer> {
    if (!/^[0-9a-f]{64}$/.test(digest)) throw new Error(`invalid blob digest \`${digest}\``);
    const data = await readFile(this.blobPath(digest));
    const actual = createHash('sha256').update(data).digest('hex');
    if (actual !== digest)
      throw new Error(`snapshot blob ${digest.slice(0, 12)} is damaged (its content hashes to ${actual.slice(0, 12)})`);
    return data;
  }

  /** Every snapshot in the store, newest first; a manifest that cannot be read is listed with its error. */
  async list(): Promise<SnapshotEntry[]> {
    let names: string[];
    try {
      names = await readdir(join(this.dir, 'runs'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const entries = await Promise.all(
      names
        .filter((n) => n.endsWith('.json'))
        .map(async (n): Promise<SnapshotEntry> => {
          const runId = n.slice(0, -'.json'.length);
          const mtime = (await stat(join(this.dir, 'runs', n))).mtime.toISOString();
          try {
            const manifest = await this.readManifest(runId);
            return { runId, time: manifest.time, manifest };
          } catch (e) {
            return { runId, time: mtime, error: (e as Error).message };
          }
        }),
    );
    return entries.sort((a, b) => b.time.localeCompare(a.time) || b.runId.localeCompare(a.runId));
  }

  /**
   * Keeps the `keep` newest snapshots, deletes the older manifests, then every blob no kept manifest
   * references (and temp files a crash left behind). If a kept manifest is unreadable, its blobs
   * cannot be known, so no blob is deleted.
   */
  async prune(keep: number): Promise<PruneResult> {
    const entries = await this.list();
    const removed: string[] = [];
    for (const e of entries.slice(keep)) {
      await unlink(this.manifestPath(e.runId));
      removed.push(e.runId);
    }
    const kept = entries.slice(0, keep);
    const result: PruneResult = { removedSnapshots: removed, removedBlobs: 0, freedBytes: 0 };
    if (kept.some((e) => !e.manifest)) {
      result.blobsKeptBecause = `snapshot ${kept.find((e) => !e.manifest)!.runId} is unreadable, so the blobs it needs are unknown`;
      return result;
    }
    const referenced = new Set(
      kept.flatMap((e) =>
        Object.values(e.manifest!.hosts).flatMap((h) =>
          h.resources.flatMap((r) => (r.kind === 'file' && r.blob ? [r.blob] : [])),
        ),
      ),
    );
    const blobDir = join(this.dir, 'blobs', 'sha256');
    let blobs: string[] = [];
    try {
      blobs = await readdir(blobDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    for (const b of blobs) {
      if (referenced.has(b)) continue;
      const p = join(blobDir, b);
      const size = (await stat(p)).size;
      await unlink(p);
      if (/^[0-9a-f]{64}$/.test(b)) {
        result.removedBlobs++;
        result.freedBytes += size;
      }
    }
    for (const n of await readdir(join(this.dir, 'runs')).catch(() => [] as string[])) {
      if (n.includes('.tmp-')) await unlink(join(this.dir, 'runs', n)).catch(() => undefined);
    }
    return result;
  }

  async writeManifest(m: Manifest): Promise<void> {
    await writeFileAtomic(this.manifestPath(m.runId), JSON.stringify(m, null, 2) + '\n');
  }

  async readManifest(runId: string): Promise<Manifest> {
    let text: string;
    try {
      text = await readFile(this.manifestPath(runId), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new Error(`no snapshot \`${runId}\` in ${this.dir} (see \`trustplay snapshots list\`)`, { cause: e });
      throw e;
    }
    let m: Manifest;
    try {
      m = JSON.parse(text) as Manifest;
    } catch (e) {
      throw new Error(`snapshot \`${runId}\` is damaged: its manifest is not valid JSON`, { cause: e });
    }
    if (m.version !== MANIFEST_VERSION || m.runId !== runId || typeof m.hosts !== 'object' || m.hosts === null) {
      throw new Error(
        `snapshot \`${runId}\` is damaged or from an unknown version (manifest version ${String(m.version)})`,
      );
    }
    return m;
  }
}

// Metadata and content in one round trip (half the cost of stat + read over SSH). The metadata line
// comes first; `cat` output follows byte for byte.
const READ_WITH_STAT = `[ -e "$1" ] || { echo absent; exit 0; }
[ -f "$1" ] || { echo "not a regular file" >&2; exit 2; }
stat -L -c '%a %u %g' -- "$1" && cat -- "$1"`;

/** A file's bytes with mode and owner, or null when it does not exist. */
export async function readFileWithStat(
  conn: Connection,
  path: string,
): Promise<{ data: Buffer; mode: number; uid: number; gid: number } | null> {
  const r = await conn.exec({ argv: ['sh', '-c', READ_WITH_STAT, 'sh', path] });
  const nl = r.stdout.indexOf(0x0a);
  const head = r.stdout.subarray(0, nl < 0 ? r.stdout.length : nl).toString('utf8');
  if (r.code !== 0 || nl < 0)
    throw new Error(
      `cannot read ${path} on ${conn.host} (exit ${r.code}): ${r.stderr.toString().trim().split('\n')[0] ?? ''}`,
    );
  if (head === 'absent') return null;
  const m = /^([0-7]+) (\d+) (\d+)$/.exec(head);
  if (!m) throw new Error(`cannot read ${path} on ${conn.host}: unexpected stat output \`${head.slice(0, 80)}\``);
  return {
    data: Buffer.from(r.stdout.subarray(nl + 1)),
    mode: parseInt(m[1]!, 8),
    uid: Number(m[2]),
    gid: Number(m[3]),
  };
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

  async save(host: string, conn: Connection, resources: Resource[]): Promise<void> {
    // The store is created on the first save: a run that changes nothing leaves nothing behind.
    await (this.initialised ??= this.store.init());
    const saved: SavedResource[] = [];
    for (const r of resources) {
      const key = `${host}\0${r.kind === 'file' ? `file:${r.path}` : `sa:${r.kubeconfig ?? ''}:${r.context ?? ''}:${r.namespace}/${r.name}`}`;
      if (this.seen.has(key)) continue;
      if (r.kind === 'file') {
        const f = await readFileWithStat(conn, r.path);
        if (!f) saved.push({ kind: 'file', path: r.path, exists: false });
        else {
          const blob = await this.store.putBlob(f.data);
          saved.push({
            kind: 'file',
            path: r.path,
            exists: true,
            blob,
            size: f.data.length,
            mode: f.mode,
            uid: f.uid,
            gid: f.gid,
          });
        }
      } else {
        if (!this.readServiceAccount) throw new Error('cannot save a ServiceAccount: no reader registered');
        const ips = await this.readServiceAccount(conn, r);
        const kubectl = (r as { kubectl?: string }).kubectl;
        saved.push({
          kind: 'serviceaccount',
          namespace: r.namespace,
          name: r.name,
          imagePullSecrets: ips,
          ...(r.kubeconfig ? { kubeconfig: r.kubeconfig } : {}),
          ...(r.context ? { context: r.context } : {}),
          ...(kubectl && kubectl !== 'kubectl' ? { kubectl } : {}),
        });
      }
      this.seen.add(key);
    }
    if (!saved.length) return;
    this.hostEntry(host).resources.push(...saved);
    await this.flush();
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

  /** Mark the run finished (only when something was saved). */
  async complete(): Promise<void> {
    if (!this.written) return;
    this.manifest.complete = true;
    await this.flush();
  }
}
