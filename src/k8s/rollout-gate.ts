/**
 * Pull mode's fleet-wide `max_fail_percentage`, computed from the status objects: before a node
 * takes a rollout Lease (and again once it holds one, before anything changes), its agent lists
 * the Nodes and counts the other nodes whose `TrustplayInSync` condition says `Failed`. When
 * their share of the Nodes exceeds `--max-fail-percentage` (default 0: any failed node), the
 * rollout is halted: the node is left as it is and its condition says `RolloutHalted`, naming the
 * failed nodes, as Ansible's max_fail_percentage stops a play. It goes on by itself once those
 * nodes report in sync again (fixed, or restored), or with a higher limit.
 *
 * The agent's own node is not counted: a node that failed may retry itself (it still holds the
 * Lease it kept, see agent.ts); a failed node whose agent is gone still counts (nothing says it
 * was fixed).
 */
import { apiMessage, type KubeClient } from './api.js';
import { conditionOf } from './node-status.js';

/** Why the rollout is halted, or undefined when this node may go on. */
export async function rolloutHalt(api: KubeClient, self: string, maxFailPercent: number): Promise<string | undefined> {
  const list = await api.get('/api/v1/nodes');
  if (list.code !== 200) throw new Error(`cannot list Nodes to count failed ones: ${apiMessage(list)}`);
  const nodes = (list.body?.items ?? []) as Record<string, unknown>[];
  const failed = nodes
    .filter((n) => conditionOf(n)?.reason === 'Failed')
    .map((n) => String((n.metadata as { name?: string } | undefined)?.name ?? '?'))
    .filter((name) => name !== self)
    .sort();
  return haltReason(failed, nodes.length, maxFailPercent);
}

/** The sentence when `failed` of `total` nodes is more than `maxFailPercent` percent of them. */
export function haltReason(failed: string[], total: number, maxFailPercent: number): string | undefined {
  if (failed.length === 0 || (failed.length * 100) / Math.max(1, total) <= maxFailPercent) return undefined;
  const share = Math.round((failed.length * 1000) / Math.max(1, total)) / 10;
  return `rollout halted: ${failed.length} of ${total} nodes failed (${failed.join(', ')}), ${share}% > --max-fail-percentage ${maxFailPercent}%; this node was not changed`;
}
