/**
 * Secrets as the schemas mark them: an argument with `x-secret: true` (as Ansible's `no_log`), or
 * one whose key names a secret (`password`, `token`, `auth`, ...), so a module that forgets the
 * mark is still covered.
 */
import { isSecretKey, MASK } from './keys.js';
import { isKnownSecret } from './known.js';

type Schema = Record<string, unknown>;

function branches(schema: Schema): Schema[] {
  return [...((schema['anyOf'] as Schema[] | undefined) ?? []), ...((schema['oneOf'] as Schema[] | undefined) ?? [])];
}

function marked(schema: Schema | undefined): boolean {
  return !!schema && (schema['x-secret'] === true || branches(schema).some((b) => b['x-secret'] === true));
}

/** The schema of property `k` (also inside anyOf/oneOf branches), or of list items for a number. */
function child(schema: Schema | undefined, k: string | number): Schema | undefined {
  if (!schema) return undefined;
  if (typeof k === 'number') return schema['items'] as Schema | undefined;
  for (const s of [schema, ...branches(schema)]) {
    const p = (s['properties'] as Record<string, Schema> | undefined)?.[k];
    if (p) return p;
  }
  return undefined;
}

/** Every scalar inside a value, as text. */
function leaves(value: unknown): string[] {
  if (typeof value === 'string') return value === '' ? [] : [value];
  if (typeof value === 'number' || typeof value === 'bigint') return [String(value)];
  if (Array.isArray(value)) return value.flatMap(leaves);
  if (value && typeof value === 'object') return Object.values(value).flatMap(leaves);
  return [];
}

/** The secret values inside validated arguments: at `x-secret` positions of the schema, or under secret keys. */
export function secretArgValues(schema: Schema | undefined, value: unknown, key = ''): string[] {
  if (marked(schema) || (key !== '' && isSecretKey(key) && typeof value !== 'object')) return leaves(value);
  if (Array.isArray(value)) return value.flatMap((v) => secretArgValues(child(schema, 0), v, key));
  if (value && typeof value === 'object')
    return Object.entries(value).flatMap(([k, v]) => secretArgValues(child(schema, k), v, k));
  return [];
}

/** Whether the value at `path` inside data validated by `schema` is a secret. */
export function isSecretPath(schema: Schema | undefined, path: readonly (string | number)[]): boolean {
  let cur: Schema | undefined = schema;
  for (const seg of path) {
    if (marked(cur)) return true;
    if (typeof seg === 'string' && isSecretKey(seg)) return true;
    cur = child(cur, seg);
  }
  return marked(cur);
}

/** Strings up to this length may be quoted in messages (`style` must be one of ..., not "hsots"); longer ones only by type. */
export const QUOTABLE_LENGTH = 20;

/**
 * How a validation message names a wrong value: by type only for a secret or a long string (a
 * token pasted in the wrong place must not reach a terminal or a CI log), quoted when short.
 */
export function describeValue(v: unknown, secret: boolean): string {
  // A value from a vault or a lookup is a secret wherever it was placed.
  if (isKnownSecret(v)) secret = true;
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') {
    if (secret) return 'a string';
    return v.length > QUOTABLE_LENGTH ? `a string of ${v.length} characters` : `the string ${JSON.stringify(v)}`;
  }
  if (typeof v === 'boolean') return secret ? 'a boolean' : `boolean ${String(v)}`;
  if (typeof v === 'number' || typeof v === 'bigint') return secret ? 'a number' : `number ${String(v)}`;
  return typeof v;
}

/**
 * A located message whose source line stops at its column, then the mask: the value there is a
 * secret (or too long to quote), and the caret display must not print it.
 */
export function maskSource<D extends { col: number; source?: string }>(d: D): D {
  return d.source === undefined ? d : { ...d, source: d.source.slice(0, Math.max(0, d.col - 1)) + MASK };
}
