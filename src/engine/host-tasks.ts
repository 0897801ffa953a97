/**
 * One host's part of a play: its tasks in order, then its handlers; and one task on one host:
 * `when:`, arguments, gather → plan → apply → verify, and the result.
 */
import { ConnectionError, connectionLost } from '../connection/errors.js';
import type { Connection } from '../connection/connection.js';
import { forgetReadAhead, readAhead } from '../connection/read-files.js';
import { defined } from '../defined.js';
import { playVariables, type Play, type Task } from '../playbook/playbook.js';
import { resolveArgs } from './args.js';
import { applyChanges, mergeHandlerRequests } from './apply.js';
import { readPendingHandlers, updatePendingHandlers, type PendingHandler } from './pending-handlers.js';
import type { TaskResult } from './events.js';
import { Interrupted } from './cancel.js';
import { failureOf, TaskError } from './errors.js';
import { reported, type Change, type HandlerRequest, type TaskContext } from './module.js';
import type { HostRun, RunState } from './run-state.js';
import { tagged } from './selection.js';
import { evaluateWhen } from './when.js';

/**
 * Runs the play's tasks on one host, then the handlers they notified. `first`: the host is the first
 * of its batch (where `run_once` tasks run); `runOnceDone` tells the others which host ran them.
 */
export async function runHost(
  state: RunState,
  play: Play,
  host: string,
  first: boolean,
  runOnceDone: Map<number, string>,
): Promise<void> {
  const { opts, check } = state;
  const hr = state.host(host);
  const vars = { ...playVariables(opts.inventory, play, host, opts.extraVars ?? {}) };
  state.secrets.addVariables(vars);
  opts.reporter.event({ type: 'host-start', host });
  const hostEnd = () =>
    opts.reporter.event({ type: 'host-end', host, recap: hr.recap, failed: hr.failed, unreachable: hr.unreachable });
  let conn: Connection;
  try {
    conn = state.conns.get(host);
    // connectAndLock ran for this batch: the host is connected and locked, or its error is here.
    const early = state.connectErrors.get(host);
    if (early) throw early;
  } catch (e) {
    if (state.stopped()) {
      // Interrupted while connecting or waiting for the host's lock: not run, not unreachable.
      state.countNotRun(host, play.tasks.length);
      hostEnd();
      return;
    }
    hr.unreachable = true;
    hr.recap.unreachable++;
    state.emit(
      baseResult(host, play, { name: 'connect', module: 'connection' }, check, 'unreachable', 0, {
        message: (e as Error).message,
        kind: 'unreachable',
      }),
    );
    hostEnd();
    return;
  }
  await readAheadFor(state, play, conn, vars);
  const notified = new Set<string>();
  const notifiedBy = new Map<string, Task[]>();
  const internal = new Map<string, HandlerRequest>();
  // Handlers owed on the node: noted before a notifying task's changes, cleared once they ran.
  const owed = await owedHandlers(conn, play);
  for (const [name] of owed) notified.add(name);
  const noted = new Set<string>(owed.keys());
  const noteBeforeApply = (task: Task) => async (): Promise<string | undefined> => {
    const fresh = task.notify.filter((n) => !noted.has(n) && play.handlers.some((h) => h.name === n));
    if (!fresh.length) return undefined;
    try {
      await updatePendingHandlers(conn, {
        add: fresh.map((handler) => ({ play: play.name, handler, run: state.runId })),
      });
      for (const n of fresh) noted.add(n);
      return undefined;
    } catch (e) {
      return `could not note on the node that ${fresh.join(', ')} must run (${(e as Error).message}): if this run ends before its handlers, the next one will not run them`;
    }
  };
  for (let t = 0; t < play.tasks.length && !hr.out; t++) {
    const task = play.tasks[t]!;
    if (!tagged(task, opts.tags, opts.skipTags)) continue;
    const sig = state.stopped();
    if (sig) {
      state.record(hr, skip(host, play, task, check, `not run: interrupted by ${sig}`));
      state.countNotRun(host, 1);
      continue;
    }
    if (task.runOnce) {
      if (!first) {
        const on = runOnceDone.get(t) ?? 'the first host of the batch';
        state.record(hr, skip(host, play, task, check, `run_once: runs on ${on}`));
        continue;
      }
      runOnceDone.set(t, host);
    }
    const r = await runTask(state, hr, conn, task, vars, false, play.name, noteBeforeApply(task));
    if (r.status === 'changed') {
      for (const n of task.notify) {
        notified.add(n);
        notifiedBy.set(n, [...(notifiedBy.get(n) ?? []), task]);
      }
      for (const req of r.notify) internal.set(req.id, mergeHandlerRequests(internal.get(req.id), req));
    }
  }
  // Handlers: internal ones (containerd restarts) first, then the play's, in definition order.
  // An internal one completes a change already applied (a config.toml written, its verified
  // restart due), so it runs even when a later task failed or the run is being interrupted:
  // leaving the daemon behind its file is the state a node must never be left in.
  if (!hr.unreachable) {
    for (const req of internal.values()) {
      if (hr.unreachable) break;
      const task: Task = {
        name: req.name ?? req.id,
        module: req.module ?? '',
        args: req.args ?? {},
        when: [],
        tags: [],
        notify: [],
        ignoreErrors: false,
        runOnce: false,
        loc: play.loc,
      };
      await runTask(state, hr, conn, task, vars, true, play.name);
    }
    for (const h of play.handlers) {
      if (hr.out) break;
      if (!notified.has(h.name)) continue;
      const sig = state.stopped();
      if (sig) {
        const why = `not run: interrupted by ${sig}${noted.has(h.name) ? '; it stays owed, and the next run of this play runs it' : ''}`;
        state.record(hr, { ...skip(host, play, h, check, why), handler: true });
        state.countNotRun(host, 1);
        continue;
      }
      // In check mode a handler is notified by a change that was not made: what it would find
      // on the host is the state after that change, which does not exist, so gathering it
      // would report the wrong thing. Report that it would run instead.
      const by = notifiedBy.get(h.name) ?? [];
      if ((h.checkMode ?? check) && !by.some((t) => t.checkMode === false)) {
        const earlier = owed.get(h.name);
        const names = [
          ...by.map((t) => t.name),
          ...(earlier ? [`run ${earlier}, which ended before its handlers`] : []),
        ];
        state.record(hr, {
          ...baseResult(host, play, h, true, 'changed', 0),
          handler: true,
          changes: [`run (notified by: ${names.join(', ')})`],
        });
        continue;
      }
      const r = await runTask(state, hr, conn, h, vars, true, play.name);
      const ran = r.status === 'ok' || r.status === 'changed' || r.skipReason?.startsWith('when:') === true;
      if (noted.has(h.name) && ran && !(h.checkMode ?? check)) {
        // Ran (or decided by its `when` not to): no longer owed. A failure keeps it owed.
        await updatePendingHandlers(conn, { remove: [{ play: play.name, handler: h.name }] }).catch(() => undefined);
      }
    }
  }
  forgetReadAhead(conn);
  hostEnd();
}

