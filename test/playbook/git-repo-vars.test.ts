/**
 * A playbook repository's variables (test/fixtures/git-repo: group_vars/host_vars beside the
 * inventory and the playbook, vars_files, import_playbook, import_tasks) as trustplay resolves them,
 * compared with what the real Ansible resolved for the same files (git-repo.expected.json, written
 * by scripts/gen-vars-fixtures.ts; CI regenerates it with --check, so it cannot drift from Ansible).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { listInventory } from '../../src/cli/commands/inventory.js';
import { hasTemplate, interpolateString } from '../../src/playbook/interpolate.js';
import { loadInventory } from '../../src/playbook/inventory.js';
import { loadPlaybook, playVariables } from '../../src/playbook/playbook.js';
import { loadAdjacentVars } from '../../src/playbook/vars-files.js';
import { PROBED_VARS, UNDEFINED, type ExpectedVars } from '../../scripts/gen-vars-fixtures.js';
import { loadVaultKeyring, useVaultKeyring } from '../../src/vault/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const REPO = join(here, '../fixtures/git-repo');
const expected = JSON.parse(readFileSync(join(here, '../fixtures/git-repo.expected.json'), 'utf8')) as ExpectedVars;

// Where trustplay differs from Ansible on purpose (README, "Relative paths"): a relative path in a
// vars file resolves against that file's directory, not the playbook's.
const PATH_VARS: Record<string, string> = { registry_ca: join(REPO, 'inventory/group_vars') };

/**
 * ansible-inventory prints an inline vault value as its ciphertext (`{"__ansible_vault": ...}`),
 * trustplay as hidden: both keep the value out of the listing.
 */
function hideVault(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(hideVault);
  if (v && typeof v === 'object') {
    if ('__ansible_vault' in v) return '<secret, not shown>';
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, hideVault(x)]));
  }
  return v;
}

// The fixture's vault-encrypted vars file and inline !vault value, as --vault-password-file gives it.
useVaultKeyring(await loadVaultKeyring({ vaultPasswordFiles: [join(REPO, 'vault-pass')] }));

async function load() {
  const inv = await loadInventory(join(REPO, 'inventory/hosts.yaml'));
  expect(inv.errors).toEqual([]);
  const r = await loadPlaybook(join(REPO, 'playbooks/site.yaml'), { inventory: inv.inventory! });
  expect(r.errors).toEqual([]);
  return { inventory: inv.inventory!, r };
}

describe('a playbook repository resolves its variables as Ansible does', () => {
  it('the inventory with group_vars/host_vars beside it and beside the playbook: as ansible-inventory --playbook-dir', async () => {
    // The inventory alone: loading the playbook makes the paths its tasks read absolute.
    const inventory = (await loadInventory(join(REPO, 'inventory/hosts.yaml'))).inventory!;
    const side = loadAdjacentVars(join(REPO, 'playbooks'), inventory.groups.keys(), inventory.hosts.keys());
    expect(side.errors).toEqual([]);
    expect(listInventory(inventory, false, side.adjacent)).toEqual(hideVault(expected.inventory));
  });

  it('the plays, through import_playbook, in order, with the hosts of ansible-playbook --list-hosts (as a set)', async () => {
    const { r } = await load();
    expect(r.playbook!.plays.map((p, i) => ({ name: p.name, hosts: [...r.playHosts[i]!].sort() }))).toEqual(
      expected.plays.map((p) => ({ name: p.name, hosts: p.hosts })),
    );
  });

  it('every probed variable of every play and host (play vars, vars_files, both sides of group_vars/host_vars)', async () => {
    const { inventory, r } = await load();
    let compared = 0;
    r.playbook!.plays.forEach((play, i) => {
      const want = expected.plays[i]!;
      for (const host of want.hosts) {
        const vars = playVariables(inventory, play, host);
        for (const name of PROBED_VARS) {
          let ours = name in vars ? vars[name] : UNDEFINED;
          if (typeof ours === 'string' && hasTemplate(ours)) ours = interpolateString(ours, vars);
          let theirs = want.vars[host]![name];
          if (name in PATH_VARS && typeof theirs === 'string' && !isAbsolute(theirs))
            theirs = resolve(PATH_VARS[name]!, theirs);
          expect({ play: play.name, host, name, value: ours }).toEqual({ play: play.name, host, name, value: theirs });
          compared++;
        }
      }
    });
    expect(compared).toBe(expected.plays.length * 2 * PROBED_VARS.length);
  });

  it('imported tasks carry the tags of their import, and each keeps the file:line:col it is written at', async () => {
    const { r } = await load();
    const [fix, verify] = r.playbook!.plays;
    expect(fix!.tasks[0]!.loc).toEqual({ file: join(REPO, 'playbooks/tasks/trust.yaml'), line: 1, col: 3 });
    expect(verify!.tasks[0]!.tags).toEqual(['verify']);
    expect(verify!.tasks[0]!.loc.file).toBe(join(REPO, 'playbooks/tasks/verify.yaml'));
  });
});
