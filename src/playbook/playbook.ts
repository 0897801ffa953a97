/**
 * Playbook loading and validation. Everything a user can get wrong in a playbook or inventory is
 * reported here, located (`file:line:col: message`), before anything runs.
 */
import { basename, dirname, resolve as resolvePath } from 'node:path';
import { setLookupBaseDir } from './lookups.js';
import { createHash } from 'node:crypto';
import type { ValidateFunction } from 'ajv';
import {
  at,
  atInScalar,
  nodeAt,
  parseYamlSource,
  sortDiagnostics,
  suggestion,
  type Diagnostic,
  type SourceFile,
} from './diagnostics.js';
import {
  hasTemplate,
  interpolate,
  interpolateString,
  isDefined,
  lookup,
  templatedStrings,
  templateRefs,
  templateSyntaxMessage,
  TemplateError,
} from './interpolate.js';
import { readInputFile, readInputFileSync } from './input.js';
import { applyFileConnectionVars, hostVariables, localInventory, type Inventory } from './inventory.js';
import { loadAdjacentVars, loadVarsFile, mergeVarsFiles, type AdjacentVars, type VarsFile } from './vars-files.js';
import { matchHosts } from './patterns.js';
import { parseWhen, WhenSyntaxError } from '../engine/when.js';
import { yaml11Warnings } from './yaml11.js';
import { fileArgs, fileProblem, resolveControllerPaths, type FileKind, type PathSources } from './controller-files.js';
import { deprecatedArgWarnings } from './deprecated-args.js';
import { ajvErrorsToDiagnostics, compileSchema, groupConstraintErrors } from './schema-validate.js';
import { isSecretPath, maskSource } from '../secrets/index.js';
import { moduleArgSchemas } from './schema/modules.js';
import { playShapeSchema, taskCommonKeys, taskCommonSchema } from './schema/playbook.js';
import { defined } from '../defined.js';

export interface Location {
  file: string;
  line: number;
  col: number;
}

/** A task as loaded: its module, raw (still templated) arguments and common keys. */
export interface Task {
  name: string;
  module: string;
  args: Record<string, unknown>;
  when: Array<string | boolean>;
  tags: string[];
  notify: string[];
  checkMode?: boolean;
  ignoreErrors: boolean;
  runOnce: boolean;
  loc: Location;
}

export type Serial = number | string | Array<number | string>;

export interface Play {
  name: string;
  hosts: string;
  /** The play's `vars:` with its `vars_files:` on top (nothing of Ansible's sits between them). */
  vars: Record<string, unknown>;
  /** group_vars/host_vars beside the playbook file this play is written in. */
  adjacent?: AdjacentVars;
  serial?: Serial;
  maxFailPercentage?: number;
  tasks: Task[];
  handlers: Task[];
  loc: Location;
}

export interface Playbook {
  file: string;
  /** sha256 of the playbook text, for snapshots. */
  digest: string;
  plays: Play[];
}

export interface LoadOptions {
  inventory?: Inventory;
  /** `-e key=value` variables (highest precedence). */
  extraVars?: Record<string, unknown>;
  /** Extra module argument schemas (internal/test modules). */
  extraModules?: Record<string, Record<string, unknown>>;
  /** `--limit`: restricts the hosts checked (a pattern). */
  limit?: string;
  /** `--tags` / `--skip-tags`: each must name a tag some task carries. */
  tags?: string[];
  skipTags?: string[];
}

export interface LoadResult {
  playbook?: Playbook;
  inventory: Inventory;
  errors: Diagnostic[];
  /** Problems that do not stop a run (reported by validate, and before a run starts). */
  warnings?: Diagnostic[];
  /** Hosts each play targets, after `--limit`. */
  playHosts: string[][];
}

const validators = new Map<string, ValidateFunction>();

function validatorFor(name: string, schema: Record<string, unknown>): ValidateFunction {
  let v = validators.get(name);
  if (!v) {
    v = compileSchema(schema);
    validators.set(name, v);
  }
  return v;
}

export async function loadPlaybook(file: string, opts: LoadOptions = {}): Promise<LoadResult> {
  const inventory = opts.inventory ?? localInventory();
  // `lookup('file', 'relative')` reads from the playbook's directory, wherever trustplay runs.
  setLookupBaseDir(dirname(resolvePath(file)));
  const input = await readInputFile(file, 'playbook');
  if ('error' in input)
    return {
      inventory,
      errors: [{ file, line: input.line ?? 0, col: input.col ?? 0, message: input.error }],
      playHosts: [],
    };
  return parsePlaybook(file, input.text, { ...opts, inventory });
}

