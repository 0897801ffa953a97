/**
 * The value model of a TOML document: a plain, JSON-like view of what @iarna/toml parses (so two
 * documents compare with isDeepStrictEqual), value formatting, and the check every edit runs on its
 * own result (re-parse and compare with the intended model).
 */
import TOML from '@iarna/toml';
import { isDeepStrictEqual } from 'node:util';

/** A value this editor can write: strings, booleans, integers and (nested) arrays of them. */
export type TomlValue = string | boolean | number | TomlValue[];

/** A plain, JSON-like view of a parsed TOML document (dates and big integers made comparable). */
export type PlainTable = { [key: string]: PlainValue };
/** One value of a `PlainTable`. */
export type PlainValue = string | number | boolean | null | PlainValue[] | PlainTable;

/** Thrown when an edit's result does not parse or differs from the intended model: a bug, never user error. */
export class TomlEditInternalError extends Error {
  override name = 'TomlEditInternalError';
}

/** Converts @iarna/toml output into plain objects that compare with isDeepStrictEqual. */
export function toPlain(value: unknown): PlainValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') return `bigint:${value.toString()}`;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (value instanceof Date) return `date:${String(value)}`;
  if (Array.isArray(value)) return value.map(toPlain);
  if (typeof value === 'object') {
    const out: PlainTable = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = toPlain(v);
    return out;
  }
  return String(value);
}

// A fleet's nodes usually hold the same config.toml, and one task parses it several times (inspect,
// edit, self-verify): parsing is the module's main CPU cost, so recent texts are parsed once.
export const parsed = new Map<string, PlainTable>();
export const PARSE_CACHE = 32;

/** Parses TOML into a plain table; throws @iarna/toml's error (with line/col) when the text is invalid. */
export function parsePlain(text: string): PlainTable {
  let doc = parsed.get(text);
  if (!doc) {
    doc = toPlain(TOML.parse(text)) as PlainTable;
    if (parsed.size >= PARSE_CACHE) parsed.delete(parsed.keys().next().value!);
    parsed.set(text, doc);
  }
  // Callers may change what they get: each gets its own copy.
  return structuredClone(doc);
}

export function isTable(v: PlainValue | undefined): v is PlainTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads the value at `path` in a plain table, or undefined. */
export function getIn(root: PlainTable, path: readonly string[]): PlainValue | undefined {
  let cur: PlainValue | undefined = root;
  for (const seg of path) {
    if (!isTable(cur)) return undefined;
    cur = Object.prototype.hasOwnProperty.call(cur, seg) ? cur[seg] : undefined;
  }
  return cur;
}

export function toPlainValue(v: TomlValue): PlainValue {
  return Array.isArray(v) ? v.map(toPlainValue) : v;
}

// ---------------------------------------------------------------------------------------------
// Serialisation.

/** Formats a key segment: bare when allowed, else a basic string (single-quoted when `preferLiteral`). */
export function formatKey(key: string, preferLiteral = false): string {
  if (/^[A-Za-z0-9_-]+$/.test(key)) return key;
  const literalOk = [...key].every((ch) => ch !== "'" && (ch.codePointAt(0) ?? 0) >= 0x20 && ch !== '\u007f');
  if (preferLiteral && literalOk) return `'${key}'`;
  return formatString(key);
}

/** Formats a TOML basic string with the escapes TOML requires. */
export function formatString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out + '"';
}

/** Formats a value as TOML (strings, booleans, integers, arrays). */
export function formatValue(v: TomlValue): string {
  if (typeof v === 'string') return formatString(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new TomlEditInternalError(`only integers can be written, got ${v}`);
    return String(v);
  }
  return `[${v.map(formatValue).join(', ')}]`;
}

// ---------------------------------------------------------------------------------------------
// Verification.

export function cloneTable(t: PlainTable): PlainTable {
  return structuredClone(t);
}

export function setInPlain(root: PlainTable, path: readonly string[], value: PlainValue): string | null {
  let cur: PlainTable = root;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i] as string;
    const next = cur[seg];
    if (next === undefined) cur[seg] = {};
    else if (!isTable(next)) return path.slice(0, i + 1).join('.');
    cur = cur[seg] as PlainTable;
  }
  cur[path[path.length - 1] as string] = value;
  return null;
}

export function deleteInPlain(root: PlainTable, path: readonly string[]): void {
  const parent = getIn(root, path.slice(0, -1));
  if (isTable(parent)) delete parent[path[path.length - 1] as string];
}

export function verify(text: string, expected: PlainTable, what: string): void {
  let actual: PlainTable;
  try {
    actual = parsePlain(text);
  } catch (e) {
    throw new TomlEditInternalError(`${what} produced TOML that does not parse: ${firstLine(e)}`);
  }
  if (!isDeepStrictEqual(actual, expected)) {
    throw new TomlEditInternalError(`${what} produced a document that differs from the intended one`);
  }
}

export function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}
