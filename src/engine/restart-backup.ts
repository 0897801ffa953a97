/**
 * The rollback target of a verified restart: config.toml as it was before this run's (or an
 * interrupted earlier run's) change, kept in the run's host state and, while the restart is
 * pending, in a marker next to the file on the node. The applier (apply.ts) records it before a
 * config write; the containerd.restart handler reads it and clears it when the config is settled.
 */
import { createHash } from 'node:crypto';
import type { Connection } from '../connection/connection.js';
import { defined } from '../defined.js';
import { TaskError } from './errors.js';
import type { Change, RestartRequest, TaskContext } from './module.js';

/** What a rollback puts back: the bytes (null = the file did not exist) with mode and owner. */
export interface ConfigBackup {
  content: Buffer | null;
  mode?: number;
  uid?: number;
  gid?: number;
}

/** The hostState key under which a config.toml backup lives. */
export function configBackupKey(configFile: string): string {
  return `containerd.backup:${configFile}`;
}

/**
 * The node-side record of a config.toml written by trustplay whose verified restart has not
 * finished: the config before the change (to roll back to), kept next to the file until the restart
 * succeeds or is rolled back. A run that dies in between (kill -9, a lost connection, a second
 * Ctrl-C) leaves it, and the next run of any module that edits config.toml finishes that change
 * first: restart with the health check, or put the earlier config back.
 */
export function pendingMarkerPath(configFile: string): string {
  return `${configFile}.trustplay-pending`;
}

/**
 * The node-side record of the config.toml containerd was last restarted with by trustplay (after
 * its health check passed). containerd 2.x does not report the registry settings it runs with
 * (they live in the images plugin, not in the CRI runtime status), so a later edit of the file by
 * someone else is told from this record: the file now against what the daemon was started with.
 */
export function restartRecordPath(configFile: string): string {
  return `${configFile}.trustplay-restarted`;
}

interface RestartRecord {
  trustplay: 'restarted';
  /** sha256 of the config containerd was restarted with; a file that still hashes to it is in effect. */
  sha256: string;
  /** That config, base64 (0600: it may hold registry credentials), to compare its registry settings. */
  config: string | null;
  /**
   * The daemon it describes, known by its CRI socket (`inode mtime`): containerd creates the socket
   * anew at each start, so another one means containerd was restarted since by someone else, and the
   * record no longer says what it loaded.
   */
  socket?: { path: string; id: string };
}

/** `inode mtime` of each path (a missing one: ''), in one command. */
export async function fileIds(conn: Connection, paths: string[]): Promise<string[]> {
  const r = await conn.exec({
    argv: ['sh', '-c', 'for p in "$@"; do stat -L -c "%i %Y" -- "$p" 2>/dev/null || echo; done', 'sh', ...paths],
  });
  const lines = r.stdout.toString('utf8').split('\n');
  return paths.map((_, i) => (lines[i] ?? '').trim());
}

/** Writes the restart record after a restart whose health check passed (best effort: a warning when it cannot). */
export async function recordRestart(
  ctx: Pick<TaskContext, 'conn' | 'warn'>,
  configFile: string,
  socket: string,
): Promise<void> {
  try {
    const content = await ctx.conn.readFile(configFile);
    const [id] = await fileIds(ctx.conn, [socket]);
    const record: RestartRecord = {
      trustplay: 'restarted',
      sha256: createHash('sha256')
        .update(content ?? '')
        .digest('hex'),
      config: content === null ? null : content.toString('base64'),
      ...(id ? { socket: { path: socket, id } } : {}),
    };
    await ctx.conn.writeFile(restartRecordPath(configFile), JSON.stringify(record) + '\n', { mode: 0o600 });
  } catch (e) {
    ctx.warn(
      `could not record the config containerd was restarted with in ${restartRecordPath(configFile)} (${(e as Error).message}): on containerd 2.x a later edit of ${configFile} by someone else will not be noticed`,
    );
  }
}

/** The config a restart record names (null: no readable record, so nothing can be told from it). */
export function parseRestartRecord(
  text: string | undefined,
): { sha256: string; config: Buffer | null; socket?: { path: string; id: string } } | null {
  if (text === undefined) return null;
  try {
    const r = JSON.parse(text) as Partial<RestartRecord>;
    if (r.trustplay !== 'restarted' || typeof r.sha256 !== 'string') return null;
    const socket =
      typeof r.socket?.path === 'string' && typeof r.socket.id === 'string'
        ? { path: r.socket.path, id: r.socket.id }
        : undefined;
    return {
      sha256: r.sha256,
      config: typeof r.config === 'string' ? Buffer.from(r.config, 'base64') : null,
      ...(socket ? { socket } : {}),
    };
  } catch {
    return null;
  }
}

interface PendingMarker {
  trustplay: 'pending-restart';
  /** The config before the change, base64; null when there was none. */
  previous: string | null;
  mode?: number;
  uid?: number;
  gid?: number;
}

function backupFromMarker(text: string): ConfigBackup | null {
  try {
    const m = JSON.parse(text) as Partial<PendingMarker>;
    if (m.trustplay !== 'pending-restart' || (m.previous !== null && typeof m.previous !== 'string')) return null;
    return {
      content: m.previous === null ? null : Buffer.from(m.previous, 'base64'),
      ...(typeof m.mode === 'number' ? { mode: m.mode } : {}),
      ...(typeof m.uid === 'number' ? { uid: m.uid } : {}),
      ...(typeof m.gid === 'number' ? { gid: m.gid } : {}),
    };
  } catch {
    return null;
  }
}

