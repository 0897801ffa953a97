/**
 * The one secrets layer: the set of secret values of a run and the maskers every output path goes
 * through (human, json, jsonl, junit, --report, --diff, -v details, restore diffs). Nothing else in
 * trustplay masks.
 *
 * Two ways a secret is hidden, and why both:
 * - By position, whatever its length: values of secret keys in JSON and TOML (`maskJson`,
 *   `maskToml`), PEM private key bodies (`maskPem`), arguments marked `x-secret` in validation
 *   messages (`describeValue`), and file contents a module marks secret (whole diff side masked).
 * - By value, in free text (error messages, command output, -v details): every occurrence of a
 *   secret of the run is replaced, but only when it has at least `MIN_LITERAL_LENGTH` characters.
 *   Masking a 1–3 character secret everywhere would turn every `a` or `42` of unrelated text into
 *   the mask, which garbles the output and, by what it hides, tells the secret. Such a secret is
 *   still masked wherever it sits in a structured place (above).
 */
import { MASK } from './keys.js';
import { secretArgValues } from './schema.js';
import { isSecretKey } from './keys.js';
import { maskJson, maskPem, maskToml } from './text.js';
import { knownSecrets } from './known.js';

export { MASK, isSecretKey } from './keys.js';
export { maskJson, maskPem, maskToml } from './text.js';
export { describeValue, isSecretPath, maskSource, secretArgValues, QUOTABLE_LENGTH } from './schema.js';
export { isKnownSecret, markSecret, markSecretLeaves } from './known.js';

/** Secrets shorter than this are masked by position only, never by value in free text (see above). */
export const MIN_LITERAL_LENGTH = 4;

/** Before/after text of a change (the shape of the engine's Diff). */
export interface MaskableDiff {
  target: string;
  before: string;
  after: string;
  /** The whole content is a secret (a private key file): only its size is shown. */
  secret?: boolean;
}

/** The file format of a diff's target, for its masker. */
export function formatOf(target: string, text: string): 'json' | 'toml' {
  if (/\.json$/i.test(target)) return 'json';
  if (/\.toml$/i.test(target)) return 'toml';
  const first = /\S/.exec(text)?.[0];
  return first === '{' || first === '[' ? 'json' : 'toml';
}

/** A file's text with the secrets its format can locate masked (JSON or TOML by name and content; PEM keys always). */
export function maskFileText(target: string, text: string): string {
  return formatOf(target, text) === 'json' ? maskJson(text) : maskToml(text);
}

/** A file's content as a diff shows it: absent and binary content summarised, secrets masked. */
export function fileTextForDiff(path: string, content: Buffer | null): string {
  if (content === null) return '(absent)\n';
  if (content.includes(0)) return `(binary, ${content.length} bytes)\n`;
  return maskFileText(path, content.toString('utf8'));
}

/** The diff of a file's content from `before` to `after` (null: absent), as fileTextForDiff shows each side. */
export function fileDiff(path: string, before: Buffer | null, after: Buffer | null): MaskableDiff {
  return { target: path, before: fileTextForDiff(path, before), after: fileTextForDiff(path, after) };
}

const wholeSecret = (text: string): string =>
  text === '' ? '' : `${MASK} (secret, ${Buffer.byteLength(text)} bytes)\n`;

/** The secret values of one run: from `x-secret` arguments, secret-named variables, inventory and module-marked content. */
export class SecretSet {
  private readonly values = new Set<string>();
  private literal: string[] | undefined;
  /** The version of the process's known secrets (vault, lookups) last merged in. */
  private knownVersion = -1;

  /** Adds secret values (strings and numbers; empty ones are no secret). */
  add(...values: unknown[]): void {
    for (const v of values) {
      const s = typeof v === 'number' || typeof v === 'bigint' ? String(v) : v;
      if (typeof s !== 'string' || s === '' || this.values.has(s)) continue;
      this.values.add(s);
      this.literal = undefined;
    }
  }

  /** Adds the secrets inside validated arguments (by the schema's `x-secret` marks and secret key names). */
  addArgs(schema: Record<string, unknown> | undefined, args: unknown): void {
    this.add(...secretArgValues(schema, args));
  }

  /** Adds the values of variables whose names say they are secrets (`registry_password`, `api_token`). */
  addVariables(vars: Record<string, unknown>): void {
    for (const [k, v] of Object.entries(vars))
      if (isSecretKey(k)) this.add(...secretArgValues({ 'x-secret': true }, v));
  }

  has(value: string): boolean {
    this.mergeKnown();
    return this.values.has(value);
  }

  /** Values from a vault or a lookup are secrets of every run of this process, whenever they were read. */
  private mergeKnown(): void {
    const k = knownSecrets();
    if (k.version === this.knownVersion) return;
    this.knownVersion = k.version;
    this.add(...k.values);
  }

  /** Free text (messages, command output) with private keys and every long-enough secret value masked. */
  maskText(text: string): string {
    let out = maskPem(text);
    this.mergeKnown();
    this.literal ??= [...this.values].filter((s) => s.length >= MIN_LITERAL_LENGTH).sort((a, b) => b.length - a.length);
    for (const s of this.literal) if (out.includes(s)) out = out.split(s).join(MASK);
    return out;
  }

  /** A file's text: masked by its format, then by value. */
  maskFile(target: string, text: string): string {
    return this.maskText(maskFileText(target, text));
  }

  /** A change's diff: secret content reduced to its size, other content masked by format and by value. */
  maskDiff<D extends MaskableDiff>(d: D): D {
    const side = (t: string) => (d.secret ? wholeSecret(t) : this.maskFile(d.target, t));
    return { ...d, target: this.maskText(d.target), before: side(d.before), after: side(d.after) };
  }
}
