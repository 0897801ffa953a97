/**
 * Reading and pre-checking the YAML files trustplay is given (playbooks, inventories): bounded
 * inputs, refused with one located sentence instead of a hang, a stack trace or silent damage.
 * - only regular files (a FIFO or a device given as a playbook would block or never end);
 * - at most 10 MB (TRUSTPLAY_MAX_INPUT_BYTES changes it);
 * - valid UTF-8 (an invalid byte is named by its offset, never replaced by U+FFFD);
 * - nesting at most MAX_NESTING levels (yaml's composer recurses: 2,000 levels overflow the stack).
 */
import { isUtf8 } from 'node:buffer';
import { closeSync, constants as fs, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';

/** Default input size limit in bytes. */
export const DEFAULT_MAX_INPUT_BYTES = 10 * 1024 * 1024;
/** The environment variable that overrides it. */
export const MAX_INPUT_ENV = 'TRUSTPLAY_MAX_INPUT_BYTES';
/** Deepest nesting (block indentation levels plus flow brackets) a playbook or inventory may have. */
export const MAX_NESTING = 100;

/** The size limit in force (the environment variable when it is a positive whole number). */
export function maxInputBytes(): number {
  const v = process.env[MAX_INPUT_ENV];
  return v && /^\d+$/.test(v) && Number(v) > 0 ? Number(v) : DEFAULT_MAX_INPUT_BYTES;
}

/** A file's text, or why it cannot be used (`line`/`col` when the problem has a place). */
export type InputText = { text: string } | { error: string; line?: number; col?: number };

function kindOf(st: import('node:fs').Stats): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence. */
export function firstInvalidUtf8(b: Buffer): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    // Continuation bytes after the lead byte, and the smallest code point that needs that many.
    const [n, min] =
      c >= 0xc2 && c <= 0xdf
        ? [1, 0x80]
        : c >= 0xe0 && c <= 0xef
          ? [2, 0x800]
          : c >= 0xf0 && c <= 0xf4
            ? [3, 0x10000]
            : [0, 0];
    if (n === 0) return i;
    if (i + n >= b.length) return i;
    let cp = c & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const cc = b[i + k];
      if (cc === undefined || (cc & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return -1;
}

function lineCol(b: Buffer, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset; i++)
    if (b[i] === 0x0a) {
      line++;
      start = i + 1;
    }
  return { line, col: offset - start + 1 };
}

function openError(e: unknown, what: string): InputText {
  const err = e as NodeJS.ErrnoException;
  const why =
    err.code === 'ENOENT'
      ? 'no such file'
      : err.code === 'EACCES'
        ? 'permission denied'
        : err.code === 'EISDIR'
          ? 'it is a directory'
          : err.message;
  return { error: `cannot read ${what}: ${why}` };
}

/** Why an opened file cannot be read as an input, from its stat; else the buffer to read into. */
function checkStat(st: import('node:fs').Stats, what: string): InputText | Buffer {
  if (st.isDirectory()) return { error: `cannot read ${what}: it is a directory` };
  if (!st.isFile()) return { error: `cannot read ${what}: it is ${kindOf(st)}; give a regular file` };
  const max = maxInputBytes();
  if (st.size > max)
    return {
      error: `cannot read ${what}: it is ${st.size} bytes, more than the ${max}-byte limit for an input file (set ${MAX_INPUT_ENV} to raise it)`,
    };
  // Read at most max+1 bytes: a file that grows while read is still bounded.
  return Buffer.alloc(Math.min(max + 1, Math.max(st.size, 0) + 1));
}

function decode(data: Buffer, what: string): InputText {
  const max = maxInputBytes();
  if (data.length > max)
    return {
      error: `cannot read ${what}: it grew past the ${max}-byte limit while being read (set ${MAX_INPUT_ENV} to raise it)`,
    };
  if (!isUtf8(data)) {
    const at = firstInvalidUtf8(data);
    const { line, col } = lineCol(data, at);
    return {
      error: `${what} is not valid UTF-8: byte ${at} (0x${data[at]!.toString(16).padStart(2, '0')}) cannot start or continue a character; save the file as UTF-8`,
      line,
      col,
    };
  }
  return { text: data.toString('utf8') };
}

/** Reads `file` as a trustplay input (`what`: "playbook", "inventory"), enforcing the limits above. */
export async function readInputFile(file: string, what: string): Promise<InputText> {
  let fh;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below anyway.
    fh = await open(file, fs.O_RDONLY | fs.O_NONBLOCK);
  } catch (e) {
    return openError(e, what);
  }
  try {
    const buf = checkStat(await fh.stat(), what);
    if (!Buffer.isBuffer(buf)) return buf;
    let len = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, len, buf.length - len, len);
      if (bytesRead === 0) break;
      len += bytesRead;
      if (len === buf.length) break;
    }
    return decode(buf.subarray(0, len), what);
  } finally {
    await fh.close();
  }
}

