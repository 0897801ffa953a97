/** Task arguments at run time: interpolated for the host, validated, schema defaults filled in. */
import { validatorsFor } from '../playbook/schema/ajv.js';
import * as generated from '../playbook/schema/validators-defaults.generated.js';
import { interpolate } from '../playbook/interpolate.js';
import { withNewNames } from '../playbook/deprecated-args.js';
import { groupConstraintErrors } from '../playbook/schema-validate.js';
import { TaskError } from './errors.js';

// The user-facing modules' validators are precompiled at build time (no code generation at start).
const validatorWithDefaults = validatorsFor('defaults', generated);

/** Interpolate and validate a task's arguments for one host; throws TaskError('refused') with one sentence. */
export function resolveArgs(
  module: string,
  schema: Record<string, unknown>,
  raw: Record<string, unknown>,
  vars: Record<string, unknown>,
): Record<string, unknown> {
  let args: Record<string, unknown>;
  try {
    // An old argument name is read as its new one (the loader has warned about it).
    args = withNewNames(schema, structuredClone(interpolate(raw, vars)));
  } catch (e) {
    throw new TaskError(`${module}: ${(e as Error).message}`, 'refused');
  }
  const validate = validatorWithDefaults(schema);
  if (!validate(args)) {
    const e = validate.errors?.[0];
    throw new TaskError(
      `${module}: argument ${e?.instancePath ? `\`${e.instancePath.slice(1).replace(/\//g, '.')}\` ` : ''}${e?.message ?? 'is invalid'}`,
      'refused',
    );
  }
  const group = groupConstraintErrors(schema, args, module)[0];
  if (group) throw new TaskError(group.message, 'refused');
  return args;
}
