/**
 * `fleet restore`'s request to the agents: an annotation on the agents' ConfigMap, which every
 * agent already watches (a patch wakes each one at once) and may already read, so agents need no
 * new RBAC; only the operator who runs `fleet restore` needs `patch` on that ConfigMap.
 *
 * Snapshot ids are per node and per run, so the fleet-wide handle is the playbook version: a hash
 * of what the agents run (playbook.yaml, vars.yaml, groups), the same on every node, and unchanged
 * by an edit of the ConfigMap's metadata (its resourceVersion is not: the request itself bumps it).
 * An agent records the version in the command of each snapshot it makes and publishes it in its
 * status; `--before V` asks each agent to undo, newest first, every snapshot of its own from the
 * first one made under V: the node as it was before V changed it.
 *
 * The request names the playbook version current when it was made: while the ConfigMap still
 * holds that version the request stands and enforcement is paused (the agent would otherwise put V
 * straight back); a new playbook version, or `fleet restore --clear`, ends it.
 */
import { createHash } from 'node:crypto';

/** The ConfigMap annotation that carries the request (JSON). */
export const RESTORE_ANNOTATION = 'trustplay.dev/restore';

/** What `fleet restore --before V` asks of every agent. */
export interface RestoreRequest {
  /** Unique per request: agents report `restore request ID` in their status, and do it once. */
  id: string;
  /** Undo every change made from the first run under this playbook version on. */
  before: string;
  /** The playbook version current when the request was made: the request stands while it is. */
  playbook: string;
  /** When it was requested (RFC 3339), for people reading the annotation. */
  requested: string;
}

/** The version of what agents run: 12 hex digits of sha256 over playbook.yaml, vars.yaml and groups. */
export function playbookVersion(data: Record<string, string>): string {
  const h = createHash('sha256');
  for (const k of ['playbook.yaml', 'vars.yaml', 'groups']) h.update(`${k}\0${data[k] ?? ''}\0`);
  return h.digest('hex').slice(0, 12);
}

const VERSION = /^[0-9a-f]{12}$/;
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** `--before`'s value checked: one sentence, or undefined when it is a playbook version. */
export function versionProblem(text: string): string | undefined {
  return VERSION.test(text)
    ? undefined
    : `a playbook version is 12 hex digits (the \`playbook …\` in \`trustplay fleet status\`), not \`${text.slice(0, 80)}\``;
}

/** The request in the ConfigMap's annotations: none, one, or why it cannot be used (one sentence). */
export function parseRestoreRequest(annotations: Record<string, string> | undefined): {
  request?: RestoreRequest;
  problem?: string;
} {
  const text = annotations?.[RESTORE_ANNOTATION];
  if (text === undefined || text === '') return {};
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { problem: `annotation ${RESTORE_ANNOTATION} is not JSON` };
  }
  const r = doc as Partial<Record<keyof RestoreRequest, unknown>> | null;
  if (r === null || typeof r !== 'object' || Array.isArray(r))
    return { problem: `annotation ${RESTORE_ANNOTATION} is not an object` };
  for (const [k, re] of [
    ['id', ID],
    ['before', VERSION],
    ['playbook', VERSION],
  ] as const)
    if (typeof r[k] !== 'string' || !re.test(r[k]))
      return { problem: `annotation ${RESTORE_ANNOTATION} has no valid \`${k}\`` };
  return {
    request: {
      id: r.id as string,
      before: r.before as string,
      playbook: r.playbook as string,
      requested: typeof r.requested === 'string' ? r.requested : '',
    },
  };
}

/** The command an agent's enforce run records in its snapshot: the ConfigMap and the playbook version. */
export function agentRunCommand(namespace: string, name: string, version: string): string {
  return `agent enforce ${namespace}/${name} playbook ${version}`;
}

/** The playbook version an agent's snapshot was made under (undefined: not an enforce run of this ConfigMap). */
export function versionOfCommand(command: string, namespace: string, name: string): string | undefined {
  const prefix = `agent enforce ${namespace}/${name} playbook `;
  if (!command.startsWith(prefix)) return undefined;
  const v = command.slice(prefix.length);
  return VERSION.test(v) ? v : undefined;
}

/** A snapshot as the mapping needs it. */
export interface NodeSnapshot {
  runId: string;
  time: string;
  command: string;
}

/**
 * The node's snapshots that put it back to before playbook version `before`, newest first (the
 * order to restore them in): its agent runs of this ConfigMap from the first one made under
 * `before` on. Empty when no change was made under `before` on this node (nothing to undo).
 * Restores and runs of anything else are not agent runs of this ConfigMap, so are never chosen.
 */
export function snapshotsBefore(snapshots: NodeSnapshot[], namespace: string, name: string, before: string): string[] {
  const runs = snapshots
    .map((s) => ({ ...s, version: versionOfCommand(s.command, namespace, name) }))
    .filter((s) => s.version !== undefined)
    .sort((a, b) => a.time.localeCompare(b.time) || a.runId.localeCompare(b.runId));
  const first = runs.findIndex((s) => s.version === before);
  if (first < 0) return [];
  return runs
    .slice(first)
    .map((s) => s.runId)
    .reverse();
}

/** The status message's words that tie a node's report to one request. */
export const requestTag = (id: string): string => `restore request ${id}`;
