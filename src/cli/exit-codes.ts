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

/** An error that ends the command with a given exit code and one message (caught once in main). */
export class ExitError extends Error {
  constructor(
    readonly code: ExitCode,
    message: string,
  ) {
    super(message);
    this.name = 'ExitError';
  }
}
