/**
 * Variables as `trustplay inventory` prints them: a secret-named variable's value and every value that
 * came from a vault or a lookup (at any depth, under any name) are replaced by `HIDDEN_VALUE`.
 */
import { isKnownSecret } from './known.js';

/** What a hidden variable value prints as (a string, so `ansible-inventory`-shaped JSON stays valid). */
export const HIDDEN_VALUE = '<secret, not shown>';

/** A value with everything decrypted from a vault or read by a lookup hidden, at any depth. */
function hideKnown(v: unknown): unknown {
  if (isKnownSecret(v)) return HIDDEN_VALUE;
  if (Array.isArray(v)) return v.map(hideKnown);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, hideKnown(x)]));
  return v;
}

/**
 * `vars` with secrets hidden: the value of every variable `isSecretName` names (unless null or empty,
 * which tell nothing), and every known secret value anywhere inside the others.
 */
export function hideSecretVars(
  vars: Record<string, unknown>,
  isSecretName: (name: string) => boolean,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(vars))
    out[k] = isSecretName(k) && v !== null && v !== '' ? HIDDEN_VALUE : hideKnown(v);
  return out;
}
