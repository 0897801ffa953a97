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
import type { RestoreRequest } from '../../k8s/restore-request.js';
import { wakeablePause } from '../../k8s/pause.js';

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
): Promise<{
  playbook: string;
  inventory: string;
  resourceVersion: string;
  /** The playbook version (restore-request.ts): what `fleet restore --before` names. */
  version: string;
  restore: { request?: RestoreRequest; problem?: string };
}> {
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
  const metadata = got.body?.metadata as { resourceVersion?: string; annotations?: Record<string, string> } | undefined;
  const resourceVersion = String(metadata?.resourceVersion ?? '');
  const { playbookVersion, parseRestoreRequest } = await import('../../k8s/restore-request.js');
  return {
    playbook,
    inventory,
    resourceVersion,
    version: playbookVersion(data),
    restore: parseRestoreRequest(metadata?.annotations),
  };
}

/** Modules that act on the cluster, not on the node: run once per fleet, by the leader. */
export const FLEET_MODULES = new Set(['k8s.sa.clear']);

/** The Lease whose holder runs the fleet's once-per-fleet tasks. */
export const LEADER_LEASE = 'trustplay-leader';

/** One run (or check) of the playbook on the node, through the CLI's one execution path. */
async function runOnNode(
  c: AgentConfig,
  files: { playbook: string; inventory: string; version: string },
  options: Options,
  check: boolean,
  dir: string,
  api: KubeClient,
  leader: FleetLeader,
): Promise<JsonReport> {
  const [{ loadAll }, { executePlaybook }, { builtinModules }, { LocalConnection }, { agentRunCommand }] =
    await Promise.all([
      import('../load.js'),
      import('../execute.js'),
      import('../../modules/index.js'),
      import('../../connection/local.js'),
      import('../../k8s/restore-request.js'),
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
      // The playbook version in the snapshot's command: what `fleet restore --before` maps to this node's snapshots.
      command: check
        ? `agent check ${c.namespace}/${c.configMap} playbook ${files.version}`
        : agentRunCommand(c.namespace, c.configMap, files.version),
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

/**
 * The verdict on the node from a check's report, and the recap in one line, with the playbook
 * version (what `fleet restore --before` names) and, after a change, the snapshot it left.
 */
function verdictOf(
  r: JsonReport,
  node: string,
  version: string,
  snapshot?: string,
): { verdict: Verdict; message: string } {
  const recap = r.hosts[node]?.recap;
  const counts = recap
    ? `ok=${recap.ok} changed=${recap.changed} failed=${recap.failed} unreachable=${recap.unreachable}`
    : 'no recap';
  const verdict: Verdict = r.exitCode === 0 ? 'InSync' : r.exitCode === 2 ? 'Drift' : 'Failed';
  return {
    verdict,
    message: `${r.outcome.reason}; ${counts}; run ${r.runId}; playbook ${version}${snapshot !== undefined ? `; snapshot ${snapshot}` : ''}`,
  };
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
    { publishCondition, nodeEvent, conditionOf },
    { LocalConnection },
  ] = await Promise.all([
    import('../../k8s/api.js'),
    import('../../k8s/lease.js'),
    import('../../k8s/node-status.js'),
    import('../../connection/local.js'),
  ]);
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
  // The node, rooted at --host-root; the cluster's API through the agent's own client.
  const nodeConnection = (spec: { name: string }) =>
    new LocalConnection({ host: spec.name, root: c.hostRoot, commandPrefix: c.prefix, kube: api });
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

  // The last snapshot this agent's changes left (published in its status), and the restore request it answered.
  let lastSnapshot: string | undefined;
  let answered: { id: string; verdict: 'Restored' | 'RestoreFailed'; message: string } | undefined;

  /**
   * A pass while a `fleet restore` request stands: the first time, undo this node's snapshots from
   * the first made under the request's playbook version, newest first, with the same restore as
   * `trustplay restore` (verified containerd restart included) under a rollout Lease; then, every
   * pass, report the outcome and change nothing (enforcement paused).
   */
  const restorePass = async (
    files: Awaited<ReturnType<typeof fetchPlaybook>>,
    req: RestoreRequest,
    dir: string,
  ): Promise<number> => {
    const { requestTag } = await import('../../k8s/restore-request.js');
    const tag = `${requestTag(req.id)}:`;
    const paused =
      'enforcement paused until the request is cleared (trustplay fleet restore --clear) or the playbook changes';
    if (answered?.id !== req.id) {
      // An agent restarted while the request stands finds its answer in its own condition.
      const got = await api.get(`/api/v1/nodes/${encodeURIComponent(c.node)}`);
      const before = got.code === 200 ? conditionOf(got.body) : undefined;
      if (
        before !== undefined &&
        (before.reason === 'Restored' || before.reason === 'RestoreFailed') &&
        before.message.startsWith(tag)
      )
        answered = { id: req.id, verdict: before.reason, message: before.message };
    }
    if (answered?.id !== req.id) answered = { id: req.id, ...(await restoreNode(files, req, tag, paused, dir)) };
    if (!stop.signal.aborted) await publishCondition(api, c.node, answered.verdict, answered.message);
    return answered.verdict === 'Restored' ? ExitCode.Ok : ExitCode.Failed;
  };

  const restoreNode = async (
    files: Awaited<ReturnType<typeof fetchPlaybook>>,
    req: RestoreRequest,
    tag: string,
    paused: string,
    dir: string,
  ): Promise<{ verdict: 'Restored' | 'RestoreFailed'; message: string }> => {
    const [
      { SnapshotStore },
      { snapshotsBefore, requestTag },
      { runRestore },
      { loadInventory },
      { prepareInventory },
    ] = await Promise.all([
      import('../../snapshots/store.js'),
      import('../../k8s/restore-request.js'),
      import('./restore.js'),
      import('../../playbook/inventory.js'),
      import('../load.js'),
    ]);
    const failed = (why: string) => ({ verdict: 'RestoreFailed' as const, message: `${tag} ${why}; ${paused}` });
    try {
      const store = new SnapshotStore(options.stateDir, options.snapshotKey ? { keyFile: options.snapshotKey } : {});
      const mine = (await store.list()).flatMap((e) =>
        e.manifest !== undefined && (e.manifest.hosts[c.node]?.resources.length ?? 0) > 0
          ? [{ runId: e.runId, time: e.time, command: e.manifest.command }]
          : [],
      );
      const ids = snapshotsBefore(mine, c.namespace, c.configMap, req.before);
      log(
        `${tag} ${ids.length > 0 ? `restoring ${ids.join(', ')}` : `no change made here under playbook ${req.before}`}`,
      );
      if (ids.length === 0)
        return {
          verdict: 'Restored',
          message: `${tag} nothing to undo (no change made on this node under playbook ${req.before}); ${paused}`,
        };
      const inv = await loadInventory(files.inventory);
      if (inv.inventory === undefined) return failed("the ConfigMap's vars.yaml gives no valid inventory");
      const inventory = await prepareInventory(inv.inventory, options);
      // A Lease left from an enforce pass that failed: the restore is this node's way back, under its own Lease.
      if (held !== undefined) {
        clearInterval(held.timer);
        await held.lease.release();
        held = undefined;
      }
      // Restores restart containerd as enforce does: as many nodes at a time as --max-unavailable allows.
      pool.resize(await rolloutSlots(api, c.maxUnavailable));
      const lease = await pool.acquire(stop.signal);
      if (lease === undefined) return failed('stopped while waiting for a rollout Lease');
      const timer = setInterval(
        () => void lease.renew().catch((e: unknown) => log(`renewing ${lease.name}: ${String(e)}`)),
        (c.leaseSeconds * 1000) / 3,
      );
      try {
        for (const id of ids) {
          const manifest = await store.readManifest(id);
          const code = await runRestore({
            store,
            manifest,
            inventory,
            hosts: [c.node],
            options: { ...options, check: false, report: join(dir, `report-restore-${id}.json`) },
            command: `agent restore ${id} (${requestTag(req.id)})`,
            connectionFactory: nodeConnection,
          });
          if (code !== ExitCode.Ok) return failed(`restoring snapshot ${id} failed (exit ${code})`);
          await nodeEvent(api, c.node, 'TrustplayRestored', `${tag} snapshot ${id} restored`);
        }
      } finally {
        // Released whatever happened: a failed restore is reported, and the rollout is not what it guards.
        clearInterval(timer);
        await lease.release();
      }
      lastSnapshot = undefined;
      return {
        verdict: 'Restored',
        message: `${tag} restored snapshot${ids.length === 1 ? '' : 's'} ${ids.join(', ')} (before playbook ${req.before}); ${paused}`,
      };
    } catch (err) {
      return failed(err instanceof Error ? err.message : String(err));
    }
  };

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
      // A fleet restore request for this playbook version pauses enforcement while it stands.
      if (files.restore.problem !== undefined) {
        const why = `${files.restore.problem}: nothing is enforced until it is fixed or removed (trustplay fleet restore --clear)`;
        log(why);
        if (!stop.signal.aborted) await publishCondition(api, c.node, 'Failed', why);
        return ExitCode.Failed;
      }
      const request = files.restore.request;
      if (request !== undefined && request.playbook === files.version) return await restorePass(files, request, dir);
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
        const changes = changesOf(run, c.node);
        // A run that changed something left a snapshot under its run id: published, so a person can find it.
        if (changes.length > 0) lastSnapshot = run.runId;
        for (const change of changes) await nodeEvent(api, c.node, 'TrustplayChanged', change);
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
          await nodeEvent(
            api,
            c.node,
            'TrustplayFailed',
            verdictOf(report, c.node, files.version, lastSnapshot).message,
            'Warning',
          );
        }
      }
      // A pass cut short by SIGTERM (a pod deleted, a node drained) has no verdict: the last one stands.
      if (stop.signal.aborted) return report.exitCode;
      const { verdict, message } = verdictOf(report, c.node, files.version, lastSnapshot);
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
      if (!changed) {
        // One wait per pass on a signal that lives for days: it leaves no listener on it.
        const between = wakeablePause(c.intervalMs, stop.signal);
        wake = between.wake;
        await between.done;
        wake = undefined;
      }
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
