/** Which schemas are precompiled (src/playbook/schema/validators.generated.ts), under which export names. */
import { moduleArgSchemas } from './modules.js';
import { inventorySchema, playShapeSchema, taskCommonSchema } from './playbook.js';

export function precompiledSchemas(): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {
    inventory: inventorySchema as unknown as Record<string, unknown>,
    play: playShapeSchema as unknown as Record<string, unknown>,
    taskCommon: taskCommonSchema as unknown as Record<string, unknown>,
  };
  for (const [name, schema] of Object.entries(moduleArgSchemas))
    out[`module_${name.replace(/\./g, '_')}`] = schema as unknown as Record<string, unknown>;
  return out;
}
