/**
 * `fleet restore` on the lab: three agents in enforce mode (one process per lab node, as in
 * agent.test.ts: no kubelet here, so no DaemonSet) fix the x509 fleet; `fleet restore --before V`
 * (V: the playbook version the agents publish) makes every agent undo its own snapshot with the
 * same restore as `trustplay restore` (the verified containerd restart included): every managed
 * file is back byte for byte with mode and owner and the CRI pull fails with x509 again. While the
 * request stands, a new pass changes nothing; `fleet restore --clear` resumes enforcement and the
 * fleet is fixed again.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Lab } from '../lab/lab.js';
import { labControl } from '../snapshots/cli.js';
import { startTrustplay, trustplay, type CliProcess } from '../support/cli.js';
import { criPull, managedState } from '../support/lab-node.js';
import { describeLab, useLab } from '../support/lab-fixture.js';

interface Condition {
  type: string;
  reason: string;
  message: string;
}

describeLab('fleet restore on the lab (one agent process per node, API emulator; no kubelet here)', () => {
  const handle = useLab({ nodes: 3 });
  let dir = '';
  let kubeconfig = '';
  const CM = 'kube-system/trustplay-playbook';

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

  const agentArgs = (lab: Lab, i: number): string[] => {
    const node = lab.nodes[i];
    if (node === undefined) throw new Error(`no node ${i}`);
    return [
      'agent',
      '--playbook-configmap',
      CM,
      '--mode',
      'enforce',
      // Passes come from the ConfigMap watch (the request is an annotation on it), not the interval.
      '--interval',
      '1h',
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
      '--snapshot-key',
      join(dir, 'snapshot.key'),
    ];
  };

  /** Polls `probe` every 200 ms until it returns a value (the test's own timeout bounds it). */
  const until = async <T>(probe: () => Promise<T | undefined>): Promise<T> => {
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const condition = async (lab: Lab, node: string): Promise<Condition | undefined> => {
    const objects = await labControl<{
      nodes: { metadata: { name: string }; status?: { conditions?: Condition[] } }[];
    }>(lab, 'GET', 'objects');
    return objects.nodes
      .find((n) => n.metadata.name === node)
      ?.status?.conditions?.find((c) => c.type === 'TrustplayInSync');
  };
  /** Every node's condition once each has `reason`. */
  const allReport = (lab: Lab, reason: string): Promise<Condition[]> =>
    Promise.all(
      lab.nodes.map((n) =>
        until(async () => {
          const c = await condition(lab, n.name);
          return c?.reason === reason ? c : undefined;
        }),
      ),
    );
  const fleet = (args: string[]) => trustplay(['fleet', ...args, '--kubeconfig', kubeconfig], { timeoutMs: 300_000 });

  beforeAll(async () => {
    const lab = handle.lab;
    dir = mkdtempSync(join(tmpdir(), 'tp-agent-restore-'));
    if (lab.kube === undefined) throw new Error('the lab has no API emulator');
    kubeconfig = lab.kube.hostKubeconfig;
    const playbook = [
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

  it('enforce fixes the x509 fleet; fleet restore --before V puts every node back byte for byte (x509 again) and pauses enforcement; --clear resumes it', async () => {
    const lab = handle.lab;
    const ref = lab.image.ref;
    const broken = await Promise.all(lab.nodes.map((n) => managedState(n)));
    for (const n of lab.nodes)
      expect(await criPull(n.hostSocket, ref)).toMatch(/x509: certificate signed by unknown authority/);

    const agents: CliProcess[] = lab.nodes.map((_, i) => startTrustplay(agentArgs(lab, i), { timeoutMs: 550_000 }));
    try {
      const t0 = Date.now();
      const fixed = await allReport(lab, 'InSync');
      process.stdout.write(`agent-restore e2e: 3 nodes fixed in ${Date.now() - t0} ms\n`);
      // Each agent publishes the playbook version it enforces and the snapshot its change left.
      const versions = fixed.map((c) => /; playbook ([0-9a-f]{12})/.exec(c.message)?.[1]);
      expect(new Set(versions).size, fixed.map((c) => c.message).join('\n')).toBe(1);
      for (const c of fixed) expect(c.message).toMatch(/; snapshot \S+$/);
      const version = versions[0] as string;
      for (const n of lab.nodes) expect(await criPull(n.hostSocket, ref, { fresh: true })).toBe('');
      const fixedState = await Promise.all(lab.nodes.map((n) => managedState(n)));
      fixedState.forEach((s, i) => expect(s).not.toBe(broken[i]));

      const t1 = Date.now();
      const restored = await fleet(['restore', '--playbook-configmap', CM, '--before', version, '--timeout', '4m']);
      process.stdout.write(`agent-restore e2e: fleet restore answered by 3 nodes in ${Date.now() - t1} ms\n`);
      expect(restored.code, restored.stdout + restored.stderr).toBe(0);
      for (const n of lab.nodes)
        expect(restored.stdout).toMatch(
          new RegExp(`^${n.name}\\s+Restored\\s+restore request \\S+: restored snapshot `, 'm'),
        );
      expect(await Promise.all(lab.nodes.map((n) => managedState(n)))).toEqual(broken);
      for (const n of lab.nodes)
        expect(await criPull(n.hostSocket, ref, { fresh: true })).toMatch(
          /x509: certificate signed by unknown authority/,
        );
      const paused = await fleet(['status']);
      expect(paused.code).toBe(2);
      for (const n of lab.nodes) expect(paused.stdout).toMatch(new RegExp(`^${n.name}\\s+Paused\\s`, 'm'));

      // While the request stands, a pass (woken by another edit of the ConfigMap) changes nothing.
      const edited = Date.now();
      const annotated = await kubectl([
        'annotate',
        'configmap',
        '-n',
        'kube-system',
        'trustplay-playbook',
        'example.com/touched=1',
      ]);
      expect(annotated.code, annotated.stderr).toBe(0);
      await Promise.all(
        lab.nodes.map((n) =>
          until(async () => {
            const writes = await labControl<
              { at: number; name: string; object: { status?: { conditions?: Condition[] } } }[]
            >(lab, 'GET', 'writes?resource=nodes');
            return writes.some(
              (w) =>
                w.name === n.name &&
                w.at > edited &&
                w.object.status?.conditions?.some((c) => c.type === 'TrustplayInSync' && c.reason === 'Restored'),
            )
              ? true
              : undefined;
          }),
        ),
      );
      expect(await Promise.all(lab.nodes.map((n) => managedState(n)))).toEqual(broken);
      for (const [i, a] of agents.entries())
        expect(a.output().stderr, `agent ${i + 1}`).toMatch(/ConfigMap kube-system\/trustplay-playbook changed/);

      const cleared = await fleet(['restore', '--playbook-configmap', CM, '--clear']);
      expect(cleared.code, cleared.stderr).toBe(0);
      await allReport(lab, 'InSync');
      expect(await Promise.all(lab.nodes.map((n) => managedState(n)))).toEqual(fixedState);
      for (const n of lab.nodes) expect(await criPull(n.hostSocket, ref, { fresh: true })).toBe('');
      const status = await fleet(['status']);
      expect(status.stdout).toContain('in desired state: 3 nodes in sync');
      expect(status.code).toBe(0);
    } finally {
      for (const a of agents) a.child.kill('SIGTERM');
      await Promise.all(agents.map((a) => a.done.catch(() => undefined)));
    }
  }, 600_000);
});