/**
 * Registers the files the play's tasks will read on the host (`readsAhead`, from arguments alone:
 * a task's arguments depend on the host's variables only, which do not change during the play), so
 * the host's first read fetches them too. A task whose arguments do not resolve reads for itself.
 */
async function readAheadFor(
  state: RunState,
  play: Play,
  conn: Connection,
  vars: Record<string, unknown>,
): Promise<void> {
  const files = new Set<string>();
  for (const task of play.tasks) {
    if (!tagged(task, state.opts.tags, state.opts.skipTags)) continue;
    try {
      const mod = await state.opts.modules(task.module);
      if (!mod?.readsAhead) continue;
      for (const f of mod.readsAhead(resolveArgs(task.module, mod.schema, task.args, vars))) files.add(f);
    } catch {
      // The task reports its own trouble when it runs.
    }
  }
  readAhead(conn, [...files]);
}

/** Runs one task (or handler) on one host and records its result. */
async function runTask(
  state: RunState,
  hr: HostRun,
  conn: Connection,
  task: Task,
  vars: Record<string, unknown>,
  handler: boolean,
  playName: string,
  /** Runs just before the task's changes are applied; a returned sentence becomes a warning. */
  beforeApply?: () => Promise<string | undefined>,
): Promise<TaskResult & { notify: HandlerRequest[] }> {
  const { opts, secrets } = state;
  const host = hr.name;
  const taskCheck = task.checkMode ?? state.check;
  const t0 = Date.now();
  opts.reporter.event({ type: 'task-start', host, task: task.name, ...(handler ? { handler } : {}) });
  const warnings: string[] = [];
  const notify: HandlerRequest[] = [];
  const done = (status: TaskResult['status'], extra: Partial<TaskResult> = {}) => {
    const r: TaskResult = {
      ...baseResult(host, { name: playName }, task, taskCheck, status, Date.now() - t0),
      ...(handler ? { handler } : {}),
      ...extra,
    };
    state.record(hr, r);
    return { ...r, notify };
  };
  try {
    const whenVars = { ...vars, facts: hr.facts };
    for (const cond of task.when) {
      let ok: boolean;
      try {
        ok = evaluateWhen(cond, whenVars);
      } catch (e) {
        throw new TaskError((e as Error).message, 'refused');
      }
      if (!ok) return done('skipped', { skipReason: `when: ${String(cond)} is false` });
    }
    const elsewhere = opts.skipTask?.(task, host);
    if (elsewhere !== undefined) return done('skipped', { skipReason: elsewhere });
    // A handler follows changes (a restart): what was read ahead may be out of date.
    if (handler) forgetReadAhead(conn);
    const mod = await opts.modules(task.module);
    if (!mod) throw new TaskError(`module \`${task.module}\` is not available in this build of trustplay`, 'refused');
    const args = resolveArgs(task.module, mod.schema, task.args, vars);
    secrets.addArgs(mod.schema, args);
    const ctx: TaskContext = {
      conn,
      host,
      vars,
      check: taskCheck,
      warn: (m) => warnings.push(m),
      fact: (k, v) => {
        hr.facts[k] = v;
      },
      hostState: hr.hostState,
      ...defined({ signal: opts.signal, expiryWarningDays: opts.expiryWarningDays }),
      secret: (v) => secrets.add(v),
    };
    const observed = await mod.gather(ctx, args);
    const changes: Change[] = await mod.plan(args, observed, ctx);
    const shown = reported(changes);
    if (opts.snapshot && Object.keys(hr.facts).length) await opts.snapshot.facts(host, hr.facts);
    // Reads after this one ask the host again for what this task changes (or may: a verify; an
    // operation other than a file write or removal may change anything).
    if (mod.verify !== undefined) forgetReadAhead(conn);
    else if (shown.length > 0 && !taskCheck) forgetReadAhead(conn, filePathsOnly(changes));
    if (shown.length > 0 && !taskCheck) {
      // The last point where an interruption stops a change: past it, the task's changes are applied
      // as one (each file write is atomic; the restarts they ask for still run).
      const sig = state.stopped();
      if (sig && !handler) {
        state.countNotRun(host, 1);
        return done('skipped', {
          skipReason: `not run: interrupted by ${sig} before its changes (${shown.map((c) => c.summary).join('; ')})`,
          warnings,
        });
      }
      const w = await beforeApply?.();
      if (w) warnings.push(w);
      notify.push(...(await applyChanges(ctx, changes, opts.snapshot, task.module)));
    }
    // In check mode a verification would look at a state the unmade changes have not produced.
    const verifies = mod.verify !== undefined && (!taskCheck || (mod.verifyInCheck === true && shown.length === 0));
    const verified = verifies ? await mod.verify!(ctx, args, observed) : undefined;
    const data = { ...mod.result?.(observed), ...verified };
    return done(shown.length ? 'changed' : 'ok', {
      changes: shown.map((c) => c.summary),
      diffs: opts.diff ? shown.flatMap((c) => (c.diff ? [c.diff] : [])) : [],
      warnings,
      ...(Object.keys(data).length ? { data } : {}),
    });
  } catch (e) {
    if (e instanceof Interrupted) {
      // A read in flight (a long pull) cancelled by the first Ctrl-C: not run, not a failure.
      state.countNotRun(host, 1);
      return done('skipped', {
        skipReason: `not run: interrupted by ${e.signal} (its CRI call in flight was cancelled)`,
        warnings,
      });
    }
    // A failure that is really the host going away (a CRI call over a connection that died shows
    // as "cannot reach the socket") is told by one probe of the connection: unreachable, not failed.
    const lost = e instanceof ConnectionError ? e : await connectionLost(conn);
    const unreachable = lost !== undefined;
    const err: NonNullable<TaskResult['error']> = lost
      ? {
          message: lost === e ? lost.message : `${lost.message} (the task had failed first: ${(e as Error).message})`,
          kind: 'unreachable',
        }
      : (failureOf(e) ?? {
          message: (e as Error).message || String(e),
          kind: 'command',
          detail: (e as Error).stack ?? '',
        });
    return done(unreachable ? 'unreachable' : 'failed', {
      warnings,
      error: err,
      ...(task.ignoreErrors && !unreachable ? { ignored: true } : {}),
    });
  }
}

