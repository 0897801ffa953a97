/**
 * Precompiles the loader's JSON Schema validators to JavaScript (ajv standalone), so the CLI does
 * not generate and compile validator code at every start (~60 ms). `npm run schemas` runs it; a
 * test keeps the generated file in step with the schemas.
 */
import { finished } from './unsettled-guard.js';
import { writeFileSync } from 'node:fs';
import { renderValidators } from './validators-source.js';
import { renderModuleSchemas } from './module-schemas-source.js';

writeFileSync(new URL('../src/playbook/schema/module-schemas.generated.ts', import.meta.url), renderModuleSchemas());
process.stdout.write('wrote src/playbook/schema/module-schemas.generated.ts\n');
for (const [kind, file] of [
  ['loader', 'validators.generated.ts'],
  ['defaults', 'validators-defaults.generated.ts'],
] as const) {
  writeFileSync(new URL(`../src/playbook/schema/${file}`, import.meta.url), renderValidators(kind));
  process.stdout.write(`wrote src/playbook/schema/${file}\n`);
}
finished();
