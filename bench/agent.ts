/**
 * Issue 23's figures for pull mode: `npm run bench -- agent [--nodes 20] [--max-unavailable 1,5,20]
 * [--intervals 3] [--interval 10s]`. Needs root and the lab's packages.
 *
 * On an N-node lab (each node as fresh: containerd without config_path, the registry's CA not
 * trusted, so a CRI pull fails with x509), one `trustplay agent` process per node, as
 * test/e2e/agent.test.ts starts them: the node's root as /proc/<its namespace>/root, its commands
 * through nsenter, against the lab's API emulator.
 *
 * - Rollout: for each max-unavailable value, every node is put back into the x509 state (its
 *   original config.toml, no certs.d entry, the image removed, containerd restarted), then N agents
 *   start in enforce mode (--once). The time is from their start until every Node's TrustplayInSync
 *   condition was written True (the emulator's write log, ms). The Lease log gives the rollout
 *   Leases' holdings; their largest overlap is printed, and each node's new containerd must have
 *   started inside its own node's holding.
 * - API load: with the fleet converged, N agents in check mode with a short interval; after every
 *   node's first pass, the emulator's request log over K intervals, per node per interval by verb
 *   and resource. The leader's renewals of trustplay-leader are its extra.
 * - Memory: peak RSS of each agent process (getrusage at exit).
 *
 * Prints figures, asserts none (a wrong rollout throws: an overlap above max-unavailable, a node
 * not restarted, an agent exiting non-zero).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { labDown, labPrerequisites, labState, labUp, type Lab } from '../test/lab/lab.js';
import { labControl } from '../test/snapshots/cli.js';
import { inNode } from '../test/support/lab-node.js';
import { median, root } from './util.js';

interface Write {
  at: number;
  verb: string;
  resource: string;
  name: string;
  object: {
    spec?: { holderIdentity?: string };
    status?: { conditions?: { type: string; status: string }[] };
  };
}
interface Req {
  method: string;
  path: string;
  query: Record<string, string>;
}

export interface AgentBenchOptions {
  nodes: number;
  maxUnavailable: number[];
  intervals: number;
  intervalS: number;
  log: (s: string) => void;
}

export interface AgentBenchResult {
  nodes: number;
  load: { before: number[]; after: number[] };
  labUpMs: number;
  rollouts: Array<{
    maxUnavailable: number;
    seconds: number;
    maxOverlap: number;
    restartsInHolding: number;
    peakRssMb: number;
  }>;
  api: {
    intervalS: number;
    intervals: number;
    windowS: number;
    rows: Array<{ request: string; perNodePerInterval: number; total: number }>;
    totalPerNodePerInterval: number;
    leader: string;
    leaderExtraPerInterval: number;
    openWatches: number;
    peakRssMb: number;
  };
  peakRssMb: { max: number; median: number };
}

/** Requests only the fleet leader makes: its Lease renewals and k8s.sa.clear's ServiceAccount reads and writes. */
const LEADER_ONLY = new Set(['PUT lease trustplay-leader', 'GET serviceaccounts', 'PATCH serviceaccounts']);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Method and resource of one API request, with the Lease's role instead of its name. */
export function classify(r: Req): string {
  const parts = r.path.split('/').filter(Boolean);
  // /api/v1/... or /apis/GROUP/VERSION/...
  let rest = parts[0] === 'api' ? parts.slice(2) : parts.slice(3);
  if (rest[0] === 'namespaces' && rest.length > 2) rest = rest.slice(2);
  const [resource = r.path, name, sub] = rest;
  const verb = r.query.watch === '1' || r.query.watch === 'true' ? 'WATCH' : r.method;
  let what = resource;
  if (resource === 'leases' && name !== undefined)
    what = name.startsWith('trustplay-rollout') ? 'lease (rollout)' : `lease ${name}`;
  else if (resource === 'nodes' && name === undefined) what = 'nodes (list)';
  else if (resource === 'nodes') what = sub === 'status' ? 'node status' : 'node';
  else if (resource === 'configmaps') what = 'configmap';
  else if (name === undefined && verb === 'GET') what = `${resource} (list)`;
  return `${verb} ${what}`;
}

