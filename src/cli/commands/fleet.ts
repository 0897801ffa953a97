/**
 * `trustplay fleet status`: pull mode's drift check. Reads every Node's `TrustplayInSync` condition
 * (published by the agents) and answers with check's exit codes, in check's order: 1 when a node
 * failed, else 4 when an agent is missing or stale (no condition, or a heartbeat older than
 * --stale-after), else 2 on drift (a rollout halted included), else 0. A scheduled drift check works the same in both modes.
 */
import { ExitCode, ExitError } from '../exit-codes.js';
import type { Options } from '../options.js';
import { parseDuration } from './agent.js';

type NodeState = 'InSync' | 'Drift' | 'Halted' | 'Failed' | 'Missing' | 'Stale';

export async function fleetCommand(positionals: string[], options: Options): Promise<number> {
  if (positionals[0] !== 'status')
    throw new ExitError(
      ExitCode.Invalid,
      `fleet takes \`status\`${positionals[0] ? `, not \`${positionals[0]}\`` : ''}`,
    );
  const staleMs = parseDuration('--stale-after', options.agent.staleAfter, '30m');
  const [{ KubeClient, inClusterAccess, kubeconfigAccess, apiMessage }, { conditionOf }] = await Promise.all([
    import('../../k8s/api.js'),
    import('../../k8s/node-status.js'),
  ]);
  const access =
    options.agent.kubeconfig !== undefined ? await kubeconfigAccess(options.agent.kubeconfig) : await inClusterAccess();
  const api = new KubeClient(access);
  const list = await api.get('/api/v1/nodes');
  if (list.code !== 200) throw new ExitError(ExitCode.Failed, `cannot list Nodes: ${apiMessage(list)}`);
  const items = (list.body?.items ?? []) as Record<string, unknown>[];
  const now = Date.now();
  const rows = items.map((node) => {
    const name = String((node.metadata as { name?: string } | undefined)?.name ?? '?');
    const c = conditionOf(node);
    let state: NodeState;
    let message: string;
    if (c === undefined) {
      state = 'Missing';
      message = 'no TrustplayInSync condition: no agent has reported on this node';
    } else if (now - Date.parse(c.lastHeartbeatTime) > staleMs) {
      state = 'Stale';
      message = `last report ${c.lastHeartbeatTime} (${c.reason}), older than ${options.agent.staleAfter ?? '30m'}`;
    } else {
      state =
        c.reason === 'InSync' && c.status === 'True'
          ? 'InSync'
          : c.reason === 'Drift'
            ? 'Drift'
            : // Drift the agent left alone because other nodes failed (--max-fail-percentage).
              c.reason === 'RolloutHalted'
              ? 'Halted'
              : 'Failed';
      message = c.message;
    }
    return { name, state, message };
  });
  const named = (s: NodeState[]): string[] => rows.filter((r) => s.includes(r.state)).map((r) => r.name);
  const failed = named(['Failed']);
  const missing = named(['Missing', 'Stale']);
  const drift = named(['Drift', 'Halted']);
  const [code, reason] =
    failed.length > 0
      ? [ExitCode.Failed, `failed on ${failed.join(', ')} (exit 1)`]
      : missing.length > 0
        ? [ExitCode.Unreachable, `agent missing or stale on ${missing.join(', ')} (exit 4)`]
        : drift.length > 0
          ? [ExitCode.Drift, `drift on ${drift.join(', ')} (exit 2)`]
          : rows.length === 0
            ? [ExitCode.Unreachable, 'no Nodes in the cluster (exit 4)']
            : [ExitCode.Ok, `in desired state: ${rows.length} node${rows.length === 1 ? '' : 's'} in sync`];
  if (options.format === 'json') {
    process.stdout.write(`${JSON.stringify({ exitCode: code, reason, nodes: rows }, null, 2)}\n`);
  } else {
    const width = Math.max(4, ...rows.map((r) => r.name.length));
    for (const r of rows) process.stdout.write(`${r.name.padEnd(width)}  ${r.state.padEnd(7)}  ${r.message}\n`);
    process.stdout.write(`${reason}\n`);
  }
  return code;
}
