/** Load inventory + playbook for a command, turning located problems into exit code 3. */
import { formatDiagnostic, type Diagnostic } from '../playbook/diagnostics.js';
import { loadInventory, localInventory, type Inventory } from '../playbook/inventory.js';
import { loadPlaybook, type LoadResult } from '../playbook/playbook.js';
import { ExitCode, ExitError } from './exit-codes.js';
import type { Options } from './options.js';

export function formatDiagnostics(ds: Diagnostic[]): string {
  return (
    ds.map(formatDiagnostic).join('\n') + `\n${ds.length} problem${ds.length === 1 ? '' : 's'} found; nothing ran.`
  );
}

export async function loadInventoryOrExit(options: Options): Promise<Inventory> {
  if (!options.inventory) return localInventory();
  const r = await loadInventory(options.inventory);
  if (!r.inventory) throw new ExitError(ExitCode.Invalid, formatDiagnostics(r.errors));
  return r.inventory;
}

/** Everything needed to run a playbook, or exit 3 with every problem listed. */
export async function loadAll(
  file: string | undefined,
  options: Options,
  extraModules?: Record<string, Record<string, unknown>>,
): Promise<LoadResult & { playbook: NonNullable<LoadResult['playbook']> }> {
  if (!file)
    throw new ExitError(
      ExitCode.Invalid,
      'missing PLAYBOOK: e.g. `trustplay run playbooks/fix-registry.yaml -i inventory.yaml`',
    );
  let inventory: Inventory;
  const invErrors: Diagnostic[] = [];
  if (options.inventory) {
    const r = await loadInventory(options.inventory);
    invErrors.push(...r.errors);
    inventory = r.inventory ?? localInventory();
    if (!r.inventory) throw new ExitError(ExitCode.Invalid, formatDiagnostics(invErrors));
  } else inventory = localInventory();
  const r = await loadPlaybook(file, {
    inventory,
    extraVars: options.extraVars,
    ...(options.limit ? { limit: options.limit } : {}),
    ...(options.tags ? { tags: options.tags } : {}),
    ...(options.skipTags ? { skipTags: options.skipTags } : {}),
    ...(extraModules ? { extraModules } : {}),
  });
  if (!r.playbook || r.errors.length) throw new ExitError(ExitCode.Invalid, formatDiagnostics(r.errors));
  return r as LoadResult & { playbook: NonNullable<LoadResult['playbook']> };
}