export function parsePlaybook(file: string, text: string, opts: LoadOptions = {}): LoadResult {
  const inventory = opts.inventory ?? localInventory();
  const modules: Record<string, Record<string, unknown>> = {
    ...moduleArgSchemas,
    ...opts.extraModules,
  };
  const errors: Diagnostic[] = [];
  const limitMatch = opts.limit ? matchHosts(inventory, opts.limit) : undefined;
  const limit = limitMatch ? new Set(limitMatch.hosts) : undefined;
  if (opts.limit && limit && limit.size === 0) {
    errors.push({
      file: '--limit',
      line: 0,
      col: 0,
      message: `\`${opts.limit}\` matches no host in the inventory (hosts: ${[...inventory.hosts.keys()].slice(0, 10).join(', ')}${inventory.hosts.size > 10 ? ', …' : ''})`,
    });
  }
  const plays: Play[] = [];
  const playHosts: string[][] = [];
  const warnings: Diagnostic[] = [];
  if (limit?.size)
    for (const term of limitMatch!.unmatched)
      warnings.push({
        file: '--limit',
        line: 0,
        col: 0,
        severity: 'warning',
        message: `term \`${term}\` matches no host, so it is ignored (as Ansible does)`,
      });
  // group_vars/host_vars beside each playbook file, read once per directory.
  const adjacentByDir = new Map<string, AdjacentVars | undefined>();
  const adjacentFor = (dir: string): AdjacentVars | undefined => {
    if (!adjacentByDir.has(dir)) {
      const r = loadAdjacentVars(dir, inventory.groups.keys(), inventory.hosts.keys());
      errors.push(...r.errors);
      adjacentByDir.set(dir, r.adjacent.groups.size || r.adjacent.hosts.size ? r.adjacent : undefined);
    }
    return adjacentByDir.get(dir);
  };
  // Connection variables beside the playbook reach the connection, as in Ansible.
  const topAdjacent = adjacentFor(dirname(resolvePath(file)));
  if (topAdjacent)
    errors.push(
      ...applyFileConnectionVars(
        inventory,
        [...topAdjacent.groups.values(), ...topAdjacent.hosts.values()].flat(),
        topAdjacent,
      ),
    );
  const digest = createHash('sha256');
  const loadFile = (srcFile: string, srcText: string, stack: string[]): void => {
    const { src, errors: yamlErrors } = parseYamlSource(srcFile, srcText);
    if (yamlErrors.length) return void errors.push(...yamlErrors);
    digest.update(srcText);
    let data: unknown;
    try {
      data = src.doc.toJS();
    } catch (e) {
      return void errors.push(at(src, src.doc.contents, `YAML error: ${(e as Error).message}`));
    }
    let playsData: unknown[];
    let base: (string | number)[][];
    if (Array.isArray(data)) {
      playsData = data;
      base = data.map((_, i) => [i]);
      if (data.length === 0)
        errors.push(at(src, src.doc.contents, 'playbook has no plays: write a play with `hosts:` and `tasks:`'));
    } else if (data && typeof data === 'object') {
      playsData = [data];
      base = [[]];
    } else {
      return void errors.push(
        at(src, src.doc.contents, 'a playbook is a play (a mapping with `hosts:` and `tasks:`) or a list of plays'),
      );
    }
    playsData.forEach((pd, i) => {
      const path = base[i]!;
      const target = importTarget(src, pd, path, 'import_playbook', ['name']);
      if (target) {
        if ('error' in target) return void errors.push(target.error);
        const input = readImport(src, target, stack, 'import_playbook', 'imported playbook');
        if ('error' in input) return void errors.push(input.error);
        return loadFile(target.file, input.text, [...stack, target.file]);
      }
      const adjacent = adjacentFor(dirname(resolvePath(src.file)));
      const r = loadPlay(src, pd, path, modules, inventory, opts.extraVars ?? {}, limit, adjacent, stack);
      errors.push(...r.errors);
      warnings.push(...r.warnings);
      if (pd && typeof pd === 'object' && !Array.isArray(pd))
        warnings.push(
          ...yaml11Warnings(src, path, pd as Record<string, unknown>, opts.extraVars ?? {}),
          ...deprecatedArgWarnings(src, path, pd as Record<string, unknown>, modules),
        );
      if (r.play) {
        plays.push(r.play);
        playHosts.push(r.hosts);
      }
    });
  };
  loadFile(file, text, [resolvePath(file)]);
  errors.push(...unknownTags(plays, opts));
  const warned = sortDiagnostics(dedupe(warnings));
  if (errors.length) return { inventory, errors: sortDiagnostics(dedupe(errors)), warnings: warned, playHosts };
  return {
    playbook: { file, digest: digest.digest('hex'), plays },
    inventory,
    errors: [],
    warnings: warned,
    playHosts,
  };
}

