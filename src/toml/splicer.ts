/**
 * A minimal TOML text editor that changes only the bytes an edit needs and keeps every other byte
 * (comments, blank lines, key order, indentation, quoting) as it was.
 *
 * Why not parse + stringify: @iarna/toml (like every TOML library we could use) drops comments and
 * reorders tables, and operators diff config.toml after a run. So we scan the text for statement
 * boundaries ourselves and splice. Every edit then re-parses its result with @iarna/toml and compares
 * it with the value model we meant to produce; a mismatch throws `TomlEditInternalError`, so a
 * broken or surprising config.toml is never handed to the caller for writing.
 */
import { isDeepStrictEqual } from 'node:util';
import { refusal, type Result } from '../result.js';
import {
  cloneTable,
  deleteInPlain,
  firstLine,
  formatKey,
  formatValue,
  getIn,
  isTable,
  parsePlain,
  type PlainTable,
  setInPlain,
  type TomlValue,
  toPlainValue,
  verify,
} from './model.js';
import {
  commonPrefixLength,
  type Header,
  isPrefix,
  type KeyValue,
  kvPath,
  samePath,
  scan,
  type ScannedDoc,
  type Section,
} from './scanner.js';

/** The outcome of one edit: the new text, or a refusal an operator can act on. */
export type EditResult = Result<{ text: string; changed: boolean }>;

/** Where a key's value sits in the text (offsets are UTF-16 indexes into the text). */
export interface KeyLocation {
  /** Start of the line that holds the key. */
  lineStart: number;
  /** End of the statement, after its newline (or the end of the text). */
  lineEnd: number;
  valueStart: number;
  valueEnd: number;
  /** 1-based line and column of the value. */
  line: number;
  column: number;
  /** The value exactly as written. */
  raw: string;
  /** The key exactly as written (may be dotted, e.g. `configs."h".tls.ca_file`). */
  rawKey: string;
  /** The table header path the statement sits under ([] = root). */
  sectionPath: string[];
}

function scanOrRefuse(text: string): Result<{ doc: ScannedDoc; before: PlainTable }> {
  let before: PlainTable;
  try {
    before = parsePlain(text);
  } catch (e) {
    return refusal(`the file is not valid TOML: ${firstLine(e)}`);
  }
  try {
    return { ok: true, doc: scan(text), before };
  } catch (e) {
    // @iarna/toml accepted it but our scanner did not: refuse rather than guess.
    return refusal(`the file uses TOML syntax this editor does not handle (${firstLine(e)}); edit it by hand`);
  }
}

// ---------------------------------------------------------------------------------------------
// Locating things.

/** A statement whose value is an inline table or array that contains `path` (we do not edit inside those). */
function inlineContainer(doc: ScannedDoc, path: readonly string[]): KeyValue | undefined {
  return doc.kvs.find((kv) => {
    const p = kvPath(kv);
    return p !== null && p.length < path.length && isPrefix(p, path) && kv.valueKind !== 'scalar';
  });
}

function arrayTableOnPath(doc: ScannedDoc, path: readonly string[]): Header | undefined {
  return doc.headers.find((h) => h.array && isPrefix(h.path, path));
}

function findKv(doc: ScannedDoc, path: readonly string[]): KeyValue | undefined {
  return doc.kvs.find((kv) => {
    const p = kvPath(kv);
    return p !== null && samePath(p, path);
  });
}

function lineCol(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let last = -1;
  for (let i = 0; i < offset; i++) {
    if (text[i] === '\n') {
      line++;
      last = i;
    }
  }
  return { line, column: offset - last };
}

/** Where `key` of table `tablePath` is written, or null when it is not written as a key (absent, or a table). */
export function locateKey(text: string, tablePath: readonly string[], key: string): KeyLocation | null {
  const doc = scan(text);
  const kv = findKv(doc, [...tablePath, key]);
  if (kv === undefined) return null;
  return {
    lineStart: kv.start,
    lineEnd: kv.lineEnd,
    valueStart: kv.valueStart,
    valueEnd: kv.valueEnd,
    ...lineCol(text, kv.valueStart),
    raw: text.slice(kv.valueStart, kv.valueEnd),
    rawKey: kv.rawKey,
    sectionPath: kv.section.path ?? [],
  };
}