/** The rollback target recorded by a pending marker's content (read by a module's gather). */
export function parsePendingMarker(host: string, configFile: string, text: string): ConfigBackup {
  const backup = backupFromMarker(text);
  if (!backup)
    throw new TaskError(
      `${host}: ${pendingMarkerPath(configFile)} is not a record trustplay can read, so it cannot tell whether an earlier run left containerd unrestarted: check containerd on ${host}, then remove that file.`,
      'refused',
    );
  return backup;
}

/** An interrupted change of trustplay's own on a node, read from its marker (null: none). */
export async function readPendingRestart(conn: Connection, configFile: string): Promise<ConfigBackup | null> {
  const text = await conn.readFile(pendingMarkerPath(configFile));
  return text === null ? null : parsePendingMarker(conn.host, configFile, text.toString('utf8'));
}

/**
 * Records config.toml as it was before a change, for the handler's rollback, in this run and on
 * the node (the pending marker, written before the change). Only the first record counts: when two
 * tasks edit the file before the handler runs, or an earlier run was interrupted after its edit, the
 * content to roll back to is the one before the first edit. A successful restart clears both.
 */
export async function rememberConfigBackup(
  ctx: Pick<TaskContext, 'hostState' | 'conn'>,
  configFile: string,
  previous: Buffer | null,
  meta: { mode?: number; uid?: number; gid?: number } = {},
): Promise<void> {
  const key = configBackupKey(configFile);
  if (ctx.hostState.has(key)) return;
  const earlier = await readPendingRestart(ctx.conn, configFile);
  const backup: ConfigBackup = earlier ?? { content: previous === null ? null : Buffer.from(previous), ...meta };
  if (!earlier) {
    const marker: PendingMarker = {
      trustplay: 'pending-restart',
      previous: backup.content === null ? null : backup.content.toString('base64'),
      ...meta,
    };
    // 0600: config.toml may hold registry credentials.
    await ctx.conn.writeFile(pendingMarkerPath(configFile), JSON.stringify(marker) + '\n', { mode: 0o600 });
  }
  ctx.hostState.set(key, backup);
}

/**
 * Records a file written together with a restart's config (a companion, e.g. k3s's CA beside
 * registries.yaml) as it was before its first write in this run, for the rollback. In this run only:
 * no marker on the node, so an interrupted run's later rollback puts back the config alone (a CA
 * file nothing points at any more is harmless).
 */
export async function rememberCompanionBackup(
  ctx: Pick<TaskContext, 'hostState' | 'conn'>,
  path: string,
  previous: Buffer | null,
): Promise<void> {
  const key = configBackupKey(path);
  if (ctx.hostState.has(key)) return;
  if (previous === null) {
    ctx.hostState.set(key, { content: null } satisfies ConfigBackup);
    return;
  }
  const st = await ctx.conn.stat(path);
  const backup: ConfigBackup = {
    content: Buffer.from(previous),
    ...defined({ mode: st.mode, uid: st.uid, gid: st.gid }),
  };
  ctx.hostState.set(key, backup);
}

/**
 * The changes that finish an interrupted change found by `readPendingRestart`: the verified
 * restart (health check, rollback to the config before the interrupted change). Modules that edit
 * config.toml put them first in their plan, so they run before anything new.
 */
export function finishPendingRestart(pending: ConfigBackup, request: RestartRequest): Change[] {
  return [
    {
      // Custom: it only seeds this run's rollback target from the node's marker; no generic
      // operation describes that, and it touches nothing on the node.
      op: 'custom',
      summary: `finish the change an interrupted trustplay run left: ${request.config} was written but containerd was not restarted — restart it with the health check (the earlier config goes back if containerd does not come back)`,
      resources: [],
      apply: (ctx) => {
        const key = configBackupKey(request.config);
        if (!ctx.hostState.has(key)) ctx.hostState.set(key, pending);
        return Promise.resolve();
      },
    },
    request,
  ];
}

/**
 * A config.toml-editing module's plan with any interrupted change of trustplay's own finished first
 * (DECISIONS: interrupted changes and the CRI pre-flight), even when the config it left is one the
 * module would refuse to edit: then only the finish is planned, and the refusal is a warning.
 */
export function afterPendingRestart(
  ctx: Pick<TaskContext, 'warn' | 'hostState'>,
  pending: ConfigBackup | undefined,
  request: RestartRequest,
  plan: () => Change[],
): Change[] {
  // A marker this run wrote itself (an earlier task's config change, its restart still due as a
  // handler) is not an interrupted change: that restart is already coming.
  const ours = ctx.hostState.has(configBackupKey(request.config));
  const finish = pending && !ours ? finishPendingRestart(pending, request) : [];
  try {
    // A second restart request for the same config becomes the same handler (deduplicated by id).
    return [...finish, ...plan()];
  } catch (e) {
    if (!finish.length || !(e instanceof TaskError)) throw e;
    ctx.warn(`${e.message} — finishing the interrupted change first; run again afterwards`);
    return finish;
  }
}