/** Tags that select nothing: running nothing and calling it "in desired state" would be a green by accident. */
function unknownTags(plays: Play[], opts: LoadOptions): Diagnostic[] {
  const known = new Set(plays.flatMap((p) => [...p.tasks, ...p.handlers].flatMap((t) => t.tags)));
  const out: Diagnostic[] = [];
  for (const [option, given] of [
    ['--tags', opts.tags],
    ['--skip-tags', opts.skipTags],
  ] as const) {
    for (const tag of given ?? []) {
      if (tag === 'all' || known.has(tag)) continue;
      const list = [...known].sort();
      out.push({
        file: option,
        line: 0,
        col: 0,
        message: `tag \`${tag}\` is on no task of the playbook${suggestion(tag, list)}${list.length ? `; tags: ${list.join(', ')}` : ': no task has `tags:`'}`,
      });
    }
  }
  return out;
}

function dedupe(ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const k = `${d.file}:${d.line}:${d.col}:${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * An `import_playbook:` / `import_tasks:` entry (also under its `ansible.builtin.` name): the file it
 * names, resolved against the file it is written in; undefined when the entry is not an import.
 */
function importTarget(
  src: SourceFile,
  entry: unknown,
  path: (string | number)[],
  keyword: 'import_playbook' | 'import_tasks',
  allowed: readonly string[],
): { file: string; name: string; node: unknown } | { error: Diagnostic } | undefined {
  if (!entry || typeof entry !== 'object' || Array.isArray(entry)) return undefined;
  const e = entry as Record<string, unknown>;
  const key = [keyword, `ansible.builtin.${keyword}`].find((k) => k in e);
  if (key === undefined) return undefined;
  const node = nodeAt(src, [...path, key]);
  const other = Object.keys(e).find((k) => k !== key && !allowed.includes(k));
  if (other !== undefined)
    return {
      error: at(
        src,
        nodeAt(src, [...path, other], true),
        `${keyword}: \`${other}\` is not supported on an import (${[key, ...allowed].map((k) => `\`${k}\``).join(', ')} are)`,
      ),
    };
  const name = e[key];
  if (typeof name !== 'string' || !name.trim())
    return { error: at(src, node, `${keyword} takes the path of a file, relative to this one`) };
  if (hasTemplate(name))
    return {
      error: at(
        src,
        node,
        `${keyword}: \`${name}\` is templated; an import is read before any variable exists (as Ansible's static imports): write the path`,
      ),
    };
  return { file: resolvePath(dirname(resolvePath(src.file)), name), name, node };
}

/** The text of an imported file, or a located error: a cycle (with its chain) or an unreadable file. */
function readImport(
  src: SourceFile,
  target: { file: string; name: string; node: unknown },
  stack: readonly string[],
  keyword: 'import_playbook' | 'import_tasks',
  what: string,
): { text: string } | { error: Diagnostic } {
  const cycle = stack.indexOf(target.file);
  if (cycle >= 0)
    return {
      error: at(
        src,
        target.node,
        `${keyword}: \`${target.name}\` is already being imported (${[...stack.slice(cycle), target.file].map((f) => basename(f)).join(' → ')}): a file cannot import itself, directly or through others; remove the cycle`,
      ),
    };
  const input = readInputFileSync(target.file, what);
  if ('error' in input)
    return { error: at(src, target.node, `${keyword}: \`${target.name}\` (${target.file}): ${input.error}`) };
  return input;
}

function locOf(src: SourceFile, path: (string | number)[]): Location {
  const d = at(src, nodeAt(src, path), '');
  return { file: d.file, line: d.line, col: d.col };
}

