/**
 * The TOML scanner: finds table headers and key/value statements with their spans in the text,
 * so the splicer can change only the bytes an edit needs (see splicer.ts for why).
 */

// ---------------------------------------------------------------------------------------------
// Scanner: finds headers and key/value statements with their byte spans.

export interface Header {
  path: string[];
  rawSegments: string[];
  array: boolean;
  indent: string;
  start: number;
  lineEnd: number;
}

export interface KeyValue {
  keys: string[];
  rawKey: string;
  indent: string;
  start: number;
  valueStart: number;
  valueEnd: number;
  lineEnd: number;
  /** First character of the value: `{` inline table, `[` array, etc. */
  valueKind: 'inline-table' | 'array' | 'scalar';
  section: Section;
}

export interface Section {
  header: Header | null;
  /** Absolute path of the section; null inside an array of tables (ambiguous target). */
  path: string[] | null;
  start: number;
  end: number;
  kvs: KeyValue[];
  /** End of the last statement (header or key/value) of the section, after its newline. */
  contentEnd: number;
}

export interface ScannedDoc {
  text: string;
  sections: Section[];
  kvs: KeyValue[];
  headers: Header[];
  newline: string;
}

export class ScanError extends Error {}

export const BARE_KEY = /[A-Za-z0-9_-]/;

