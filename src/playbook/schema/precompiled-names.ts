/** Which schemas are precompiled (src/playbook/schema/validators.generated.ts), under which export names. */
import { MODULE_SCHEMAS } from './module-schemas.generated.js';
import { inventorySchema, playShapeSchema, taskCommonSchema } from './playbook.js';

/**
 * `modules`: the module schemas to name; by default the generated copy the CLI loads. The build
 * (scripts/validators-source.ts) passes the modules themselves, from which that copy is made.
 */
export function precompiledSchemas(
  modules: ReadonlyArray<{ name: string; schema: Readonly<Record<string, unknown>> }> = MODULE_SCHEMAS,
): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {
    inventory: inventorySchema as unknown as Record<string, unknown>,
    play: playShapeSchema as unknown as Record<string, unknown>,
    taskCommon: taskCommonSchema as unknown as Record<string, unknown>,
  };
  for (const m of modules) out[`module_${m.name.replace(/\./g, '_')}`] = m.schema as Record<string, unknown>;
  return out;
}
