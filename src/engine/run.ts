/**
 * The executor. Plays run in order; within a play, hosts run in parallel (bounded by `forks`),
 * each host runs the play's tasks in order; `serial` makes batches; `max_fail_percentage` stops
 * the run. Handlers run once per host after the play's tasks, only when notified. A failed or
 * unreachable host stops its own tasks and takes no part in later plays; the others go on.
 *
 * Its parts: which hosts and tasks run (`selection.ts`), connecting and locking a batch
 * (`connect-lock.ts`), one host's tasks and handlers (`host-tasks.ts`), the recap and outcome
 * (`recap.ts`), and the state they share (`run-state.ts`). This file holds the plays and batches.
 */
import { randomUUID } from 'node:crypto';
import type { Connection } from '../connection/connection.js';
import type { HostConnectionSpec } from '../connection/index.js';
import { defined } from '../defined.js';
import type { Inventory } from '../playbook/inventory.js';
import type { Play, Playbook } from '../playbook/playbook.js';
import type { SnapshotSink } from './apply.js';
import type { StopSignal } from './cancel.js';
import { connectAndLock, releaseAll } from './connect-lock.js';
import type { HostRecap, Reporter, TaskResult } from './events.js';
import { runHost } from './host-tasks.js';
import type { AnyModule } from './module.js';
import type { Outcome } from './outcome.js';
import { finishRun } from './recap.js';
import { RunState } from './run-state.js';
import { batches, pool } from './selection.js';

export { batches, pool };

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
  /** `--expiry-warning`: modules that trust certificates warn about those expiring within this many days. */
  expiryWarningDays?: number;
  snapshot?: SnapshotSink;
  runId?: string;
  /** For tests and benchmarks: how connections are made. */
  connectionFactory?: (spec: HostConnectionSpec) => Connection;
  /**
   * Called with a batch's newly connected hosts before their first task (to take their locks);
   * returns the hosts that cannot go on, with why.
   */
  onConnect?: (conns: Connection[]) => Promise<Map<string, Error>>;
  onRelease?: (host: string, conn: Connection) => Promise<void>;
  /**
   * Aborted on Ctrl-C / SIGTERM: no new task or change starts; a task whose changes are being
   * applied finishes them, and the containerd restarts they need still run (with their health check
   * and rollback). Tasks and modules see it as `ctx.signal`.
   */
  signal?: AbortSignal;
  /**
   * Tasks this run leaves to someone else, with the reason they are skipped (`trustplay agent`:
   * k8s.sa.clear on every agent but the fleet leader). Undefined: the task runs.
   */
  skipTask?: (task: { module: string; name: string }, host: string) => string | undefined;
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

export async function runPlaybook(opts: RunOptions): Promise<RunResult> {
  const started = Date.now();
  const state = new RunState(opts, opts.runId ?? newRunId());
  opts.reporter.event({
    type: 'run-start',
    runId: state.runId,
    playbook: opts.playbook.file,
    check: state.check,
    hosts: [...state.hosts.keys()],
  });
  // Load every module the playbook uses while the SSH handshakes are in flight, not after them.
  const used = new Set(opts.playbook.plays.flatMap((p) => [...p.tasks, ...p.handlers].map((t) => t.module)));
  for (const m of used)
    void opts
      .modules(m)
      .then((mod) => mod?.warm?.())
      .catch(() => undefined);
  let stop: { aborted?: string; abortedInPlay?: string } = {};
  try {
    for (let p = 0; p < opts.playbook.plays.length && !stop.aborted; p++) {
      const play = opts.playbook.plays[p]!;
      const live = (opts.playHosts[p] ?? []).filter((h) => !state.host(h).out);
      if (state.stopped()) {
        for (const h of live) state.countNotRun(h, play.tasks.length);
        continue;
      }
      stop = await runPlay(state, play, live);
    }
  } finally {
    await releaseAll(state);
  }
  return finishRun(state, started, stop);
}

/** One play over its live hosts, batch by batch; says when max_fail_percentage stops the run. */
async function runPlay(
  state: RunState,
  play: Play,
  hosts: string[],
): Promise<{ aborted?: string; abortedInPlay?: string }> {
  const { opts } = state;
  let stop: { aborted?: string; abortedInPlay?: string } = {};
  opts.reporter.event({ type: 'play-start', play: play.name, hosts });
  for (const batch of batches(hosts, play.serial)) {
    await connectAndLock(state, batch);
    const runOnceDone = new Map<number, string>();
    await pool(batch, opts.forks ?? 50, async (host, index) => {
      if (state.stopped()) state.countNotRun(host, play.tasks.length);
      else await runHost(state, play, host, index === 0, runOnceDone);
    });
    const failedInBatch = batch.filter((h) => state.host(h).out).length;
    if (play.maxFailPercentage !== undefined && (failedInBatch * 100) / batch.length > play.maxFailPercentage) {
      stop = {
        aborted: `${failedInBatch} of ${batch.length} hosts failed in play "${play.name}", more than max_fail_percentage ${play.maxFailPercentage}%: stopping the run`,
        abortedInPlay: play.name,
      };
      break;
    }
  }
  opts.reporter.event({ type: 'play-end', play: play.name, ...defined({ aborted: stop.aborted }) });
  return stop;
}
