/** `trustplay run PLAYBOOK` and `trustplay check PLAYBOOK` (= run --check with the drift exit code). */
import { executePlaybook } from '../execute.js';
import { loadAll } from '../load.js';
import type { Options } from '../options.js';

export async function runCommand(positionals: string[], options: Options): Promise<number> {
  return execute(positionals, options, options.check ? 'check' : 'run');
}

export async function checkCommand(positionals: string[], options: Options): Promise<number> {
  return execute(positionals, { ...options, check: true }, 'check');
}

async function execute(positionals: string[], options: Options, mode: 'run' | 'check'): Promise<number> {
  const loaded = await loadAll(positionals[0], options);
  if (loaded.warnings?.length) {
    const { formatDiagnostic } = await import('../../playbook/diagnostics.js');
    for (const w of loaded.warnings) process.stderr.write(`${formatDiagnostic(w)}\n`);
  }
  const { builtinModules } = await import('../../modules/index.js');
  return executePlaybook(
    {
      playbook: loaded.playbook,
      inventory: loaded.inventory,
      playHosts: loaded.playHosts,
      modules: builtinModules,
      check: mode === 'check' || options.check,
      command: `${mode} ${positionals[0]}`,
      ...(options.inventory ? { inventoryPath: options.inventory } : {}),
    },
    options,
  );
}
