/**
 * `trustplay agent`: pull mode. Runs on one node (a DaemonSet pod with the node's root at /host),
 * reads its playbook from a ConfigMap, checks every interval and as soon as the ConfigMap changes
 * (a watch), and in `enforce` mode applies the
 * changes, one node at a time per rollout slot (a coordination.k8s.io/v1 Lease), publishing the
 * verdict as the Node's `TrustplayInSync` condition and an Event per change.
 *
 * The agent is the same engine and the same modules as `trustplay run`: the inventory is one host,
 * the node, reached through a LocalConnection rooted at --host-root whose commands go through
 * --host-command-prefix (nsenter into the node's namespaces).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ExitCode, ExitError } from '../exit-codes.js';
import type { Options } from '../options.js';
import type { JsonReport } from '../../report/json.js';
import type { KubeClient } from '../../k8s/api.js';
import type { FleetLeader, HeldLease } from '../../k8s/lease.js';
import type { Verdict } from '../../k8s/node-status.js';

/** `10m`, `30s`, `1h`, `500ms`, or plain seconds, in milliseconds; exit 3 otherwise. */
export function parseDuration(flag: string, text: string | undefined, fallback: string): number {
  const given = text ?? fallback;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(given);
  if (m === null)
    throw new ExitError(ExitCode.Invalid, `${flag} takes a duration such as 10m, 30s or 1h, not \`${given}\``);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

/** `--max-unavailable`: N nodes, or P % of the Nodes. */
export type MaxUnavailable = { nodes: number } | { percent: number };

/** `3` or `25%`; exit 3 for anything else, zero included (a rollout that may change no node). */
export function parseMaxUnavailable(text: string): MaxUnavailable {
  const m = /^\s*(\d+)\s*(%?)\s*$/.exec(text);
  const n = Number(m?.[1]);
  if (m === null || n < 1 || (m[2] === '%' && n > 100))
    throw new ExitError(
      ExitCode.Invalid,
      `--max-unavailable must be a number of nodes (at least 1) or a percentage of them (1% to 100%), not \`${text}\``,
    );
  return m[2] === '%' ? { percent: n } : { nodes: n };
}

/**
 * How many rollout Leases: the number given, or the percentage of the cluster's Nodes rounded up
 * (as a DaemonSet's rolling update rounds maxUnavailable), at least 1.
 */
export async function rolloutSlots(api: KubeClient, max: MaxUnavailable): Promise<number> {
  if ('nodes' in max) return max.nodes;
  const { apiMessage } = await import('../../k8s/api.js');
  const list = await api.get('/api/v1/nodes');
  if (list.code !== 200)
    throw new Error(`cannot list Nodes for --max-unavailable ${max.percent}%: ${apiMessage(list)}`);
  const count = Array.isArray(list.body?.items) ? list.body.items.length : 0;
  return Math.max(1, Math.ceil((count * max.percent) / 100));
}

/** What the agent was told, checked. */
export interface AgentConfig {
  namespace: string;
  configMap: string;
  mode: 'check' | 'enforce';
  intervalMs: number;
  /** A number of nodes, or a percentage of the cluster's Nodes. */
  maxUnavailable: MaxUnavailable;
  leaseSeconds: number;
  /** The share of the Nodes (%) that may have failed before this node's rollout halts (0: any). */
  maxFailPercent: number;
  node: string;
  hostRoot: string;
  prefix: string[];
  once: boolean;
}

/** The agent's flags (and NODE_NAME) checked: exit 3 with one sentence for anything wrong. */
export async function agentConfig(options: Options): Promise<AgentConfig> {
  const a = options.agent;
  const ref = /^([a-z0-9][a-z0-9-]*)\/([a-z0-9][a-z0-9.-]*)$/.exec(a.playbookConfigmap ?? '');
  if (ref === null)
    throw new ExitError(
      ExitCode.Invalid,
      `agent needs --playbook-configmap NAMESPACE/NAME (the ConfigMap holding playbook.yaml)${a.playbookConfigmap !== undefined ? `, not \`${a.playbookConfigmap}\`` : ''}`,
    );
  const mode = a.mode ?? 'check';
  if (mode !== 'check' && mode !== 'enforce')
    throw new ExitError(ExitCode.Invalid, `--mode must be check or enforce, not \`${mode}\``);
  const maxUnavailable = parseMaxUnavailable(a.maxUnavailable ?? '1');
  const maxFailText = a.maxFailPercentage ?? '0';
  const maxFailPercent = Number(maxFailText);
  if (!/^\s*\d+(\.\d+)?\s*$/.test(maxFailText) || maxFailPercent > 100)
    throw new ExitError(
      ExitCode.Invalid,
      `--max-fail-percentage must be a percentage of the Nodes from 0 to 100, not \`${maxFailText}\``,
    );
  const node = a.nodeName ?? process.env.NODE_NAME;
  if (!node)
    throw new ExitError(
      ExitCode.Invalid,
      'agent needs the node it runs on: --node-name NAME, or NODE_NAME from the downward API (spec.nodeName)',
    );
  const { split } = await import('shlex');
  const prefix =
    a.hostCommandPrefix !== undefined
      ? split(a.hostCommandPrefix)
      : ['nsenter', '-t', '1', '-m', '-u', '-i', '-n', '-p', '--'];
  return {
    namespace: ref[1] as string,
    configMap: ref[2] as string,
    mode,
    intervalMs: parseDuration('--interval', a.interval, '10m'),
    maxUnavailable,
    maxFailPercent,
    leaseSeconds: Math.max(1, Math.round(parseDuration('--lease-duration', a.leaseDuration, '60s') / 1000)),
    node,
    hostRoot: a.hostRoot ?? '/host',
    prefix,
    once: a.once,
  };
}

