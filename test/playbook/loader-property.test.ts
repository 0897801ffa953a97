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
