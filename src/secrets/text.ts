/**
 * The maskers, one per file format, all in one linear pass over the text (no backtracking regex:
 * the old `SECRET_VALUE` pattern took 15 s on a 100 KB file):
 *
 * - `maskPem`: the body of every PEM private key block (`-----BEGIN ... PRIVATE KEY-----`).
 * - `maskJson`: string and number values of secret keys (`"auth": "..."`), at any depth.
 * - `maskToml`: values of secret keys in every TOML string form (basic, literal, multi-line basic
 *   `"""…"""`, multi-line literal `'''…'''`), numbers and bare values too, including dotted keys
 *   (`configs."r".auth.password`), inline tables (`auth = { password = "…" }`) and commented-out
 *   lines (`# password = "…"`: a secret in a comment is still a secret).
 *
 * Values are masked by their key, whatever their length: a 1-character password in config.toml is
 * masked like a long one. The scanners are tolerant: broken input (an unterminated string, stray
 * quotes) is masked as far as it can be read, never thrown on, since a diff of a broken file must
 * still be shown without its secrets.
 */
import { isSecretKey, MASK } from './keys.js';

const PEM_BEGIN = '-----BEGIN ';
const PEM_DASHES = '-----';

/** `text` with the body of every PEM private key replaced by the mask (headers kept). */
export function maskPem(text: string): string {
  if (!text.includes(PEM_BEGIN)) return text;
  const out: string[] = [];
  let pos = 0;
  for (;;) {
    const begin = text.indexOf(PEM_BEGIN, pos);
    if (begin < 0) break;
    const headerEnd = text.indexOf(PEM_DASHES, begin + PEM_BEGIN.length);
    if (headerEnd < 0) break;
    const label = text.slice(begin + PEM_BEGIN.length, headerEnd);
    const bodyStart = headerEnd + PEM_DASHES.length;
    if (!label.includes('PRIVATE KEY') || label.includes('\n')) {
      out.push(text.slice(pos, bodyStart));
      pos = bodyStart;
      continue;
    }
    // An unterminated key block is masked to the end of the text.
    const end = text.indexOf(`-----END ${label}-----`, bodyStart);
    const bodyEnd = end < 0 ? text.length : end;
    const nl = text.slice(bodyStart, bodyStart + 2).startsWith('\\n') ? '\\n' : '\n';
    out.push(text.slice(pos, bodyStart), nl, MASK, nl);
    pos = bodyEnd;
  }
  out.push(text.slice(pos));
  return out.join('');
}

/** `text` (a docker/kubelet config.json or any JSON) with the values of secret keys masked. */
export function maskJson(text: string): string {
  return maskKeyValues(maskPem(text), JSON_DIALECT);
}

/** `text` (config.toml, hosts.toml or any TOML) with the values of secret keys masked. */
export function maskToml(text: string): string {
  return maskKeyValues(maskPem(text), TOML_DIALECT);
}

interface Dialect {
  /** The character between a key and its value. */
  separator: ':' | '=';
  /** TOML: literal strings ('…') and multi-line strings ("""…""", '''…'''). */
  toml: boolean;
}

const JSON_DIALECT: Dialect = { separator: ':', toml: false };
const TOML_DIALECT: Dialect = { separator: '=', toml: true };

const BARE = /[A-Za-z0-9_+.\-:]/;
const KEY_CHAR = /[A-Za-z0-9_-]/;