/** This play's handlers an earlier run owed the host (name → that run's id); none when the note cannot be read. */
async function owedHandlers(conn: Connection, play: Play): Promise<Map<string, string>> {
  if (!play.handlers.length) return new Map();
  let owed: PendingHandler[];
  try {
    owed = await readPendingHandlers(conn);
  } catch {
    // The connection's own trouble shows in the host's first task.
    return new Map();
  }
  return new Map(
    owed
      .filter((o) => o.play === play.name && play.handlers.some((h) => h.name === o.handler))
      .map((o) => [o.handler, o.run]),
  );
}

function baseResult(
  host: string,
  play: { name: string },
  task: { name: string; module: string },
  check: boolean,
  status: TaskResult['status'],
  durationMs: number,
  error?: TaskResult['error'],
): TaskResult {
  return {
    host,
    play: play.name,
    task: task.name,
    module: task.module,
    status,
    check,
    changes: [],
    diffs: [],
    warnings: [],
    durationMs,
    ...defined({ error }),
  };
}

function skip(host: string, play: Play, task: Task, check: boolean, reason: string): TaskResult {
  return { ...baseResult(host, play, task, check, 'skipped', 0), skipReason: reason };
}

/** The paths a plan's changes write or remove when it has no other kind of change; else undefined. */
function filePathsOnly(changes: readonly Change[]): string[] | undefined {
  const paths: string[] = [];
  for (const c of changes) {
    if (c.op !== 'file.write' && c.op !== 'file.remove') return undefined;
    paths.push(c.path);
  }
  return paths;
}