// ---------------------------------------------------------------------------------------------
// Layout conventions of the file, so inserted lines look like their neighbours.

function childIndent(doc: ScannedDoc): string {
  for (const s of doc.sections) {
    const first = s.kvs[0];
    if (s.header && first && first.indent.startsWith(s.header.indent))
      return first.indent.slice(s.header.indent.length);
  }
  return '  ';
}

function indentsNestedHeaders(doc: ScannedDoc): boolean {
  return doc.headers.some((h) => h.indent.length > 0);
}

function prefersLiteralKeys(doc: ScannedDoc): boolean {
  const raws = doc.headers.flatMap((h) => h.rawSegments.filter((r) => r.startsWith('"') || r.startsWith("'")));
  return raws.length > 0 && raws.filter((r) => r.startsWith("'")).length > raws.length / 2;
}

function headerText(doc: ScannedDoc, path: readonly string[], like: Header | undefined): string {
  const literal = prefersLiteralKeys(doc);
  const shared = like ? commonPrefixLength(like.path, path) : 0;
  const segs = path.map((seg, i) =>
    like && i < shared ? (like.rawSegments[i] as string).trim() : formatKey(seg, literal),
  );
  return `[${segs.join('.')}]`;
}

/** Offset right after the section's last statement, and the text must get a newline first if it has none. */
function afterContent(doc: ScannedDoc, offset: number): { at: number; prefix: string } {
  const needsNl = offset > 0 && doc.text[offset - 1] !== '\n';
  return { at: offset, prefix: needsNl ? doc.newline : '' };
}

// ---------------------------------------------------------------------------------------------
// Edits.

interface Splice {
  at: number;
  remove: number;
  insert: string;
}

function applySplices(text: string, splices: Splice[]): string {
  let out = text;
  for (const s of [...splices].sort((a, b) => b.at - a.at))
    out = out.slice(0, s.at) + s.insert + out.slice(s.at + s.remove);
  return out;
}

/** Plans where a new table header (with `lines` under it) goes; see the module comment in setKey. */
function planNewTable(doc: ScannedDoc, tablePath: readonly string[], lines: string[]): Splice {
  const nl = doc.newline;
  const tables = doc.headers.filter((h) => !h.array);
  const delta = childIndent(doc);
  const body = (indent: string): string => lines.map((l) => indent + delta + l + nl).join('');

  // A sub-table already has a header: put the parent right before its first sub-table.
  const firstChild = tables.find((h) => h.path.length > tablePath.length && isPrefix(tablePath, h.path));
  if (firstChild) {
    const indent = firstChild.indent;
    return {
      at: firstChild.start,
      remove: 0,
      insert: `${indent}${headerText(doc, tablePath, firstChild)}${nl}${body(indent)}${nl}`,
    };
  }
  // Else after the block of the last header sharing the longest prefix (the parent, a sibling...).
  let best: Header | undefined;
  let bestLen = 0;
  for (const h of tables) {
    const l = commonPrefixLength(h.path, tablePath);
    if (l >= bestLen && l > 0) {
      best = h;
      bestLen = l;
    }
  }
  if (best) {
    // Extend over the anchor's own sub-tables that follow it, so we never split a parent from its children.
    const anchor = best;
    const idx = doc.sections.findIndex((s) => s.header === anchor);
    let last = doc.sections[idx] as Section;
    for (let i = idx + 1; i < doc.sections.length; i++) {
      const s = doc.sections[i] as Section;
      if (s.header && isPrefix(anchor.path, s.header.path) && commonPrefixLength(s.header.path, tablePath) >= bestLen)
        last = s;
      else break;
    }
    const isAncestor = isPrefix(anchor.path, tablePath);
    const indent = anchor.indent + (isAncestor && indentsNestedHeaders(doc) ? '  ' : '');
    const { at, prefix } = afterContent(doc, last.contentEnd);
    return {
      at,
      remove: 0,
      insert: `${prefix}${nl}${indent}${headerText(doc, tablePath, anchor)}${nl}${body(indent)}`,
    };
  }
  // No related table: append at the end, separated by a blank line.
  const text = doc.text;
  const needsNl = text.length > 0 && !text.endsWith('\n');
  const sep = text.trim().length === 0 ? '' : nl;
  return {
    at: text.length,
    remove: 0,
    insert: `${needsNl ? nl : ''}${sep}${headerText(doc, tablePath, undefined)}${nl}${body('')}`,
  };
}