/** The rollout Leases' holdings (from taking to release) and their largest overlap. */
export function holdings(writes: Write[]): {
  holdings: { holder: string; from: number; to: number }[];
  maxOverlap: number;
} {
  const open = new Map<string, { holder: string; from: number; to: number }>();
  const all: { holder: string; from: number; to: number }[] = [];
  for (const w of writes) {
    if (!w.name.startsWith('trustplay-rollout')) continue;
    const holder = w.object.spec?.holderIdentity ?? '';
    const cur = open.get(w.name);
    if (holder !== '' && (cur === undefined || cur.holder !== holder)) {
      if (cur !== undefined) cur.to = w.at; // taken over
      const h = { holder, from: w.at, to: Infinity };
      open.set(w.name, h);
      all.push(h);
    } else if (holder === '' && cur !== undefined) {
      cur.to = w.at;
      open.delete(w.name);
    }
  }
  const edges = all.flatMap((h) => [
    { t: h.from, d: 1 },
    { t: h.to, d: -1 },
  ]);
  // Ends before starts at the same instant: a release and the next take in one ms are not an overlap.
  edges.sort((a, b) => a.t - b.t || a.d - b.d);
  let n = 0;
  let max = 0;
  for (const e of edges) max = Math.max(max, (n += e.d));
  return { holdings: all, maxOverlap: max };
}

interface Agent {
  node: string;
  child: ChildProcess;
  done: Promise<{ code: number; stdout: string; stderr: string; rssKb: number }>;
}

function startAgent(lab: Lab, i: number, args: string[], kubeconfig: string, dir: string): Agent {
  const node = lab.nodes[i]!;
  const child = spawn(
    process.execPath,
    [
      '--import',
      new URL('./rss-on-exit.mjs', import.meta.url).href,
      path.join(root, 'dist', 'cli', 'main.js'),
      'agent',
      '--playbook-configmap',
      'kube-system/trustplay-playbook',
      '--node-name',
      node.name,
      '--host-root',
      `/proc/${node.nsPid}/root`,
      '--host-command-prefix',
      `nsenter -t ${node.nsPid} -m --`,
      '--kubeconfig',
      kubeconfig,
      '--state-dir',
      path.join(dir, `state-${node.name}`),
      ...args,
    ],
    { cwd: root, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number; stdout: string; stderr: string; rssKb: number }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      const m = /\{"bench_max_rss_kb":(\d+)\}/.exec(stderr);
      resolve({ code: code ?? -1, stdout, stderr, rssKb: m ? Number(m[1]) : NaN });
    });
  });
  return { node: node.name, child, done };
}