/**
 * The node as a one-host inventory: the ConfigMap's `vars.yaml` as the variables, its `groups`
 * (comma-separated, default `workers`) as the node's groups, so a fleet playbook's plays
 * (`hosts: workers`) select it as they would over SSH.
 */
export async function nodeInventory(node: string, data: Record<string, string>): Promise<Record<string, unknown>> {
  const { parse } = await import('yaml');
  const vars = data['vars.yaml'] !== undefined ? ((parse(data['vars.yaml']) ?? {}) as Record<string, unknown>) : {};
  const groups = (data.groups ?? 'workers')
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean);
  return {
    all: {
      vars,
      hosts: { [node]: { ansible_connection: 'local' } },
      children: Object.fromEntries(groups.map((g) => [g, { hosts: { [node]: {} } }])),
    },
  };
}

/** The ConfigMap's playbook and variables, written where the loader reads them. */
async function fetchPlaybook(
  api: KubeClient,
  c: AgentConfig,
  dir: string,
): Promise<{ playbook: string; inventory: string; resourceVersion: string }> {
  const { apiMessage } = await import('../../k8s/api.js');
  const got = await api.get(`/api/v1/namespaces/${c.namespace}/configmaps/${c.configMap}`);
  if (got.code !== 200) throw new Error(`cannot read ConfigMap ${c.namespace}/${c.configMap}: ${apiMessage(got)}`);
  const data = (got.body?.data ?? {}) as Record<string, string>;
  const text = data['playbook.yaml'];
  if (text === undefined)
    throw new Error(
      `ConfigMap ${c.namespace}/${c.configMap} has no playbook.yaml (keys: ${Object.keys(data).join(', ') || 'none'})`,
    );
  const playbook = join(dir, 'playbook.yaml');
  const inventory = join(dir, 'inventory.yaml');
  await writeFile(playbook, text, { mode: 0o600 });
  await writeFile(inventory, stringify(await nodeInventory(c.node, data)), { mode: 0o600 });
  const resourceVersion = String(
    (got.body?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion ?? '',
  );
  return { playbook, inventory, resourceVersion };
}

/** Modules that act on the cluster, not on the node: run once per fleet, by the leader. */
export const FLEET_MODULES = new Set(['k8s.sa.clear']);

/** The Lease whose holder runs the fleet's once-per-fleet tasks. */
export const LEADER_LEASE = 'trustplay-leader';

/** One run (or check) of the playbook on the node, through the CLI's one execution path. */
async function runOnNode(
  c: AgentConfig,
  files: { playbook: string; inventory: string },
  options: Options,
  check: boolean,
  dir: string,
  api: KubeClient,
  leader: FleetLeader,
): Promise<JsonReport> {
  const [{ loadAll }, { executePlaybook }, { builtinModules }, { LocalConnection }] = await Promise.all([
    import('../load.js'),
    import('../execute.js'),
    import('../../modules/index.js'),
    import('../../connection/local.js'),
  ]);
  const report = join(dir, `report-${check ? 'check' : 'run'}.json`);
  const opts: Options = { ...options, inventory: files.inventory, report, check };
  const loaded = await loadAll(files.playbook, opts);
  // Leadership is looked at (taken if free) only when the playbook has a fleet task, just before it runs.
  const fleetTasks = loaded.playbook.plays.some((p) => p.tasks.some((t) => FLEET_MODULES.has(t.module)));
  const holder = fleetTasks ? await leader.holder() : undefined;
  await executePlaybook(
    {
      playbook: loaded.playbook,
      inventory: loaded.inventory,
      playHosts: loaded.playHosts,
      modules: builtinModules,
      check,
      command: `agent ${check ? 'check' : 'enforce'} ${c.namespace}/${c.configMap}`,
      // The cluster's API through the agent's own client (the pod's service account), not kubectl on the node.
      connectionFactory: (spec) =>
        new LocalConnection({ host: spec.name, root: c.hostRoot, commandPrefix: c.prefix, kube: api }),
      skipTask: (task) =>
        holder !== undefined && FLEET_MODULES.has(task.module)
          ? `not the fleet leader (held by ${holder}): runs once per fleet, on the holder of Lease ${c.namespace}/${LEADER_LEASE}`
          : undefined,
    },
    opts,
  );
  return JSON.parse(await readFile(report, 'utf8')) as JsonReport;
}

/** The verdict on the node from a check's report, and the recap in one line. */
function verdictOf(r: JsonReport, node: string): { verdict: Verdict; message: string } {
  const recap = r.hosts[node]?.recap;
  const counts = recap
    ? `ok=${recap.ok} changed=${recap.changed} failed=${recap.failed} unreachable=${recap.unreachable}`
    : 'no recap';
  const verdict: Verdict = r.exitCode === 0 ? 'InSync' : r.exitCode === 2 ? 'Drift' : 'Failed';
  return { verdict, message: `${r.outcome.reason}; ${counts}; run ${r.runId}` };
}

/** The changes a run made, one line each, for the Events. */
function changesOf(r: JsonReport, node: string): string[] {
  return (r.hosts[node]?.tasks ?? [])
    .filter((t) => t.status === 'changed')
    .flatMap((t) => (t.changes.length > 0 ? t.changes : ['changed']).map((ch) => `${t.task} (${t.module}): ${ch}`));
}

export async function agentCommand(_positionals: string[], options: Options): Promise<number> {
  const c = await agentConfig(options);
  const { rolloutHalt } = await import('../../k8s/rollout-gate.js');
  const [
    { KubeClient, inClusterAccess, kubeconfigAccess },
    { LeasePool, FleetLeader },
    { publishCondition, nodeEvent },
  ] = await Promise.all([import('../../k8s/api.js'), import('../../k8s/lease.js'), import('../../k8s/node-status.js')]);
  const access =
    options.agent.kubeconfig !== undefined ? await kubeconfigAccess(options.agent.kubeconfig) : await inClusterAccess();
  const api = new KubeClient(access);
  const pool = new LeasePool(api, {
    namespace: c.namespace,
    prefix: 'trustplay-rollout',
    size: 'nodes' in c.maxUnavailable ? c.maxUnavailable.nodes : 1,
    identity: c.node,
    durationSeconds: c.leaseSeconds,
  });
  const log = (line: string): void => void process.stderr.write(`agent ${c.node}: ${line}\n`);
  const leader = new FleetLeader(
    new LeasePool(api, {
      namespace: c.namespace,
      prefix: LEADER_LEASE,
      size: 1,
      identity: c.node,
      durationSeconds: c.leaseSeconds,
    }),
    LEADER_LEASE,
    c.leaseSeconds,
    log,
  );
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  let held: { lease: HeldLease; timer: NodeJS.Timeout } | undefined;
  // The ConfigMap watch (started after the first pass): the version the last pass read, and how to end a wait early.
  const { watchConfigMap } = await import('../../k8s/watch.js');
  let watching: Promise<void> | undefined;
  let playbookRv = '';
  let changed = false;
  let wake: (() => void) | undefined;

  /** One pass: check; in enforce mode with drift, take a slot, run, check again, and give the slot back when in sync. */
  const pass = async (): Promise<number> => {
    const dir = await mkdtemp(join(tmpdir(), 'trustplay-agent-'));
    try {
      changed = false;
      const files = await fetchPlaybook(api, c, dir);
      playbookRv = files.resourceVersion;
      if (!c.once && watching === undefined && playbookRv !== '')
        // From the version this pass read: a change made while the pass runs wakes the next one at once.
        watching = watchConfigMap(
          api,
          c.namespace,
          c.configMap,
          playbookRv,
          () => playbookRv,
          (rv) => {
            log(`ConfigMap ${c.namespace}/${c.configMap} changed (resourceVersion ${rv}): checking again now`);
            changed = true;
            wake?.();
          },
          stop.signal,
          log,
        );
      let report = await runOnNode(c, files, options, true, dir, api, leader);
      if (c.mode === 'enforce' && report.exitCode === ExitCode.Drift) {
        if (held === undefined) {
          // The fleet's failures first: a failed node stops further rollout (--max-fail-percentage).
          const halt = async (): Promise<string | undefined> => rolloutHalt(api, c.node, c.maxFailPercent);
          const halted = async (why: string): Promise<number> => {
            log(why);
            if (!stop.signal.aborted)
              await publishCondition(api, c.node, 'RolloutHalted', `${why}; run ${report.runId}`);
            return ExitCode.Drift;
          };
          const before = await halt();
          if (before !== undefined) return halted(before);
          // A percentage follows the cluster's size, read again at each rollout.
          pool.resize(await rolloutSlots(api, c.maxUnavailable));
          log(`drift: waiting for one of ${pool.size} rollout Lease(s) in ${c.namespace}`);
          // While it waits, a node that fails (keeping its Lease) halts this one too, instead of a wait without end.
          const waiting = new AbortController();
          const onStop = (): void => waiting.abort();
          stop.signal.addEventListener('abort', onStop, { once: true });
          let during: string | undefined;
          const watch = setInterval(
            () =>
              void halt()
                .then((why) => {
                  if (why !== undefined && during === undefined) {
                    during = why;
                    waiting.abort();
                  }
                })
                .catch((e: unknown) => log(String(e))),
            Math.max(1000, (c.leaseSeconds * 1000) / 3),
          );
          let lease: HeldLease | undefined;
          try {
            lease = await pool.acquire(waiting.signal);
          } finally {
            clearInterval(watch);
            stop.signal.removeEventListener('abort', onStop);
          }
          if (stop.signal.aborted) {
            await lease?.release();
            return ExitCode.Terminated;
          }
          // Held now, nothing changed yet: the last look, so a failure seen while waiting still halts it.
          const after = during ?? (await halt());
          if (after !== undefined || lease === undefined) {
            await lease?.release();
            return halted(after ?? 'rollout halted');
          }
          log(`holds Lease ${lease.name}`);
          // Renewed at a third of its duration, as client-go's leader election does.
          const timer = setInterval(
            () => void lease.renew().catch((e: unknown) => log(`renewing ${lease.name}: ${String(e)}`)),
            (c.leaseSeconds * 1000) / 3,
          );
          held = { lease, timer };
        }
        const run = await runOnNode(c, files, options, false, dir, api, leader);
        for (const change of changesOf(run, c.node)) await nodeEvent(api, c.node, 'TrustplayChanged', change);
        // The health check: the same playbook checks clean after the change (restarts verified, pulls work).
        const recheck = await runOnNode(c, files, options, true, dir, api, leader);
        // A run that failed is the verdict, whatever the check after it finds still to do.
        report = run.exitCode === ExitCode.Failed ? run : recheck;
        if (recheck.exitCode === ExitCode.Ok && held !== undefined) {
          clearInterval(held.timer);
          await held.lease.release();
          log(`released Lease ${held.lease.name}`);
          held = undefined;
        } else if (held !== undefined) {
          // A node that does not come back in sync keeps its slot: the rollout stops at
          // max-unavailable failed nodes, as a DaemonSet's does at max-unavailable unready pods.
          log(`not in sync after the change: keeps Lease ${held.lease.name}, the rollout waits`);
          await nodeEvent(api, c.node, 'TrustplayFailed', verdictOf(report, c.node).message, 'Warning');
        }
      }
      // A pass cut short by SIGTERM (a pod deleted, a node drained) has no verdict: the last one stands.
      if (stop.signal.aborted) return report.exitCode;
      const { verdict, message } = verdictOf(report, c.node);
      await publishCondition(api, c.node, verdict, message);
      return report.exitCode;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  let code: number;
  try {
    for (;;) {
      try {
        code = await pass();
      } catch (err) {
        if (err instanceof ExitError) throw err;
        code = ExitCode.Failed;
        const message = err instanceof Error ? err.message : String(err);
        log(message);
        if (!stop.signal.aborted) await publishCondition(api, c.node, 'Failed', message).catch(() => undefined);
      }
      if (c.once || stop.signal.aborted) break;
      // Until the interval ends, or at once when the ConfigMap changed (during the pass or now).
      if (!changed)
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(t);
            wake = undefined;
            resolve();
          };
          const t = setTimeout(done, c.intervalMs);
          wake = done;
          stop.signal.addEventListener('abort', done, { once: true });
        });
      if (stop.signal.aborted) break;
    }
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    if (held !== undefined) clearInterval(held.timer);
    stop.abort();
    await watching;
    // A graceful exit hands leadership on at once (as client-go's ReleaseOnCancel); a killed agent's expires.
    await leader.resign().catch((e: unknown) => log(`releasing ${LEADER_LEASE}: ${String(e)}`));
    log(`API requests: ${JSON.stringify(api.counts)}`);
  }
  return code;
}
