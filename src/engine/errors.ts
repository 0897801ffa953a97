/**
 * The failure a task reports: a value with a kind the exit code is derived from and one sentence a
 * person can act on. Dependency-free, so library code that knows nothing of the engine can still be
 * wrapped into it at the module boundary.
 */

/** Why a task failed, for exit codes and messages. */
export type TaskErrorKind =
  /** The module's own verification failed (image.pull.verify): drift in check mode. */
  | 'verification'
  /** Arguments or node state the module refuses (e.g. a config containerd would reject). */
  | 'refused'
  /** A command or I/O on the host failed. */
  | 'command'
  /** The host could not be reached. */
  | 'unreachable';

/** A failure a person can act on: one sentence in `message`, detail (raw output) in `detail`. */
export class TaskError extends Error {
  constructor(
    message: string,
    readonly kind: TaskErrorKind = 'command',
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'TaskError';
  }
}

/**
 * The shape every failure value has. Library code (kubectl, the CRI client) throws its own error
 * classes with this shape instead of the engine's `TaskError`; the engine reports either the same way.
 */
export interface Failure {
  message: string;
  kind: TaskErrorKind;
  detail?: string;
}

const KINDS: ReadonlySet<string> = new Set<TaskErrorKind>(['verification', 'refused', 'command', 'unreachable']);

/** The failure an exception carries, when it is one of ours (a TaskError or a library error of the same shape). */
export function failureOf(e: unknown): Failure | undefined {
  if (!(e instanceof Error)) return undefined;
  const kind = (e as { kind?: unknown }).kind;
  if (typeof kind !== 'string' || !KINDS.has(kind)) return undefined;
  const detail = (e as { detail?: unknown }).detail;
  return { message: e.message, kind: kind as TaskErrorKind, ...(typeof detail === 'string' ? { detail } : {}) };
}
