/**
 * Lookups in templates, without code execution: `{{ lookup('env', 'NAME') }}` reads an environment
 * variable of the trustplay process, `{{ lookup('file', '/run/secrets/registry') }}` a file on the
 * controller (trailing whitespace removed, as Ansible's file lookup does; a vault-encrypted file is
 * decrypted in memory). A function form, so a lookup never collides with a variable (DECISIONS.md,
 * "Names": `env` is a common variable name). Every value a lookup reads is a secret for every
 * output (src/secrets/known.ts), whatever it is used for.
 *
 * A relative file path resolves against the playbook's directory, where Ansible looks for a play's
 * files, so the same playbook reads the same file from cron, CI or a shell anywhere.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { markSecret } from '../secrets/known.js';
import { decryptVaultText, isVaultText, VaultError } from '../vault/index.js';

/** The lookups there are. */
export const LOOKUPS = ['env', 'file'] as const;
export type LookupKind = (typeof LOOKUPS)[number];

const CALL = /^lookup\s*\(\s*(['"])([A-Za-z_][\w.]*)\1\s*,\s*(['"])([^'"]*)\3\s*\)$/;

/** `lookup('env', 'X')` as data; undefined when the expression is not a lookup call this form reads. */
export function parseLookup(expr: string): { kind: string; arg: string } | undefined {
  const m = CALL.exec(expr.trim());
  return m ? { kind: m[2]!, arg: m[4]! } : undefined;
}

/** Whether an expression starts like a lookup call (for a precise syntax message when it is malformed). */
export function looksLikeLookup(expr: string): boolean {
  return /^lookup\s*\(/.test(expr.trim());
}

/** Why a lookup call is not one trustplay runs, or undefined when it is. */
export function lookupSyntaxProblem(expr: string): string | undefined {
  const call = parseLookup(expr);
  if (!call)
    return `\`{{ ${expr} }}\`: a lookup is written \`lookup('env', 'NAME')\` or \`lookup('file', '/path')\`, with one quoted argument`;
  if (!(LOOKUPS as readonly string[]).includes(call.kind))
    return `\`{{ ${expr} }}\`: lookup \`${call.kind}\` is not supported; trustplay has \`lookup('env', 'NAME')\` and \`lookup('file', '/path')\` (no plugins, no code)`;
  return undefined;
}

let baseDir: string | undefined;

/** The directory relative `file` lookups resolve against (the playbook's), set when a playbook loads. */
export function setLookupBaseDir(dir: string | undefined): void {
  baseDir = dir;
}

/** The largest file a lookup reads (a template renders at most this much anyway). */
const MAX_FILE_BYTES = 1024 * 1024;

/** The file lookups of this process, read once each (every host and the validation see the same value). */
const files = new Map<string, string>();

/** A lookup that cannot give a value, in one sentence (the template's error). */
export class LookupError extends Error {}

function readLookupFile(arg: string): string {
  if (arg === '') throw new LookupError(`lookup('file', ''): the path is empty`);
  const path = arg.startsWith('~/') ? join(homedir(), arg.slice(2)) : isAbsolute(arg) ? arg : undefined;
  const full = path ?? (baseDir ? resolve(baseDir, arg) : undefined);
  if (!full)
    throw new LookupError(
      `lookup('file', '${arg}'): a relative path is read from the playbook's directory, and there is no playbook here; give an absolute path`,
    );
  const cached = files.get(full);
  if (cached !== undefined) return cached;
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO must not block the run; it is refused below.
    fd = openSync(full, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LookupError(
      `lookup('file', '${arg}'): cannot read ${full}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`,
    );
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new LookupError(`lookup('file', '${arg}'): ${full} is not a regular file`);
    if (st.size > MAX_FILE_BYTES)
      throw new LookupError(
        `lookup('file', '${arg}'): ${full} is ${st.size} bytes, more than the 1 MiB a lookup reads`,
      );
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
    }
    text = buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
  if (isVaultText(text)) {
    try {
      text = decryptVaultText(text);
    } catch (e) {
      if (e instanceof VaultError)
        throw new LookupError(`lookup('file', '${arg}'): this vault-encrypted file ${e.message}`);
      throw e;
    }
  }
  text = text.replace(/\s+$/, '');
  files.set(full, text);
  return text;
}

/** The value of a lookup call (marked secret), or a LookupError saying why there is none. */
export function evaluateLookup(expr: string): string {
  const problem = lookupSyntaxProblem(expr);
  if (problem) throw new LookupError(problem);
  const { kind, arg } = parseLookup(expr)!;
  let value: string;
  if (kind === 'env') {
    const v = process.env[arg];
    // Ansible gives '' for an unset variable; a forgotten export must not become an empty password.
    if (v === undefined)
      throw new LookupError(
        `lookup('env', '${arg}'): the environment variable \`${arg}\` is not set for trustplay; export it (an empty value must be set explicitly)`,
      );
    value = v;
  } else value = readLookupFile(arg);
  markSecret(value);
  return value;
}
