/**
 * Secret values known to this process by where they came from, not by where they are used: every
 * value decrypted from an Ansible Vault and every value an `env` or `file` lookup read. They are
 * born in loaders and in interpolation, far from the run's SecretSet and from validation messages,
 * and may sit under any variable name (`db_host: !vault |`), so neither the schema's `x-secret`
 * marks nor secret-sounding names would find them. One process runs one command, so a process-wide
 * set is the run's set; SecretSet and describeValue read it.
 */

const known = new Set<string>();
let version = 0;

/** Marks values as secret for every output of this process (strings and numbers; empty ones are no secret). */
export function markSecret(...values: unknown[]): void {
  for (const v of values) {
    const s = typeof v === 'number' || typeof v === 'bigint' ? String(v) : v;
    if (typeof s !== 'string' || s === '' || known.has(s)) continue;
    known.add(s);
    version++;
  }
}

/** Marks every string and number inside a value (a decrypted vars file: all of it is secret). */
export function markSecretLeaves(value: unknown): void {
  if (Array.isArray(value)) for (const v of value) markSecretLeaves(v);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) markSecretLeaves(v);
  else markSecret(value);
}

/** True when the value came from a vault or a lookup. */
export function isKnownSecret(value: unknown): boolean {
  if (typeof value === 'number' || typeof value === 'bigint') return known.has(String(value));
  return typeof value === 'string' && known.has(value);
}

/** The known secrets and a number that changes whenever one is added (for callers that cache). */
export function knownSecrets(): { values: ReadonlySet<string>; version: number } {
  return { values: known, version };
}
