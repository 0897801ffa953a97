/** ajv (JSON Schema 2020-12) validation with errors turned into one-sentence, located diagnostics. */
import type { ErrorObject } from 'ajv/dist/2020.js';
import { describeValue, isSecretPath, maskSource, QUOTABLE_LENGTH } from '../secrets/index.js';
import { at, nodeAt, suggestion, type Diagnostic, type SourceFile } from './diagnostics.js';
import { validatorsFor } from './schema/ajv.js';
import { yaml11Hint } from './yaml11.js';
import * as generated from './schema/validators.generated.js';

/**
 * A validator for a schema: the build's precompiled one for our own schemas (no code generation
 * at start-up), otherwise compiled now (schemas added at run time, e.g. internal test modules).
 */
export const compileSchema = validatorsFor('loader', generated);

/** JSON pointer (`/a/0/b`) to path segments. */
export function pointerPath(ptr: string): (string | number)[] {
  if (!ptr) return [];
  return ptr
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function valueAt(data: unknown, path: (string | number)[]): unknown {
  let cur = data;
  for (const p of path) cur = (cur as Record<string | number, unknown> | undefined)?.[p];
  return cur;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  null: 'empty',
};

export interface ErrorContext {
  /** Words naming the thing validated, e.g. "containerd.tls" or "play". */
  context: string;
  /** The validated data (to describe wrong values). */
  data?: unknown;
}

/**
 * One diagnostic per meaningful ajv error. `base` is the YAML path of the validated value inside
 * the source file; ajv's instancePath is relative to it.
 */
export function ajvErrorsToDiagnostics(
  src: SourceFile,
  base: (string | number)[],
  errors: ErrorObject[],
  ctx: ErrorContext,
): Diagnostic[] {
  const data = ctx.data ?? valueAt(src.doc.toJS(), base);
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  for (const e of narrowAlternatives(errors)) {
    const rel = pointerPath(e.instancePath);
    const where = rel.length ? `\`${rel.join('.')}\`` : ctx.context;
    let message: string;
    let node: unknown = nodeAt(src, [...base, ...rel]);
    const value = valueAt(data, rel);
    // A secret (marked x-secret, or under a secret key) or a long string is named by its type only,
    // here and in the source line shown under the message.
    const secret =
      isSecretPath(e.parentSchema as Record<string, unknown> | undefined, []) || isSecretPath(undefined, rel);
    const hidden = secret || (typeof value === 'string' && value.length > QUOTABLE_LENGTH);
    const typeOf = (v: unknown) => describeValue(v, secret);
    switch (e.keyword) {
      case 'required': {
        const missing = (e.params as { missingProperty: string }).missingProperty;
        // Point at the thing missing the key (the module key of a task), not at its first argument.
        if (rel.length === 0 && base.length > 0) node = nodeAt(src, base, true);
        message = `${ctx.context}: missing required ${rel.length ? `key \`${missing}\` in ${where}` : `argument \`${missing}\``}`;
        break;
      }
      case 'additionalProperties': {
        const extra = (e.params as { additionalProperty: string }).additionalProperty;
        const parent = e.parentSchema as { properties?: Record<string, unknown> } | undefined;
        const known = Object.keys(parent?.properties ?? {});
        node = nodeAt(src, [...base, ...rel, extra], true);
        message = `${ctx.context}: unknown ${rel.length ? `key \`${extra}\` in ${where}` : `key \`${extra}\``}${suggestion(extra, known)}${known.length ? `; expected one of: ${known.join(', ')}` : ''}`;
        break;
      }
      case 'type': {
        const want = (e.params as { type: string }).type;
        message = `${ctx.context}: ${where} must be ${TYPE_WORDS[want] ?? want}, not ${typeOf(value)}${want === 'boolean' && !hidden ? yaml11Hint(value) : ''}`;
        break;
      }
      case 'enum': {
        const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String);
        message = `${ctx.context}: ${where} must be one of ${allowed.join(', ')}, not ${typeOf(value)}${typeof value === 'string' && !hidden ? suggestion(value, allowed) : ''}`;
        break;
      }
      case 'anyOf':
      case 'oneOf': {
        const desc = (e.parentSchema as { description?: string } | undefined)?.description;
        message = `${ctx.context}: ${where} has the wrong shape (${typeOf(value)})${desc ? `: ${desc}` : ''}`;
        break;
      }
      case 'pattern':
        message = `${ctx.context}: ${where} is not valid (${typeOf(value)})${(e.parentSchema as { description?: string })?.description ? `: ${(e.parentSchema as { description?: string }).description}` : ''}`;
        break;
      case 'minimum':
      case 'maximum':
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        message = `${ctx.context}: ${where} must be ${(e.message ?? '').replace(/^must be /, '')}, not ${typeOf(value)}`;
        break;
      case 'minLength':
        message = `${ctx.context}: ${where} must not be empty`;
        break;
      case 'minItems':
        message = `${ctx.context}: ${where} must list at least ${(e.params as { limit: number }).limit} item(s)`;
        break;
      case 'dependentRequired': {
        const p = e.params as { property: string; missingProperty: string };
        message = `${ctx.context}: \`${p.property}\` requires \`${p.missingProperty}\`: give both`;
        break;
      }
      case 'not':
        // Our mutually-exclusive groups are mirrored as `not`; the explicit x-exclusive check reports them.
        continue;
      default:
        message = `${ctx.context}: ${where} ${e.message ?? 'is invalid'}`;
    }
    const key = `${JSON.stringify(rel)}|${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const d = at(src, node, message);
    out.push(hidden && node === nodeAt(src, [...base, ...rel]) ? maskSource(d) : d);
  }
  return out;
}

/**
 * anyOf/oneOf produce one error per branch. When the value's type rules out every branch but one
 * (a mapping where `null | mapping` is allowed), that branch's own errors say what is wrong (the
 * unknown key, with a suggestion); otherwise the alternative is reported as a whole.
 */
function narrowAlternatives(errors: ErrorObject[]): ErrorObject[] {
  const alternatives = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  if (!alternatives.length) return errors;
  const drop = new Set<ErrorObject>();
  for (const alt of alternatives) {
    const prefix = `${alt.schemaPath}/`;
    const branches = new Map<string, ErrorObject[]>();
    for (const e of errors) {
      if (!e.schemaPath.startsWith(prefix)) continue;
      const idx = e.schemaPath.slice(prefix.length).split('/')[0]!;
      branches.set(idx, [...(branches.get(idx) ?? []), e]);
    }
    const typeMismatch = (idx: string, es: ErrorObject[]) =>
      es.some(
        (e) =>
          e.instancePath === alt.instancePath &&
          (e.schemaPath === `${prefix}${idx}/type` || e.schemaPath === `${prefix}${idx}/pattern`),
      );
    const fitting = [...branches].filter(([idx, es]) => !typeMismatch(idx, es));
    // Branches without errors are not listed: a branch count below the schema's means one passed.
    const total = ((alt.schema as unknown[] | undefined) ?? []).length;
    const keep = fitting.length === 1 && branches.size === total ? fitting[0]![0] : undefined;
    if (keep !== undefined) drop.add(alt);
    for (const [idx, es] of branches) if (idx !== keep) for (const e of es) drop.add(e);
  }
  return errors.filter((e) => !drop.has(e));
}

/** Enforce `x-exclusive` and `x-together` groups (recursively) with one sentence each. */
export function groupConstraintErrors(
  schema: Record<string, unknown>,
  value: unknown,
  ctx: string,
  path: (string | number)[] = [],
): Array<{ path: (string | number)[]; message: string }> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return [];
  const v = value as Record<string, unknown>;
  const out: Array<{ path: (string | number)[]; message: string }> = [];
  for (const group of (schema['x-exclusive'] as string[][] | undefined) ?? []) {
    const present = group.filter((k) => v[k] !== undefined && v[k] !== false);
    if (present.length > 1) {
      out.push({
        path: [...path, present[1]!],
        message: `${ctx}: ${present.map((k) => `\`${k}\``).join(' and ')} are mutually exclusive: choose one of ${group.map((k) => `\`${k}\``).join(', ')}`,
      });
    }
  }
  for (const group of (schema['x-together'] as string[][] | undefined) ?? []) {
    const present = group.filter((k) => v[k] !== undefined);
    if (present.length > 0 && present.length < group.length) {
      const missing = group.filter((k) => v[k] === undefined);
      out.push({
        path: [...path, present[0]!],
        message: `${ctx}: \`${present[0]}\` requires ${missing.map((k) => `\`${k}\``).join(', ')}: give both`,
      });
    }
  }
  const props = (schema['properties'] ?? {}) as Record<string, Record<string, unknown>>;
  for (const [k, sub] of Object.entries(props)) out.push(...groupConstraintErrors(sub, v[k], ctx, [...path, k]));
  return out;
}
