/**
 * Argument schemas of the modules a playbook may name, read from the one module list
 * (src/modules/index.ts) through its generated copy (module-schemas.generated.ts, `npm run
 * schemas`: loading a playbook does not import the modules themselves): validation (ajv), editor completion (schemas/playbook.schema.json) and
 * the README tables all come from here. `x-exclusive` lists groups of mutually exclusive
 * arguments; it is enforced by the validator with a one-sentence message and mirrored as a plain
 * JSON Schema `not` so editors flag it too. `x-secret: true` marks an argument whose value is a
 * secret (as Ansible's `no_log`): src/secrets/ masks it in every output and validation messages
 * never echo it.
 */
import { MODULE_SCHEMAS } from './module-schemas.generated.js';

/** The shape of a module's argument schema that the docs and the loader read. */
export interface ArgSchema {
  description: string;
  required?: readonly string[];
  properties: Record<string, Record<string, unknown>>;
  'x-exclusive'?: readonly (readonly string[])[];
  'x-together'?: readonly (readonly string[])[];
  [key: string]: unknown;
}

/** Every user-facing module's argument schema, by module name. */
export const moduleArgSchemas: Record<string, ArgSchema> = Object.fromEntries(
  MODULE_SCHEMAS.filter((m) => !m.internal).map((m) => [m.name, m.schema as ArgSchema]),
);

export const moduleNames = Object.keys(moduleArgSchemas);
