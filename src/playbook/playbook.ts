/**
 * Playbook loading and validation. Everything a user can get wrong in a playbook or inventory is
 * reported here, located (`file:line:col: message`), before anything runs.
 */
import { dirname, resolve as resolvePath } from 'node:path';
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
import { readInputFile } from './input.js';
import { hostVariables, localInventory, type Inventory } from './inventory.js';
import { matchHosts } from './patterns.js';
import { parseWhen, WhenSyntaxError } from '../engine/when.js';
import { yaml11Warnings } from './yaml11.js';
import { fileArgs, fileProblem, resolveControllerPaths, type PathSources } from './controller-files.js';
import { deprecatedArgWarnings } from './deprecated-args.js';
import { ajvErrorsToDiagnostics, compileSchema, groupConstraintErrors, maskSource } from './schema-validate.js';
import { isSecretPath } from '../secrets/index.js';
import { moduleArgSchemas } from './schema/modules.js';
import { playShapeSchema, taskCommonKeys, taskCommonSchema } from './schema/playbook.js';

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
  vars: Record<string, unknown>;
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
  const { src, errors: yamlErrors } = parseYamlSource(file, text);
  if (yamlErrors.length) return { inventory, errors: yamlErrors, playHosts: [] };
  const modules: Record<string, Record<string, unknown>> = {
    ...moduleArgSchemas,
    ...opts.extraModules,
  };
  const errors: Diagnostic[] = [];
  let data: unknown;
  try {
    data = src.doc.toJS();
  } catch (e) {
    return { inventory, errors: [at(src, src.doc.contents, `YAML error: ${(e as Error).message}`)], playHosts: [] };
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
    return {
      inventory,
      errors: [
        at(src, src.doc.contents, 'a playbook is a play (a mapping with `hosts:` and `tasks:`) or a list of plays'),
      ],
      playHosts: [],
    };
  }
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
  playsData.forEach((pd, i) => {
    const path = base[i]!;
    const r = loadPlay(src, pd, path, modules, inventory, opts.extraVars ?? {}, limit);
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
  errors.push(...unknownTags(plays, opts));
  const warned = sortDiagnostics(dedupe(warnings));
  if (errors.length) return { inventory, errors: sortDiagnostics(dedupe(errors)), warnings: warned, playHosts };
  const digest = createHash('sha256').update(text).digest('hex');
  return { playbook: { file, digest, plays }, inventory, errors: [], warnings: warned, playHosts };
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
  const handlersRaw = Array.isArray(p['handlers']) ? p['handlers'] : [];
  const tasksRaw = Array.isArray(p['tasks']) ? p['tasks'] : [];
  // Before any variable is read: relative controller-side paths become absolute, resolved against
  // the file that names them.
  const sources: PathSources = { playbookFile: src.file, inventory, playVars, extraVars };
  for (const t of [...handlersRaw, ...tasksRaw]) {
    if (!t || typeof t !== 'object') continue;
    for (const [k, v] of Object.entries(t as Record<string, unknown>))
      if (modules[k]) resolveControllerPaths(modules[k], v, sources);
  }
  const varsFor = memoVars(inventory, playVars, extraVars);
  const isLocal = (h: string) => inventory.hosts.get(h)?.connection === 'local';
  const handlers: Task[] = [];
  handlersRaw.forEach((t, i) => {
    const r = loadTask(src, t, [...path, 'handlers', i], modules, hosts, varsFor, isLocal);
    errors.push(...r.errors);
    if (r.task) handlers.push(r.task);
  });
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
  tasksRaw.forEach((t, i) => {
    const tpath = [...path, 'tasks', i];
    const r = loadTask(src, t, tpath, modules, hosts, varsFor, isLocal);
    errors.push(...r.errors);
    if (r.task) tasks.push(r.task);
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
  });
  if (errors.length) return { hosts, errors, warnings };
  const play: Play = {
    name: typeof p['name'] === 'string' ? p['name'] : hostsPattern,
    hosts: hostsPattern,
    vars: playVars,
    tasks,
    handlers,
    loc: locOf(src, path),
    ...(p['serial'] !== undefined ? { serial: p['serial'] as Serial } : {}),
    ...(p['max_fail_percentage'] !== undefined ? { maxFailPercentage: p['max_fail_percentage'] as number } : {}),
  };
  return { play, hosts, errors, warnings };
}

/** Per-host merged variables (inventory < host < play < extra), computed once per host. */
function memoVars(inventory: Inventory, playVars: Record<string, unknown>, extraVars: Record<string, unknown>) {
  const cache = new Map<string, Record<string, unknown>>();
  return (host: string): Record<string, unknown> => {
    let v = cache.get(host);
    if (!v) {
      const h = inventory.hosts.get(host);
      v = { ...(h ? hostVariables(inventory, h) : {}), ...playVars, ...extraVars };
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
  return memoVars(inventory, play.vars, extraVars)(host);
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
  const checkFiles = (args: unknown, host: string | undefined): void => {
    if (!args || typeof args !== 'object') return;
    for (const { name, kind } of files) {
      const value = (args as Record<string, unknown>)[name];
      if (typeof value !== 'string' || (kind === 'target' && (host === undefined || !isLocal(host)))) continue;
      const raw = (rawArgs as Record<string, unknown>)[name];
      // Only a template is quoted: it names a variable, never holds the material itself.
      const what = `\`${name}\`${typeof raw === 'string' && /^\{\{[^{}]*\}\}$/.test(raw.trim()) ? ` (\`${raw.trim()}\`)` : ''}`;
      const problem = fileProblem(value, kind, what);
      if (!problem) continue;
      const d = at(src, nodeAt(src, [...argsPath, name]), `${module}: ${problem}`);
      errors.push(isSecretPath(schema, [name]) ? maskSource(d) : d);
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
  const sig = refs.join('\u0000');
  const seen = new Set<string>();
  for (const host of hosts) {
    const vars = varsFor(host);
    const key = cacheKey(vars, sig, refs);
    if (seen.has(key)) continue;
    seen.add(key);
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

// Tasks of a play mostly read the same few variables: the per-host key of a set of variables is
// computed once per host, not once per task and host.
const keysByVars = new WeakMap<Record<string, unknown>, Map<string, string>>();

function cacheKey(vars: Record<string, unknown>, sig: string, refs: string[]): string {
  let keys = keysByVars.get(vars);
  if (!keys) keysByVars.set(vars, (keys = new Map()));
  let key = keys.get(sig);
  if (key === undefined) {
    key = refs.map((r) => keyPart(vars, r)).join('\u0000');
    keys.set(sig, key);
  }
  return key;
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