function toList<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function loadPlay(
  src: SourceFile,
  pd: unknown,
  path: (string | number)[],
  modules: Record<string, Record<string, unknown>>,
  inventory: Inventory,
  extraVars: Record<string, unknown>,
  limit: Set<string> | undefined,
  adjacent: AdjacentVars | undefined,
  stack: readonly string[],
): { play?: Play; hosts: string[]; errors: Diagnostic[]; warnings: Diagnostic[] } {
  const errors: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];
  const shape = validatorFor('$play', playShapeSchema as unknown as Record<string, unknown>);
  if (!shape(pd)) {
    errors.push(...ajvErrorsToDiagnostics(src, path, shape.errors ?? [], { context: 'play', data: pd }));
    // Keep going into tasks when the play is at least a mapping, so every problem is reported at once.
    if (!pd || typeof pd !== 'object' || Array.isArray(pd)) return { hosts: [], errors, warnings };
  }
  const p = pd as Record<string, unknown>;
  const hostsPattern = typeof p['hosts'] === 'string' ? p['hosts'] : '';
  let hosts: string[] = [];
  if (hostsPattern) {
    const m = matchHosts(inventory, hostsPattern);
    if (m.error) errors.push(at(src, nodeAt(src, [...path, 'hosts']), m.error));
    else if (m.hosts.length === 0) {
      const known = [...inventory.groups.keys(), ...inventory.hosts.keys()];
      errors.push(
        at(
          src,
          nodeAt(src, [...path, 'hosts']),
          `host pattern \`${hostsPattern}\` matches no host in ${inventory.file ? 'the inventory' : 'the default inventory (localhost only; pass -i INVENTORY)'}${m.unmatched[0] ? suggestion(m.unmatched[0], known) : ''}`,
        ),
      );
    }
    // A term matching nothing next to terms that match is ignored, as Ansible does, with its warning.
    else
      for (const term of m.unmatched)
        warnings.push({
          ...at(src, nodeAt(src, [...path, 'hosts']), ''),
          severity: 'warning',
          message: `host pattern term \`${term}\` matches no host, so it is ignored (as Ansible does)${suggestion(term, [...inventory.groups.keys(), ...inventory.hosts.keys()])}`,
        });
    hosts = limit ? m.hosts.filter((h) => limit.has(h)) : m.hosts;
  }
  const playVars = (p['vars'] && typeof p['vars'] === 'object' ? p['vars'] : {}) as Record<string, unknown>;
  const varsFiles = loadPlayVarsFiles(src, p['vars_files'], path, { ...playVars, ...extraVars }, errors);
  const handlers0 = expandTasks(src, Array.isArray(p['handlers']) ? p['handlers'] : [], [...path, 'handlers'], stack);
  const tasks0 = expandTasks(src, Array.isArray(p['tasks']) ? p['tasks'] : [], [...path, 'tasks'], stack);
  errors.push(...handlers0.errors, ...tasks0.errors);
  // Before any variable is read: relative controller-side paths become absolute, resolved against
  // the file that names them.
  const layers = (a: AdjacentVars | undefined): VarsFile[] =>
    [...(a?.groups.values() ?? []), ...(a?.hosts.values() ?? [])].flat();
  const sources: PathSources = {
    playbookFile: src.file,
    inventory,
    playVars,
    extraVars,
    files: [...varsFiles, ...layers(inventory.adjacent), ...layers(adjacent)],
  };
  for (const { td, src: tsrc } of [...handlers0.entries, ...tasks0.entries]) {
    if (!td || typeof td !== 'object') continue;
    for (const [k, v] of Object.entries(td as Record<string, unknown>))
      if (modules[k]) resolveControllerPaths(modules[k], v, { ...sources, playbookFile: tsrc.file });
  }
  const mergedVars = { ...playVars, ...mergeVarsFiles(varsFiles) };
  const varsFor = memoVars(inventory, mergedVars, extraVars, adjacent);
  const isLocal = (h: string) => inventory.hosts.get(h)?.connection === 'local';
  const handlers: Task[] = [];
  for (const h of handlers0.entries) {
    const r = loadTask(h.src, h.td, h.path, modules, hosts, varsFor, isLocal);
    errors.push(...r.errors);
    if (r.task) handlers.push(inherit(r.task, h));
  }
  const handlersRaw = handlers0.entries.map((h) => h.td);
  // A handler with problems of its own still answers to its name (no second, misleading error).
  const handlerNames = [
    ...new Set([
      ...handlers.map((h) => h.name),
      ...handlersRaw.flatMap((h) => {
        const n = h && typeof h === 'object' ? (h as Record<string, unknown>)['name'] : undefined;
        return typeof n === 'string' ? [n] : [];
      }),
    ]),
  ];
  const tasks: Task[] = [];
  for (const entry of tasks0.entries) {
    const { td: t, path: tpath, src } = entry;
    const r = loadTask(src, t, tpath, modules, hosts, varsFor, isLocal);
    errors.push(...r.errors);
    if (r.task) tasks.push(inherit(r.task, entry));
    // Checked from the raw task so that another problem in it (an undefined variable) hides nothing.
    const notifyRaw = t && typeof t === 'object' ? (t as Record<string, unknown>)['notify'] : undefined;
    toList(notifyRaw).forEach((n, j) => {
      if (typeof n === 'string' && !handlerNames.includes(n)) {
        const npath = Array.isArray(notifyRaw) ? [...tpath, 'notify', j] : [...tpath, 'notify'];
        errors.push(
          at(
            src,
            nodeAt(src, npath),
            `notify: no handler named \`${n}\` in this play${suggestion(n, handlerNames)}${handlerNames.length ? `; handlers: ${handlerNames.join(', ')}` : ": add it under the play's `handlers:`"}`,
          ),
        );
      }
    });
  }
  if (errors.length) return { hosts, errors, warnings };
  const play: Play = {
    name: typeof p['name'] === 'string' ? p['name'] : hostsPattern,
    hosts: hostsPattern,
    vars: mergedVars,
    ...(adjacent ? { adjacent } : {}),
    tasks,
    handlers,
    loc: locOf(src, path),
    ...defined({
      serial: p['serial'] as Serial | undefined,
      maxFailPercentage: p['max_fail_percentage'] as number | undefined,
    }),
  };
  return { play, hosts, errors, warnings };
}

