/**
 * `trustplay fleet status`: pull mode's drift check. Reads every Node's `TrustplayInSync` condition
 * (published by the agents) and answers with check's exit codes, in check's order: 1 when a node
 * failed, else 4 when an agent is missing or stale (no condition, or a heartbeat older than
 * --stale-after), else 2 on drift (a rollout halted, or a node restored by `fleet restore`, included), else 0. A scheduled drift check works the same in both modes.
 */
import { ExitCode, ExitError } from '../exit-codes.js';
import type { Options } from '../options.js';
import { parseDuration } from './agent.js';

type NodeState = 'InSync' | 'Drift' | 'Halted' | 'Paused' | 'Failed' | 'Missing' | 'Stale';

export async function fleetCommand(positionals: string[], options: Options): Promise<number> {
  if (positionals[0] === 'restore' && positionals.length === 1) return fleetRestore(options);
  if (positionals[0] !== 'status' || positionals.length > 1)
    throw new ExitError(
      ExitCode.Invalid,
      `fleet takes \`status\` or \`restore\`${positionals.length > 0 ? `, not \`${positionals.join(' ')}\`` : ''}`,
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
              : // Put back by a standing `fleet restore` request, enforcement paused: not the playbook's state.
                c.reason === 'Restored'
                ? 'Paused'
                : 'Failed';
      message = c.message;
    }
    return { name, state, message };
  });
  const named = (s: NodeState[]): string[] => rows.filter((r) => s.includes(r.state)).map((r) => r.name);
  const failed = named(['Failed']);
  const missing = named(['Missing', 'Stale']);
  const drift = named(['Drift', 'Halted', 'Paused']);
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

/**
 * `trustplay fleet restore --playbook-configmap NS/NAME --before VERSION [--timeout 10m]`: asks
 * every agent, through an annotation on their ConfigMap (src/k8s/restore-request.ts), to undo its
 * node's changes made since playbook VERSION, and waits until every Node's condition answers this
 * request: 0 all restored, 1 any failed, 4 an agent that did not answer in time. `--clear` removes
 * the request, and the agents enforce the playbook again at once.
 */
async function fleetRestore(options: Options): Promise<number> {
  const a = options.agent;
  const ref = /^([a-z0-9][a-z0-9-]*)\/([a-z0-9][a-z0-9.-]*)$/.exec(a.playbookConfigmap ?? '');
  if (ref === null)
    throw new ExitError(
      ExitCode.Invalid,
      "fleet restore needs --playbook-configmap NAMESPACE/NAME (the agents' ConfigMap, which carries the request)",
    );
  const [{ KubeClient, inClusterAccess, kubeconfigAccess, apiMessage }, rr, { conditionOf }, { randomBytes }] =
    await Promise.all([
      import('../../k8s/api.js'),
      import('../../k8s/restore-request.js'),
      import('../../k8s/node-status.js'),
      import('node:crypto'),
    ]);
  if (a.clear === (a.before !== undefined))
    throw new ExitError(ExitCode.Invalid, 'fleet restore takes either --before PLAYBOOK-VERSION or --clear');
  const problem = a.before !== undefined ? rr.versionProblem(a.before) : undefined;
  if (problem !== undefined) throw new ExitError(ExitCode.Invalid, `--before: ${problem}`);
  const timeoutMs = parseDuration('--timeout', a.timeout, '10m');
  const access = a.kubeconfig !== undefined ? await kubeconfigAccess(a.kubeconfig) : await inClusterAccess();
  const api = new KubeClient(access);
  const cmPath = `/api/v1/namespaces/${ref[1]}/configmaps/${ref[2]}`;
  const annotate = async (value: string | null): Promise<void> => {
    const r = await api.patch(cmPath, { metadata: { annotations: { [rr.RESTORE_ANNOTATION]: value } } }, 'merge');
    if (r.code !== 200)
      throw new ExitError(ExitCode.Failed, `cannot annotate ConfigMap ${ref[1]}/${ref[2]}: ${apiMessage(r)}`);
  };
  if (a.clear) {
    await annotate(null);
    process.stdout.write(`restore request cleared on ${ref[1]}/${ref[2]}: the agents enforce the playbook again\n`);
    return ExitCode.Ok;
  }
  const got = await api.get(cmPath);
  if (got.code !== 200)
    throw new ExitError(ExitCode.Failed, `cannot read ConfigMap ${ref[1]}/${ref[2]}: ${apiMessage(got)}`);
  const request = {
    id: `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`,
    before: a.before as string,
    playbook: rr.playbookVersion((got.body?.data ?? {}) as Record<string, string>),
    requested: `${new Date().toISOString().slice(0, 19)}Z`,
  };
  await annotate(JSON.stringify(request));
  const tag = `${rr.requestTag(request.id)}:`;
  process.stderr.write(
    `${rr.requestTag(request.id)} set on ${ref[1]}/${ref[2]} (before playbook ${request.before}; the ConfigMap holds playbook ${request.playbook}): waiting for every agent\n`,
  );
  const deadline = Date.now() + timeoutMs;
  let rows: { name: string; state: 'Restored' | 'RestoreFailed' | 'Waiting'; message: string }[] = [];
  for (;;) {
    const list = await api.get('/api/v1/nodes');
    if (list.code !== 200) throw new ExitError(ExitCode.Failed, `cannot list Nodes: ${apiMessage(list)}`);
    rows = ((list.body?.items ?? []) as Record<string, unknown>[]).map((node) => {
      const name = String((node.metadata as { name?: string } | undefined)?.name ?? '?');
      const c = conditionOf(node);
      if (c !== undefined && (c.reason === 'Restored' || c.reason === 'RestoreFailed') && c.message.startsWith(tag))
        return { name, state: c.reason, message: c.message };
      return {
        name,
        state: 'Waiting' as const,
        message: c !== undefined ? `not answered yet (${c.reason})` : 'no agent has reported on this node',
      };
    });
    if (rows.every((r) => r.state !== 'Waiting') || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const named = (s: string): string[] => rows.filter((r) => r.state === s).map((r) => r.name);
  const failed = named('RestoreFailed');
  const waiting = named('Waiting');
  const [code, reason] =
    failed.length > 0
      ? [ExitCode.Failed, `restore failed on ${failed.join(', ')} (exit 1)`]
      : waiting.length > 0 || rows.length === 0
        ? [
            ExitCode.Unreachable,
            `no answer within ${a.timeout ?? '10m'} from ${waiting.join(', ') || 'any node: no Nodes'} (exit 4)`,
          ]
        : [
            ExitCode.Ok,
            `restored: ${rows.length} node${rows.length === 1 ? '' : 's'}; enforcement paused until \`trustplay fleet restore --clear\` or a new playbook`,
          ];
  if (options.format === 'json') {
    process.stdout.write(`${JSON.stringify({ exitCode: code, reason, request, nodes: rows }, null, 2)}\n`);
  } else {
    const width = Math.max(4, ...rows.map((r) => r.name.length));
    for (const r of rows) process.stdout.write(`${r.name.padEnd(width)}  ${r.state.padEnd(13)}  ${r.message}\n`);
    process.stdout.write(`${reason}\n`);
  }
  return code;
}
