/** The end of a run: the recap per host, the outcome (exit code and why), and the run-end event. */
import { defined } from '../defined.js';
import type { HostRecap } from './events.js';
import { outcomeOf } from './outcome.js';
import type { RunResult } from './run.js';
import type { RunState } from './run-state.js';

/** Builds the run's result and emits run-end (the one place a run's outcome is decided and reported). */
export function finishRun(
  state: RunState,
  started: number,
  stop: { aborted?: string | undefined; abortedInPlay?: string | undefined },
): RunResult {
  const { opts, check } = state;
  const recap: Record<string, HostRecap> = {};
  for (const [h, hr] of state.hosts) recap[h] = hr.recap;
  const signal = state.stopped();
  const interrupted = signal ? { signal, notRun: Object.fromEntries(state.notRun) } : undefined;
  const outcome = outcomeOf(recap, {
    check,
    ...(opts.detailedExitcode ? { detailedExitcode: true } : {}),
    ...defined({ abortedInPlay: stop.abortedInPlay, interrupted }),
  });
  const durationMs = Date.now() - started;
  opts.reporter.event({
    type: 'run-end',
    recap,
    durationMs,
    exitCode: outcome.code,
    outcome,
    check,
    ...defined({ interrupted }),
  });
  const hosts = [...state.hosts.values()];
  return {
    runId: state.runId,
    results: state.results,
    recap,
    failedHosts: new Set(hosts.filter((h) => h.failed).map((h) => h.name)),
    unreachableHosts: new Set(hosts.filter((h) => h.unreachable).map((h) => h.name)),
    ...(stop.aborted ? { aborted: stop.aborted } : {}),
    ...defined({ interrupted }),
    durationMs,
    outcome,
  };
}
