/**
 * The executor. Plays run in order; within a play, hosts run in parallel (bounded by `forks`),
 * each host runs the play's tasks in order; `serial` makes batches; `max_fail_percentage` stops
 * the run. Handlers run once per host after the play's tasks, only when notified. A failed or
 * unreachable host stops its own tasks and takes no part in later plays; the others go on.
 */
import { randomUUID } from 'node:crypto';
import { ConnectionError } from '../connection/errors.js';
import type { Connection } from '../connection/connection.js';
import type { HostConnectionSpec } from '../connection/index.js';
import type { Inventory } from '../playbook/inventory.js';
import { playVariables, type Play, type Playbook, type Task } from '../playbook/playbook.js';
import { SecretSet } from '../secrets/index.js';
import { resolveArgs } from './args.js';
import { ConnectionPool } from './connect.js';
import { emptyRecap, type HostRecap, type Reporter, type TaskResult } from './events.js';
import { failureOf, TaskError } from './errors.js';
import { applyChanges, type SnapshotSink } from './apply.js';
import { reported, type AnyModule, type Change, type HandlerRequest, type TaskContext } from './module.js';
import { outcomeOf, type Outcome } from './outcome.js';
import { evaluateWhen } from './when.js';
import { interruptedBy, type StopSignal } from './cancel.js';

/** Looks a module up by the name a task uses. */
export type ModuleRegistry = (name: string) => Promise<AnyModule | undefined>;

export type { SnapshotSink };

export interface RunOptions {
  playbook: Playbook;
  inventory: Inventory;
  /** Hosts of each play (already limited). */
  playHosts: string[][];
  modules: ModuleRegistry;
  reporter: Reporter;
  check?: boolean;
  /** `run --detailed-exitcode`: a run that changed something ends with exit 2. */
  detailedExitcode?: boolean;
  diff?: boolean;
  forks?: number;
  tags?: string[];
  skipTags?: string[];
  extraVars?: Record<string, unknown>;
  acceptNewHostKeys?: boolean;
  snapshot?: SnapshotSink;
  runId?: string;
  /** For tests and benchmarks: how connections are made. */
  connectionFactory?: (spec: HostConnectionSpec) => Connection;
  /** Called with each host's connection before its first task (e.g. to take a lock). */
  onConnect?: (host: string, conn: Connection) => Promise<void>;
  onRelease?: (host: string, conn: Connection) => Promise<void>;
  /**
   * Aborted on Ctrl-C / SIGTERM: no new task or change starts; a task whose changes are being
   * applied finishes them, and the containerd restarts they need still run (with their health check
   * and rollback). Tasks and modules see it as `ctx.signal`.
   */
  signal?: AbortSignal;
}

/** What an interrupted run did not do. */
export interface InterruptedRun {
  signal: StopSignal;
  /** Tasks not run, per host. */
  notRun: Record<string, number>;
}

export interface RunResult {
  runId: string;
  results: TaskResult[];
  recap: Record<string, HostRecap>;
  failedHosts: Set<string>;
  unreachableHosts: Set<string>;
  aborted?: string;
  interrupted?: InterruptedRun;
  durationMs: number;
  /** Exit code, reason and hosts: the same the run-end event carried. */
  outcome: Outcome;
}

/** A run's id: sortable by time, unique enough to name its snapshot and its host locks. */
export function newRunId(): string {
  return `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`;
}

/** Run `fn` over items with at most `limit` in flight. */
export async function pool<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
}

/** Hosts of a play split into `serial` batches (number, percentage, or a list of them; the last size repeats). */
export function batches(hosts: string[], serial: Play['serial']): string[][] {
  if (serial === undefined) return hosts.length ? [hosts] : [];
  const sizes = (Array.isArray(serial) ? serial : [serial]).map((s) =>
    typeof s === 'number' ? s : Math.max(1, Math.floor((hosts.length * Number(String(s).replace('%', ''))) / 100)),
  );
  const out: string[][] = [];
  let i = 0;
  let k = 0;
  while (i < hosts.length) {
    const size = Math.max(1, sizes[Math.min(k, sizes.length - 1)]!);
    out.push(hosts.slice(i, i + size));
    i += size;
    k++;
  }
  return out;
}

function tagged(task: Task, tags?: string[], skipTags?: string[]): boolean {
  if (skipTags?.some((t) => task.tags.includes(t))) return false;
  if (!tags?.length) return true;
  return task.tags.includes('always') || tags.some((t) => task.tags.includes(t) || t === 'all');
}

class HostRun {
  readonly recap = emptyRecap();
  failed = false;
  unreachable = false;
  readonly hostState = new Map<string, unknown>();
  readonly facts: Record<string, unknown> = {};
  connected = false;
  constructor(readonly name: string) {}
}

