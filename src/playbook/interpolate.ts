/**
 * `{{ var }}` interpolation: plain variable lookup with dotted paths (`{{ registry.host }}`,
 * `{{ hosts.0 }}`), no expressions, no code execution. A string that is exactly one template keeps
 * the variable's type (so `retries: "{{ n }}"` stays a number); anything else renders to text.
 */

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
    out.push({ expr, offset: m.index ?? 0, valid: NAME.test(expr) });
  }
  return out;
}

export function hasTemplate(s: string): boolean {
  return s.includes('{{');
}

const MISSING = Symbol('missing');

/** Look up a dotted path; `MISSING` when any segment is absent. */
export function lookup(vars: Record<string, unknown>, path: string): unknown {
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

export function isDefined(vars: Record<string, unknown>, path: string): boolean {
  return lookup(vars, path) !== MISSING;
}

/** An interpolation failure: which variable, at which offset of which string. */
export class TemplateError extends Error {
  constructor(
    message: string,
    readonly expr: string,
    /** `undefined`: a name with no value (fixable with a variable); `syntax`: not a name at all. */
    readonly kind: 'undefined' | 'syntax' = 'undefined',
  ) {
    super(message);
  }
}

/** Why a template expression is not a plain variable, in one sentence (filters get their own). */
export function templateSyntaxMessage(expr: string): string {
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

/** Interpolate one string. Throws TemplateError on an undefined variable or a non-variable expression. */
export function interpolateString(s: string, vars: Record<string, unknown>, depth = 0): unknown {
  if (!hasTemplate(s)) return s;
  const refs = templateRefs(s);
  for (const r of refs) {
    if (!r.valid) throw new TemplateError(templateSyntaxMessage(r.expr), r.expr, 'syntax');
    if (!isDefined(vars, r.expr)) throw new TemplateError(`undefined variable \`${r.expr}\``, r.expr);
  }
  const whole = /^\{\{\s*([^{}]*?)\s*\}\}$/.exec(s);
  if (whole) {
    const v = lookup(vars, whole[1]!);
    // A variable whose value is itself a template (e.g. host var pointing at a group var) resolves too.
    return typeof v === 'string' && hasTemplate(v) && depth < 10 ? interpolateString(v, vars, depth + 1) : v;
  }
  return s.replace(TEMPLATE, (_m, expr: string) => {
    const v = lookup(vars, expr.trim());
    const r = typeof v === 'string' && hasTemplate(v) && depth < 10 ? interpolateString(v, vars, depth + 1) : v;
    return render(r);
  });
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
