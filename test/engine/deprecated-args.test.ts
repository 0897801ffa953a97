/** A renamed argument (image.pull.verify `timeout` → `pull_timeout`): still accepted, with a located warning. */
import { describe, expect, it } from 'vitest';
import { resolveArgs } from '../../src/engine/args.js';
import { parsePlaybook } from '../../src/playbook/playbook.js';
import { moduleArgSchemas } from '../../src/playbook/schema/modules.js';

const playbook = (args: string) =>
  `- hosts: localhost\n  tasks:\n    - name: Pull\n      image.pull.verify: { image: r.test/a:1, ${args} }\n`;

describe('deprecated argument names', () => {
  it('the loader warns where the old name is written, naming the new one', () => {
    const r = parsePlaybook('pb.yaml', playbook('timeout: 30'));
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([
      expect.objectContaining({
        file: 'pb.yaml',
        line: 4,
        severity: 'warning',
        message: '`image.pull.verify` argument `timeout` is deprecated: call it `pull_timeout` (same meaning)',
      }),
    ]);
    expect(parsePlaybook('pb.yaml', playbook('pull_timeout: 30')).warnings).toEqual([]);
  });

  it('both names at once is an error, not a silent choice', () => {
    const r = parsePlaybook('pb.yaml', playbook('timeout: 30, pull_timeout: 40'));
    expect(r.errors.map((e) => e.message).join('\n')).toMatch(/pull_timeout.*timeout|timeout.*pull_timeout/);
  });

  it('the engine reads the old name as the new one', () => {
    const schema = moduleArgSchemas['image.pull.verify']!;
    const args = resolveArgs('image.pull.verify', schema, { image: 'r.test/a:1', timeout: 30 }, {});
    expect(args).toMatchObject({ image: 'r.test/a:1', pull_timeout: 30 });
    expect(args).not.toHaveProperty('timeout');
    expect(resolveArgs('image.pull.verify', schema, { image: 'r.test/a:1' }, {})).toMatchObject({ pull_timeout: 120 });
  });
});
