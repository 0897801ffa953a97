/** Load inventory + playbook for a command, turning located problems into exit code 3. */
import { formatDiagnostic, sortDiagnostics, type Diagnostic } from '../playbook/diagnostics.js';
import { applyExtraConnectionVars, loadInventory, localInventory, type Inventory } from '../playbook/inventory.js';
import { loadPlaybook, type LoadResult } from '../playbook/playbook.js';
import { ExitCode, ExitError } from './exit-codes.js';
import type { Options } from './options.js';

export function formatDiagnostics(ds: Diagnostic[]): string {
  const n = ds.filter((d) => d.severity !== 'warning').length;
  return ds.map(formatDiagnostic).join('\n') + `\n${n} problem${n === 1 ? '' : 's'} found; nothing ran.`;
}

/** Invalid input: exit 3 with every problem (and warning), kept as data for machine-readable output. */
export class InputError extends ExitError {
  constructor(readonly problems: Diagnostic[]) {
    super(ExitCode.Invalid, formatDiagnostics(problems));
    this.name = 'InputError';
  }
}

/** Problems as data for `--format json`: position, severity and the sentence (never the source line). */
export function problemsJson(ds: Diagnostic[]): Array<Record<string, unknown>> {
  return ds.map((d) => ({
    file: d.file,
    line: d.line,
    col: d.col,
    severity: d.severity ?? 'error',
    message: d.message,
  }));
}

/** Ansible's inventory warnings (unknown keys, duplicate keys): shown on stderr, not fatal. */
function printWarnings(ds: Diagnostic[]): void {
  for (const d of ds) process.stderr.write(`${formatDiagnostic(d)}\n`);
}

/**
 * What every command does to a loaded inventory before connecting: `-e` connection variables
 * applied on top (Ansible's precedence), and the OpenSSH client config (`--ssh-config`, else
 * ~/.ssh/config) attached for the SSH hosts. run, check, facts, inventory and restore all connect
 * through this, so a host is reached the same way by each.
 */
export async function prepareInventory(inventory: Inventory, options: Options): Promise<Inventory> {
  const problems = applyExtraConnectionVars(inventory, options.extraVars);
  if (problems.length) throw new InputError(problems);
  return attachSshConfig(inventory, options);
}

async function attachSshConfig(inventory: Inventory, options: Options): Promise<Inventory> {
  if (inventory.format === 'default') return inventory;
  const { loadSshConfig, SshConfigError } = await import('../connection/ssh-config.js');
  try {
    const cfg = loadSshConfig(options.sshConfig);
    if (cfg) inventory.sshConfig = cfg;
  } catch (e) {
    if (!(e instanceof SshConfigError)) throw e;
    throw new ExitError(ExitCode.Invalid, `${e.message}; pass another with --ssh-config FILE (or --ssh-config none)`);
  }
  return inventory;
}

export async function loadInventoryOrExit(options: Options): Promise<Inventory> {
  if (!options.inventory) return prepareInventory(localInventory(), options);
  const r = await loadInventory(options.inventory);
  printWarnings(r.warnings);
  if (!r.inventory) throw new InputError([...r.errors, ...r.warnings]);
  return prepareInventory(r.inventory, options);
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
  let invWarnings: Diagnostic[] = [];
  if (options.inventory) {
    const r = await loadInventory(options.inventory);
    if (!r.inventory) throw new InputError([...r.errors, ...r.warnings]);
    inventory = await prepareInventory(r.inventory, options);
    invWarnings = r.warnings;
  } else inventory = await prepareInventory(localInventory(), options);
  const r = await loadPlaybook(file, {
    inventory,
    extraVars: options.extraVars,
    ...(options.limit ? { limit: options.limit } : {}),
    ...(options.tags ? { tags: options.tags } : {}),
    ...(options.skipTags ? { skipTags: options.skipTags } : {}),
    ...(extraModules ? { extraModules } : {}),
  });
  r.warnings = [...invWarnings, ...(r.warnings ?? [])];
  if (!r.playbook || r.errors.length) throw new InputError(sortDiagnostics([...r.errors, ...r.warnings]));
  return r as LoadResult & { playbook: NonNullable<LoadResult['playbook']> };
}

/** The inventory's hosts, narrowed by `--limit` (exit 3 when a part of the pattern matches nothing). */
export async function selectHostsOrExit(
  inventory: Inventory,
  limit: string | undefined,
  among: string[] = [...inventory.hosts.keys()],
  where?: string,
): Promise<string[]> {
  if (!limit) return among;
  const { matchHosts } = await import('../playbook/patterns.js');
  const m = matchHosts(inventory, limit);
  if (m.unmatched.length)
    throw new ExitError(
      ExitCode.Invalid,
      `--limit \`${limit}\`: ${m.unmatched.map((u) => `\`${u}\``).join(', ')} matches no host${where ? ` in ${where}` : ''}`,
    );
  const allowed = new Set(m.hosts);
  return among.filter((h) => allowed.has(h));
}

/** A host's string variables as a play would see them (inventory, then -e), for commands that run no playbook. */
export async function hostStringVars(
  inventory: Inventory,
  host: string,
  extraVars: Record<string, unknown>,
): Promise<(name: string) => string | undefined> {
  const { playVariables } = await import('../playbook/playbook.js');
  const vars = playVariables(
    inventory,
    { name: 'command', hosts: host, vars: {}, tasks: [], handlers: [], loc: { file: '', line: 0, col: 0 } },
    host,
    extraVars,
  );
  return (k) => (typeof vars[k] === 'string' ? (vars[k] as string) : undefined);
}
