import { setMaxListeners } from 'node:events';

/**
 * Cancellation: the first SIGINT/SIGTERM aborts the run's signal; no new task or change starts, a
 * change in flight (with the containerd restart it needs) finishes or rolls back, then the run ends
 * with 130/143. The reason carried by the signal is an `Interrupted`.
 */
export type StopSignal = 'SIGINT' | 'SIGTERM';

export class Interrupted extends Error {
  override readonly name = 'Interrupted';
  constructor(readonly signal: StopSignal) {
    super(`interrupted by ${signal}`);
  }
}

/** The signal name when `signal` was aborted by an interruption, else undefined. */
export function interruptedBy(signal: AbortSignal | undefined): StopSignal | undefined {
  if (!signal?.aborted) return undefined;
  return signal.reason instanceof Interrupted ? signal.reason.signal : 'SIGINT';
}

/** The conventional exit code of a process stopped by a signal: 128 + its number. */
export function signalExitCode(signal: StopSignal): number {
  return signal === 'SIGINT' ? 130 : 143;
}

/**
 * The run's stop controller. Every host listens to its signal at once (a lock wait, a CRI call in
 * flight, a retry's sleep), each listener removed when done: more than Node's default of 10
 * listeners is the normal case on a fleet, not a leak, and its warning must not reach the operator.
 */
export function runStopController(): AbortController {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}
