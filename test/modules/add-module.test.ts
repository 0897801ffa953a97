/**
 * The module contract's promise: adding a module is one new file in src/modules plus one line in
 * the module list. A copy of the source tree gets a test-only module that way; the generators and
 * the real CLI then validate, check, run and document it with nothing else edited.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trustplay } from '../support/cli.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

const MODULE = `import { defineModule } from '../engine/module.js';

export default defineModule({
  name: 'test.marker',
  description: 'Write a marker file (test-only module).',
  schema: {
    type: 'object',
    title: 'test.marker',
    description: 'Write a marker file with the given text: a module added with one file and one line.',
    additionalProperties: false,
    required: ['path', 'text'],
    properties: {
      path: { type: 'string', minLength: 1, description: 'File to write.' },
      text: { type: 'string', description: 'What the file holds.' },
    },
  },
  gather: (ctx, args) => ctx.conn.readFile(args.path),
  plan: (args, observed) =>
    observed?.toString('utf8') === args.text
      ? []
      : [
          {
            op: 'file.write',
            summary: \`write \${args.path}\`,
            path: args.path,
            content: args.text,
            diff: { target: args.path, before: observed?.toString('utf8') ?? '', after: args.text },
          },
        ],
});
`;

describe('a module added with one file and one line', () => {
  let tree: string;
  let work: string;
  const run = (args: string[]) =>
    trustplay([...args, '--state-dir', join(work, 'state')], {
      cwd: tree,
      env: { TRUSTPLAY_LOCK_DIR: join(work, 'locks') },
    });

  beforeAll(() => {
    tree = mkdtempSync(join(tmpdir(), 'trustplay-addmod-'));
    work = mkdtempSync(join(tmpdir(), 'trustplay-addmod-work-'));
    mkdirSync(join(work, 'locks'));
    for (const f of ['src', 'scripts', 'schemas', 'README.md', 'package.json', 'tsconfig.json'])
      cpSync(join(REPO, f), join(tree, f), { recursive: true });
    symlinkSync(join(REPO, 'node_modules'), join(tree, 'node_modules'));
    writeFileSync(join(tree, 'src/modules/test-marker.ts'), MODULE);
    const list = join(tree, 'src/modules/index.ts');
    const text = readFileSync(list, 'utf8');
    const edited = text.replace(
      /(\n\s*import\('\.\/[^']+'\),)(?![\s\S]*import\('\.\/)/,
      `$1\n  import('./test-marker.js'),`,
    );
    expect(edited.split('\n').length).toBe(text.split('\n').length + 1);
    writeFileSync(list, edited);
    // What `npm run schemas` runs, in its order, then `npm run docs`.
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    const scripts = [pkg.scripts['schemas'], pkg.scripts['docs']].flatMap(
      (s) => s?.match(/scripts\/[\w-]+\.ts/g) ?? [],
    );
    expect(scripts).toContain('scripts/gen-validators.ts');
    for (const script of scripts)
      execFileSync(process.execPath, ['--import', 'tsx', script], { cwd: tree, stdio: 'pipe' });
    writeFileSync(
      join(work, 'marker.yaml'),
      `- hosts: localhost\n  tasks:\n    - name: Mark\n      test.marker: { path: ${join(work, 'out', 'marker.txt')}, text: "hello\\n" }\n`,
    );
    writeFileSync(
      join(work, 'bad.yaml'),
      `- hosts: localhost\n  tasks:\n    - test.marker: { path: ${join(work, 'x')}, txt: "hello" }\n`,
    );
  }, 120_000);

  afterAll(() => {
    rmSync(tree, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  it('is documented: playbook JSON Schema, precompiled validators and README table', () => {
    const schema = JSON.parse(readFileSync(join(tree, 'schemas/playbook.schema.json'), 'utf8')) as {
      $defs: { task: { properties: Record<string, { description?: string }> } };
    };
    expect(schema.$defs.task.properties['test.marker']?.description).toMatch(/one file and one line/);
    expect(readFileSync(join(tree, 'src/playbook/schema/validators.generated.ts'), 'utf8')).toContain(
      'module_test_marker',
    );
    const readme = readFileSync(join(tree, 'README.md'), 'utf8');
    expect(readme).toContain('### `test.marker`');
    expect(readme).toMatch(/\| `text` \*\*required\*\* \| string \|/);
  });

  it('is validated: a wrong argument is a located error, a right one passes', async () => {
    const bad = await run(['validate', join(work, 'bad.yaml')]);
    expect(bad.code, bad.stderr + bad.stdout).toBe(3);
    expect(bad.stderr + bad.stdout).toMatch(/bad\.yaml:3:\d+: .*txt/);
    const good = await run(['validate', join(work, 'marker.yaml')]);
    expect(good.code, good.stderr + good.stdout).toBe(0);
  });

  it('is checked and run: would change, changes, then is in the desired state', async () => {
    const check = await run(['check', join(work, 'marker.yaml')]);
    expect(check.code, check.stderr + check.stdout).toBe(2);
    expect(check.stdout).toContain(`write ${join(work, 'out', 'marker.txt')}`);
    const r = await run(['run', join(work, 'marker.yaml')]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(readFileSync(join(work, 'out', 'marker.txt'), 'utf8')).toBe('hello\n');
    const again = await run(['check', join(work, 'marker.yaml')]);
    expect(again.code, again.stderr + again.stdout).toBe(0);
  });
});