export async function runPlaybook(opts: RunOptions): Promise<RunResult> {
  const started = Date.now();
  const runId = opts.runId ?? newRunId();
  const check = opts.check ?? false;
  const conns = new ConnectionPool(
    opts.inventory,
    {
      ...(opts.acceptNewHostKeys !== undefined ? { acceptNewHostKeys: opts.acceptNewHostKeys } : {}),
      onSecret: (v) => secrets.add(v),
    },
    opts.connectionFactory,
  );
  const hosts = new Map<string, HostRun>();
  const results: TaskResult[] = [];
  // Every result passes through this set's maskers before any reporter sees it.
  const secrets = new SecretSet();
  const allHosts = [...new Set(opts.playHosts.flat())];
  for (const h of allHosts) hosts.set(h, new HostRun(h));
  opts.reporter.event({ type: 'run-start', runId, playbook: opts.playbook.file, check, hosts: allHosts });
  // Load every module the playbook uses while the SSH handshakes are in flight, not after them.
  const used = new Set(opts.playbook.plays.flatMap((p) => [...p.tasks, ...p.handlers].map((t) => t.module)));
  for (const m of used) void opts.modules(m).catch(() => undefined);
  let aborted: string | undefined;
  let abortedInPlay: string | undefined;
  const stopped = (): StopSignal | undefined => interruptedBy(opts.signal);
  const notRun = new Map<string, number>();
  const countNotRun = (host: string, n: number) => {
    if (n > 0) notRun.set(host, (notRun.get(host) ?? 0) + n);
  };

  const emit = (r: TaskResult) => {
    const m = (t: string) => secrets.maskText(t);
    const clean: TaskResult = {
      ...r,
      changes: r.changes.map(m),
      diffs: r.diffs.map((d) => secrets.maskDiff(d)),
      warnings: r.warnings.map(m),
      ...(r.error
        ? {
            error: {
              ...r.error,
              message: m(r.error.message),
              ...(r.error.detail !== undefined ? { detail: m(r.error.detail) } : {}),
            },
          }
        : {}),
    };
    results.push(clean);
    opts.reporter.event({ type: 'task-result', result: clean });
  };

  /** Connection or lock failures of hosts connected ahead of their batch, reported in the host's play. */
  const connectErrors = new Map<string, Error>();
  /**
   * Connects a batch's new hosts in parallel, then takes their host locks one at a time in one global
   * order (host name). Two runs over overlapping fleets then never each hold a lock the other waits
   * for: taken in parallel, run A held node9 waiting for node2 while run B held node2 waiting for
   * node9, and both waited out --lock-timeout (found by the chaos suite's two concurrent runs).
   */
  async function connectAndLock(batch: string[]): Promise<void> {
    const fresh = batch.filter((h) => !hosts.get(h)!.connected && !connectErrors.has(h));
    await pool(fresh, opts.forks ?? 50, async (h) => {
      if (stopped()) return;
      try {
        await conns.get(h).connect();
        hosts.get(h)!.connected = true;
      } catch (e) {
        connectErrors.set(h, e as Error);
      }
    });
    for (const h of [...fresh].sort()) {
      if (stopped() || !hosts.get(h)!.connected) continue;
      try {
        await opts.onConnect?.(h, conns.get(h));
      } catch (e) {
        connectErrors.set(h, e as Error);
      }
    }
  }

  try {
    for (let p = 0; p < opts.playbook.plays.length && !aborted; p++) {
      const play = opts.playbook.plays[p]!;
      if (stopped()) {
        for (const h of opts.playHosts[p] ?? [])
          if (!hosts.get(h)!.failed && !hosts.get(h)!.unreachable) countNotRun(h, play.tasks.length);
        continue;
      }
      const playHosts = (opts.playHosts[p] ?? []).filter((h) => !hosts.get(h)!.failed && !hosts.get(h)!.unreachable);
      opts.reporter.event({ type: 'play-start', play: play.name, hosts: playHosts });
      for (const batch of batches(playHosts, play.serial)) {
        await connectAndLock(batch);
        const runOnceDone = new Map<number, string>();
        await pool(batch, opts.forks ?? 50, async (host, index) => {
          if (stopped()) countNotRun(host, play.tasks.length);
          else await runHost(host, index === 0, runOnceDone);
        });
        const failedInBatch = batch.filter((h) => hosts.get(h)!.failed || hosts.get(h)!.unreachable).length;
        if (play.maxFailPercentage !== undefined && (failedInBatch * 100) / batch.length > play.maxFailPercentage) {
          aborted = `${failedInBatch} of ${batch.length} hosts failed in play "${play.name}", more than max_fail_percentage ${play.maxFailPercentage}%: stopping the run`;
          abortedInPlay = play.name;
          break;
        }
      }
      opts.reporter.event({ type: 'play-end', play: play.name, ...(aborted ? { aborted } : {}) });

      async function runHost(host: string, first: boolean, runOnceDone: Map<number, string>): Promise<void> {
        const hr = hosts.get(host)!;
        const vars = { ...playVariables(opts.inventory, play, host, opts.extraVars ?? {}) };
        secrets.addVariables(vars);
        opts.reporter.event({ type: 'host-start', host });
        let conn: Connection;
        try {
          conn = conns.get(host);
          // connectAndLock ran for this batch: the host is connected and locked, or its error is here.
          const early = connectErrors.get(host);
          if (early) throw early;
        } catch (e) {
          if (stopped()) {
            // Interrupted while connecting or waiting for the host's lock: not run, not unreachable.
            countNotRun(host, play.tasks.length);
            opts.reporter.event({ type: 'host-end', host, recap: hr.recap, failed: false, unreachable: false });
            return;
          }
          hr.unreachable = true;
          hr.recap.unreachable++;
          emit(
            baseResult(host, play, { name: 'connect', module: 'connection' }, check, 'unreachable', 0, {
              message: (e as Error).message,
              kind: 'unreachable',
            }),
          );
          opts.reporter.event({ type: 'host-end', host, recap: hr.recap, failed: false, unreachable: true });
          return;
        }
        const notified = new Set<string>();
        const notifiedBy = new Map<string, Task[]>();
        const internal = new Map<string, HandlerRequest>();
        for (let t = 0; t < play.tasks.length && !hr.failed && !hr.unreachable; t++) {
          const task = play.tasks[t]!;
          if (!tagged(task, opts.tags, opts.skipTags)) continue;
          const sig = stopped();
          if (sig) {
            record(hr, skip(host, play, task, check, `not run: interrupted by ${sig}`));
            countNotRun(host, 1);
            continue;
          }
          if (task.runOnce) {
            if (!first) {
              record(
                hr,
                skip(
                  host,
                  play,
                  task,
                  check,
                  `run_once: runs on ${runOnceDone.get(t) ?? 'the first host of the batch'}`,
                ),
              );
              continue;
            }
            runOnceDone.set(t, host);
          }
          const r = await runTask(hr, conn, task, vars, false, play.name);
          if (r.status === 'changed') {
            for (const n of task.notify) {
              notified.add(n);
              notifiedBy.set(n, [...(notifiedBy.get(n) ?? []), task]);
            }
            for (const req of r.notify) internal.set(req.id, req);
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
            await runTask(hr, conn, task, vars, true, play.name);
          }
          for (const h of play.handlers) {
            if (hr.failed || hr.unreachable) break;
            if (!notified.has(h.name)) continue;
            const sig = stopped();
            if (sig) {
              record(hr, { ...skip(host, play, h, check, `not run: interrupted by ${sig}`), handler: true });
              countNotRun(host, 1);
              continue;
            }
            // In check mode a handler is notified by a change that was not made: what it would find
            // on the host is the state after that change, which does not exist, so gathering it
            // would report the wrong thing. Report that it would run instead.
            if ((h.checkMode ?? check) && !notifiedBy.get(h.name)?.some((t) => t.checkMode === false)) {
              const r: TaskResult = {
                ...baseResult(host, play, h, true, 'changed', 0),
                handler: true,
                changes: [
                  `run (notified by: ${notifiedBy
                    .get(h.name)!
                    .map((t) => t.name)
                    .join(', ')})`,
                ],
              };
              record(hr, r);
              continue;
            }
            await runTask(hr, conn, h, vars, true, play.name);
          }
        }
        opts.reporter.event({
          type: 'host-end',
          host,
          recap: hr.recap,
          failed: hr.failed,
          unreachable: hr.unreachable,
        });
      }
    }
  } finally {
    await Promise.allSettled(
      [...hosts.values()]
        .filter((h) => h.connected)
        .map(async (h) => {
          await opts.onRelease?.(h.name, conns.get(h.name));
        }),
    );
    await conns.closeAll();
  }

  async function runTask(
    hr: HostRun,
    conn: Connection,
    task: Task,
    vars: Record<string, unknown>,
    handler: boolean,
    playName: string,
  ): Promise<TaskResult & { notify: HandlerRequest[] }> {
    const host = hr.name;
    const taskCheck = task.checkMode ?? check;
    const t0 = Date.now();
    opts.reporter.event({ type: 'task-start', host, task: task.name, ...(handler ? { handler } : {}) });
    const base = (status: TaskResult['status'], extra: Partial<TaskResult> = {}): TaskResult => ({
      ...baseResult(host, { name: playName }, task, taskCheck, status, Date.now() - t0),
      ...(handler ? { handler } : {}),
      ...extra,
    });
    const warnings: string[] = [];
    const notify: HandlerRequest[] = [];
    try {
      const whenVars = { ...vars, facts: hr.facts };
      for (const cond of task.when) {
        let ok: boolean;
        try {
          ok = evaluateWhen(cond, whenVars);
        } catch (e) {
          throw new TaskError((e as Error).message, 'refused');
        }
        if (!ok) {
          const r = base('skipped', { skipReason: `when: ${String(cond)} is false` });
          record(hr, r);
          return { ...r, notify };
        }
      }
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
        ...(opts.signal ? { signal: opts.signal } : {}),
        secret: (v) => secrets.add(v),
      };
      const observed = await mod.gather(ctx, args);
      const changes: Change[] = await mod.plan(args, observed, ctx);
      const shown = reported(changes);
      if (opts.snapshot && Object.keys(hr.facts).length) await opts.snapshot.facts(host, hr.facts);
      if (shown.length > 0 && !taskCheck) {
        // The last point where an interruption stops a change: past it, the task's changes are applied
        // as one (each file write is atomic; the restarts they ask for still run).
        const sig = stopped();
        if (sig && !handler) {
          const r = base('skipped', {
            skipReason: `not run: interrupted by ${sig} before its changes (${shown.map((c) => c.summary).join('; ')})`,
            warnings,
          });
          countNotRun(host, 1);
          record(hr, r);
          return { ...r, notify };
        }
        notify.push(...(await applyChanges(ctx, changes, opts.snapshot, task.module)));
      }
      // In check mode a verification would look at a state the unmade changes have not produced.
      const verifies = mod.verify !== undefined && (!taskCheck || (mod.verifyInCheck === true && shown.length === 0));
      const verified = verifies ? await mod.verify!(ctx, args, observed) : undefined;
      const data = { ...mod.result?.(observed), ...verified };
      const r = base(shown.length ? 'changed' : 'ok', {
        changes: shown.map((c) => c.summary),
        diffs: opts.diff ? shown.flatMap((c) => (c.diff ? [c.diff] : [])) : [],
        warnings,
        ...(Object.keys(data).length ? { data } : {}),
      });
      record(hr, r);
      return { ...r, notify };
    } catch (e) {
      const unreachable = e instanceof ConnectionError;
      const err: NonNullable<TaskResult['error']> = unreachable
        ? { message: (e as Error).message, kind: 'unreachable' }
        : (failureOf(e) ?? {
            message: (e as Error).message || String(e),
            kind: 'command',
            detail: (e as Error).stack ?? '',
          });
      const r = base(unreachable ? 'unreachable' : 'failed', {
        warnings,
        error: err,
        ...(task.ignoreErrors && !unreachable ? { ignored: true } : {}),
      });
      record(hr, r);
      return { ...r, notify };
    }
  }

  function record(hr: HostRun, r: TaskResult): void {
    switch (r.status) {
      case 'ok':
        hr.recap.ok++;
        break;
      case 'changed':
        hr.recap.changed++;
        break;
      case 'skipped':
        hr.recap.skipped++;
        break;
      case 'unreachable':
        hr.recap.unreachable++;
        hr.unreachable = true;
        break;
      case 'failed':
        if (r.ignored) hr.recap.ignored++;
        else {
          hr.recap.failed++;
          if (r.error?.kind === 'verification') hr.recap.verifyFailed++;
          hr.failed = true;
        }
        break;
    }
    emit(r);
  }

  const recap: Record<string, HostRecap> = {};
  for (const [h, hr] of hosts) recap[h] = hr.recap;
  const signal = stopped();
  const interrupted = signal ? { signal, notRun: Object.fromEntries(notRun) } : undefined;
  const outcome = outcomeOf(recap, {
    check,
    ...(opts.detailedExitcode ? { detailedExitcode: true } : {}),
    ...(abortedInPlay !== undefined ? { abortedInPlay } : {}),
    ...(interrupted ? { interrupted } : {}),
  });
  const durationMs = Date.now() - started;
  opts.reporter.event({
    type: 'run-end',
    recap,
    durationMs,
    exitCode: outcome.code,
    outcome,
    check,
    ...(interrupted ? { interrupted } : {}),
  });
  return {
    runId,
    results,
    recap,
    failedHosts: new Set([...hosts.values()].filter((h) => h.failed).map((h) => h.name)),
    unreachableHosts: new Set([...hosts.values()].filter((h) => h.unreachable).map((h) => h.name)),
    ...(aborted ? { aborted } : {}),
    ...(interrupted ? { interrupted } : {}),
    durationMs,
    outcome,
  };
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
    ...(error ? { error } : {}),
  };
}

function skip(host: string, play: Play, task: Task, check: boolean, reason: string): TaskResult {
  return { ...baseResult(host, play, task, check, 'skipped', 0), skipReason: reason };
}