/** Finds the deepest prefix of `path` that is created by dotted keys inside some section. */
function dottedAnchor(
  doc: ScannedDoc,
  path: readonly string[],
): { section: Section; prefix: string[]; after: KeyValue } | null {
  for (let len = path.length; len >= 1; len--) {
    const prefix = path.slice(0, len);
    const hits = doc.kvs.filter((kv) => {
      const p = kvPath(kv);
      const sp = kv.section.path;
      return p !== null && sp !== null && sp.length < len && p.length > len && isPrefix(prefix, p);
    });
    const last = hits[hits.length - 1];
    if (last) return { section: last.section, prefix, after: last };
  }
  return null;
}

function hasHeader(doc: ScannedDoc, path: readonly string[]): Section | undefined {
  return doc.sections.find((s) => s.header && !s.header.array && s.path !== null && samePath(s.path, path));
}

/** Sets `key` in table `tablePath` to `value`, creating the table if needed; other bytes stay as they are. */
export function setKey(text: string, tablePath: readonly string[], key: string, value: TomlValue): EditResult {
  const scanned = scanOrRefuse(text);
  if (!scanned.ok) return scanned;
  const { doc, before } = scanned;
  const full = [...tablePath, key];
  const want = toPlainValue(value);
  const label = `setting ${full.join('.')}`;
  if (isDeepStrictEqual(getIn(before, full), want)) return { ok: true, text, changed: false };

  const now = getIn(before, full);
  if (isTable(now) || (Array.isArray(now) && arrayTableOnPath(doc, full))) {
    return { ok: false, error: `cannot set ${full.join('.')}: it is a table, not a value` };
  }
  const arr = arrayTableOnPath(doc, full);
  if (arr)
    return {
      ok: false,
      error: `cannot set ${full.join('.')}: it lies inside an array of tables [[${arr.path.join('.')}]]; edit it by hand`,
    };
  const expected = cloneTable(before);
  const conflict = setInPlain(expected, full, want);
  if (conflict !== null)
    return { ok: false, error: `cannot set ${full.join('.')}: ${conflict} is a value, not a table` };
  const container = inlineContainer(doc, full);
  if (container) {
    return {
      ok: false,
      error: `cannot set ${full.join('.')}: it sits inside the inline value of "${container.rawKey}" at line ${lineCol(text, container.start).line}; rewrite that inline table as a [table] and run again`,
    };
  }

  let splice: Splice;
  const existing = findKv(doc, full);
  if (existing) {
    // Keep the file's quoting: a literal 'string' stays literal when the new value can be one.
    const wasLiteral = text[existing.valueStart] === "'" && !text.startsWith("'''", existing.valueStart);
    const literalOk =
      typeof value === 'string' &&
      [...value].every((ch) => ch !== "'" && (ch.codePointAt(0) ?? 0) >= 0x20 && ch !== '\u007f');
    const formatted = wasLiteral && literalOk ? `'${value as string}'` : formatValue(value);
    splice = { at: existing.valueStart, remove: existing.valueEnd - existing.valueStart, insert: formatted };
  } else {
    splice = planNewKey(doc, tablePath, key, value);
  }
  const out = applySplices(text, [splice]);
  verify(out, expected, label);
  return { ok: true, text: out, changed: true };
}

