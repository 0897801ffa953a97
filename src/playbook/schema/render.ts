/** The committed JSON Schema files, rendered from the TypeScript sources. */
import { buildPlaybookSchema, inventorySchema } from './playbook.js';

export function renderSchemas(): Record<string, string> {
  return {
    'playbook.schema.json': JSON.stringify(buildPlaybookSchema(), null, 2) + '\n',
    'inventory.schema.json': JSON.stringify(inventorySchema, null, 2) + '\n',
  };
}
