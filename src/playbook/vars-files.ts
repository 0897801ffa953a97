/**
 * Ansible's variable files, read as Ansible reads them: a play's `vars_files:`, and the
 * `group_vars/` and `host_vars/` directories next to the inventory and next to the playbook
 * (ansible-core 2.14, plugins/vars/host_group_vars.py and DataLoader.find_vars_files). For an
 * entity NAME, `<dir>/group_vars/NAME` is read as a file with no extension, `.yml`, `.yaml` or
 * `.json`, in that order, and a directory of that name contributes every file under it (sorted by
 * path, hidden files skipped) with one of those extensions; later files win.
 *
 * `loadVarsFile` is the one place a variable file is read: vault-encrypted files and inline
 * `!vault` values are decrypted by the YAML parser it uses (src/vault), so every caller gets them.
 * Every value keeps where it was written (`locate`), for error messages.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isMap, isPair, isScalar } from 'yaml';
import { at, parseYamlSource, type Diagnostic, type SourceFile } from './diagnostics.js';
import { readInputFileSync } from './input.js';

export interface Location {
  file: string;
  line: number;
  col: number;
}

/** One variable file, loaded. */
export interface VarsFile {
  file: string;
  vars: Record<string, unknown>;
  /** Where a top-level variable's value is written (the file's start when unknown). */
  locate(name: string): Location;
}

export interface VarsFileLoad {
  varsFile?: VarsFile;
  errors: Diagnostic[];
}

const EXTENSIONS = ['', '.yml', '.yaml', '.json'];

/** Read a variable file: a YAML (or JSON) mapping of variable names to values; empty is no variables. */
export function loadVarsFile(file: string): VarsFileLoad {
  const input = readInputFileSync(file, 'vars file');
  if ('error' in input) return { errors: [{ file, line: input.line ?? 0, col: input.col ?? 0, message: input.error }] };
  const { src, errors } = parseYamlSource(file, input.text);
  if (errors.length) return { errors };
  const top = src.doc.contents;
  if (top !== null && !(isScalar(top) && top.value === null) && !isMap(top))
    return {
      errors: [
        at(
          src,
          top,
          'a vars file is a mapping of variable names to values (`name: value` lines), not a list or a scalar',
        ),
      ],
    };
  let vars: Record<string, unknown>;
  try {
    vars = (src.doc.toJS() ?? {}) as Record<string, unknown>;
  } catch (e) {
    return { errors: [at(src, top, `YAML error: ${(e as Error).message}`)] };
  }
  return { varsFile: { file, vars, locate: locator(src) }, errors: [] };
}

function locator(src: SourceFile): (name: string) => Location {
  return (name) => {
    const top = src.doc.contents;
    const pair = isMap(top)
      ? top.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === name)
      : undefined;
    const d = at(src, pair ? (pair.value ?? pair.key) : top, '');
    return { file: d.file, line: d.line, col: d.col };
  };
}

/** Files under a group_vars/host_vars directory, sorted by path as Ansible walks them. */
function dirFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) out.push(...dirFiles(path));
    else if (EXTENSIONS.some((e) => e !== '' && name.endsWith(e)) || !name.includes('.')) out.push(path);
  }
  return out;
}

/** The files `<base>/<kind>/<name>` stands for, in the order Ansible combines them. */
export function entityVarsFiles(base: string, kind: 'group_vars' | 'host_vars', name: string): string[] {
  const out: string[] = [];
  for (const ext of EXTENSIONS) {
    const path = join(base, kind, name + ext);
    let st;
    try {
      st = statSync(path);
    } catch {
      continue;
    }
    if (st.isDirectory()) out.push(...dirFiles(path));
    else out.push(path);
  }
  return out;
}

/** group_vars/host_vars found next to one inventory or playbook. */
export interface AdjacentVars {
  dir: string;
  groups: Map<string, VarsFile[]>;
  hosts: Map<string, VarsFile[]>;
}

/** Load `<dir>/group_vars/<group>` and `<dir>/host_vars/<host>` for the given names. */
export function loadAdjacentVars(
  dir: string,
  groups: Iterable<string>,
  hosts: Iterable<string>,
): { adjacent: AdjacentVars; errors: Diagnostic[] } {
  const adjacent: AdjacentVars = { dir, groups: new Map(), hosts: new Map() };
  const errors: Diagnostic[] = [];
  const load = (kind: 'group_vars' | 'host_vars', names: Iterable<string>, into: Map<string, VarsFile[]>) => {
    let st;
    try {
      st = statSync(join(dir, kind));
    } catch {
      return;
    }
    if (!st.isDirectory()) return;
    for (const name of names) {
      const files: VarsFile[] = [];
      for (const f of entityVarsFiles(dir, kind, name)) {
        const r = loadVarsFile(f);
        errors.push(...r.errors);
        if (r.varsFile) files.push(r.varsFile);
      }
      if (files.length) into.set(name, files);
    }
  };
  load('group_vars', groups, adjacent.groups);
  load('host_vars', hosts, adjacent.hosts);
  return { adjacent, errors };
}

/** The variables of several files, later files winning. */
export function mergeVarsFiles(files: readonly VarsFile[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of files ?? []) Object.assign(out, f.vars);
  return out;
}
