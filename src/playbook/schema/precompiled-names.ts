/** Which schemas are precompiled (src/playbook/schema/validators.generated.ts), under which export names. */
import { modules } from '../../modules/index.js';
import { inventorySchema, playShapeSchema, taskCommonSchema } from './playbook.js';

export function precompiledSchemas(): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {
    inventory: inventorySchema as unknown as Record<string, unknown>,
    play: playShapeSchema as unknown as Record<string, unknown>,
    taskCommon: taskCommonSchema as unknown as Record<string, unknown>,
  };
  for (const m of modules) out[`module_${m.name.replace(/\./g, '_')}`] = m.schema;
  return out;
}
