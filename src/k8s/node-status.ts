/**
 * The agent's result in the API, on the Node itself: a `TrustplayInSync` condition (what
 * `kubectl describe node` and every node dashboard already show, readable with the `nodes` get/list
 * that monitoring has anyway; no CRD and no controller to run), and an Event per change.
 *
 * The condition's reason is the verdict (`InSync`, `Drift`, `Failed`, `RolloutHalted`, `Restored`,
 * `RestoreFailed`), its message the recap in one
 * line, and `lastHeartbeatTime` the end of the agent's last pass, from which `fleet status` tells a
 * stale agent. Only this condition is written (a strategic merge patch on `nodes/status` merges
 * conditions by type), so the kubelet's own conditions are never touched.
 */
import { apiMessage, type KubeClient } from './api.js';

/** The condition type the agent owns. */
export const CONDITION = 'TrustplayInSync';

/**
 * The agent's verdict on its node (`RolloutHalted`: drift left alone, as other nodes failed; see
 * rollout-gate.ts; `Restored` / `RestoreFailed`: its answer to a standing `fleet restore` request,
 * enforcement paused; see restore-request.ts).
 */
export type Verdict = 'InSync' | 'Drift' | 'Failed' | 'RolloutHalted' | 'Restored' | 'RestoreFailed';

export interface NodeCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastHeartbeatTime: string;
  lastTransitionTime: string;
}

const rfc3339 = (d: Date): string => `${d.toISOString().slice(0, 19)}Z`;

const nodePath = (node: string): string => `/api/v1/nodes/${encodeURIComponent(node)}`;

/** The node's TrustplayInSync condition, if any. */
export function conditionOf(node: Record<string, unknown> | undefined): NodeCondition | undefined {
  const status = node?.status as { conditions?: NodeCondition[] } | undefined;
  return status?.conditions?.find((c) => c.type === CONDITION);
}

/** Writes the node's TrustplayInSync condition (lastTransitionTime kept while the status stays). */
export async function publishCondition(
  api: KubeClient,
  node: string,
  verdict: Verdict,
  message: string,
  now = new Date(),
): Promise<void> {
  const got = await api.get(nodePath(node));
  if (got.code !== 200) throw new Error(`cannot read Node ${node}: ${apiMessage(got)}`);
  const status = verdict === 'InSync' ? 'True' : 'False';
  const before = conditionOf(got.body);
  const condition: NodeCondition = {
    type: CONDITION,
    status,
    reason: verdict,
    message,
    lastHeartbeatTime: rfc3339(now),
    lastTransitionTime: before?.status === status ? before.lastTransitionTime : rfc3339(now),
  };
  const patched = await api.patch(`${nodePath(node)}/status`, { status: { conditions: [condition] } });
  if (patched.code !== 200)
    throw new Error(`cannot write Node ${node}'s ${CONDITION} condition: ${apiMessage(patched)}`);
}

/** An Event on the Node, in the `default` namespace as the kubelet writes node events. */
export async function nodeEvent(
  api: KubeClient,
  node: string,
  reason: string,
  message: string,
  type: 'Normal' | 'Warning' = 'Normal',
  now = new Date(),
): Promise<void> {
  const stamp = rfc3339(now);
  const created = await api.post('/api/v1/namespaces/default/events', {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `${node}.trustplay.${now.getTime().toString(16)}${Math.random().toString(16).slice(2, 8)}` },
    involvedObject: { apiVersion: 'v1', kind: 'Node', name: node },
    reason,
    message,
    type,
    source: { component: 'trustplay-agent', host: node },
    firstTimestamp: stamp,
    lastTimestamp: stamp,
    count: 1,
  });
  if (created.code !== 201) throw new Error(`cannot create an Event on Node ${node}: ${apiMessage(created)}`);
}
