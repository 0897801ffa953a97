/**
 * The one place changes are applied. For each operation a plan returned, in order: save what it
 * touches to the run's snapshot (no snapshot, no change), compare a file with what gather saw
 * (compare-and-swap: a file edited meanwhile is never overwritten with a stale edit), keep the
 * previous content of a config a verified restart may have to roll back to, do the I/O, and turn
 * restart requests into the handlers the engine runs after the play's tasks.
 */
import { createHash } from 'node:crypto';
import type { Connection } from '../connection/connection.js';
import { ConnectionError, FileChangedError } from '../connection/errors.js';
import { changedRefusal } from '../connection/file-scripts.js';
import { criTaskError, withCri } from '../cri/connect.js';
import { DOCKER_API_SOCKET, engineRemove } from '../docker/engine-api.js';
import { podmanRemove } from '../containers-image/client.js';
import { writePullSecrets } from '../k8s/kubectl.js';
import { failureOf, TaskError } from './errors.js';
import { rememberCompanionBackup, rememberConfigBackup } from './restart-backup.js';
import type { Change, FileExpect, HandlerRequest, Resource, RestartRequest, TaskContext } from './module.js';
import { defined } from '../defined.js';

/** A file as the snapshot read it just now (null: absent), with its mode and owner. */
export type ReadBack = Map<string, { data: Buffer; mode: number; uid: number; gid: number } | null>;

/** Saves resources before a change touches them (the snapshot store). Throwing blocks the change. */
export interface SnapshotSink {
  /**
   * `origin`: the task's module and the handlers the change asks for (the snapshot records data
   * from them). May return the files it read for this save: the change's compare-and-swap and
   * backup use those bytes instead of reading the file again.
   */
  save(
    host: string,
    conn: Connection,
    resources: Resource[],
    origin: { module: string; notify?: HandlerRequest[] },
    prefetched?: ReadBack,
  ): Promise<ReadBack | void>;
  /**
   * Reads, in one round trip, the files of a task's changes not saved yet in this run, for the
   * saves that follow (`prefetched`): one read where each change's save read its own.
   */
  prefetch?(host: string, conn: Connection, paths: string[]): Promise<ReadBack>;
  facts(host: string, facts: Record<string, unknown>): Promise<void> | void;
}

/** The internal handler a restart request schedules (`<unit>.restart`), deduplicated per config. */
export function restartHandler(r: RestartRequest): HandlerRequest {
  return {
    id: `${r.unit}.restart ${r.config}`,
    name: `Restart ${r.service ?? 'containerd'} (verified)`,
    module: `${r.unit}.restart`,
    args: {
      config_file: r.config,
      ...defined({ service: r.service, companions: r.companions }),
      restart_command: r.command,
      ...defined({ socket: r.health.socket }),
      restart_timeout: r.health.timeoutSec,
    },
  };
}

/**
 * Two requests for the same handler (two tasks changed the same config): one handler, whose
 * rollback puts back the companion files of both.
 */
export function mergeHandlerRequests(earlier: HandlerRequest | undefined, later: HandlerRequest): HandlerRequest {
  const list = (h: HandlerRequest | undefined): string[] => {
    const c = h?.args?.['companions'];
    return Array.isArray(c) ? c.filter((x): x is string => typeof x === 'string') : [];
  };
  const companions = [...new Set([...list(earlier), ...list(later)])];
  if (companions.length === list(later).length) return later;
  return { ...later, args: { ...later.args, companions } };
}

/** The sha256 (hex) of a file's content, as `FileExpect` records it. */
export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** What gather saw of a file, as a compare-and-swap expectation. */
export function expectOf(content: Buffer | string | null): FileExpect {
  return content === null ? { absent: true } : { sha256: sha256(content) };
}

/** What an operation touches, saved to the snapshot before it runs. */
export function resourcesOf(c: Change): Resource[] {
  switch (c.op) {
    case 'file.write':
    case 'file.remove':
      return [{ kind: 'file', path: c.path }];
    case 'serviceaccount.patch':
      return [
        {
          kind: 'serviceaccount',
          namespace: c.namespace,
          name: c.name,
          ...defined({ kubeconfig: c.kubeconfig, context: c.context, kubectl: c.kubectl }),
        },
      ];
    case 'custom':
      return c.resources;
    case 'dir.remove':
    case 'image.remove':
    case 'restart.request':
      return [];
  }
}

