/**
 * How a run ended, decided in one place: the exit code (README: exit codes), the one-line reason
 * and the hosts it names. The engine returns it and puts it in its run-end event; the CLI prints
 * `reason` and exits with `code`; reports carry it. Nothing else derives an exit code.
 */
import type { HostRecap } from './events.js';

/** Process exit codes, as documented in the README. */
export const ExitCode = {
  /** Success; for `check`: everything is in the desired state. */
  Ok: 0,
  /** At least one task failed. */
  Failed: 1,
  /** `check`: drift; `run --detailed-exitcode`: changes were made. */
  Drift: 2,
  /** Invalid input (playbook, inventory, arguments): nothing ran. */
  Invalid: 3,
  /** A host was unreachable (and nothing failed). */
  Unreachable: 4,
  /** Stopped by Ctrl-C (SIGINT): 128 + 2. */
  Interrupted: 130,
  /** Stopped by SIGTERM: 128 + 15. */
  Terminated: 143,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The end of a run: exit code, why (one line, ends with the code), and the hosts the reason names. */
export interface Outcome {
  code: ExitCode;
  reason: string;
  hosts: string[];
}

export interface OutcomeMode {
  check: boolean;
  /** `run --detailed-exitcode`: changes exit 2. */
  detailedExitcode?: boolean;
  /** The play `max_fail_percentage` stopped the run in. */
  abortedInPlay?: string;
  /** Ctrl-C / SIGTERM stopped the run: the signal and the tasks not run per host. */
  interrupted?: { signal: 'SIGINT' | 'SIGTERM'; notRun: Record<string, number> };
}

function list(hosts: string[]): string {
  return hosts.length > 5 ? `${hosts.slice(0, 5).join(', ')} and ${hosts.length - 5} more` : hosts.join(', ');
}

/** The outcome of a finished run from its per-host recap. */
export function outcomeOf(recap: Record<string, HostRecap>, mode: OutcomeMode): Outcome {
  const hosts = (pred: (r: HostRecap) => boolean) =>
    Object.entries(recap)
      .filter(([, r]) => pred(r))
      .map(([h]) => h);
  // In check mode a failed verification is drift (exit 2), not a failure.
  if (mode.interrupted) {
    const code = mode.interrupted.signal === 'SIGINT' ? ExitCode.Interrupted : ExitCode.Terminated;
    const left = Object.entries(mode.interrupted.notRun).filter(([, n]) => n > 0);
    const tasks = left.reduce((a, [, n]) => a + n, 0);
    const notRun = left.map(([h]) => h);
    return {
      code,
      reason: `interrupted by ${mode.interrupted.signal}: ${
        tasks ? `${tasks} task${tasks === 1 ? '' : 's'} not run on ${list(notRun)}` : 'every task had run'
      }; changes in flight were finished or rolled back (exit ${code})`,
      hosts: notRun,
    };
  }
  const failed = hosts((r) => r.failed - (mode.check ? r.verifyFailed : 0) > 0);
  const unreachable = hosts((r) => r.unreachable > 0);
  if (failed.length || mode.abortedInPlay !== undefined) {
    const parts = [
      ...(failed.length ? [`failed on ${list(failed)}`] : []),
      ...(unreachable.length ? [`unreachable: ${list(unreachable)}`] : []),
    ].join('; ');
    const head =
      mode.abortedInPlay !== undefined
        ? `stopped by max_fail_percentage in play "${mode.abortedInPlay}"${parts ? `: ${parts}` : ''}`
        : parts;
    return { code: ExitCode.Failed, reason: `${head} (exit 1)`, hosts: [...failed, ...unreachable] };
  }
  if (unreachable.length)
    return { code: ExitCode.Unreachable, reason: `unreachable: ${list(unreachable)} (exit 4)`, hosts: unreachable };
  const changed = hosts((r) => r.changed > 0);
  if (mode.check) {
    const drift = hosts((r) => r.changed > 0 || r.verifyFailed > 0);
    if (drift.length) return { code: ExitCode.Drift, reason: `drift on ${list(drift)} (exit 2)`, hosts: drift };
    return { code: ExitCode.Ok, reason: 'in desired state: nothing would change', hosts: [] };
  }
  if (mode.detailedExitcode && changed.length)
    return {
      code: ExitCode.Drift,
      reason: `changed ${list(changed)} (exit 2, --detailed-exitcode)`,
      hosts: changed,
    };
  return { code: ExitCode.Ok, reason: 'success', hosts: [] };
}

/** The outcome of a command that stopped on invalid input before anything ran. */
export function invalidInputOutcome(reason: string): Outcome {
  return { code: ExitCode.Invalid, reason: `${reason} (exit 3)`, hosts: [] };
}
