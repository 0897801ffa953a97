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
  if (options.listHosts) {
    // As ansible-playbook --list-hosts: each play's hosts in the order they would run; nothing runs.
    const lines = [`playbook: ${loaded.playbook.file}`, ''];
    loaded.playbook.plays.forEach((p, i) => {
      const hosts = loaded.playHosts[i] ?? [];
      lines.push(`  play #${i + 1} (${p.hosts}): ${p.name}`, `    pattern: ${p.hosts}`, `    hosts (${hosts.length}):`);
      for (const h of hosts) lines.push(`      ${h}`);
      lines.push('');
    });
    process.stdout.write(lines.join('\n'));
    return 0;
  }
  // The modules (their CRI, TOML and diagnose code) load while the run starts and its SSH
  // handshakes are in flight: the playbook was validated from their generated schemas.
  const registry = import('../../modules/index.js');
  registry.catch(() => undefined);
  const modules = async (name: string) => (await registry).builtinModules(name);
  return executePlaybook(
    {
      playbook: loaded.playbook,
      inventory: loaded.inventory,
      playHosts: loaded.playHosts,
      modules,
      check: mode === 'check' || options.check,
      command: `${mode} ${positionals[0]}`,
      ...(options.inventory ? { inventoryPath: options.inventory } : {}),
    },
    options,
  );
}
