/**
 * `{{ var }}` interpolation: plain variable lookup with dotted paths (`{{ registry.host }}`,
 * `{{ hosts.0 }}`), no expressions, no code execution. A string that is exactly one template keeps
 * the variable's type (so `retries: "{{ n }}"` stays a number); anything else renders to text.
 * Besides variables, `{{ lookup('env', 'NAME') }}` and `{{ lookup('file', '/path') }}` read a value
 * from the controller (src/playbook/lookups.ts); what they read is a secret for every output.
 */
import { evaluateLookup, looksLikeLookup, LookupError, lookupSyntaxProblem, parseLookup } from './lookups.js';

const TEMPLATE = /\{\{\s*([^{}]*?)\s*\}\}/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/;

/** A variable reference found in a template, with its offset inside the string. */
export interface TemplateRef {
  expr: string;
  offset: number;
  valid: boolean;
}

/** Every `{{ ... }}` in a string. */
export function templateRefs(s: string): TemplateRef[] {
  const out: TemplateRef[] = [];
  for (const m of s.matchAll(TEMPLATE)) {
    const expr = m[1] ?? '';
    out.push({ expr, offset: m.index ?? 0, valid: NAME.test(expr) || isLookupCall(expr) });
  }
  return out;
}

export function hasTemplate(s: string): boolean {
  return s.includes('{{');
}

/** A lookup call trustplay runs (`lookup('env', 'X')`, `lookup('file', '/p')`). */
function isLookupCall(expr: string): boolean {
  return parseLookup(expr) !== undefined && lookupSyntaxProblem(expr) === undefined;
}

const MISSING = Symbol('missing');

/** Look up a dotted path (or run a lookup call); `MISSING` when any segment is absent or the lookup fails. */
export function lookup(vars: Record<string, unknown>, path: string): unknown {
  if (isLookupCall(path)) {
    try {
      return evaluateLookup(path);
    } catch (e) {
      if (e instanceof LookupError) return MISSING;
      throw e;
    }
  }
  let cur: unknown = vars;
  for (const seg of path.split('.')) {
    if (cur === null || cur === undefined) return MISSING;
    if (Array.isArray(cur) && /^\d+$/.test(seg)) {
      cur = cur[Number(seg)];
      if (cur === undefined) return MISSING;
    } else if (typeof cur === 'object' && Object.prototype.hasOwnProperty.call(cur, seg)) {
      cur = (cur as Record<string, unknown>)[seg];
    } else return MISSING;
  }
  return cur;
}

/** Whether a variable is defined; a lookup call counts as defined (its failure is its own error, not "undefined"). */
export function isDefined(vars: Record<string, unknown>, path: string): boolean {
  return isLookupCall(path) || lookup(vars, path) !== MISSING;
}

/** An interpolation failure: which variable, at which offset of which string. */
export class TemplateError extends Error {
  constructor(
    message: string,
    readonly expr: string,
    /**
     * `undefined`: a name with no value (fixable with a variable); `syntax`: not a name at all;
     * `limit`: the expansion nests too deep, refers to itself or grows too large; `lookup`: a
     * lookup found no value (an unset environment variable, an unreadable file).
     */
    readonly kind: 'undefined' | 'syntax' | 'limit' | 'lookup' = 'undefined',
  ) {
    super(message);
  }
}

/** Why a template expression is not a plain variable, in one sentence (filters get their own). */
export function templateSyntaxMessage(expr: string): string {
  if (looksLikeLookup(expr)) {
    const problem = lookupSyntaxProblem(expr);
    if (problem) return problem;
  }
  const filter = /^(.*?)\s*\|\s*([A-Za-z_][\w.]*)/.exec(expr);
  if (filter && NAME.test(filter[1]!))
    return `\`{{ ${expr} }}\`: filters (\`| ${filter[2]}\`) are not supported, templates are plain variable lookups: set a variable to the value you need and write \`{{ NAME }}\``;
  return `\`{{ ${expr} }}\` is not a variable name: templates are plain variable lookups with dotted paths (\`{{ registry.host }}\`), no expressions`;
}