function planNewKey(doc: ScannedDoc, tablePath: readonly string[], key: string, value: TomlValue): Splice {
  const nl = doc.newline;
  const full = [...tablePath, key];
  const section = tablePath.length === 0 ? doc.sections[0] : hasHeader(doc, tablePath);
  const dotted = dottedAnchor(doc, tablePath);
  // The deepest [header] on the way to the table; dotted keys only win when they go deeper (TOML
  // forbids re-opening a dotted table with a header, and dotted keys cannot reach into a table a
  // deeper header defined).
  const headerDepth = Math.max(
    -1,
    ...doc.headers.filter((h) => !h.array && isPrefix(h.path, tablePath)).map((h) => h.path.length),
  );
  // Prefer the most specific place that already defines the table: its own [header], or the
  // section whose dotted keys created it.
  if (dotted && dotted.prefix.length > headerDepth) {
    const base = dotted.section.path as string[];
    const rel = full
      .slice(base.length)
      .map((k) => formatKey(k))
      .join('.');
    const after =
      doc.kvs.filter((kv) => kv.section === dotted.section && isPrefix(dotted.prefix, kvPath(kv) ?? [])).pop() ??
      dotted.after;
    const { at, prefix } = afterContent(doc, after.lineEnd);
    return { at, remove: 0, insert: `${prefix}${after.indent}${rel} = ${formatValue(value)}${nl}` };
  }
  if (section) {
    const lastKv = section.kvs[section.kvs.length - 1];
    const indent = lastKv ? lastKv.indent : (section.header?.indent ?? '') + (section.header ? childIndent(doc) : '');
    const line = `${indent}${formatKey(key)} = ${formatValue(value)}${nl}`;
    if (!section.header && !lastKv) {
      // Root keys go before the first table; keep any leading comment block above them.
      const firstHeader = doc.headers[0];
      const at = firstHeader ? firstHeader.start : doc.text.length;
      const needsNl = at > 0 && doc.text[at - 1] !== '\n';
      return { at, remove: 0, insert: `${needsNl ? nl : ''}${line}${firstHeader ? nl : ''}` };
    }
    const { at, prefix } = afterContent(doc, section.contentEnd);
    return { at, remove: 0, insert: prefix + line };
  }
  return planNewTable(doc, tablePath, [`${formatKey(key)} = ${formatValue(value)}`]);
}

/** Makes sure table `tablePath` exists (creating an empty [header] in a sensible place when it does not). */
export function ensureTable(text: string, tablePath: readonly string[]): EditResult {
  const scanned = scanOrRefuse(text);
  if (!scanned.ok) return scanned;
  const { doc, before } = scanned;
  const cur = getIn(before, tablePath);
  if (isTable(cur)) return { ok: true, text, changed: false };
  if (cur !== undefined)
    return { ok: false, error: `cannot create table ${tablePath.join('.')}: a value of that name exists` };
  const expected = cloneTable(before);
  const conflict = setInPlain(expected, tablePath, {});
  if (conflict !== null)
    return { ok: false, error: `cannot create table ${tablePath.join('.')}: ${conflict} is a value, not a table` };
  const container = inlineContainer(doc, tablePath);
  if (container)
    return {
      ok: false,
      error: `cannot create table ${tablePath.join('.')}: it would sit inside the inline value of "${container.rawKey}"; rewrite that inline table as a [table]`,
    };
  const out = applySplices(text, [planNewTable(doc, tablePath, [])]);
  verify(out, expected, `creating table ${tablePath.join('.')}`);
  return { ok: true, text: out, changed: true };
}

/** Removes `key` from table `tablePath` (whatever defines it: a key line, dotted keys, or [sub-table] headers). */
export function removeKey(text: string, tablePath: readonly string[], key: string): EditResult {
  return removePath(text, [...tablePath, key]);
}

