/**
 * The one shape for an outcome that may be refused: `ok: true` with the value's fields, or
 * `ok: false` with one sentence an operator can act on. Library code returns it instead of
 * throwing; a module turns a refusal into a TaskError at its boundary.
 */

/** A refusal: nothing should be written, `error` says why and what to do. */
export interface Refusal {
  ok: false;
  error: string;
}

/** Either the value (with `ok: true`) or a refusal. */
export type Result<T extends object> = ({ ok: true } & T) | Refusal;

/** A refusal with this sentence. */
export function refusal(error: string): Refusal {
  return { ok: false, error };
}
