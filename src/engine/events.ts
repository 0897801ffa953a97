/** What the engine reports while it runs, and the results it returns. Reporters consume these. */
import type { TaskErrorKind } from './errors.js';
import type { Diff } from './module.js';
import type { Outcome } from './outcome.js';

export type TaskStatus = 'ok' | 'changed' | 'failed' | 'skipped' | 'unreachable';

/** The outcome of one task (or handler) on one host. */
export interface TaskResult {
  host: string;
  play: string;
  task: string;
  module: string;
  handler?: boolean;
  status: TaskStatus;
  /** True in check mode: `changed` means "would change". */
  check: boolean;
  /** One line per change (no secrets). */
  changes: string[];
  diffs: Diff[];
  warnings: string[];
  error?: { message: string; kind: TaskErrorKind; detail?: string };
  /** A failure ignored by `ignore_errors`. */
  ignored?: boolean;
  /** Why a task was skipped. */
  skipReason?: string;
  /** Module-specific output (e.g. resolved image digest). */
  data?: Record<string, unknown>;
  durationMs: number;
}

/** Per-host counts for the final recap. */
export interface HostRecap {
  ok: number;
  changed: number;
  failed: number;
  skipped: number;
  unreachable: number;
  ignored: number;
  /** Verification failures (count as drift in check mode). */
  verifyFailed: number;
}

export type RunEvent =
  | { type: 'run-start'; runId: string; playbook: string; check: boolean; hosts: string[] }
  | { type: 'play-start'; play: string; hosts: string[] }
  | { type: 'host-start'; host: string }
  /** Something the operator should see about a host outside its tasks (waiting for its lock, a stale lock broken). */
  | { type: 'host-note'; host: string; message: string; waiting?: boolean }
  | { type: 'task-start'; host: string; task: string; handler?: boolean }
  | { type: 'task-result'; result: TaskResult }
  | { type: 'host-end'; host: string; recap: HostRecap; failed: boolean; unreachable: boolean }
  | { type: 'play-end'; play: string; aborted?: string }
  | {
      type: 'run-end';
      recap: Record<string, HostRecap>;
      durationMs: number;
      /** The same as `outcome.code`. */
      exitCode: number;
      outcome: Outcome;
      check: boolean;
      /** Set when Ctrl-C / SIGTERM stopped the run: the signal and the tasks not run per host. */
      interrupted?: { signal: string; notRun: Record<string, number> };
    };

export interface Reporter {
  event(e: RunEvent): void;
  /** Flush and stop rendering. */
  close?(): Promise<void>;
}

export function emptyRecap(): HostRecap {
  return { ok: 0, changed: 0, failed: 0, skipped: 0, unreachable: 0, ignored: 0, verifyFailed: 0 };
}
