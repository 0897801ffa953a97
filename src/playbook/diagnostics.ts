/** Located problems in user input, reported as `file:line:col: message` before anything runs. */
import { MAX_NESTING, nestingTooDeep } from './input.js';
import { markSecretLeaves } from '../secrets/known.js';
import { decryptVaultText, isVaultText, vaultTag, VaultError } from '../vault/index.js';
import {
  LineCounter,
  isMap,
  isNode,
  isScalar,
  isSeq,
  parseDocument,
  type Document,
  type Node as YamlNode,
  type ParsedNode,
} from 'yaml';
import { defined } from '../defined.js';

export interface Diagnostic {
  file: string;
  /** 1-based; 0 when the problem has no position (e.g. an unreadable file). */
  line: number;
  col: number;
  message: string;
  /** Absent for an error (nothing runs); a warning is reported and the run goes on. */
  severity?: 'warning';
  /** The offending source line, for the caret display. */
  source?: string;
}

/** A parsed YAML file with what is needed to point at its nodes. */
export interface SourceFile {
  file: string;
  text: string;
  doc: Document.Parsed<ParsedNode>;
  lines: LineCounter;
  /** Decrypted from a vault: every value is a secret and no source line is ever shown. */
  secret?: boolean;
}

/** A diagnostic at a YAML node (or at the start of the file when the node is missing). */
export function at(src: SourceFile, node: unknown, message: string): Diagnostic {
  const offset = isNode(node) && (node as YamlNode).range ? (node as YamlNode).range![0] : 0;
  return atOffset(src, offset, message);
}

export function atOffset(src: SourceFile, offset: number, message: string): Diagnostic {
  const { line, col } = src.lines.linePos(offset);
  const source = src.secret ? undefined : src.text.split('\n')[line - 1];
  return { file: src.file, line, col, message, ...defined({ source }) };
}

/**
 * A diagnostic at a character inside a scalar's value (e.g. the `=` of a condition), exact for
 * one-line plain and quoted scalars; other scalars are pointed at as a whole.
 */
export function atInScalar(src: SourceFile, node: unknown, offset: number, message: string): Diagnostic {
  if (!isScalar(node) || !node.range) return at(src, node, message);
  const start = node.range[0];
  const raw = src.text.slice(start, node.range[1]);
  if (raw.includes('\n') || raw.includes('\\')) return at(src, node, message);
  if (node.type === 'PLAIN') return atOffset(src, start + offset, message);
  if (node.type === 'QUOTE_SINGLE' && !raw.slice(1, -1).includes("''"))
    return atOffset(src, start + 1 + offset, message);
  if (node.type === 'QUOTE_DOUBLE') return atOffset(src, start + 1 + offset, message);
  return at(src, node, message);
}

/** The node at a path of keys/indexes, or the deepest existing ancestor (so errors still point somewhere useful). */
export function nodeAt(src: SourceFile, path: readonly (string | number)[], key = false): unknown {
  let node: unknown = src.doc.contents;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    const n = node as { items?: Array<{ key?: { value?: unknown }; value?: unknown } | unknown> };
    if (!n || !Array.isArray(n.items)) return node;
    if (typeof seg === 'number') {
      const item = n.items[seg];
      if (item === undefined) return node;
      node = item;
    } else {
      const pair = n.items.find(
        (p) =>
          typeof p === 'object' && p !== null && 'key' in p && (p as { key?: { value?: unknown } }).key?.value === seg,
      ) as { key?: unknown; value?: unknown } | undefined;
      if (!pair) return node;
      node = key && i === path.length - 1 ? pair.key : (pair.value ?? pair.key);
    }
  }
  return node;
}

export function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return [...ds].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col);
}

