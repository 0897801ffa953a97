/**
 * `trustplay restore ID [--limit P] [--check] [--diff] [-i INVENTORY]`: puts back everything a run
 * saved. The snapshot is read and every blob verified first (a damaged one: exit 3, nothing
 * changed); then the restore runs as an ordinary playbook (src/snapshots/restore.ts), so it has the
 * run's output, exit codes and its own snapshot.
 */
import { isAbsolute, resolve } from 'node:path';
import { ExitCode, ExitError } from '../exit-codes.js';
import { formatDiagnostics, prepareInventory, selectHostsOrExit } from '../load.js';
import type { Options } from '../options.js';
import type { Execution } from '../execute.js';
import type { Inventory } from '../../playbook/inventory.js';
import type { Manifest, SnapshotStore } from '../../snapshots/store.js';

export async function restoreCommand(positionals: string[], options: Options): Promise<number> {
  const id = positionals[0];
  if (!id || positionals.length > 1)
    throw new ExitError(
      ExitCode.Invalid,
      'usage: trustplay restore SNAPSHOT-ID [--limit PATTERN] [--check] [--diff] [-i INVENTORY] [--allow-unsigned] (ids: `trustplay snapshots list`)',
    );
  const [{ SnapshotStore }, { loadInventory, localInventory }] = await Promise.all([
    import('../../snapshots/store.js'),
    import('../../playbook/inventory.js'),
  ]);
  const store = new SnapshotStore(options.stateDir, options.snapshotKey ? { keyFile: options.snapshotKey } : {});
  let manifest;
  try {
    manifest = await store.readManifest(id, { allowUnsigned: options.allowUnsigned });
  } catch (e) {
    throw new ExitError(ExitCode.Invalid, `cannot restore: ${(e as Error).message}; nothing was changed`);
  }

  const signed = manifest.version !== 1;
  if (!signed) {
    // An unsigned manifest names nothing trustplay reads: its inventory (whose variables choose the
    // restart command) must be given by the person running the restore.
    if (!options.inventory && manifest.inventory)
      throw new ExitError(
        ExitCode.Invalid,
        `snapshot ${id} is unsigned (format 1), so the inventory it names is not used: pass the inventory with -i; nothing was changed`,
      );
    process.stderr.write(
      `warning: snapshot ${id} is unsigned (format 1, written before snapshots were signed): restoring it because --allow-unsigned was given; its blobs are verified against their digests first\n`,
    );
  }

  // The inventory: -i, else the one the run used (as it was given, relative to where it ran).
  const invPath = options.inventory ?? manifest.inventory;
  let inventory = localInventory();
  if (invPath) {
    const r = await loadInventory(invPath);
    if (!r.inventory) {
      const hint = options.inventory
        ? ''
        : `\n(the inventory recorded in snapshot ${id} is ${invPath}${isAbsolute(invPath) ? '' : `, resolved from ${process.cwd()}`}; pass -i to use another)`;
      throw new ExitError(ExitCode.Invalid, `${formatDiagnostics(r.errors)}${hint}`);
    }
    inventory = r.inventory;
  }
  // Reached as a run reaches it: -e connection variables and the OpenSSH client config.
  inventory = await prepareInventory(inventory, options);

  let hosts = Object.entries(manifest.hosts)
    .filter(([, h]) => h.resources.length > 0)
    .map(([h]) => h);
  hosts = await selectHostsOrExit(inventory, options.limit, hosts, invPath ?? 'the inventory');
  if (!hosts.length) {
    process.stderr.write(
      `snapshot ${id} saved nothing${options.limit ? ` for hosts matching \`${options.limit}\`` : ''}: nothing to restore\n`,
    );
    return ExitCode.Ok;
  }
  const unknown = hosts.filter((h) => !inventory.hosts.has(h));
  // Inventory order, as a run would list them (the manifest is in the order hosts first saved).
  const order = [...inventory.hosts.keys()];
  hosts.sort((a, b) => order.indexOf(a) - order.indexOf(b));
  if (unknown.length) {
    throw new ExitError(
      ExitCode.Invalid,
      `snapshot ${id} has saved state for ${unknown.join(', ')}, which ${unknown.length === 1 ? 'is' : 'are'} not in ${invPath ? resolve(invPath) : 'the default localhost inventory'}: pass the run's inventory with -i (or leave ${unknown.length === 1 ? 'it' : 'them'} out with --limit); nothing was changed`,
    );
  }

  return runRestore({ store, manifest, inventory, hosts, options, command: `restore ${id}`, inventoryPath: invPath });
}

/** What one restore needs: a verified manifest, the hosts chosen in it, and how to reach them. */
export interface RestoreRun {
  store: SnapshotStore;
  manifest: Manifest;
  inventory: Inventory;
  hosts: string[];
  options: Options;
  /** What the restore's own snapshot records as its command. */
  command: string;
  inventoryPath?: string | undefined;
  /** `trustplay agent`: its node, rooted at /host. */
  connectionFactory?: Execution['connectionFactory'];
}

/**
 * Puts back what a snapshot saved for `hosts`: every blob verified first (exit 3, nothing
 * changed), then the restore playbook through the ordinary engine. The one restore of
 * `trustplay restore` and of the agent's `fleet restore` requests.
 */
export async function runRestore(r: RestoreRun): Promise<number> {
  const { loadSnapshotForRestore, restoreModules, restorePlaybook } = await import('../../snapshots/restore.js');
  let loaded;
  try {
    loaded = await loadSnapshotForRestore(r.store, r.manifest, r.hosts);
  } catch (e) {
    throw new ExitError(ExitCode.Invalid, `cannot restore: ${(e as Error).message}`);
  }

  const [{ builtinModules }, { executePlaybook }] = await Promise.all([
    import('../../modules/index.js'),
    import('../execute.js'),
  ]);
  const own = restoreModules(loaded);
  // The restore is itself an ordinary run: reported, snapshotted (so it can be undone) and, like
  // every run, holding each host's lock so a scheduled check never interleaves with it.
  return executePlaybook(
    {
      playbook: restorePlaybook(loaded),
      inventory: r.inventory,
      playHosts: [r.hosts],
      modules: async (name) => own[name] ?? builtinModules(name),
      check: r.options.check,
      command: r.command,
      ...(r.inventoryPath ? { inventoryPath: r.inventoryPath } : {}),
      ...(r.connectionFactory ? { connectionFactory: r.connectionFactory } : {}),
      undoWords: 'undo this restore with',
    },
    r.options,
  );
}
