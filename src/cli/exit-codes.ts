/** Process exit codes (decided in src/engine/outcome.ts) and the error that ends a command with one. */
import { ExitCode } from '../engine/outcome.js';

export { ExitCode } from '../engine/outcome.js';

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