/** Per-host merged variables (inventory and vars files < play < vars_files < extra), computed once per host. */
function memoVars(
  inventory: Inventory,
  playVars: Record<string, unknown>,
  extraVars: Record<string, unknown>,
  adjacent?: AdjacentVars,
) {
  const cache = new Map<string, Record<string, unknown>>();
  return (host: string): Record<string, unknown> => {
    let v = cache.get(host);
    if (!v) {
      const h = inventory.hosts.get(host);
      v = { ...(h ? hostVariables(inventory, h, adjacent) : {}), ...playVars, ...extraVars };
      cache.set(host, v);
    }
    return v;
  };
}

/** Variables of a host in a play, as the engine interpolates them. */
export function playVariables(
  inventory: Inventory,
  play: Play,
  host: string,
  extraVars: Record<string, unknown> = {},
): Record<string, unknown> {
  return memoVars(inventory, play.vars, extraVars, play.adjacent)(host);
}

/**
 * A play's `vars_files:`, each resolved against the playbook file the play is written in. A name
 * may be templated with the play's and `-e` variables (the same file for every host).
 */
function loadPlayVarsFiles(
  src: SourceFile,
  list: unknown,
  path: (string | number)[],
  vars: Record<string, unknown>,
  errors: Diagnostic[],
): VarsFile[] {
  if (!Array.isArray(list)) return [];
  const out: VarsFile[] = [];
  list.forEach((name, i) => {
    if (typeof name !== 'string') return;
    const node = nodeAt(src, [...path, 'vars_files', i]);
    let file: string;
    try {
      file = String(interpolateString(name, vars));
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      return void errors.push(
        at(src, node, `vars_files: \`${name}\`: ${e.message}; a vars_files name can use the play's vars and -e values`),
      );
    }
    const abs = resolvePath(dirname(resolvePath(src.file)), file);
    const r = loadVarsFile(abs);
    // A file that cannot be read is reported where the play names it; a problem inside, in the file.
    for (const e of r.errors)
      errors.push(e.line === 0 ? at(src, node, `vars_files: \`${name}\` (${abs}): ${e.message}`) : e);
    if (r.varsFile) out.push(r.varsFile);
  });
  return out;
}

/** A task as written, in the file it is written in, with what the imports around it add. */
interface TaskEntry {
  src: SourceFile;
  td: unknown;
  path: (string | number)[];
  when: Array<string | boolean>;
  tags: string[];
}

/**
 * A task list with its `import_tasks:` replaced by the tasks of the files they name (static, as
 * Ansible's import: read at load time, `when:` and `tags:` of the import applied to each task).
 */
function expandTasks(
  src: SourceFile,
  list: unknown[],
  path: (string | number)[],
  stack: readonly string[],
  inherited: { when: Array<string | boolean>; tags: string[] } = { when: [], tags: [] },
): { entries: TaskEntry[]; errors: Diagnostic[] } {
  const entries: TaskEntry[] = [];
  const errors: Diagnostic[] = [];
  list.forEach((td, i) => {
    const tpath = [...path, i];
    const target = importTarget(src, td, tpath, 'import_tasks', ['name', 'when', 'tags']);
    if (!target) return void entries.push({ src, td, path: tpath, ...inherited });
    if ('error' in target) return void errors.push(target.error);
    const t = td as Record<string, unknown>;
    errors.push(...checkWhen(src, t['when'], [...tpath, 'when']));
    const input = readImport(src, target, stack, 'import_tasks', 'task file');
    if ('error' in input) return void errors.push(input.error);
    const parsed = parseYamlSource(target.file, input.text);
    if (parsed.errors.length) return void errors.push(...parsed.errors);
    let data: unknown;
    try {
      data = parsed.src.doc.toJS();
    } catch (e) {
      return void errors.push(at(parsed.src, parsed.src.doc.contents, `YAML error: ${(e as Error).message}`));
    }
    if (data === null || data === undefined) return;
    if (!Array.isArray(data))
      return void errors.push(
        at(parsed.src, parsed.src.doc.contents, 'a task file imported with import_tasks is a list of tasks'),
      );
    const r = expandTasks(parsed.src, data, [], [...stack, target.file], {
      when: [...inherited.when, ...toList(t['when'] as string | boolean | Array<string | boolean> | undefined)],
      tags: [...inherited.tags, ...toList(t['tags'] as string | string[] | undefined)],
    });
    entries.push(...r.entries);
    errors.push(...r.errors);
  });
  return { entries, errors };
}