function resourceName(r: Resource): string {
  return r.kind === 'file' ? r.path : `serviceaccount ${r.namespace}/${r.name}`;
}

/**
 * Refuses when the file is no longer what gather saw; returns what it is now (for a backup). The
 * snapshot's read of the file, made just before for this change, is what it is now when there is one.
 */
async function compareAndSwap(
  ctx: TaskContext,
  path: string,
  expect: FileExpect | undefined,
  read: ReadBack | undefined,
  op: 'write' | 'remove',
): Promise<Buffer | null> {
  const now = read?.has(path) ? (read.get(path)?.data ?? null) : await ctx.conn.readFile(path);
  if (expect === undefined) return now;
  const same = 'absent' in expect ? now === null : now !== null && sha256(now) === expect.sha256;
  if (!same) throw new TaskError(changedRefusal(ctx.host, path, op), 'command');
  return now;
}

/** Keeps the config's current bytes, mode and owner for the restart handler's rollback (and on the node). */
async function backup(
  ctx: TaskContext,
  path: string,
  current: Buffer | null,
  read: ReadBack | undefined,
): Promise<void> {
  if (current === null) return rememberConfigBackup(ctx, path, null);
  const st = read?.get(path) ?? (await ctx.conn.stat(path));
  await rememberConfigBackup(ctx, path, current, defined({ mode: st.mode, uid: st.uid, gid: st.gid }));
}

async function applyOne(
  ctx: TaskContext,
  c: Exclude<Change, RestartRequest>,
  restartConfigs: Set<string>,
  companions: Set<string>,
  read: ReadBack | undefined,
) {
  const conn = ctx.conn;
  switch (c.op) {
    case 'file.write':
    case 'file.remove': {
      const config = restartConfigs.has(c.path);
      const companion = companions.has(c.path);
      if (c.expect !== undefined || config || companion) {
        const current = await compareAndSwap(ctx, c.path, c.expect, read, c.op === 'file.remove' ? 'remove' : 'write');
        if (config) await backup(ctx, c.path, current, read);
        else if (companion) await rememberCompanionBackup(ctx, c.path, current);
      }
      // The write or removal compares too, on the node, as it starts: an edit after the read above
      // is not lost.
      const done =
        c.op === 'file.remove'
          ? conn.remove(c.path, defined({ expect: c.expect }))
          : conn.writeFile(c.path, c.content, {
              mkdirs: true,
              ...defined({ mode: c.mode, expect: c.expect }),
              ...(c.owner ? { uid: c.owner.uid, gid: c.owner.gid } : {}),
            });
      return done.catch((e: unknown) => {
        if (e instanceof FileChangedError) throw new TaskError(e.message, 'command');
        throw e;
      });
    }
    case 'dir.remove': {
      // Only an empty directory goes: rmdir refuses anything else, which is what we want.
      const r = await conn.exec({
        argv: ['sh', '-c', 'rmdir -- "$1" 2>/dev/null || [ ! -d "$1" ] || [ -n "$(ls -A -- "$1")" ]', 'sh', c.path],
      });
      if (r.code !== 0)
        throw new TaskError(
          `${ctx.host}: could not remove the directory ${c.path}: ${r.stderr.toString('utf8').trim() || `exit ${r.code}`}`,
          'command',
        );
      return;
    }
    case 'serviceaccount.patch': {
      const drop = new Set(c.remove ?? []);
      const set = c.set;
      const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
      await writePullSecrets(
        conn,
        defined({ kubeconfig: c.kubeconfig, context: c.context, kubectl: c.kubectl }),
        {
          namespace: c.namespace,
          name: c.name,
          resourceVersion: c.resourceVersion,
          imagePullSecrets: c.imagePullSecrets,
        },
        // Re-run on the fresh list after a conflict: only the names the plan showed go.
        set !== undefined
          ? (current) => (same(current, set) ? null : set)
          : (current) => (current.some((n) => drop.has(n)) ? current.filter((n) => !drop.has(n)) : null),
      );
      return;
    }
    case 'image.remove':
      // By id: every tag of the image goes, not only the one named.
      if (c.runtime === 'docker') {
        try {
          await engineRemove(ctx.conn, c.socket ?? DOCKER_API_SOCKET, c.id);
        } catch (err) {
          throw new TaskError(`${ctx.host}: docker: ${(err as Error).message}`, 'command');
        }
        return;
      }
      if (c.runtime === 'containers') {
        try {
          await podmanRemove(ctx.conn, c.id);
        } catch (err) {
          throw new TaskError(`${ctx.host}: containers: ${(err as Error).message}`, 'command');
        }
        return;
      }
      try {
        await withCri(ctx, c.socket, (cri) => cri.removeImage(c.id), { finish: true });
      } catch (err) {
        throw criTaskError(err);
      }
      return;
    case 'custom':
      return c.apply(ctx);
  }
}

