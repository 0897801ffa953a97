/**
 * The differential suite: every inventory of test/fixtures/inventory-diff/cases (Ansible's own test
 * inventories, the documentation's examples, edge cases) resolved by trustplay and compared with
 * what the real `ansible-inventory` and `ansible --list-hosts` gave for it (the fixtures, which
 * scripts/gen-inventory-fixtures.ts regenerates and CI checks against the installed Ansible).
 * An inventory is identical when the groups, hosts, host variables, graph and every pattern's hosts
 * (in order) match; where Ansible refuses the file, trustplay must refuse it with a located error.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { graphInventory, listInventory } from '../../src/cli/commands/inventory.js';
import { parseInventory } from '../../src/playbook/inventory.js';
import { matchHosts } from '../../src/playbook/patterns.js';
import type { Expected } from '../../scripts/gen-inventory-fixtures.js';
import { trustplay } from '../support/cli.js';

const ROOT = new URL('../fixtures/inventory-diff/', import.meta.url).pathname;
const cases = readdirSync(join(ROOT, 'cases'))
  .filter((f) => /\.(ya?ml|ini)$/.test(f))
  .sort();

/**
 * Inventories Ansible lists but would fail on when it connects (or that use a connection trustplay
 * does not make): trustplay refuses them up front, and the message must say why.
 */
const REFUSED_BY_DESIGN: Record<string, RegExp> = {
  'edge-docker.yaml': /the `docker` connection is not supported/,
  'edge-bad-port.yaml': /port number from 1 to 65535/,
};

const outcome = new Map<string, 'identical' | 'refused by design'>();

describe('inventories resolve as ansible-inventory resolves them', () => {
  it('has cases and a fixture for each', () => {
    expect(cases.length).toBeGreaterThanOrEqual(35);
    for (const f of cases) expect(() => readFileSync(join(ROOT, 'expected', fixtureName(f)))).not.toThrow();
  });

  for (const f of cases) {
    it(f, () => {
      const exp = JSON.parse(readFileSync(join(ROOT, 'expected', fixtureName(f)), 'utf8')) as Expected;
      const text = readFileSync(join(ROOT, 'cases', f), 'utf8');
      const r = parseInventory(`cases/${f}`, text, f.endsWith('.ini') ? 'ini' : 'yaml');
      if (exp.ansibleFails) {
        expect(r.inventory, 'Ansible refuses this file: trustplay must too').toBeUndefined();
        expect(r.errors.length).toBeGreaterThan(0);
        for (const e of r.errors) expect(e.line, `${e.message} is not located`).toBeGreaterThan(0);
        outcome.set(f, 'identical');
        return;
      }
      const refused = REFUSED_BY_DESIGN[f];
      if (refused) {
        expect(r.inventory).toBeUndefined();
        expect(r.errors.map((e) => e.message).join('\n')).toMatch(refused);
        for (const e of r.errors) expect(e.line).toBeGreaterThan(0);
        outcome.set(f, 'refused by design');
        return;
      }
      expect(r.errors).toEqual([]);
      const inv = r.inventory!;
      expect(listInventory(inv, false)).toEqual(exp.list);
      expect(graphInventory(inv)).toBe(exp.graph);
      // Where Ansible warns, trustplay warns (the wording is trustplay's own).
      expect(
        r.warnings.length > 0,
        `warnings: ${JSON.stringify(r.warnings)}; Ansible: ${JSON.stringify(exp.warnings)}`,
      ).toBe(exp.warnings.length > 0);
      // Each warning points at the line that names what it is about.
      const lines = text.split(/\r?\n/);
      for (const w of r.warnings) {
        expect(w.line, `${w.message} is not located`).toBeGreaterThan(0);
        const named = /`([^`]+)`|\(([^)]+)\)/.exec(w.message);
        if (named) expect(lines[w.line - 1], w.message).toContain(named[1] ?? named[2]);
      }
      for (const [pattern, want] of Object.entries(exp.patterns)) {
        const m = matchHosts(inv, pattern);
        if ('error' in want) expect(m.error, pattern).toBeDefined();
        else expect({ pattern, hosts: m.hosts }).toEqual({ pattern, hosts: want.hosts });
      }
      outcome.set(f, 'identical');
    });
  }

  afterAll(() => {
    const identical = [...outcome.values()].filter((o) => o === 'identical').length;
    process.stdout.write(
      `inventory differential: ${identical} of ${cases.length} inventories identical to ansible-inventory; ${[...outcome.values()].filter((o) => o === 'refused by design').length} refused by design with a located reason\n`,
    );
  });
});

describe('trustplay inventory (the real CLI)', () => {
  it('prints --list and --graph exactly as ansible-inventory does', async () => {
    const f = 'docs-group-vars.yaml';
    const exp = JSON.parse(readFileSync(join(ROOT, 'expected', fixtureName(f)), 'utf8')) as Expected;
    const list = await trustplay(['inventory', '-i', join(ROOT, 'cases', f), '--list']);
    expect(list.stderr).toBe('');
    expect(JSON.parse(list.stdout)).toEqual(exp.list);
    const graph = await trustplay(['inventory', '-i', join(ROOT, 'cases', f), '--graph']);
    expect(graph.stdout.trimEnd()).toBe(exp.graph);
  });

  it('--host --resolved shows the connection trustplay will make, and refuses what it cannot make', async () => {
    const r = await trustplay([
      'inventory',
      '-i',
      join(ROOT, 'cases', 'edge-connection-vars.yaml'),
      '--host',
      'web2',
      '--resolved',
    ]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out['_trustplay_resolved']).toEqual({
      connection: 'ssh',
      address: '10.0.0.2',
      port: 22,
      user: 'admin',
      identity_file: expect.stringMatching(/\/\.ssh\/web$/),
      become: false,
    });
    const bad = await trustplay(['inventory', '-i', join(ROOT, 'cases', 'edge-bad-port.yaml'), '--list']);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/edge-bad-port\.yaml:6:\d+: host web1: `ansible_port` must be a port number/);
    expect(bad.stderr).toMatch(/host web2: `ansible_user` must be a user name, not object/);
    expect(bad.stderr).toMatch(/`web3\\nevil`|web3/);
  });
});

function fixtureName(f: string): string {
  return f.replace(/\.(ya?ml|ini)$/, '') + '.json';
}