/** A task with the conditions and tags of the imports it came through, theirs first. */
function inherit(task: Task, entry: TaskEntry): Task {
  if (!entry.when.length && !entry.tags.length) return task;
  return { ...task, when: [...entry.when, ...task.when], tags: [...new Set([...entry.tags, ...task.tags])] };
}

function loadTask(
  src: SourceFile,
  td: unknown,
  path: (string | number)[],
  modules: Record<string, Record<string, unknown>>,
  hosts: string[],
  varsFor: (host: string) => Record<string, unknown>,
  isLocal: (host: string) => boolean,
): { task?: Task; errors: Diagnostic[] } {
  const errors: Diagnostic[] = [];
  if (!td || typeof td !== 'object' || Array.isArray(td)) {
    return {
      errors: [
        at(
          src,
          nodeAt(src, path),
          'a task must be a mapping: an optional `name:` and one module key, e.g. `containerd.tls: { registry: ... }`',
        ),
      ],
    };
  }
  const t = td as Record<string, unknown>;
  const moduleNames = Object.keys(modules);
  const mods: string[] = [];
  for (const k of Object.keys(t)) {
    if (k in modules) mods.push(k);
    else if (!taskCommonKeys.includes(k)) {
      const hint = suggestion(k, [...moduleNames, ...taskCommonKeys]);
      errors.push(
        at(
          src,
          nodeAt(src, [...path, k], true),
          `unknown module or task key \`${k}\`${hint}${hint ? '' : `; modules: ${moduleNames.join(', ')}`}`,
        ),
      );
    }
  }
  const label = typeof t['name'] === 'string' ? `task "${t['name']}"` : 'task';
  if (mods.length === 0 && errors.length === 0) {
    errors.push(at(src, nodeAt(src, path), `${label} names no module: add exactly one of ${moduleNames.join(', ')}`));
  }
  if (mods.length > 1) {
    errors.push(
      at(
        src,
        nodeAt(src, [...path, mods[1]!], true),
        `${label} names two modules (\`${mods.join('`, `')}\`): a task runs exactly one; split it into two tasks`,
      ),
    );
  }
  const common = validatorFor('$taskCommon', taskCommonSchema as unknown as Record<string, unknown>);
  if (!common(t)) errors.push(...ajvErrorsToDiagnostics(src, path, common.errors ?? [], { context: 'task', data: t }));
  errors.push(...checkWhen(src, t['when'], [...path, 'when']));
  const module = mods[0];
  if (!module) return { errors };
  const argsPath = [...path, module];
  const rawArgs = t[module] === null || t[module] === undefined ? {} : t[module];
  errors.push(...checkArgs(src, module, modules[module]!, rawArgs, argsPath, hosts, varsFor, isLocal));
  if (errors.length) return { errors };
  const name = typeof t['name'] === 'string' ? t['name'] : defaultTaskName(module, rawArgs as Record<string, unknown>);
  const task: Task = {
    name,
    module,
    args: rawArgs as Record<string, unknown>,
    when: toList(t['when'] as string | boolean | Array<string | boolean> | undefined),
    tags: toList(t['tags'] as string | string[] | undefined),
    notify: toList(t['notify'] as string | string[] | undefined),
    ignoreErrors: t['ignore_errors'] === true,
    runOnce: t['run_once'] === true,
    loc: locOf(src, path),
    ...(typeof t['check_mode'] === 'boolean' ? { checkMode: t['check_mode'] } : {}),
  };
  return { task, errors };
}

