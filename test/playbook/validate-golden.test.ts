import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatDiagnostic, type Diagnostic } from '../../src/playbook/diagnostics.js';
import { loadInventory } from '../../src/playbook/inventory.js';
import { loadPlaybook } from '../../src/playbook/playbook.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = join(root, 'test/fixtures/validate');
const update = process.env['UPDATE_GOLDEN'] === '1';

async function diagnose(playbook: string, inventoryFile: string): Promise<Diagnostic[]> {
  const inv = await loadInventory(inventoryFile);
  if (!inv.inventory) return inv.errors;
  const r = await loadPlaybook(playbook, { inventory: inv.inventory });
  return r.errors;
}

function render(ds: Diagnostic[]): string {
  // Paths relative to the repo so the golden files do not depend on where the checkout lives.
  return ds.map((d) => formatDiagnostic({ ...d, file: relative(root, d.file) })).join('\n') + '\n';
}

describe('validation errors are located and explained (golden files)', () => {
  const cases = readdirSync(join(dir, 'invalid')).filter((f) => f.endsWith('.yaml') && !f.endsWith('.inventory.yaml'));
  it('covers every error class', () => {
    expect(cases.length).toBeGreaterThanOrEqual(12);
  });
  for (const f of cases) {
    it(f, async () => {
      const base = f.replace(/\.yaml$/, '');
      const invOwn = join(dir, 'invalid', `${base}.inventory.yaml`);
      const ds = await diagnose(join(dir, 'invalid', f), existsSync(invOwn) ? invOwn : join(dir, 'inventory.yaml'));
      expect(ds.length).toBeGreaterThan(0);
      for (const d of ds) expect(d.line).toBeGreaterThan(0);
      const out = render(ds);
      const golden = join(dir, 'invalid', `${base}.expected.txt`);
      if (update || !existsSync(golden)) writeFileSync(golden, out);
      expect(out).toBe(readFileSync(golden, 'utf8'));
    });
  }

  it('an unreadable playbook is one clear error', async () => {
    const missing = await diagnose(join(dir, 'invalid', 'does-not-exist.yaml'), join(dir, 'inventory.yaml'));
    expect(missing.map((d) => d.message)).toEqual(['cannot read playbook: no such file']);
    const isDir = await diagnose(join(dir, 'invalid'), join(dir, 'inventory.yaml'));
    expect(isDir.map((d) => d.message)).toEqual(['cannot read playbook: it is a directory']);
    const inv = await loadInventory(join(dir, 'nope.inventory.yaml'));
    expect(inv.errors[0]?.message).toBe('cannot read inventory: no such file');
  });
});

describe('valid playbooks', () => {
  const playbooks = readdirSync(join(root, 'playbooks')).filter((f) => f.endsWith('.yaml') && !f.includes('inventory'));
  for (const f of playbooks) {
    it(`playbooks/${f} validates against the example inventory`, async () => {
      const inv = await loadInventory(join(root, 'inventory.example.yaml'));
      expect(inv.errors).toEqual([]);
      const r = await loadPlaybook(join(root, 'playbooks', f), { inventory: inv.inventory! });
      expect(r.errors.map(formatDiagnostic)).toEqual([]);
      expect(r.playbook?.plays.length).toBeGreaterThan(0);
    });
  }
});
