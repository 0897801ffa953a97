/**
 * File path arguments (`x-file` in a module's schema). A controller-side file (the CA, a client
 * certificate or key) is read by trustplay itself: validation checks it exists, is readable and
 * holds what it should, so a wrong path never fails a run half-way through the fleet. A target-side
 * file (a kubeconfig) is checked when the target is this machine (a local connection).
 *
 * Relative paths resolve against the file that names them (DECISIONS.md, "Inventories"): a path in
 * the playbook against the playbook's directory, a path held by an inventory variable against the
 * inventory's, a play variable against the playbook's, an `-e` value against the working directory.
 * The loader rewrites such paths to absolute ones, so every later reader sees the same file.
 */
import { readFileSync, statSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Inventory } from './inventory.js';
import { templateRefs } from './interpolate.js';

export type FileKind = 'controller-certificate' | 'controller-private-key' | 'target';

/** The `x-file` arguments of a module schema (top-level properties). */
export function fileArgs(schema: Record<string, unknown>): Array<{ name: string; kind: FileKind }> {
  const props = (schema['properties'] ?? {}) as Record<string, Record<string, unknown>>;
  return Object.entries(props).flatMap(([name, p]) =>
    typeof p['x-file'] === 'string' ? [{ name, kind: p['x-file'] as FileKind }] : [],
  );
}

const isInline = (v: string) => v.includes('-----BEGIN ');
const isRelative = (v: string) => v !== '' && !isInline(v) && !isAbsolute(v) && !v.startsWith('~');

/** Where each layer of variables was written, to resolve the relative paths they hold. */
export interface PathSources {
  playbookFile: string;
  inventory: Inventory;
  playVars: Record<string, unknown>;
  extraVars: Record<string, unknown>;
  /** Variable files in play (vars_files, group_vars/host_vars): each against its own directory. */
  files?: ReadonlyArray<{ file: string; vars: Record<string, unknown> }>;
}

/**
 * Rewrite the relative controller-side paths a task's arguments name to absolute ones: the literal
 * in the playbook, or the variable a template starts with, in every layer that defines it.
 */
export function resolveControllerPaths(schema: Record<string, unknown>, args: unknown, sources: PathSources): void {
  if (!args || typeof args !== 'object' || Array.isArray(args)) return;
  const a = args as Record<string, unknown>;
  for (const { name, kind } of fileArgs(schema)) {
    if (kind === 'target') continue;
    const v = a[name];
    // A list argument (several CA files) resolves each of its items the same way.
    const items: Array<[Record<string, unknown> | unknown[], string | number]> = Array.isArray(v)
      ? v.map((_, i) => [v, i])
      : [[a, name]];
    for (const [holder, key] of items) {
      const item = (holder as Record<string | number, unknown>)[key];
      if (typeof item !== 'string') continue;
      if (startsWithTemplate(item)) resolveVariable(templateRefs(item)[0]!.expr, sources, 0);
      else if (isRelative(item))
        (holder as Record<string | number, unknown>)[key] = resolve(dirname(sources.playbookFile), item);
    }
  }
}

function startsWithTemplate(v: string): boolean {
  const first = templateRefs(v)[0];
  return first !== undefined && first.offset === 0 && first.valid;
}

function resolveVariable(path: string, sources: PathSources, depth: number): void {
  // -e values keep the working directory, which is what a relative path given there means.
  if (depth > 10 || lookupParent(sources.extraVars, path)) return;
  const inventoryDir = sources.inventory.file ? dirname(sources.inventory.file) : process.cwd();
  const layers: Array<[Record<string, unknown> | undefined, string]> = [
    [sources.playVars, dirname(sources.playbookFile)],
    ...[...sources.inventory.groupVars.values()].map((v) => [v, inventoryDir] as [Record<string, unknown>, string]),
    ...[...sources.inventory.hosts.values()].map(
      (h) => [h.hostVars, inventoryDir] as [Record<string, unknown>, string],
    ),
    ...(sources.files ?? []).map((f) => [f.vars, dirname(f.file)] as [Record<string, unknown>, string]),
  ];
  for (const [vars, dir] of layers) {
    const found = lookupParent(vars, path);
    if (!found) continue;
    const value = found.parent[found.key];
    if (Array.isArray(value)) {
      value.forEach((item, i) => {
        if (typeof item === 'string' && !startsWithTemplate(item) && isRelative(item)) value[i] = resolve(dir, item);
      });
      continue;
    }
    if (typeof value !== 'string') continue;
    if (startsWithTemplate(value)) resolveVariable(templateRefs(value)[0]!.expr, sources, depth + 1);
    else if (isRelative(value)) found.parent[found.key] = resolve(dir, value);
  }
}

/** The object holding the last segment of a dotted path, if the path exists in vars. */
function lookupParent(
  vars: Record<string, unknown> | undefined,
  path: string,
): { parent: Record<string, unknown>; key: string } | undefined {
  const segs = path.split('.');
  let cur: unknown = vars;
  for (const seg of segs.slice(0, -1)) {
    if (!cur || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  const key = segs[segs.length - 1]!;
  if (!cur || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, key)) return undefined;
  return { parent: cur as Record<string, unknown>, key };
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/** Why a file could not be read, as the end of "file X …". */
export function unreadable(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT'
    ? 'does not exist'
    : code === 'EACCES'
      ? 'is not readable (permission denied)'
      : code === 'EISDIR'
        ? 'is a directory'
        : `cannot be read (${code ?? (e as Error).message})`;
}

/**
 * What is wrong with a file argument's value, in words that never quote the file's content, or
 * undefined when it is fine. `what` names the argument, e.g. "`ca`".
 */
export function fileProblem(value: string, kind: FileKind, what: string): string | undefined {
  const inline = isInline(value);
  if (kind === 'target' && inline) return undefined;
  const file = inline ? '' : resolve(value);
  let text = value;
  if (!inline) {
    try {
      // A target-side file is read by a command that may run as another user (become): it must
      // exist; whether it is readable is that command's business.
      if (kind === 'target') {
        if (statSync(file).isDirectory()) throw Object.assign(new Error('directory'), { code: 'EISDIR' });
        return undefined;
      }
      text = readFileSync(file, 'utf8');
    } catch (e) {
      const why = unreadable(e);
      const side = kind === 'target' ? 'on this machine (the host is a local connection)' : 'on the controller';
      return `${what} file ${file} ${why} ${side}: fix the path, or the variable that holds it`;
    }
  }
  const where = inline ? `the inline ${what}` : `${what} file ${file}`;
  if (kind === 'controller-certificate') {
    const certs = text.match(PEM_CERT) ?? [];
    if (PEM_PRIVATE_KEY.test(text))
      return certs.length
        ? `${where} also holds a private key: give a file with the certificate only (it is copied to every node)`
        : `${where} is a private key, not a certificate: give the certificate (-----BEGIN CERTIFICATE-----)`;
    if (!certs.length)
      return `${where} is not a PEM certificate (no -----BEGIN CERTIFICATE----- block): give the certificate itself, not a DER file or a key`;
    for (const pem of certs) {
      try {
        new X509Certificate(pem);
      } catch {
        return `${where} holds a PEM block that is not a valid certificate: check that the file is not truncated`;
      }
    }
  }
  if (kind === 'controller-private-key') {
    try {
      createPrivateKey(text);
    } catch {
      return `${where} is not a PEM private key: give the unencrypted key that matches the certificate`;
    }
  }
  return undefined;
}