/** Parse every `when:` condition now, so a malformed one stops the run before any host changes. */
function checkWhen(src: SourceFile, when: unknown, path: (string | number)[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  const conds = Array.isArray(when) ? when.map((c, i) => [c, [...path, i]] as const) : [[when, path] as const];
  for (const [cond, cpath] of conds) {
    if (typeof cond !== 'string') continue;
    try {
      parseWhen(cond);
    } catch (e) {
      if (!(e instanceof WhenSyntaxError)) throw e;
      out.push(atInScalar(src, nodeAt(src, cpath), e.offset, e.message));
    }
  }
  return out;
}

function defaultTaskName(module: string, args: Record<string, unknown>): string {
  const subject = args['registry'] ?? args['image'] ?? args['namespace'];
  return subject === undefined ? module : `${module} ${Array.isArray(subject) ? subject.join(',') : String(subject)}`;
}

/**
 * Validate a task's arguments. Untemplated arguments are checked once; templated ones are
 * interpolated for every targeted host (cached by the values the templates read), so undefined
 * variables and wrong types after interpolation are caught before anything runs.
 */
function checkArgs(
  src: SourceFile,
  module: string,
  schema: Record<string, unknown>,
  rawArgs: unknown,
  argsPath: (string | number)[],
  hosts: string[],
  varsFor: (host: string) => Record<string, unknown>,
  isLocal: (host: string) => boolean,
): Diagnostic[] {
  const errors: Diagnostic[] = [];
  const templated = templatedStrings(rawArgs);
  const validate = validatorFor(module, schema);
  const files = fileArgs(schema);
  const templatedPointers = templated.map((t) => t.path.map((seg) => `/${seg}`).join(''));
  // The same file for every host (a CA in the inventory's vars) is read and parsed once per task,
  // not once per host: 10,000 reads and X.509 parses for 1,000 hosts x 10 tasks otherwise.
  const problems = new Map<string, string | undefined>();
  const problemOf = (value: string, kind: FileKind, what: string): string | undefined => {
    const key = `${kind}\0${what}\0${value}`;
    if (!problems.has(key)) problems.set(key, fileProblem(value, kind, what));
    return problems.get(key);
  };
  const checkFiles = (args: unknown, host: string | undefined): void => {
    if (!args || typeof args !== 'object') return;
    for (const { name, kind } of files) {
      const whole = (args as Record<string, unknown>)[name];
      if (kind === 'target' && (host === undefined || !isLocal(host))) continue;
      // A list argument (several CA files) is checked item by item, each located at its item.
      const items: Array<[unknown, unknown, (string | number)[]]> = Array.isArray(whole)
        ? whole.map((v, i) => {
            const rawList = (rawArgs as Record<string, unknown>)[name];
            return [v, Array.isArray(rawList) ? rawList[i] : undefined, [name, i]];
          })
        : [[whole, (rawArgs as Record<string, unknown>)[name], [name]]];
      for (const [value, raw, sub] of items) {
        if (typeof value !== 'string') continue;
        // Only a template is quoted: it names a variable, never holds the material itself.
        const label = sub.length > 1 ? `${name}[${String(sub[1])}]` : name;
        const what = `\`${label}\`${typeof raw === 'string' && /^\{\{[^{}]*\}\}$/.test(raw.trim()) ? ` (\`${raw.trim()}\`)` : ''}`;
        const problem = problemOf(value, kind, what);
        if (!problem) continue;
        const d = at(src, nodeAt(src, [...argsPath, ...sub]), `${module}: ${problem}`);
        errors.push(isSecretPath(schema, [name]) ? maskSource(d) : d);
      }
    }
  };
  const check = (args: unknown, hostNote: string, host?: string, stubbed = false): void => {
    if (!stubbed) checkFiles(args, host);
    if (!validate(args)) {
      // With templates stubbed, what is said about a templated value is about the stub: not reported.
      const real = (validate.errors ?? []).filter(
        (e) => !stubbed || !templatedPointers.some((p) => e.instancePath === p || e.instancePath.startsWith(`${p}/`)),
      );
      for (const d of ajvErrorsToDiagnostics(src, argsPath, real, {
        context: module + hostNote,
        data: args,
      }))
        errors.push(d);
    }
    for (const g of groupConstraintErrors(schema, args, module + hostNote))
      errors.push(at(src, nodeAt(src, [...argsPath, ...g.path], true), g.message));
  };
  // A template that is not a plain variable is wrong whatever the hosts: report it even with none.
  for (const t of templated)
    for (const r of templateRefs(t.text))
      if (!r.valid)
        errors.push(at(src, nodeAt(src, [...argsPath, ...t.path]), `${module}: ${templateSyntaxMessage(r.expr)}`));
  if (templated.length === 0 || hosts.length === 0) {
    // No host to interpolate for: check the shape with templates standing in for any value.
    if (templated.length) check(stubTemplates(rawArgs), '', undefined, true);
    else {
      check(rawArgs, '', hosts[0]);
      for (const host of hosts.slice(1)) checkFiles(rawArgs, host);
    }
    return errors;
  }
  const refs = [...new Set(templated.flatMap((s) => templateRefs(s.text).map((r) => r.expr)))];
  for (const host of representatives(hosts, varsFor, refs)) {
    const vars = varsFor(host);
    let args: unknown;
    try {
      args = interpolate(rawArgs, vars);
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      // Every undefined variable of the task at once, each at the string that names it.
      const undefinedRefs = templated.flatMap((t) =>
        templateRefs(t.text)
          .filter((r) => r.valid && !isDefined(vars, r.expr))
          .map((r) => ({ t, expr: r.expr })),
      );
      if (e.kind === 'syntax' || !undefinedRefs.length) {
        const bad = templated.find((s) => templateRefs(s.text).some((r) => r.expr === e.expr)) ?? templated[0]!;
        const advice =
          e.kind !== 'undefined'
            ? ''
            : ` for host \`${host}\`: define it in the inventory, the play's \`vars:\` or with -e ${e.expr}=...`;
        errors.push(at(src, nodeAt(src, [...argsPath, ...bad.path]), `${module}: ${e.message}${advice}`));
      }
      for (const { t, expr } of undefinedRefs)
        errors.push(
          at(
            src,
            nodeAt(src, [...argsPath, ...t.path]),
            `${module}: undefined variable \`${expr}\` for host \`${host}\`: define it in the inventory, the play's \`vars:\` or with -e ${expr}=...`,
          ),
        );
      // The arguments that do not depend on the missing value are still checked.
      check(stubTemplates(rawArgs), '', host, true);
      continue;
    }
    check(args, hosts.length > 1 ? ` (host ${host})` : '', host);
  }
  // A target-side file is checked for each local host, whatever the cache above merged it with.
  if (files.some((f) => f.kind === 'target'))
    for (const host of hosts.filter(isLocal)) {
      try {
        checkFiles(interpolate(rawArgs, varsFor(host)), host);
      } catch {
        // Template errors are reported above.
      }
    }
  // The same problem on many hosts is reported once, naming the first host.
  const byMessage = new Map<string, Diagnostic>();
  for (const d of errors) {
    const k = `${d.line}:${d.col}:${d.message.replace(/ \(host [^)]*\)| for host `[^`]*`/, '')}`;
    if (!byMessage.has(k)) byMessage.set(k, d);
  }
  return [...byMessage.values()];
}

// The tasks of a play mostly read the same few variables: which hosts stand for the others is
// worked out once per play and set of variables read, not once per task (1,000 hosts x 50 tasks
// were 50,000 key look-ups).
const representativesByPlay = new WeakMap<
  (host: string) => Record<string, unknown>,
  { hosts: string[]; bySig: Map<string, string[]> }
>();

/**
 * The hosts a task's templates must be interpolated for: of the hosts whose variables give the same
 * values to `refs` (so the same arguments), the first one, in the play's host order.
 */
function representatives(
  hosts: string[],
  varsFor: (host: string) => Record<string, unknown>,
  refs: string[],
): string[] {
  let memo = representativesByPlay.get(varsFor);
  if (!memo || memo.hosts !== hosts) representativesByPlay.set(varsFor, (memo = { hosts, bySig: new Map() }));
  const sig = refs.join('\u0000');
  let reps = memo.bySig.get(sig);
  if (!reps) {
    reps = [];
    const seen = new Set<string>();
    for (const host of hosts) {
      const vars = varsFor(host);
      const key = refs.map((r) => keyPart(vars, r)).join('\u0000');
      if (seen.has(key)) continue;
      seen.add(key);
      reps.push(host);
    }
    memo.bySig.set(sig, reps);
  }
  return reps;
}

/** What a variable contributes to the per-host cache key (hosts with equal keys interpolate alike). */
function keyPart(vars: Record<string, unknown>, path: string): string {
  if (!isDefined(vars, path)) return '\u0001';
  const v = lookup(vars, path);
  if (typeof v !== 'string') return JSON.stringify(v) ?? 'undefined';
  if (!hasTemplate(v)) return v;
  try {
    return JSON.stringify(interpolateString(v, vars));
  } catch {
    return '\u0002' + v;
  }
}

/** Replace templated strings by a neutral value so only the static shape is checked. */
function stubTemplates(v: unknown): unknown {
  if (typeof v === 'string') return hasTemplate(v) ? undefined : v;
  if (Array.isArray(v)) return v.map(stubTemplates).filter((x) => x !== undefined);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const s = stubTemplates(x);
      out[k] = s === undefined ? (typeof x === 'string' ? 'templated' : s) : s;
    }
    return out;
  }
  return v;
}