/**
 * A connection lost while a task's changes were applied, saying which of them were applied, which
 * one was in flight (it may or may not have taken effect on the node) and which never started.
 */
function lostDuring(
  e: ConnectionError,
  applied: string[],
  inFlight: Exclude<Change, RestartRequest>,
  all: readonly Change[],
): ConnectionError {
  const later = all
    .slice(all.indexOf(inFlight) + 1)
    .filter((c): c is Exclude<Change, RestartRequest> => c.op !== 'restart.request');
  const parts = [
    applied.length ? `applied: ${applied.join('; ')}` : 'nothing of this task applied',
    `in flight: ${inFlight.summary}`,
    ...(later.length ? [`not started: ${later.map((c) => c.summary).join('; ')}`] : []),
  ];
  return new ConnectionError(e.kind, e.host, `${e.message} (${parts.join(' — ')})`, { cause: e });
}

/**
 * Applies a plan's changes in order on one host; returns the handlers its restart requests ask for.
 * A failure after some changes names what was already applied.
 */
export async function applyChanges(
  ctx: TaskContext,
  changes: readonly Change[],
  snapshot: SnapshotSink | undefined,
  module: string,
): Promise<HandlerRequest[]> {
  const restarts = changes.filter((c): c is RestartRequest => c.op === 'restart.request');
  const restartConfigs = new Set(restarts.map((r) => r.config));
  const companions = new Set(restarts.flatMap((r) => r.companions ?? []));
  const handlers = restarts.map(restartHandler);
  const applied: string[] = [];
  // The files of all the task's changes in one read for their saves (each save still comes just
  // before its change, and each write compares on the node).
  const paths = [
    ...new Set(
      changes.flatMap((c) =>
        c.op === 'restart.request' ? [] : resourcesOf(c).flatMap((r) => (r.kind === 'file' ? [r.path] : [])),
      ),
    ),
  ];
  let prefetched: ReadBack | undefined;
  if (snapshot?.prefetch && paths.length > 1) {
    try {
      prefetched = await snapshot.prefetch(ctx.host, ctx.conn, paths);
    } catch (e) {
      throw new TaskError(
        `could not save ${paths.join(', ')} to the snapshot, so nothing was changed: ${(e as Error).message}`,
        'command',
      );
    }
  }
  for (const change of changes) {
    if (change.op === 'restart.request') continue;
    const resources = resourcesOf(change);
    let read: ReadBack | undefined;
    if (resources.length) {
      if (!snapshot)
        throw new TaskError(
          `no snapshot store: refusing to change ${resources.map(resourceName).join(', ')} without saving it first`,
          'refused',
        );
      try {
        // The restart a config's change asks for is recorded with it, so restore can ask for it too.
        const paths = new Set(resources.flatMap((r) => (r.kind === 'file' ? [r.path] : [])));
        const notify = handlers.filter((h, i) => paths.has(restarts[i]!.config));
        read =
          (await snapshot.save(
            ctx.host,
            ctx.conn,
            resources,
            { module, ...(notify.length ? { notify } : {}) },
            prefetched,
          )) ?? undefined;
      } catch (e) {
        throw new TaskError(
          `could not save ${resources.map(resourceName).join(', ')} to the snapshot, so nothing was changed: ${(e as Error).message}`,
          'command',
        );
      }
    }
    try {
      await applyOne(ctx, change, restartConfigs, companions, read);
    } catch (e) {
      if (e instanceof ConnectionError) throw lostDuring(e, applied, change, changes);
      const failure = failureOf(e);
      if (failure && applied.length)
        throw new TaskError(`${failure.message} (after applying: ${applied.join('; ')})`, failure.kind, failure.detail);
      throw e;
    }
    applied.push(change.summary);
  }
  return handlers;
}
