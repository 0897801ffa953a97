/** Rewrites the generated README sections (`npm run docs`). */
import { finished } from './unsettled-guard.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { renderReadme } from './readme-sections.js';

const path = new URL('../README.md', import.meta.url);
writeFileSync(path, renderReadme(readFileSync(path, 'utf8')));
process.stdout.write('README.md sections regenerated\n');
finished();