export function scan(text: string): ScannedDoc {
  let pos = 0;
  const n = text.length;
  const headers: Header[] = [];
  const kvs: KeyValue[] = [];
  const sections: Section[] = [];
  let arrayPrefixes: string[][] = [];
  let current: Section = { header: null, path: [], start: 0, end: n, kvs: [], contentEnd: 0 };
  sections.push(current);

  const fail = (what: string): never => {
    throw new ScanError(`${what} at offset ${pos}`);
  };
  const skipWs = (): void => {
    while (pos < n && (text[pos] === ' ' || text[pos] === '\t')) pos++;
  };
  const skipToLineEnd = (): void => {
    // After a statement: optional whitespace and comment, then a newline or end of text.
    skipWs();
    if (text[pos] === '#') while (pos < n && text[pos] !== '\n') pos++;
    if (text[pos] === '\r') pos++;
    if (pos < n) {
      if (text[pos] !== '\n') fail('expected end of line');
      pos++;
    }
  };
  const readBasic = (): string => {
    // pos at opening quote; returns the decoded string, pos after the closing quote.
    pos++;
    let out = '';
    while (pos < n && text[pos] !== '"') {
      const ch = text[pos] as string;
      if (ch === '\n') fail('newline in string');
      if (ch === '\\') {
        const e = text[pos + 1];
        const simple: Record<string, string> = { b: '\b', t: '\t', n: '\n', f: '\f', r: '\r', '"': '"', '\\': '\\' };
        if (e !== undefined && simple[e] !== undefined) {
          out += simple[e];
          pos += 2;
        } else if (e === 'u' || e === 'U') {
          const len = e === 'u' ? 4 : 8;
          out += String.fromCodePoint(parseInt(text.slice(pos + 2, pos + 2 + len), 16));
          pos += 2 + len;
        } else fail('bad escape');
      } else {
        out += ch;
        pos++;
      }
    }
    if (pos >= n) fail('unterminated string');
    pos++;
    return out;
  };
  const readLiteral = (): string => {
    const end = text.indexOf("'", pos + 1);
    if (end < 0) fail('unterminated literal string');
    const s = text.slice(pos + 1, end);
    pos = end + 1;
    return s;
  };
  const readKey = (): { keys: string[]; raw: string[] } => {
    const keys: string[] = [];
    const raw: string[] = [];
    for (;;) {
      skipWs();
      const from = pos;
      if (text[pos] === '"') keys.push(readBasic());
      else if (text[pos] === "'") keys.push(readLiteral());
      else {
        while (pos < n && BARE_KEY.test(text[pos] as string)) pos++;
        if (pos === from) fail('expected a key');
        keys.push(text.slice(from, pos));
      }
      raw.push(text.slice(from, pos));
      skipWs();
      if (text[pos] !== '.') return { keys, raw };
      pos++;
    }
  };
  const skipMultiline = (q: string): void => {
    const delim = q.repeat(3);
    pos += 3;
    for (;;) {
      if (pos >= n) fail('unterminated multi-line string');
      if (q === '"' && text[pos] === '\\') {
        pos += 2;
        continue;
      }
      if (text.startsWith(delim, pos)) {
        pos += 3;
        // Up to two quotes may sit right before the closing delimiter ("""a""""").
        let extra = 0;
        while (extra < 2 && text[pos] === q) {
          pos++;
          extra++;
        }
        return;
      }
      pos++;
    }
  };
  const skipValue = (): void => {
    const ch = text[pos];
    if (ch === '"' || ch === "'") {
      if (text.startsWith(ch.repeat(3), pos)) skipMultiline(ch);
      else if (ch === '"') readBasic();
      else readLiteral();
      return;
    }
    if (ch === '[' || ch === '{') {
      const stack: string[] = [ch === '[' ? ']' : '}'];
      pos++;
      while (stack.length > 0) {
        if (pos >= n) fail('unterminated array or inline table');
        const c = text[pos] as string;
        if (c === '"' || c === "'") skipValue();
        else if (c === '#') while (pos < n && text[pos] !== '\n') pos++;
        else if (c === '[') {
          stack.push(']');
          pos++;
        } else if (c === '{') {
          stack.push('}');
          pos++;
        } else if (c === ']' || c === '}') {
          if (stack.pop() !== c) fail('mismatched bracket');
          pos++;
        } else pos++;
      }
      return;
    }
    // Scalars (numbers, booleans, date-times which may contain a space) run to a comment or EOL.
    const from = pos;
    while (pos < n && text[pos] !== '#' && text[pos] !== '\n' && text[pos] !== '\r') pos++;
    while (pos > from && (text[pos - 1] === ' ' || text[pos - 1] === '\t')) pos--;
    if (pos === from) fail('expected a value');
  };

  while (pos < n) {
    const lineStart = pos;
    skipWs();
    const indent = text.slice(lineStart, pos);
    const ch = text[pos];
    if (ch === '\n' || ch === '\r' || ch === '#' || pos >= n) {
      while (pos < n && text[pos] !== '\n') pos++;
      if (pos < n) pos++;
      continue;
    }
    if (ch === '[') {
      const array = text[pos + 1] === '[';
      pos += array ? 2 : 1;
      const { keys, raw } = readKey();
      if (text[pos] !== ']' || (array && text[pos + 1] !== ']')) fail('expected ]');
      pos += array ? 2 : 1;
      skipToLineEnd();
      const header: Header = { path: keys, rawSegments: raw, array, indent, start: lineStart, lineEnd: pos };
      headers.push(header);
      current.end = lineStart;
      if (array) arrayPrefixes.push(keys);
      else arrayPrefixes = arrayPrefixes.filter((p) => !isPrefix(p, keys) || p.length === keys.length);
      const inArray = array || arrayPrefixes.some((p) => isPrefix(p, keys));
      current = { header, path: inArray ? null : keys, start: lineStart, end: n, kvs: [], contentEnd: pos };
      sections.push(current);
      continue;
    }
    const { keys, raw } = readKey();
    if (text[pos] !== '=') fail('expected =');
    pos++;
    skipWs();
    const valueStart = pos;
    const first = text[pos];
    skipValue();
    const valueEnd = pos;
    skipToLineEnd();
    const kv: KeyValue = {
      keys,
      rawKey: raw.join('.'),
      indent,
      start: lineStart,
      valueStart,
      valueEnd,
      lineEnd: pos,
      valueKind: first === '{' ? 'inline-table' : first === '[' ? 'array' : 'scalar',
      section: current,
    };
    current.kvs.push(kv);
    current.contentEnd = pos;
    kvs.push(kv);
  }
  return { text, sections, kvs, headers, newline: text.includes('\r\n') ? '\r\n' : '\n' };
}

// ---------------------------------------------------------------------------------------------
// Helpers on paths and plain values.

export function isPrefix(prefix: readonly string[], path: readonly string[]): boolean {
  return prefix.length <= path.length && prefix.every((s, i) => s === path[i]);
}

export function samePath(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && isPrefix(a, b);
}

export function commonPrefixLength(a: readonly string[], b: readonly string[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

export function kvPath(kv: KeyValue): string[] | null {
  return kv.section.path === null ? null : [...kv.section.path, ...kv.keys];
}
