/**
 * `trustplay facts [-i INVENTORY] [--limit P] [--format json]`: what each host's containerd trusts
 * and which credentials it holds (registry names only, never values), changing nothing. It is a
 * run of the read-only `node.facts` module over every host of the inventory: the hosts `--limit`
 * selects, the host locks, forks, reports and exit codes are a run's.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defined } from '../../defined.js';
import type { RunResult } from '../../engine/run.js';
import type { NodeFacts } from '../../containerd/node-facts.js';
import type { HostFacts } from '../../modules/node-facts.js';
import { ExitCode, ExitError } from '../exit-codes.js';
import { InputError, loadInventoryOrExit } from '../load.js';
import type { Options } from '../options.js';

const PLAYBOOK = `- name: Node facts
  hosts: all
  tasks:
    - name: Read node facts
      node.facts: {}
`;

export async function factsCommand(positionals: string[], options: Options): Promise<number> {
  if (positionals.length)
    throw new ExitError(ExitCode.Invalid, 'usage: trustplay facts [-i INVENTORY] [--limit PATTERN] [--format json]');
  const inventory = await loadInventoryOrExit(options);
  const [
    { parsePlaybook },
    { sortDiagnostics },
    nodeFacts,
    { builtinModules },
    { executePlaybook },
    { formatNodeFacts },
  ] = await Promise.all([
    import('../../playbook/playbook.js'),
    import('../../playbook/diagnostics.js'),
    import('../../modules/node-facts.js'),
    import('../../modules/index.js'),
    import('../execute.js'),
    import('../../containerd/node-facts.js'),
  ]);
  // Named in trustplay's own directory: a playbook's group_vars/host_vars are read beside its file,
  // and this built-in one has none (those beside the inventory still apply, as for ansible -m).
  const file = join(dirname(fileURLToPath(import.meta.url)), '(trustplay facts)');
  const loaded = parsePlaybook(file, PLAYBOOK, {
    inventory,
    extraVars: options.extraVars,
    extraModules: { [nodeFacts.default.name]: nodeFacts.default.schema },
    ...defined({ limit: options.limit }),
  });
  if (!loaded.playbook || loaded.errors.length)
    throw new InputError(sortDiagnostics([...loaded.errors, ...(loaded.warnings ?? [])]));
  const hosts = loaded.playHosts[0] ?? [];
  return executePlaybook(
    {
      playbook: loaded.playbook,
      inventory,
      playHosts: loaded.playHosts,
      modules: builtinModules,
      check: false,
      command: 'facts',
      present: (r) => (options.format === 'json' ? factsJson(r, hosts) : factsText(r, hosts, formatNodeFacts)),
    },
    options,
  );
}

type HostOutcome = { facts: HostFacts } | { error: string; unreachable?: true };

/** Each host's facts, or why there are none, in inventory order. */
function byHost(r: RunResult, hosts: string[]): Array<[string, HostOutcome]> {
  return hosts.map((h) => {
    const t = r.results.find((x) => x.host === h);
    const facts = t?.data?.['facts'] as HostFacts | undefined;
    if (t?.status === 'ok' && facts) return [h, { facts }];
    if (t?.status === 'unreachable') return [h, { error: t.error?.message ?? '', unreachable: true }];
    return [h, { error: t?.error?.message ?? t?.skipReason ?? 'not run' }];
  });
}

function factsJson(r: RunResult, hosts: string[]): string {
  return JSON.stringify({ hosts: Object.fromEntries(byHost(r, hosts)), outcome: r.outcome }, null, 2) + '\n';
}

function factsText(r: RunResult, hosts: string[], formatNodeFacts: (host: string, f: NodeFacts) => string): string {
  return byHost(r, hosts)
    .map(([h, o]) => {
      if ('error' in o) return `${h}:\n  ${o.unreachable ? 'UNREACHABLE' : 'FAILED'}: ${o.error}\n`;
      const v = o.facts.variables;
      return (
        formatNodeFacts(h, o.facts) +
        `  restore restarts containerd with: ${v.containerd_restart_command} (waits ${v.containerd_restart_timeout} s for the CRI socket)\n`
      );
    })
    .join('');
}
