/**
 * Pull mode on the lab: `trustplay agent` once per lab node, against the lab's Kubernetes API
 * emulator. A real DaemonSet cannot be scheduled here: there is no kubelet (and no container
 * runtime for pods), so each agent is a process on this machine that sees its node as a pod
 * would: the node's root through /proc/<node's namespace>/root (the pod's /host), and its
 * commands through `nsenter -t <node's namespace> -m --` (the pod's `nsenter -t 1 ...`).
 * The Node objects are created by the test, as the kubelet would register them.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { labState, type Lab } from '../lab/lab.js';
import { labControl } from '../snapshots/cli.js';
import { startTrustplay, trustplay } from '../support/cli.js';
import { inNode } from '../support/lab-node.js';
import { describeLab, useLab } from '../support/lab-fixture.js';

interface Write {
  at: number;
  verb: string;
  name: string;
  object: { spec?: { holderIdentity?: string }; status?: { conditions?: { type: string; reason: string }[] } };
}

describeLab('trustplay agent on the lab (one agent process per node, API emulator; no kubelet here)', () => {
  const handle = useLab({ nodes: 3 });
  let dir = '';
  let kubeconfig = '';

  const kubectl = (args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = execFile(
        'kubectl',
        ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kube-cache'), ...args],
        { env: { ...process.env, HOME: dir } },
        (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
      child.stdin?.end(input ?? '');
    });

  // Agents run with this test's dir as TMPDIR: a pass's work dir of an agent the test kills with
  // SIGKILL (no cleanup then) goes with the test's dir, not left in the machine's /tmp.
  const startAgent = (args: string[], opts: Parameters<typeof startTrustplay>[1] = {}) =>
    startTrustplay(args, { ...opts, env: { TMPDIR: dir, ...opts.env } });

  const agentArgs = (lab: Lab, i: number, mode: 'check' | 'enforce', extra: string[] = ['--once']): string[] => {
    const node = lab.nodes[i];
    if (node === undefined) throw new Error(`no node ${i}`);
    return [
      'agent',
      '--playbook-configmap',
      'kube-system/trustplay-playbook',
      '--mode',
      mode,
      ...extra,
      '--max-unavailable',
      '1',
      '--lease-duration',
      '15s',
      '--node-name',
      node.name,
      '--host-root',
      `/proc/${node.nsPid}/root`,
      '--host-command-prefix',
      `nsenter -t ${node.nsPid} -m --`,
      '--kubeconfig',
      kubeconfig,
      '--state-dir',
      join(dir, `state-${node.name}`),
      // Last, so a test's own --lease-duration wins.
      ...extra,
    ];
  };
  const agent = (lab: Lab, i: number, mode: 'check' | 'enforce', extra?: string[]) =>
    startAgent(agentArgs(lab, i, mode, extra), { timeoutMs: 300_000 }).done;

  /** Polls `probe` every 100 ms until it returns a value (the test's own timeout bounds it). */
  const until = async <T>(probe: () => Promise<T | undefined>): Promise<T> => {
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const condition = async (
    lab: Lab,
    node: string,
  ): Promise<{ reason: string; message: string; lastHeartbeatTime: string } | undefined> => {
    const objects = await labControl<{
      nodes: {
        metadata: { name: string };
        status?: { conditions?: { type: string; reason: string; message: string; lastHeartbeatTime: string }[] };
      }[];
    }>(lab, 'GET', 'objects');
    return objects.nodes
      .find((n) => n.metadata.name === node)
      ?.status?.conditions?.find((c) => c.type === 'TrustplayInSync');
  };
  const leaseWrites = (lab: Lab) => labControl<Write[]>(lab, 'GET', 'writes?resource=leases');
  /** Breaks a node's trust by hand: its hosts.toml and CA for the registry go. */
  const breakTrust = async (lab: Lab, i: number): Promise<void> => {
    const node = lab.nodes[i];
    if (node === undefined) throw new Error(`no node ${i}`);
    const r = await inNode(node, `rm -r /etc/containerd/certs.d/${lab.image.ref.split('/')[0]}`);
    expect(r.code, r.stderr).toBe(0);
  };

  const fleetStatus = () => trustplay(['fleet', 'status', '--kubeconfig', kubeconfig]);

  /** Replaces the ConfigMap's playbook (the vars stay), as `kubectl create --dry-run -o json | kubectl replace` does. */
  const setPlaybook = async (lines: string[]): Promise<void> => {
    writeFileSync(join(dir, 'playbook.yaml'), lines.join('\n'));
    const cm = await kubectl([
      'create',
      'configmap',
      'trustplay-playbook',
      '-n',
      'kube-system',
      `--from-file=playbook.yaml=${join(dir, 'playbook.yaml')}`,
      `--from-file=vars.yaml=${join(dir, 'vars.yaml')}`,
      '--dry-run=client',
      '-o',
      'json',
    ]);
    const replaced = await kubectl(['replace', '-f', '-'], cm.stdout);
    expect(replaced.stderr).toBe('');
  };
  /** The lines an agent printed for one task: `node | status | task (reason)`. */
  const taskLines = (stdout: string, task: string): string[] =>
    stdout.split('\n').filter((l) => l.includes(`| ${task}`));
  const readOut = (p: { output(): { stdout: string } }): string => p.output().stdout;
  const readOutUntil = (p: { output(): { stdout: string } }, re: RegExp): Promise<true> =>
    until(async () => (re.test(readOut(p)) ? true : undefined));

  beforeAll(async () => {
    const lab = handle.lab;
    dir = mkdtempSync(join(tmpdir(), 'tp-agent-'));
    if (lab.kube === undefined) throw new Error('the lab has no API emulator');
    kubeconfig = lab.kube.hostKubeconfig;
    // The fleet's procedure for a node: trust the registry's CA, then prove the pull.
    const playbook = [
      '- hosts: workers',
      '  tasks:',
      "    - name: Trust the registry's CA",
      '      containerd.tls:',
      '        registry: "{{ registry }}"',
      '        ca: "{{ registry_ca }}"',
      // After the play's handlers (the restart), as in playbooks/fix-registry.yaml.
      '- hosts: workers',
      '  tasks:',
      '    - name: Pull the image through the CRI',
      '      image.pull.verify:',
      '        image: "{{ image }}"',
      '',
    ].join('\n');
    const vars = JSON.stringify({
      registry: lab.image.ref.split('/')[0],
      registry_ca: readFileSync(lab.ca, 'utf8'),
      image: lab.image.ref,
    });
    writeFileSync(join(dir, 'playbook.yaml'), playbook);
    writeFileSync(join(dir, 'vars.yaml'), vars);
    const cm = await kubectl([
      'create',
      'configmap',
      'trustplay-playbook',
      '-n',
      'kube-system',
      `--from-file=playbook.yaml=${join(dir, 'playbook.yaml')}`,
      `--from-file=vars.yaml=${join(dir, 'vars.yaml')}`,
    ]);
    expect(cm.stderr).toBe('');
    for (const n of lab.nodes) {
      const r = await kubectl(
        ['create', '-f', '-'],
        JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: n.name } }),
      );
      expect(r.stderr).toBe('');
    }
  });
  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('fleet status says 4 while no agent has reported', async () => {
    const r = await fleetStatus();
    expect(r.code, r.stderr).toBe(4);
    expect(r.stdout).toContain('agent missing or stale on node1, node2, node3 (exit 4)');
  }, 180_000);

  it('check mode: every agent reports drift on its Node, and fleet status exits 2', async () => {
    const lab = handle.lab;
    const runs = await Promise.all(lab.nodes.map((_, i) => agent(lab, i, 'check')));
    for (const r of runs) expect(r.code, r.stdout + r.stderr).toBe(2);
    const r = await fleetStatus();
    expect(r.stdout).toContain('drift on node1, node2, node3 (exit 2)');
    expect(r.code).toBe(2);
  }, 180_000);

  it('enforce mode with --max-unavailable 1: each node fixed under the one Lease, no two containerd restarts overlapping, fleet in sync', async () => {
    const lab = handle.lab;
    const before = lab.nodes.map((n) => n.containerdPid);
    const runs = await Promise.all(lab.nodes.map((_, i) => agent(lab, i, 'enforce')));
    for (const r of runs) expect(r.code, r.stdout + r.stderr).toBe(0);
    const after = labState(lab.dir).nodes.map((n) => n.containerdPid);
    const status = await fleetStatus();
    expect(status.stdout).toContain('in desired state: 3 nodes in sync');
    expect(status.code).toBe(0);

    // The Lease log: every holding of trustplay-rollout-0, from its taking to its release.
    const writes = await labControl<Write[]>(lab, 'GET', 'writes?resource=leases');
    expect(new Set(writes.map((w) => w.name))).toEqual(new Set(['trustplay-rollout-0']));
    const holdings: { holder: string; from: number; to: number }[] = [];
    for (const w of writes) {
      const holder = w.object.spec?.holderIdentity ?? '';
      const open = holdings.at(-1);
      if (holder !== '' && (open === undefined || open.to !== -1)) holdings.push({ holder, from: w.at, to: -1 });
      else if (holder !== '' && open !== undefined)
        expect(open.holder).toBe(holder); // a renewal, never a takeover while held
      else if (open !== undefined && open.to === -1) open.to = w.at;
    }
    expect(holdings.map((h) => h.holder).sort()).toEqual(['node1', 'node2', 'node3']);
    for (const h of holdings) expect(h.to).toBeGreaterThanOrEqual(h.from);
    // Each node's containerd that runs now started inside that node's holding: the restarts were one at a time.
    // Start times from /proc: ticks since boot (USER_HZ 100), put on the wall clock through /proc/uptime read now.
    const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    const bootMs = Date.now() - uptime * 1000;
    lab.nodes.forEach((n, i) => {
      expect(after[i]).not.toBe(before[i]);
      const stat = readFileSync(`/proc/${after[i]}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const started = bootMs + (Number(fields[19]) / 100) * 1000;
      const h = holdings.find((x) => x.holder === n.name);
      expect(h).toBeDefined();
      // /proc's times have a resolution of one tick (10 ms) each.
      expect(started).toBeGreaterThanOrEqual((h?.from ?? 0) - 20);
      expect(started).toBeLessThanOrEqual((h?.to ?? 0) + 20);
    });
    // An Event per change on each Node.
    const events = await kubectl([
      'get',
      'events',
      '-n',
      'default',
      '-o',
      'jsonpath={range .items[*]}{.involvedObject.name} {.reason}{"\\n"}{end}',
    ]);
    for (const n of lab.nodes) expect(events.stdout).toContain(`${n.name} TrustplayChanged`);
  }, 180_000);

  it('an agent running every interval reports drift made by hand on its node, without anything else running', async () => {
    const lab = handle.lab;
    const run = startAgent(agentArgs(lab, 0, 'check', ['--interval', '1s']), { timeoutMs: 120_000 });
    try {
      const inSync = await until(async () => ((await condition(lab, 'node1'))?.reason === 'InSync' ? true : undefined));
      expect(inSync).toBe(true);
      const edited = Date.now();
      await breakTrust(lab, 0);
      await until(async () => ((await condition(lab, 'node1'))?.reason === 'Drift' ? true : undefined));
      process.stdout.write(
        `agent e2e: drift on node1 reported ${Date.now() - edited} ms after the edit (interval 1 s)\n`,
      );
      const r = await fleetStatus();
      expect([r.code, r.stdout.trim().split('\n').at(-1)]).toEqual([2, 'drift on node1 (exit 2)']);
    } finally {
      run.child.kill('SIGTERM');
      await run.done;
    }
  }, 180_000);

  it('a killed agent’s Lease expires and the rollout goes on: another node takes it over, and the killed node is fixed by its next agent', async () => {
    const lab = handle.lab;
    await breakTrust(lab, 1);
    await breakTrust(lab, 2);
    // node2's change includes a containerd restart (2 s of health check at least), so the kill
    // below lands while node2 works under the Lease, not after it gave it back.
    const node2 = lab.nodes[1];
    if (node2 === undefined) throw new Error('no node2');
    expect((await inNode(node2, "sed -i '/config_path/d' /etc/containerd/config.toml")).code).toBe(0);
    const mark = (await leaseWrites(lab)).length;
    const short = ['--once', '--lease-duration', '2s'];
    const doomed = startAgent(agentArgs(lab, 1, 'enforce', short), { timeoutMs: 120_000 });
    // Killed (as an OOM kill or a node drain would) the moment it holds the Lease.
    await until(async () =>
      (await leaseWrites(lab)).slice(mark).some((w) => w.object.spec?.holderIdentity === 'node2') ? true : undefined,
    );
    doomed.child.kill('SIGKILL');
    await doomed.done;
    const third = await agent(lab, 2, 'enforce', short);
    expect(third.code, third.stdout + third.stderr).toBe(0);
    const again = await agent(lab, 1, 'enforce', short);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const writes = (await leaseWrites(lab)).slice(mark);
    const holders = writes.map((w) => w.object.spec?.holderIdentity ?? '');
    // node2's holding was never released by node2: the next holder took it over after its duration.
    const killedAt = holders.indexOf('node2');
    expect(killedAt).toBeGreaterThanOrEqual(0);
    expect(holders[killedAt + 1]).toBe('node3');
    expect(holders.slice(killedAt + 1).filter((h) => h === 'node2').length).toBeGreaterThan(0);
    // node1 still has the drift made by hand in the test before; node2 and node3 are in sync again.
    const r = await fleetStatus();
    expect([r.code, r.stdout.trim().split('\n').at(-1)]).toEqual([2, 'drift on node1 (exit 2)']);
  }, 180_000);

  it('a node whose containerd restart fails stops the rollout: the others report RolloutHalted, unchanged; above --max-fail-percentage it keeps its Lease until its agent goes away', async () => {
    const lab = handle.lab;
    // A playbook whose restart fails where the node carries a marker file (node2 only), and two
    // nodes that need a restart: their config.toml lost config_path.
    const playbook = [
      '- hosts: workers',
      '  tasks:',
      "    - name: Trust the registry's CA",
      '      containerd.tls:',
      '        registry: "{{ registry }}"',
      '        ca: "{{ registry_ca }}"',
      '        restart_timeout: 5',
      '        restart_command: test ! -e /etc/containerd/fail-restart && systemctl restart containerd',
      '',
    ].join('\n');
    writeFileSync(join(dir, 'playbook.yaml'), playbook);
    const cm = await kubectl([
      'create',
      'configmap',
      'trustplay-playbook',
      '-n',
      'kube-system',
      `--from-file=playbook.yaml=${join(dir, 'playbook.yaml')}`,
      `--from-file=vars.yaml=${join(dir, 'vars.yaml')}`,
      '--dry-run=client',
      '-o',
      'json',
    ]);
    const replaced = await kubectl(['replace', '-f', '-'], cm.stdout);
    expect(replaced.stderr).toBe('');
    for (const i of [1, 2]) {
      const node = lab.nodes[i];
      if (node === undefined) throw new Error('no node');
      const r = await inNode(
        node,
        "sed -i '/config_path/d' /etc/containerd/config.toml" +
          (i === 1 ? ' && touch /etc/containerd/fail-restart' : ''),
      );
      expect(r.code, r.stderr).toBe(0);
    }
    const mark = (await leaseWrites(lab)).length;
    // node2's agent runs on (a DaemonSet's does): it fails, and keeps renewing its Lease.
    const failing = startAgent(agentArgs(lab, 1, 'enforce', ['--interval', '1h', '--lease-duration', '2s']), {
      timeoutMs: 120_000,
    });
    try {
      await until(async () => ((await condition(lab, 'node2'))?.reason === 'Failed' ? true : undefined));
      // The fleet's max_fail (--max-fail-percentage, default 0: any failed node stops the rollout),
      // from the status objects: node1 (its trust still broken by hand) and node3 read node2's
      // Failed condition and halt: not changed, no Lease taken, RolloutHalted naming node2.
      const stopped = await Promise.all(
        [0, 2].map((i) => agent(lab, i, 'enforce', ['--once', '--lease-duration', '2s'])),
      );
      for (const r of stopped) expect(r.code, r.stdout + r.stderr).toBe(2);
      for (const n of ['node1', 'node3']) {
        const c = await condition(lab, n);
        expect(c?.reason).toBe('RolloutHalted');
        expect(c?.message).toContain('rollout halted: 1 of 3 nodes failed (node2), 33.3% > --max-fail-percentage 0%');
      }
      expect(new Set((await leaseWrites(lab)).slice(mark).map((w) => w.object.spec?.holderIdentity ?? ''))).toEqual(
        new Set(['node2']),
      );
      const node1 = lab.nodes[0];
      if (node1 === undefined) throw new Error('no node1');
      const registry = lab.image.ref.split('/')[0] ?? '';
      expect((await inNode(node1, `test -e /etc/containerd/certs.d/${registry}`)).code).not.toBe(0);
      const fleet = await fleetStatus();
      expect([fleet.code, fleet.stdout.trim().split('\n').at(-1)]).toEqual([1, 'failed on node2 (exit 1)']);
      expect(fleet.stdout).toMatch(/^node3\s+Halted\s+rollout halted: 1 of 3 nodes failed \(node2\)/m);
      // With --max-fail-percentage 50 (1 failed node of 3 is 33%), node3 goes on: it waits for the Lease node2 keeps.
      const third = startAgent(
        agentArgs(lab, 2, 'enforce', ['--once', '--lease-duration', '2s', '--max-fail-percentage', '50']),
        { timeoutMs: 120_000 },
      );
      // Three Lease durations later node3 still waits: node2 renews the Lease it did not release.
      await new Promise((r) => setTimeout(r, 6000));
      const during = (await leaseWrites(lab)).slice(mark).map((w) => w.object.spec?.holderIdentity ?? '');
      expect(new Set(during)).toEqual(new Set(['node2']));
      // node3 changed nothing while it waited: its config.toml still lacks config_path.
      const node3 = lab.nodes[2];
      if (node3 === undefined) throw new Error('no node3');
      const untouched = await inNode(node3, 'grep -c config_path /etc/containerd/config.toml || true');
      expect(untouched.stdout.trim()).toBe('0');
      const events = await kubectl([
        'get',
        'events',
        '-n',
        'default',
        '-o',
        'jsonpath={range .items[*]}{.involvedObject.name} {.reason}{"\\n"}{end}',
      ]);
      expect(events.stdout).toContain('node2 TrustplayFailed');
      // node2's agent goes away (deleted pod, drained node): its Lease expires and node3 goes on.
      failing.child.kill('SIGTERM');
      await failing.done;
      const r = await third.done;
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect((await condition(lab, 'node3'))?.reason).toBe('InSync');
      expect((await inNode(node3, 'grep -c config_path /etc/containerd/config.toml')).stdout.trim()).toBe('1');
    } finally {
      if (failing.child.exitCode === null) failing.child.kill('SIGKILL');
    }
  }, 180_000);

  it('k8s.sa.clear runs once per fleet, on the holder of the leader Lease; the others skip it naming the holder; a killed leader’s Lease expires and another agent leads', async () => {
    const lab = handle.lab;
    const task = 'Drop the stale pull secret';
    await setPlaybook([
      '- hosts: workers',
      '  tasks:',
      `    - name: ${task}`,
      '      k8s.sa.clear:',
      '        namespace: default',
      '        secrets: [registry-test-pull]',
      '',
    ]);
    const stale = JSON.stringify({
      imagePullSecrets: [{ name: 'registry-test-pull' }, { name: 'other-registry-pull' }],
    });
    const pullSecrets = async (): Promise<string> =>
      (
        await kubectl([
          'get',
          'serviceaccount',
          'default',
          '-n',
          'default',
          '-o',
          'jsonpath={.imagePullSecrets[*].name}',
        ])
      ).stdout;
    const leaderNow = async (): Promise<string> =>
      (
        await kubectl([
          'get',
          'lease',
          'trustplay-leader',
          '-n',
          'kube-system',
          '-o',
          'jsonpath={.spec.holderIdentity}',
        ])
      ).stdout.trim();
    expect((await kubectl(['patch', 'serviceaccount', 'default', '-n', 'default', '-p', stale])).code).toBe(0);
    const mark = (await leaseWrites(lab)).length;
    const agents = lab.nodes.map((_, i) =>
      startAgent(agentArgs(lab, i, 'enforce', ['--interval', '1s', '--lease-duration', '2s']), {
        timeoutMs: 180_000,
      }),
    );
    try {
      // Each agent has made at least two passes (the task reported twice).
      await until(async () => (agents.every((a) => taskLines(readOut(a), task).length >= 2) ? true : undefined));
      expect(await pullSecrets()).toBe('other-registry-pull');
      const first = await leaderNow();
      expect(lab.nodes.map((n) => n.name)).toContain(first);
      lab.nodes.forEach((n, i) => {
        const lines = taskLines(readOut(agents[i]!), task);
        if (n.name === first) {
          expect(lines.filter((l) => l.includes('| skipped |'))).toEqual([]);
          expect(lines.some((l) => l.startsWith(`${n.name} | changed |`))).toBe(true);
        } else {
          for (const l of lines)
            expect(l).toMatch(
              new RegExp(`^${n.name} \\| skipped \\| ${task} \\(not the fleet leader \\(held by ${first}\\)`),
            );
        }
      });
      // The leader is killed (OOM, node lost): it never gives the Lease back; another agent leads
      // once it has seen it unrenewed for its duration, and clears the secret put back meanwhile.
      const leaderIndex = lab.nodes.findIndex((n) => n.name === first);
      const killed = agents[leaderIndex]!;
      killed.child.kill('SIGKILL');
      await killed.done.catch(() => undefined);
      const killedAt = Date.now();
      expect((await kubectl(['patch', 'serviceaccount', 'default', '-n', 'default', '-p', stale])).code).toBe(0);
      const next = await until(async () => {
        const h = await leaderNow();
        return h !== first && h !== '' ? h : undefined;
      });
      await until(async () => ((await pullSecrets()) === 'other-registry-pull' ? true : undefined));
      process.stdout.write(
        `agent e2e: leader ${first} killed; ${next} leads and cleared the secret ${Date.now() - killedAt} ms later (lease 2 s)\n`,
      );
      const nextIndex = lab.nodes.findIndex((n) => n.name === next);
      await until(async () =>
        taskLines(readOut(agents[nextIndex]!), task).some((l) => l.startsWith(`${next} | changed |`))
          ? true
          : undefined,
      );
      // From the Lease log: the takeover came no sooner than a lease duration after the killed leader's last write.
      const writes = (await leaseWrites(lab)).slice(mark).filter((w) => w.name === 'trustplay-leader');
      const lastOfKilled = writes.filter((w) => w.object.spec?.holderIdentity === first).at(-1);
      const takeover = writes.find((w) => w.object.spec?.holderIdentity === next);
      expect(lastOfKilled).toBeDefined();
      expect((takeover?.at ?? 0) - (lastOfKilled?.at ?? 0)).toBeGreaterThanOrEqual(2000);
      // While both leaders held it in turn, no other node's agent ever held it.
      const leaderHolders = new Set(writes.map((w) => w.object.spec?.holderIdentity ?? ''));
      expect([...leaderHolders].filter((h) => h !== '').sort()).toEqual([first, next].sort());
    } finally {
      for (const a of agents) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGTERM');
      await Promise.all(agents.map((a) => a.done.catch(() => undefined)));
    }
  }, 180_000);

  it('a ConfigMap change is checked at once, not at the next interval (a watch)', async () => {
    const lab = handle.lab;
    // node1 still has the trust broken by hand earlier; the ConfigMap's playbook is the SA-only one.
    const run = startAgent(agentArgs(lab, 0, 'check', ['--interval', '1h']), { timeoutMs: 120_000 });
    try {
      await until(async () => ((await condition(lab, 'node1'))?.reason === 'InSync' ? true : undefined));
      await readOutUntil(run, /\| Drop the stale pull secret/);
      // The real kubectl watches the same way (the emulator's watch, as kube-apiserver streams it).
      const watcher = spawn(
        'kubectl',
        [
          '--kubeconfig',
          kubeconfig,
          '--cache-dir',
          join(dir, 'kube-cache'),
          'get',
          'configmap',
          'trustplay-playbook',
          '-n',
          'kube-system',
          '--watch-only',
          '--output-watch-events',
          '-o',
          'jsonpath={.type} {.object.metadata.name}{"\\n"}',
        ],
        { env: { ...process.env, HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let watched = '';
      watcher.stdout.on('data', (b: Buffer) => (watched += b.toString()));
      watcher.stderr.on('data', (b: Buffer) => (watched += b.toString()));
      await new Promise((r) => setTimeout(r, 1500));
      const changed = Date.now();
      await setPlaybook([
        '- hosts: workers',
        '  tasks:',
        "    - name: Trust the registry's CA",
        '      containerd.tls:',
        '        registry: "{{ registry }}"',
        '        ca: "{{ registry_ca }}"',
        '',
      ]);
      const c = await until(async () => {
        const now = await condition(lab, 'node1');
        return now?.reason === 'Drift' ? now : undefined;
      });
      process.stdout.write(
        `agent e2e: ConfigMap changed; node1's status says Drift ${Date.now() - changed} ms later (interval 1 h)\n`,
      );
      expect(c.lastHeartbeatTime).toBeDefined();
      await until(async () => (watched.includes('\n') ? true : undefined));
      watcher.kill('SIGTERM');
      expect(watched.trim().split('\n')[0]).toBe('MODIFIED trustplay-playbook');
      expect(readOut(run)).toMatch(/node1 \| would change \| Trust the registry's CA/);
    } finally {
      run.child.kill('SIGTERM');
      const r = await run.done;
      const counts = /API requests: (.*)/.exec(r.stderr)?.[1];
      process.stdout.write(`agent e2e: node1's API requests over the two passes and the watch: ${counts}\n`);
    }
  }, 180_000);
});
