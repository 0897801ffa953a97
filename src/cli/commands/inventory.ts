/**
 * `trustplay inventory -i FILE --list | --graph [GROUP] | --host NAME [--resolved]`: the inventory
 * as trustplay resolved it, in exactly the shape `ansible-inventory` prints (ansible-core 2.14,
 * lib/ansible/cli/inventory.py), so the two can be compared with `diff`. `--resolved` adds what
 * trustplay will use to connect to each host. Values of secret-looking variables are masked.
 */
import { connectionSpec } from '../../engine/connect.js';
import { isSecretVar } from '../../playbook/inventory-connection.js';
import { hideSecretVars } from '../../secrets/vars.js';
import type { ModelGroup, ModelHost } from '../../playbook/inventory-model.js';
import { loadAdjacentVars, type AdjacentVars } from '../../playbook/vars-files.js';
import { inventoryVariables, type Inventory } from '../../playbook/inventory.js';
import { resolve } from 'node:path';
import { ExitCode, ExitError } from '../exit-codes.js';
import { InputError, loadInventoryOrExit } from '../load.js';
import type { Options } from '../options.js';

/** JSON as Python's json.dumps(sort_keys=True, indent=4) writes it. */
export function ansibleJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))
        out[k] = sort((v as Record<string, unknown>)[k]);
      return out;
    }
    return v;
  };
  return JSON.stringify(sort(value), null, 4);
}

/** What trustplay will use to reach a host (no secret values). */
function resolved(inv: Inventory, name: string): Record<string, unknown> {
  const host = inv.hosts.get(name)!;
  let spec;
  try {
    spec = connectionSpec(inv, host, {});
  } catch (e) {
    return { error: (e as Error).message };
  }
  return {
    connection: spec.connection,
    ...(spec.connection === 'ssh'
      ? {
          address: spec.address ?? name,
          port: spec.port ?? 22,
          user: spec.user ?? null,
          identity_file: spec.identityFile ?? null,
          ...(spec.identitiesOnly ? { identities_only: true } : {}),
          ...(spec.proxyJump?.length
            ? { proxy_jump: spec.proxyJump.map((j) => `${j.user ? j.user + '@' : ''}${j.address}:${j.port ?? 22}`) }
            : {}),
        }
      : {}),
    become: spec.become ?? false,
    ...(host.becomePasswordEnv ? { become_password_env: host.becomePasswordEnv } : {}),
  };
}

/**
 * A host's variables as `ansible-inventory` shows them: the inventory's groups and host, with the
 * group_vars/host_vars beside the inventory (and beside the playbook directory, when given).
 */
function shownVars(inv: Inventory, h: ModelHost, playbookAdjacent?: AdjacentVars): Record<string, unknown> {
  const host = inv.hosts.get(h.name);
  return host && !h.implicit ? inventoryVariables(inv, host, playbookAdjacent) : inv.model.hostVars(h);
}

export function listInventory(
  inv: Inventory,
  withResolved: boolean,
  playbookAdjacent?: AdjacentVars,
): Record<string, unknown> {
  const model = inv.model;
  const results: Record<string, Record<string, unknown>> = {};
  const seen = new Set<string>();
  const format = (g: ModelGroup): void => {
    const entry: Record<string, unknown> = {};
    if (g.name !== 'all' && g.hosts.length) entry['hosts'] = g.hosts.map((h) => h.name);
    if (g.children.length) entry['children'] = g.children.map((c) => c.name);
    if (Object.keys(entry).length) results[g.name] = entry;
    for (const c of g.children)
      if (!seen.has(c.name)) {
        seen.add(c.name);
        format(c);
      }
  };
  format(model.groups.get('all')!);
  const hostvars: Record<string, unknown> = {};
  const res: Record<string, unknown> = {};
  for (const h of model.groups.get('all')!.allHosts()) {
    const vars = shownVars(inv, h, playbookAdjacent);
    if (Object.keys(vars).length) hostvars[h.name] = hideSecretVars(vars, isSecretVar);
    if (withResolved) res[h.name] = resolved(inv, h.name);
  }
  return { ...results, _meta: { hostvars, ...(withResolved ? { trustplay_resolved: res } : {}) } };
}

export function graphInventory(inv: Inventory, start = 'all'): string {
  const g = inv.model.groups.get(start);
  if (!g)
    throw new ExitError(ExitCode.Invalid, `--graph takes a group name; \`${start}\` is not a group of the inventory`);
  const name = (n: string, depth: number) => (depth ? '  |'.repeat(depth) + '--' + n : n);
  const lines: string[] = [];
  const walk = (grp: ModelGroup, depth: number): void => {
    lines.push(name(`@${grp.name}:`, depth));
    for (const c of grp.children) walk(c, depth + 1);
    if (grp.name !== 'all') for (const h of grp.hosts) lines.push(name(h.name, depth + 1));
  };
  walk(g, 0);
  return lines.join('\n');
}

export async function inventoryCommand(positionals: string[], options: Options): Promise<number> {
  if (!options.inventory)
    throw new ExitError(ExitCode.Invalid, 'inventory needs -i FILE: e.g. `trustplay inventory -i hosts.yaml --list`');
  const modes = [options.list, options.graph, options.host !== undefined].filter(Boolean).length;
  if (modes !== 1)
    throw new ExitError(ExitCode.Invalid, 'inventory needs exactly one of --list, --graph [GROUP] or --host NAME');
  const inv = await loadInventoryOrExit(options);
  let adjacent: AdjacentVars | undefined;
  if (options.playbookDir !== undefined) {
    const r = loadAdjacentVars(resolve(options.playbookDir), inv.groups.keys(), inv.hosts.keys());
    if (r.errors.length) throw new InputError(r.errors);
    adjacent = r.adjacent;
  }
  if (options.list) process.stdout.write(ansibleJson(listInventory(inv, options.resolved, adjacent)) + '\n');
  else if (options.graph) process.stdout.write(graphInventory(inv, positionals[0] ?? 'all') + '\n');
  else {
    const name = options.host!;
    const h = inv.model.getHost(name);
    if (!h) throw new ExitError(ExitCode.Invalid, `--host \`${name}\`: no such host in ${options.inventory}`);
    const out: Record<string, unknown> = hideSecretVars(shownVars(inv, h, adjacent), isSecretVar);
    if (options.resolved && inv.hosts.has(name)) out['_trustplay_resolved'] = resolved(inv, name);
    process.stdout.write(ansibleJson(out) + '\n');
  }
  return ExitCode.Ok;
}