/** Removes table `tablePath` and all its sub-tables; every other byte stays. */
export function removeTable(text: string, tablePath: readonly string[]): EditResult {
  return removePath(text, tablePath);
}

function removePath(text: string, path: readonly string[]): EditResult {
  const scanned = scanOrRefuse(text);
  if (!scanned.ok) return scanned;
  const { doc, before } = scanned;
  if (path.length === 0) return { ok: false, error: 'refusing to remove the whole document' };
  if (getIn(before, path) === undefined) return { ok: true, text, changed: false };
  const container = inlineContainer(doc, path);
  if (container) {
    return {
      ok: false,
      error: `cannot remove ${path.join('.')}: it sits inside the inline value of "${container.rawKey}" at line ${lineCol(text, container.start).line}; rewrite that inline table as a [table] and run again`,
    };
  }
  const arr = doc.headers.find((h) => h.array && isPrefix(h.path, path) && h.path.length < path.length);
  if (arr)
    return {
      ok: false,
      error: `cannot remove ${path.join('.')}: it lies inside an array of tables [[${arr.path.join('.')}]]; edit it by hand`,
    };

  const spans: Array<[number, number]> = [];
  for (const kv of doc.kvs) {
    const p = kvPath(kv);
    if (p !== null && isPrefix(path, p)) spans.push([kv.start, kv.lineEnd]);
  }
  for (const s of doc.sections) {
    if (!s.header || !isPrefix(path, s.header.path)) continue;
    // The section's own lines, plus the blank lines after it; comments before the next header stay
    // (they usually describe that header).
    let end = s.contentEnd;
    end = skipBlankLines(text, end, s.end);
    spans.push([s.start, end]);
  }
  const merged = mergeSpans(spans);
  const last = merged[merged.length - 1];
  if (last && last[1] >= text.length) {
    // Removing the tail of the file: also drop the blank lines that separated it from what stays.
    last[0] = backOverBlankLines(text, last[0]);
  }
  const out = applySplices(
    text,
    merged.map(([a, b]) => ({ at: a, remove: b - a, insert: '' })),
  );

  const expected = cloneTable(before);
  deleteInPlain(expected, path);
  let actual: PlainTable | undefined;
  try {
    actual = parsePlain(out);
  } catch {
    actual = undefined;
  }
  // Tables that only existed implicitly (as parents of what we removed) disappear with it.
  for (let len = path.length - 1; len >= 1 && actual; len--) {
    const anc = path.slice(0, len);
    const e = getIn(expected, anc);
    if (isTable(e) && Object.keys(e).length === 0 && getIn(actual, anc) === undefined) deleteInPlain(expected, anc);
    else break;
  }
  verify(out, expected, `removing ${path.join('.')}`);
  return { ok: true, text: out, changed: true };
}

function skipBlankLines(text: string, from: number, limit: number): number {
  let pos = from;
  for (;;) {
    let p = pos;
    while (p < limit && (text[p] === ' ' || text[p] === '\t' || text[p] === '\r')) p++;
    if (p < limit && text[p] === '\n') pos = p + 1;
    else if (p >= limit && limit === text.length) return limit;
    else return pos;
  }
}

function backOverBlankLines(text: string, from: number): number {
  // `from` is a line start; walk back over whole blank lines, keeping the newline that ends the
  // last line of content.
  let pos = from;
  while (pos > 0) {
    const prevStart = text.lastIndexOf('\n', pos - 2) + 1;
    if (text.slice(prevStart, pos - 1).trim() !== '') break;
    pos = prevStart;
  }
  return pos;
}

function mergeSpans(spans: Array<[number, number]>): Array<[number, number]> {
  const sorted = [...spans].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const s of sorted) {
    const prev = out[out.length - 1];
    if (prev && s[0] <= prev[1]) prev[1] = Math.max(prev[1], s[1]);
    else out.push([s[0], s[1]]);
  }
  return out;
}
