/** Writes schemas/*.json from the TypeScript schema sources (`npm run schemas`). */
import { finished } from './unsettled-guard.js';
import { writeFileSync } from 'node:fs';
import { renderSchemas } from '../src/playbook/schema/render.js';

for (const [file, text] of Object.entries(renderSchemas())) {
  writeFileSync(new URL(`../schemas/${file}`, import.meta.url), text);
  process.stdout.write(`wrote schemas/${file}\n`);
}
finished();