/**
 * readInputFile for the files a playbook names as it is loaded (vars files, imports): the same
 * limits, read synchronously since loading is one pass over small files.
 */
export function readInputFileSync(file: string, what: string): InputText {
  let fd;
  try {
    fd = openSync(file, fs.O_RDONLY | fs.O_NONBLOCK);
  } catch (e) {
    return openError(e, what);
  }
  try {
    const buf = checkStat(fstatSync(fd), what);
    if (!Buffer.isBuffer(buf)) return buf;
    let len = 0;
    for (;;) {
      const n = readSync(fd, buf, len, buf.length - len, len);
      if (n === 0) break;
      len += n;
      if (len === buf.length) break;
    }
    return decode(buf.subarray(0, len), what);
  } finally {
    closeSync(fd);
  }
}

/**
 * Where YAML text nests deeper than `max` levels (block indentation and flow brackets), or null.
 * A linear scan before parsing: yaml's composer recurses per level and a few thousand levels
 * overflow the stack. Approximate on purpose (quotes, comments and block scalars are skipped, not
 * parsed); real playbooks and inventories nest fewer than 20 levels.
 */
export function nestingTooDeep(text: string, max = MAX_NESTING): { offset: number; depth: number } | null {
  const indents: number[] = [];
  let flow = 0;
  let quote: '"' | "'" | null = null;
  let blockScalarIndent = -1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    // Line start.
    let indent = 0;
    while (i + indent < n && text[i + indent] === ' ') indent++;
    const first = text[i + indent];
    const blank = first === undefined || first === '\n' || first === '\r' || first === '#';
    if (blockScalarIndent >= 0) {
      if (blank || indent > blockScalarIndent) {
        const nl = text.indexOf('\n', i);
        i = nl < 0 ? n : nl + 1;
        continue;
      }
      blockScalarIndent = -1;
    }
    let j = i + indent;
    if (!blank && quote === null && flow === 0) {
      while (indents.length && indents[indents.length - 1]! >= indent) indents.pop();
      indents.push(indent);
      // Compact nested sequences on one line: `- - - x`.
      let k = j;
      while (text[k] === '-' && (text[k + 1] === ' ' || text[k + 1] === '\n')) {
        k += 2;
        while (text[k] === ' ') k++;
        indents.push(k - i);
      }
      if (indents.length > max) return { offset: i + indent, depth: indents.length };
    }
    // The rest of the line: quotes, comments, flow brackets.
    let prev = '\n';
    let lineEnd = text.indexOf('\n', j);
    if (lineEnd < 0) lineEnd = n;
    for (; j < lineEnd; j++) {
      const c = text[j]!;
      if (quote === '"') {
        if (c === '\\') j++;
        else if (c === '"') quote = null;
        prev = c;
        continue;
      }
      if (quote === "'") {
        if (c === "'") quote = null;
        prev = c;
        continue;
      }
      if (c === ' ' || c === '\t') {
        if (prev !== '\n')
          prev =
            prev === ':' || prev === '-' || prev === ',' || prev === '[' || prev === '{' || prev === '?' ? prev : ' ';
        continue;
      }
      const atScalarStart =
        prev === '\n' || prev === ':' || prev === '-' || prev === ',' || prev === '[' || prev === '{' || prev === '?';
      if (c === '#' && (prev === '\n' || prev === ' ' || atScalarStart)) break;
      if ((c === '"' || c === "'") && atScalarStart) quote = c;
      else if ((c === '[' || c === '{') && (atScalarStart || flow > 0)) {
        flow++;
        if (indents.length + flow > max) return { offset: j, depth: indents.length + flow };
      } else if ((c === ']' || c === '}') && flow > 0) flow--;
      else if ((c === '|' || c === '>') && atScalarStart && flow === 0) {
        const rest = text
          .slice(j + 1, lineEnd)
          .replace(/#.*$/, '')
          .trim();
        if (/^[-+0-9]*$/.test(rest)) {
          blockScalarIndent = indent;
          break;
        }
      }
      prev = c;
    }
    i = lineEnd + 1;
  }
  return null;
}