/** `file:line:col: message`, then the source line and a caret under the column. */
export function formatDiagnostic(d: Diagnostic): string {
  const message = d.severity === 'warning' ? `warning: ${d.message}` : d.message;
  const head = d.line > 0 ? `${d.file}:${d.line}:${d.col}: ${message}` : `${d.file}: ${message}`;
  if (d.source === undefined || d.line === 0) return head;
  const src = d.source.replace(/\t/g, ' ');
  return `${head}\n  ${src}\n  ${' '.repeat(Math.max(0, d.col - 1))}^`;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** The closest candidate within a sensible edit distance, for "did you mean `x`?". */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

export function suggestion(word: string, candidates: readonly string[]): string {
  const m = didYouMean(word, candidates);
  return m ? ` (did you mean \`${m}\`?)` : '';
}

/** A diagnostic at a character offset of text that has no parsed document (pre-parse checks). */
export function plainAt(file: string, text: string, offset: number, message: string): Diagnostic {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  const end = text.indexOf('\n', start);
  const source = text.slice(start, end < 0 ? undefined : end);
  // A source line thousands of characters wide helps no one under the message.
  return { file, line, col: offset - start + 1, message, ...(source.length <= 300 ? { source } : {}) };
}

/** Parse YAML text into a SourceFile, with YAML syntax errors as diagnostics. */
export function parseYamlSource(file: string, text: string): { src: SourceFile; errors: Diagnostic[] } {
  if (isVaultText(text)) return parseVaultFile(file, text);
  const lines = new LineCounter();
  const deep = nestingTooDeep(text);
  if (deep) {
    // Refused before yaml's recursive composer sees it (a few thousand levels overflow the stack).
    const src: SourceFile = { file, text, doc: parseDocument(''), lines };
    return {
      src,
      errors: [
        plainAt(
          file,
          text,
          deep.offset,
          `YAML nests more than ${MAX_NESTING} levels deep here; trustplay refuses inputs this deep (a real playbook or inventory needs fewer than 20)`,
        ),
      ],
    };
  }
  // yaml's own uniqueKeys check is quadratic in the size of a mapping (1,000 hosts = 500k
  // comparisons); duplicates are found below with one Set per mapping instead.
  let doc;
  try {
    doc = parseDocument(text, {
      lineCounter: lines,
      prettyErrors: false,
      uniqueKeys: false,
      strict: true,
      customTags: [vaultTag],
    });
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    return {
      src: { file, text, doc: parseDocument(''), lines },
      errors: [{ file, line: 1, col: 1, message: `YAML too complex to read (${e.message}); simplify the file` }],
    };
  }
  const src: SourceFile = { file, text, doc, lines };
  const errors = doc.errors.map((e) =>
    // A `!vault` value that cannot be decrypted is no syntax error: its sentence says what to do.
    atOffset(src, e.pos[0], e.code === 'TAG_RESOLVE_FAILED' ? e.message : `YAML syntax error: ${firstLine(e.message)}`),
  );
  if (errors.length === 0) errors.push(...duplicateKeys(src));
  return { src, errors };
}

/** A whole vault-encrypted YAML file (vars file, inventory): decrypted in memory, all of it secret. */
function parseVaultFile(file: string, text: string): { src: SourceFile; errors: Diagnostic[] } {
  let plain: string;
  try {
    plain = decryptVaultText(text);
  } catch (e) {
    if (!(e instanceof VaultError)) throw e;
    const src: SourceFile = { file, text: '', doc: parseDocument(''), lines: new LineCounter(), secret: true };
    return { src, errors: [{ file, line: 0, col: 0, message: `this vault-encrypted file ${e.message}` }] };
  }
  const r = parseYamlSource(file, plain);
  r.src.secret = true;
  for (const d of r.errors) delete d.source;
  markSecretLeaves(r.src.doc.toJS());
  return r;
}

function duplicateKeys(src: SourceFile): Diagnostic[] {
  const out: Diagnostic[] = [];
  // A plain recursive walk: yaml's visit() costs ~50 ms on a 1,000-host inventory.
  const walk = (node: unknown): void => {
    if (isMap(node)) {
      const seen = new Map<unknown, unknown>();
      for (const pair of node.items) {
        if (isScalar(pair.key)) {
          const k = pair.key.value;
          const first = seen.get(k);
          if (first !== undefined) {
            const firstLine = at(src, first, '').line;
            out.push(
              at(
                src,
                pair.key,
                `duplicate key \`${String(k)}\` (first defined on line ${firstLine}): each host, group and key may appear once`,
              ),
            );
          } else seen.set(k, pair.key);
        }
        walk(pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) walk(item);
    }
  };
  walk(src.doc.contents);
  return out;
}

function firstLine(s: string): string {
  return (s.split('\n')[0] ?? s).replace(/ at line \d+, column \d+:?$/, '');
}