/** Where a string token ends and where its content is, or null when `text[i]` starts no string. */
function readString(
  text: string,
  i: number,
  d: Dialect,
): { end: number; contentStart: number; contentEnd: number } | null {
  const c = text[i];
  if (c !== '"' && !(d.toml && c === "'")) return null;
  const n = text.length;
  const triple = d.toml && text.startsWith(c.repeat(3), i);
  if (triple) {
    const start = i + 3;
    let j = start;
    for (;;) {
      const k = text.indexOf(c.repeat(3), j);
      if (k < 0) return { end: n, contentStart: start, contentEnd: n };
      // In a basic string an odd run of backslashes escapes the first quote.
      if (c === '"') {
        let b = k - 1;
        while (b >= start && text[b] === '\\') b--;
        if ((k - 1 - b) % 2 === 1) {
          j = k + 1;
          continue;
        }
      }
      // Up to two more quotes belong to the content (`""""` ends with one quote inside).
      let close = k;
      while (close + 3 < n && text[close + 3] === c && close - k < 2) close++;
      return { end: close + 3, contentStart: start, contentEnd: close };
    }
  }
  // Single-line strings end at their quote or, when broken, at the end of the line.
  let j = i + 1;
  while (j < n && text[j] !== c && text[j] !== '\n') {
    if (c === '"' && text[j] === '\\') j++;
    j++;
  }
  const closed = j < n && text[j] === c;
  return { end: closed ? j + 1 : j, contentStart: i + 1, contentEnd: j };
}

/** One pass over the text: keys are tracked as they are read, the values of secret ones masked. */
function maskKeyValues(text: string, d: Dialect): string {
  const n = text.length;
  const out: string[] = [];
  let copied = 0;
  const replace = (from: number, to: number) => {
    if (to <= from) return;
    out.push(text.slice(copied, from), MASK);
    copied = to;
  };
  /** After `key =` / `"key":`: whether the value about to come is a secret. */
  let secretValue = false;
  /** Depth of a list that is a secret's value: every scalar inside is masked. */
  let secretListDepth = 0;
  let depth = 0;
  const valueIsSecret = () => secretValue || secretListDepth > 0;
  let i = 0;
  while (i < n) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n' || (d.toml && c === '#')) {
      // Comments are scanned like the rest, so a commented-out secret line is masked too.
      i++;
      continue;
    }
    const str = readString(text, i, d);
    if (str) {
      let j = str.end;
      while (j < n && (text[j] === ' ' || text[j] === '\t')) j++;
      const next = text[j];
      // A key (or, in TOML, a segment of a dotted key: the last segment decides).
      if (next === d.separator || (d.toml && next === '.')) {
        if (next === d.separator) secretValue = isSecretKey(text.slice(str.contentStart, str.contentEnd));
        i = j + 1;
        continue;
      }
      if (valueIsSecret() && str.contentEnd > str.contentStart) replace(str.contentStart, str.contentEnd);
      secretValue = false;
      i = str.end;
      continue;
    }
    if (c === '[' || c === '{') {
      depth++;
      if (c === '[' && secretValue) secretListDepth = depth;
      secretValue = false;
      i++;
      continue;
    }
    if (c === ']' || c === '}') {
      if (secretListDepth === depth) secretListDepth = 0;
      depth = Math.max(0, depth - 1);
      secretValue = false;
      i++;
      continue;
    }
    if (c === ',' || c === d.separator) {
      secretValue = false;
      i++;
      continue;
    }
    if (BARE.test(c)) {
      let j = i + 1;
      while (j < n && BARE.test(text[j]!) && !(d.toml && text[j] === '.' && !KEY_CHAR.test(text[j + 1] ?? ''))) j++;
      // A bare TOML key may be dotted (`auth.password = `): read its segments one by one.
      const word = text.slice(i, j);
      let k = j;
      while (k < n && (text[k] === ' ' || text[k] === '\t')) k++;
      if (d.toml && text[k] === d.separator) {
        const segments = word.split('.');
        secretValue = isSecretKey(segments[segments.length - 1]!);
        i = k + 1;
        continue;
      }
      if (d.toml && text[k] === '.') {
        i = k + 1;
        continue;
      }
      if (valueIsSecret() && !/^(true|false|null)$/.test(word)) replace(i, j);
      secretValue = false;
      i = j;
      continue;
    }
    secretValue = false;
    i++;
  }
  out.push(text.slice(copied));
  return out.join('');
}
