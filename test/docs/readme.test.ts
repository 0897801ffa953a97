/** The README's generated sections, exit codes and first lines stay true to the code. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { moduleArgSchemas } from '../../src/playbook/schema/modules.js';
import { renderReadme } from '../../scripts/readme-sections.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('generated sections are in step with the schemas and the classifier (run `npm run docs`)', () => {
    expect(renderReadme(readme)).toBe(readme);
  });

  it('documents every module and every argument', () => {
    for (const [name, schema] of Object.entries(moduleArgSchemas)) {
      expect(readme).toContain(`### \`${name}\``);
      for (const arg of Object.keys(schema.properties))
        expect(readme, `${name}.${arg}`).toMatch(new RegExp(`\\| \`${arg}\``));
    }
  });

  it('documents each exit code as the CLI defines it', () => {
    for (const code of Object.values(ExitCode)) expect(readme).toMatch(new RegExp(`^\\| ${code} \\| `, 'm'));
  });

  it('opens with the two fresh-machine commands, and .ci/run calls the test command', () => {
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)![1]!.trim().split('\n');
    expect(firstBlock).toHaveLength(2);
    // The demo, not a localhost check (DECISIONS: green means checked; a machine that is not a node fails).
    expect(firstBlock[0]).toMatch(/^npm ci && sudo npm run demo /);
    expect(firstBlock[1]).toMatch(/^sudo bash \.ci\/run/);
    expect(readFileSync(new URL('../../.ci/run', import.meta.url), 'utf8')).toMatch(/^npm test$/m);
  });
});