function kubectl(kubeconfig: string, dir: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'kubectl',
      ['--kubeconfig', kubeconfig, '--cache-dir', path.join(dir, 'kube-cache'), ...args],
      { env: { ...process.env, HOME: dir } },
      (err, stdout, stderr) => (err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr}`)) : resolve(stdout)),
    );
    child.stdin?.end(input ?? '');
  });
}

/** Wall-clock start (ms) of a process, from /proc (ticks since boot, USER_HZ 100). */
function startedAt(pid: number): number {
  const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  const bootMs = Date.now() - uptime * 1000;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return bootMs + (Number(fields[19]) / 100) * 1000;
}

/** Polls until every node has a TrustplayInSync=True write at or after `since`; returns the last one's time. */
async function allInSync(lab: Lab, since: number, agents: Agent[], timeoutMs: number): Promise<number> {
  const names = new Set(lab.nodes.map((n) => n.name));
  const t0 = Date.now();
  for (;;) {
    const writes = await labControl<Write[]>(lab, 'GET', 'writes?resource=nodes');
    const first = new Map<string, number>();
    for (const w of writes)
      if (
        w.at >= since &&
        names.has(w.name) &&
        !first.has(w.name) &&
        w.object.status?.conditions?.some((c) => c.type === 'TrustplayInSync' && c.status === 'True')
      )
        first.set(w.name, w.at);
    if (first.size === names.size) return Math.max(...first.values());
    const dead = agents.filter((a) => a.child.exitCode !== null && a.child.exitCode !== 0);
    if (dead.length) {
      const r = await dead[0]!.done;
      throw new Error(`agent on ${dead[0]!.node} exited ${r.code}: ${(r.stdout + r.stderr).slice(-1500)}`);
    }
    if (Date.now() - t0 > timeoutMs)
      throw new Error(`not in sync after ${timeoutMs / 1000} s: ${[...names].filter((n) => !first.has(n)).join(', ')}`);
    await sleep(250);
  }
}

export async function benchAgent(o: AgentBenchOptions): Promise<AgentBenchResult | string> {
  const missing = labPrerequisites();
  if (missing.length) return `not run: ${missing.join('; ')}`;
  const loadBefore = loadavg().map((x) => Number(x.toFixed(2)));
  o.log(`agent bench: bringing up a ${o.nodes}-node lab (load ${loadBefore.join(' ')})`);
  const lab = await labUp({ nodes: o.nodes });
  const dir = mkdtempSync(path.join(tmpdir(), 'tp-bench-agent-'));
  const all: Agent[] = [];
  try {
    if (lab.kube === undefined) throw new Error('the lab has no API emulator');
    const kubeconfig = lab.kube.hostKubeconfig;
    o.log(`agent bench: lab up in ${(lab.upMs / 1000).toFixed(1)} s`);
    const registry = lab.image.ref.split('/')[0]!;
    // The fleet's procedure, as in the agent e2e: trust the registry's CA, then prove the pull.
    writeFileSync(
      path.join(dir, 'playbook.yaml'),
      [
        '- hosts: workers',
        '  tasks:',
        "    - name: Trust the registry's CA",
        '      containerd.tls:',
        '        registry: "{{ registry }}"',
        '        ca: "{{ registry_ca }}"',
        '- hosts: workers',
        '  tasks:',
        '    - name: Pull the image through the CRI',
        '      image.pull.verify:',
        '        image: "{{ image }}"',
        // A fleet task: only the leader runs it, so the leader's Lease traffic shows.
        '    - name: Drop the stale pull secret',
        '      k8s.sa.clear:',
        '        namespace: default',
        '        secrets: [registry-test-pull]',
        '',
      ].join('\n'),
    );
    writeFileSync(
      path.join(dir, 'vars.yaml'),
      JSON.stringify({ registry, registry_ca: readFileSync(lab.ca, 'utf8'), image: lab.image.ref }),
    );
    await kubectl(kubeconfig, dir, [
      'create',
      'configmap',
      'trustplay-playbook',
      '-n',
      'kube-system',
      `--from-file=playbook.yaml=${path.join(dir, 'playbook.yaml')}`,
      `--from-file=vars.yaml=${path.join(dir, 'vars.yaml')}`,
    ]);
    // The Node objects, as the kubelet would register them.
    await Promise.all(
      lab.nodes.map((n) =>
        kubectl(
          kubeconfig,
          dir,
          ['create', '-f', '-'],
          JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: n.name } }),
        ),
      ),
    );
    // Each node's fresh config.toml (containerd's default: no config_path), to put back before each rollout.
    const configs = await Promise.all(
      lab.nodes.map(async (n) => {
        const r = await inNode(n, 'cat /etc/containerd/config.toml');
        if (r.code !== 0) throw new Error(`${n.name}: cannot read config.toml: ${r.stderr}`);
        return r.stdout;
      }),
    );
    const reset = async (): Promise<void> => {
      await Promise.all(
        lab.nodes.map(async (n, i) => {
          const r = await inNode(
            n,
            `cat > /etc/containerd/config.toml && rm -rf /etc/containerd/certs.d/${registry} && ` +
              `(ctr -n k8s.io images rm ${lab.image.ref} >/dev/null 2>&1 || true) && systemctl restart containerd`,
            configs[i],
          );
          if (r.code !== 0) throw new Error(`${n.name}: reset failed: ${r.stderr}`);
        }),
      );
    };

    const rollouts: AgentBenchResult['rollouts'] = [];
    const rss: number[] = [];
    for (const mu of o.maxUnavailable) {
      await reset();
      const before = labState(lab.dir).nodes.map((n) => n.containerdPid);
      const mark = (await labControl<Write[]>(lab, 'GET', 'writes?resource=leases')).length;
      o.log(`agent bench: rollout of ${o.nodes} nodes, --max-unavailable ${mu}`);
      const t0 = Date.now();
      const agents = lab.nodes.map((_, i) =>
        startAgent(lab, i, ['--mode', 'enforce', '--once', '--max-unavailable', String(mu)], kubeconfig, dir),
      );
      all.push(...agents);
      const last = await allInSync(lab, t0, agents, 20 * 60_000);
      const runs = await Promise.all(agents.map((a) => a.done));
      runs.forEach((r, i) => {
        if (r.code !== 0)
          throw new Error(`agent on ${agents[i]!.node} exited ${r.code}: ${(r.stdout + r.stderr).slice(-1500)}`);
      });
      const writes = (await labControl<Write[]>(lab, 'GET', 'writes?resource=leases')).slice(mark);
      const h = holdings(writes);
      if (h.maxOverlap > mu)
        throw new Error(`${h.maxOverlap} rollout Leases held at once, above --max-unavailable ${mu}`);
      const after = labState(lab.dir).nodes.map((n) => n.containerdPid);
      let inside = 0;
      lab.nodes.forEach((n, i) => {
        if (after[i] === before[i]) throw new Error(`${n.name}'s containerd was not restarted`);
        const started = startedAt(after[i]!);
        const mine = h.holdings.filter((x) => x.holder === n.name);
        // /proc's start time has one tick (10 ms) of resolution.
        if (mine.some((x) => started >= x.from - 20 && started <= x.to + 20)) inside++;
      });
      const peak = Math.max(...runs.map((r) => r.rssKb)) / 1024;
      rss.push(...runs.map((r) => r.rssKb / 1024));
      rollouts.push({
        maxUnavailable: mu,
        seconds: (last - t0) / 1000,
        maxOverlap: h.maxOverlap,
        restartsInHolding: inside,
        peakRssMb: peak,
      });
      o.log(
        `agent bench:   ${((last - t0) / 1000).toFixed(1)} s, max ${h.maxOverlap} Leases held at once, ` +
          `${inside}/${o.nodes} restarts inside their holding, peak RSS ${peak.toFixed(0)} MB`,
      );
    }

    // API load with the fleet converged: check mode, a short interval.
    o.log(`agent bench: ${o.nodes} agents in check mode, --interval ${o.intervalS}s, ${o.intervals} intervals`);
    const t0 = Date.now();
    const agents = lab.nodes.map((_, i) =>
      startAgent(lab, i, ['--mode', 'check', '--interval', `${o.intervalS}s`], kubeconfig, dir),
    );
    all.push(...agents);
    await allInSync(lab, t0, agents, 10 * 60_000);
    const from = (await labControl<Req[]>(lab, 'GET', 'requests')).length;
    const w0 = Date.now();
    await sleep(o.intervals * o.intervalS * 1000);
    // The bench's own reads of the request log are not the agents'.
    const window = (await labControl<Req[]>(lab, 'GET', 'requests'))
      .slice(from)
      .filter((r) => !r.path.startsWith('/_lab/'));
    const windowS = (Date.now() - w0) / 1000;
    const leader =
      (
        await kubectl(kubeconfig, dir, [
          'get',
          'lease',
          'trustplay-leader',
          '-n',
          'kube-system',
          '-o',
          'jsonpath={.spec.holderIdentity}',
        ]).catch(() => '')
      ).trim() || 'none';
    for (const a of agents) a.child.kill('SIGTERM');
    const runs = await Promise.all(agents.map((a) => a.done));
    // Every watch an agent opened (one per agent unless one was reopened), over the whole run.
    const openWatches = (await labControl<Req[]>(lab, 'GET', 'requests')).filter(
      (r) => r.query.watch === '1' || r.query.watch === 'true',
    ).length;
    const k = windowS / o.intervalS;
    const counts = new Map<string, number>();
    for (const r of window) counts.set(classify(r), (counts.get(classify(r)) ?? 0) + 1);
    // The leader's renewals and its fleet task (k8s.sa.clear's ServiceAccount reads) are its own extra.
    const leaderRenewals = [...counts].filter(([q]) => LEADER_ONLY.has(q)).reduce((n, [, c]) => n + c, 0);
    const rows = [...counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([request, total]) => ({
        request,
        // The leader's renewals are its own extra, not every node's.
        perNodePerInterval: LEADER_ONLY.has(request) ? 0 : total / o.nodes / k,
        total,
      }));
    const checkRss = runs.map((r) => r.rssKb / 1024);
    rss.push(...checkRss);
    return {
      nodes: o.nodes,
      load: { before: loadBefore, after: loadavg().map((x) => Number(x.toFixed(2))) },
      labUpMs: lab.upMs,
      rollouts,
      api: {
        intervalS: o.intervalS,
        intervals: o.intervals,
        windowS,
        rows,
        totalPerNodePerInterval: (window.length - leaderRenewals) / o.nodes / k,
        leader,
        leaderExtraPerInterval: leaderRenewals / k,
        openWatches,
        peakRssMb: Math.max(...checkRss),
      },
      peakRssMb: { max: Math.max(...rss), median: median(rss) },
    };
  } finally {
    for (const a of all) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
    await Promise.all(all.map((a) => a.done.catch(() => undefined)));
    await labDown(lab);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The figures as markdown tables (also what `npm run bench -- agent` prints). */
export function agentMarkdown(r: AgentBenchResult): string {
  const f = (x: number, d = 1): string => x.toFixed(d);
  return [
    `### Rollout of ${r.nodes} lab nodes (x509 state to every TrustplayInSync True; agents in enforce mode, --once)`,
    '',
    '| --max-unavailable | wall time s | max Leases held at once | restarts inside their holding | peak agent RSS MB |',
    '|---:|---:|---:|---:|---:|',
    ...r.rollouts.map(
      (x) =>
        `| ${x.maxUnavailable} | ${f(x.seconds)} | ${x.maxOverlap} | ${x.restartsInHolding}/${r.nodes} | ${f(x.peakRssMb, 0)} |`,
    ),
    '',
    `### API load, ${r.nodes} converged nodes in check mode (--interval ${r.api.intervalS}s, lease 60 s; ` +
      `${f(r.api.windowS)} s window = ${f(r.api.windowS / r.api.intervalS)} intervals)`,
    '',
    '| request | per node per interval | total in window |',
    '|---|---:|---:|',
    ...r.api.rows.map(
      (x) =>
        `| ${x.request} | ${LEADER_ONLY.has(x.request) ? `leader only: ${f(x.total / (r.api.windowS / r.api.intervalS), 2)}` : f(x.perNodePerInterval, 2)} | ${x.total} |`,
    ),
    `| **all (leader's renewals apart)** | **${f(r.api.totalPerNodePerInterval, 2)}** | |`,
    '',
    `Watches opened over the whole check run: ${r.api.openWatches} (one long-lived watch per agent). ` +
      `Leader: ${r.api.leader}, extra ${f(r.api.leaderExtraPerInterval, 2)} requests per interval (renewals and k8s.sa.clear).`,
    '',
    `Peak RSS of one agent process: ${f(r.peakRssMb.max, 0)} MB at most, ${f(r.peakRssMb.median, 0)} MB median ` +
      `(${r.rollouts.length * r.nodes + r.nodes} agent processes; check mode alone: ${f(r.api.peakRssMb, 0)} MB at most).`,
    '',
    `Load average (1/5/15 min) before: ${r.load.before.join(' / ')}, after: ${r.load.after.join(' / ')}; lab up in ${f(r.labUpMs / 1000)} s.`,
  ].join('\n');
}