function render(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** How many variables deep a template may refer through variables whose values are templates. */
export const MAX_TEMPLATE_DEPTH = 10;
/** The longest text one template may render to (a 1 KB playbook must not expand into gigabytes). */
export const MAX_RENDERED_CHARS = 1024 * 1024;

/** One interpolation's state: each variable is expanded once (memoised), cycles are seen. */
interface Expansion {
  vars: Record<string, unknown>;
  memo: Map<string, unknown>;
  active: Set<string>;
}

function tooLarge(expr: string): TemplateError {
  return new TemplateError(
    `\`{{ ${expr} }}\` expands to more than ${MAX_RENDERED_CHARS / 1024 / 1024} MiB of text (variables that repeat other variables); refusing to build it`,
    expr,
    'limit',
  );
}

/** A variable's value, its own templates expanded (once per interpolation). */
function resolveVar(x: Expansion, expr: string, depth: number): unknown {
  if (x.memo.has(expr)) return x.memo.get(expr);
  if (isLookupCall(expr)) {
    let value: string;
    try {
      value = evaluateLookup(expr);
    } catch (e) {
      if (e instanceof LookupError) throw new TemplateError(e.message, expr, 'lookup');
      throw e;
    }
    x.memo.set(expr, value);
    return value;
  }
  const v = lookup(x.vars, expr);
  if (typeof v !== 'string' || !hasTemplate(v)) {
    x.memo.set(expr, v);
    return v;
  }
  if (x.active.has(expr))
    throw new TemplateError(`\`{{ ${expr} }}\` refers to itself through the values of its variables`, expr, 'limit');
  if (depth >= MAX_TEMPLATE_DEPTH)
    throw new TemplateError(
      `\`{{ ${expr} }}\` refers through more than ${MAX_TEMPLATE_DEPTH} levels of variables whose values are templates`,
      expr,
      'limit',
    );
  x.active.add(expr);
  const r = expand(x, v, depth + 1);
  x.active.delete(expr);
  x.memo.set(expr, r);
  return r;
}

function expand(x: Expansion, s: string, depth: number): unknown {
  if (!hasTemplate(s)) return s;
  const refs = templateRefs(s);
  for (const r of refs) {
    if (!r.valid) throw new TemplateError(templateSyntaxMessage(r.expr), r.expr, 'syntax');
    if (!isDefined(x.vars, r.expr)) throw new TemplateError(`undefined variable \`${r.expr}\``, r.expr);
  }
  const whole = /^\{\{\s*([^{}]*?)\s*\}\}$/.exec(s);
  if (whole) return resolveVar(x, whole[1]!, depth);
  let size = 0;
  return s.replace(TEMPLATE, (_m, expr: string) => {
    const text = render(resolveVar(x, expr.trim(), depth));
    size += text.length;
    if (size > MAX_RENDERED_CHARS) throw tooLarge(expr.trim());
    return text;
  });
}

/**
 * Interpolate one string. Throws TemplateError on an undefined variable, a non-variable expression,
 * or an expansion past the bounds (depth, self-reference, size): a located error, not a hang.
 */
export function interpolateString(s: string, vars: Record<string, unknown>): unknown {
  if (!hasTemplate(s)) return s;
  const x: Expansion = { vars, memo: new Map(), active: new Set() };
  try {
    const r = expand(x, s, 0);
    if (typeof r === 'string' && r.length > MAX_RENDERED_CHARS) throw tooLarge(s.slice(0, 60));
    return r;
  } catch (e) {
    // Name the reference written in this string, so the error points at the task's own text.
    if (e instanceof TemplateError && e.kind === 'limit') {
      const outer = templateRefs(s)[0]?.expr ?? e.expr;
      throw new TemplateError(e.message, outer, 'limit');
    }
    throw e;
  }
}

/** Interpolate every string inside a value (objects and arrays recursively). */
export function interpolate<T>(value: T, vars: Record<string, unknown>): T {
  if (typeof value === 'string') return interpolateString(value, vars) as T;
  if (Array.isArray(value)) return value.map((v) => interpolate(v, vars)) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, vars);
    return out as T;
  }
  return value;
}

/** Every string inside a value that holds a template, with its path (for located undefined-variable errors). */
export function templatedStrings(
  value: unknown,
  path: (string | number)[] = [],
): Array<{ path: (string | number)[]; text: string }> {
  if (typeof value === 'string') return hasTemplate(value) ? [{ path, text: value }] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => templatedStrings(v, [...path, i]));
  if (value && typeof value === 'object')
    return Object.entries(value).flatMap(([k, v]) => templatedStrings(v, [...path, k]));
  return [];
}
