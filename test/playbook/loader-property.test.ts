import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseInventory } from '../../src/playbook/inventory.js';
import { parsePlaybook } from '../../src/playbook/playbook.js';

const seed = readFileSync(new URL('../../playbooks/fix-registry.yaml', import.meta.url), 'utf8');
const inv = parseInventory(
  'inv.yaml',
  readFileSync(new URL('../../inventory.example.yaml', import.meta.url), 'utf8'),
).inventory!;

function checkOutcome(text: string): void {
  const r = parsePlaybook('p.yaml', text, { inventory: inv });
  // Either a model, or located errors; never both, never neither.
  if (r.playbook) expect(r.errors).toEqual([]);
  else {
    expect(r.errors.length).toBeGreaterThan(0);
    for (const e of r.errors) {
      expect(e.file).toBe('p.yaml');
      expect(e.line).toBeGreaterThanOrEqual(1);
      expect(typeof e.message).toBe('string');
    }
  }
}

describe('the loader never throws on arbitrary input', () => {
  it('random text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => checkOutcome(s)),
      { numRuns: 300 },
    );
  });

  it('random JSON-like values as YAML', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (v) => checkOutcome(JSON.stringify(v))),
      { numRuns: 300 },
    );
  });

  it('mutations of the shipped playbook (deleted, duplicated and replaced characters and lines)', () => {
    const lines = seed.split('\n');
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('delete-line' as const), at: fc.nat(lines.length - 1) }),
      fc.record({ kind: fc.constant('dup-line' as const), at: fc.nat(lines.length - 1) }),
      fc.record({
        kind: fc.constant('replace-char' as const),
        at: fc.nat(seed.length - 1),
        ch: fc.constantFrom(':', '-', ' ', '{', '"', '\t', 'x', '[', '}', '&', '*', '!', '|'),
      }),
      fc.record({
        kind: fc.constant('indent' as const),
        at: fc.nat(lines.length - 1),
        by: fc.integer({ min: -4, max: 4 }),
      }),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (muts) => {
        let ls = [...lines];
        for (const m of muts) {
          if (m.kind === 'replace-char') {
            let text = ls.join('\n');
            const i = m.at % Math.max(1, text.length);
            text = text.slice(0, i) + m.ch + text.slice(i + 1);
            ls = text.split('\n');
          } else {
            const i = m.at % Math.max(1, ls.length);
            if (m.kind === 'delete-line') ls.splice(i, 1);
            else if (m.kind === 'dup-line') ls.splice(i, 0, ls[i] ?? '');
            else ls[i] = m.by >= 0 ? ' '.repeat(m.by) + (ls[i] ?? '') : (ls[i] ?? '').slice(-m.by);
          }
        }
        checkOutcome(ls.join('\n'));
      }),
      { numRuns: 400 },
    );
  });
});

/** `depth` levels of one nesting shape around a value, as YAML text under a play's vars. */
function nested(shape: 'map' | 'seq' | 'flow-seq' | 'flow-map' | 'compact-seq', depth: number): string {
  const head = '- hosts: all\n  vars:\n    deep:';
  switch (shape) {
    case 'map':
      return `${head}\n${Array.from({ length: depth }, (_, i) => `${'  '.repeat(i + 3)}k${i}:`).join('\n')} v\n  tasks: []\n`;
    case 'seq':
      return `${head}\n${Array.from({ length: depth }, (_, i) => `${'  '.repeat(i + 3)}-`).join('\n')} v\n  tasks: []\n`;
    case 'compact-seq':
      return `${head}\n      ${'- '.repeat(depth)}v\n  tasks: []\n`;
    case 'flow-seq':
      return `${head} ${'['.repeat(depth)}${']'.repeat(depth)}\n  tasks: []\n`;
    case 'flow-map':
      return `${head} ${'{a: '.repeat(depth)}v${'}'.repeat(depth)}\n  tasks: []\n`;
  }
}

describe('deep nesting and template bombs are refused, located, and quickly', () => {
  it('any nesting shape, up to 3,000 levels: a model when shallow, else a located "nests more than" error', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('map', 'seq', 'flow-seq', 'flow-map', 'compact-seq' as const),
        fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 90, max: 3000 })),
        (shape, depth) => {
          const r = parsePlaybook('p.yaml', nested(shape, depth), { inventory: inv });
          checkOutcome(nested(shape, depth));
          if (depth <= 40) expect(r.errors).toEqual([]);
          if (depth >= 110) {
            expect(r.errors).toHaveLength(1);
            expect(r.errors[0]!.message).toMatch(/^YAML nests more than 100 levels deep here/);
            expect(r.errors[0]!.line).toBeGreaterThanOrEqual(3);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('nested variables that repeat each other (fan-out x depth): an error naming the bound, located at the task', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 2, max: 14 }), (fanout, levels) => {
        const vars = Array.from({ length: levels }, (_, i) => `    v${i}: "${`{{ v${i + 1} }}`.repeat(fanout)}"`).join(
          '\n',
        );
        const text = `- hosts: all\n  vars:\n${vars}\n    v${levels}: "xxxxxxxxxx"\n  tasks:\n    - node.creds.wipe:\n        registry: "{{ v0 }}"\n`;
        const r = parsePlaybook('p.yaml', text, { inventory: inv });
        checkOutcome(text);
        const size = 10 * fanout ** levels;
        const e = r.errors.find((x) => /expands to more than|levels of variables/.test(x.message));
        if (size > 1024 * 1024 || levels > 10) {
          expect(e, JSON.stringify(r.errors)).toBeDefined();
          expect([e!.line, e!.col]).toEqual([levels + 6, 19]);
        } else expect(e).toBeUndefined();
      }),
      { numRuns: 80 },
    );
  });

  it('a variable that refers to itself is an error, not a silent leftover template', () => {
    const r = parsePlaybook(
      'p.yaml',
      '- hosts: all\n  vars:\n    a: "{{ b }}"\n    b: "x{{ a }}"\n  tasks:\n    - node.creds.wipe:\n        registry: "{{ a }}"\n',
      { inventory: inv },
    );
    expect(r.errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/refers to itself through the values of its variables/),
    ]);
  });
});
