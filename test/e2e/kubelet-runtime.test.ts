/**
 * `trustplay facts` tells which runtime kubelet uses, on lab nodes reached over SSH:
 * - node1 (root): a kubelet started with kubeadm's flags (`--config=/var/lib/kubelet/config.yaml
 *   --container-runtime-endpoint=unix:///run/containerd/containerd.sock`): the flag decides;
 * - node2 (a sudo user, so facts read with become; /var/lib/kubelet is root's 0700): a kubelet
 *   started with `--config` only, whose config file sets `containerRuntimeEndpoint` to cri-dockerd's
 *   socket: the config file decides;
 * - node3: no kubelet; the other nodes' kubelets run in their own mount namespaces (lab nodes share
 *   this machine's pid namespace, as kind or k3d node containers share a host's) and are not its own;
 * - node4 (k3s stand-in): k3s runs kubelet inside its own process: its embedded containerd.
 *
 * kubelet is emulated: there is no kubelet package here, and a real kubelet would need an API
 * server, cgroups and a CRI it drives. What facts read of kubelet is only its process (comm and
 * command line) and its files, so the stand-in is a perl script named `kubelet` that sleeps: the
 * kernel names a script's process after the script (comm `kubelet`), and its command line is perl's
 * path, the script's path, then the real kubelet flags it was given. It is written into the node's
 * own /usr/local/sbin and started inside the node's mount namespace (nsenter), and its config file
 * into the node's own /var/lib (each node's /var/lib and /usr/local/sbin are bind-mounted
 * directories of the lab, in the node's namespace only: test/lab/node.ts), so nothing of this
 * machine's changes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { NodeFacts } from '../../src/containerd/node-facts.js';
import type { LabNode } from '../lab/lab.js';
import { processName, startDetached } from '../lab/procs.js';
import { trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { hashPaths, inNode } from '../support/lab-node.js';

vi.setConfig({ testTimeout: 120_000 });

const STANDIN =
  '#!/usr/bin/perl\n# kubelet stand-in of a trustplay lab test (test/e2e/kubelet-runtime.test.ts): only sleeps\nsleep 900;\n';

// What the stand-ins would be on this machine, were the nodes' files not their own.
const MACHINE_PATHS = ['/var/lib/kubelet', '/usr/local/sbin/kubelet'];

describeLab('facts: which runtime kubelet uses (kubelet emulated on lab nodes)', () => {
  const env = useLab({
    nodes: 4,
    flavour: ['containerd', 'containerd', 'containerd', 'k3s'],
    login: ['root', 'nopasswd', 'root', 'root'],
  });
  let work: string;
  let before: Record<string, string>;
  const kubelets: number[] = [];
  const node = (i: number): LabNode => env.lab.nodes[i]!;

  /** Writes the stand-in and `config` (when given) into the node's own files, then starts it there with `flags`. */
  async function startKubelet(n: LabNode, flags: string[], config?: string): Promise<number> {
    const w = await inNode(
      n,
      'cat > /usr/local/sbin/kubelet && chmod 0755 /usr/local/sbin/kubelet && mkdir -p /var/lib/kubelet',
      STANDIN,
    );
    expect(w.code, w.stderr).toBe(0);
    if (config !== undefined) {
      const c = await inNode(n, 'cat > /var/lib/kubelet/config.yaml', config);
      expect(c.code, c.stderr).toBe(0);
    }
    // nsenter execs the program in place: the pid is the stand-in's own.
    const pid = startDetached(
      'nsenter',
      ['-t', String(n.nsPid), '-m', '--', '/usr/local/sbin/kubelet', ...flags],
      path.join(work, `${n.name}-kubelet.log`),
    );
    kubelets.push(pid);
    for (let i = 0; i < 100 && processName(pid) !== 'kubelet'; i++) await new Promise((r) => setTimeout(r, 50));
    expect(processName(pid)).toBe('kubelet');
    return pid;
  }

  beforeAll(() => {
    before = hashPaths(MACHINE_PATHS);
    work = mkdtempSync(path.join(os.tmpdir(), 'tp-e2e-kubelet-'));
  });
  afterAll(() => {
    for (const pid of kubelets) if (processName(pid) === 'kubelet') process.kill(pid);
    rmSync(work, { recursive: true, force: true });
  });

  it('facts report each node’s kubelet runtime, in JSON and in text', async () => {
    const pid1 = await startKubelet(
      node(0),
      [
        '--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf',
        '--kubeconfig=/etc/kubernetes/kubelet.conf',
        '--config=/var/lib/kubelet/config.yaml',
        '--container-runtime-endpoint=unix:///run/containerd/containerd.sock',
        '--pod-infra-container-image=registry.k8s.io/pause:3.9',
      ],
      'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\ncontainerRuntimeEndpoint: ""\n',
    );
    const pid2 = await startKubelet(
      node(1),
      ['--config', '/var/lib/kubelet/config.yaml', '--v=2'],
      'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\ncontainerRuntimeEndpoint: unix:///var/run/cri-dockerd.sock\n',
    );
    const args = ['-i', env.lab.inventoryPath, '--state-dir', path.join(work, 'state')];

    const j = await trustplay(['facts', '--format', 'json', ...args]);
    expect(j.code, j.stdout + j.stderr).toBe(0);
    const hosts = (JSON.parse(j.stdout) as { hosts: Record<string, { facts: NodeFacts }> }).hosts;
    const k = (i: number) => hosts[node(i).name]!.facts.kubelet;
    expect(k(0)).toEqual({
      kubelet: 'process',
      pid: pid1,
      endpoint: 'unix:///run/containerd/containerd.sock',
      source: "kubelet's --container-runtime-endpoint",
      runtime: 'containerd',
      cri: 'containerd',
      evidence: [
        `kubelet process ${pid2} in another mount namespace (a node container's, not this node's): not used`,
        `kubelet process ${pid1}`,
        'config /var/lib/kubelet/config.yaml',
      ],
    });
    expect(k(1)).toMatchObject({
      kubelet: 'process',
      pid: pid2,
      endpoint: 'unix:///var/run/cri-dockerd.sock',
      source: 'containerRuntimeEndpoint in /var/lib/kubelet/config.yaml',
      runtime: 'docker',
      cri: 'cri-dockerd',
    });
    expect(k(2)).toMatchObject({ kubelet: 'none', endpoint: null, runtime: null });
    expect(k(2).evidence).toContainEqual(
      expect.stringMatching(
        new RegExp(`^kubelet processes (${pid1}, ${pid2}|${pid2}, ${pid1}) in another mount namespace`),
      ),
    );
    expect(k(3)).toMatchObject({
      kubelet: 'k3s',
      endpoint: 'unix:///run/k3s/containerd/containerd.sock',
      runtime: 'containerd',
    });

    const t = await trustplay(['facts', ...args]);
    expect(t.code, t.stdout + t.stderr).toBe(0);
    expect(t.stdout).toContain(
      "  kubelet: uses containerd (unix:///run/containerd/containerd.sock, from kubelet's --container-runtime-endpoint)\n",
    );
    expect(t.stdout).toContain(
      '  kubelet: uses Docker Engine through cri-dockerd (unix:///var/run/cri-dockerd.sock, from containerRuntimeEndpoint in /var/lib/kubelet/config.yaml)\n',
    );
    expect(t.stdout).toContain(
      "  kubelet: uses containerd (unix:///run/k3s/containerd/containerd.sock, from k3s's embedded containerd (k3s runs kubelet inside its own process))\n",
    );
    expect(t.stdout).toMatch(
      /\n {2}kubelet: none \(no kubelet process, no \/var\/lib\/kubelet\/config.yaml or \/var\/lib\/kubelet\/kubeadm-flags.env, kubelet processes /,
    );
  });

  it('the stand-ins and their config files are the nodes’ own: neither another node nor this machine has them', async () => {
    expect((await inNode(node(2), 'ls /var/lib/kubelet/config.yaml /usr/local/sbin/kubelet 2>&1')).stdout).toMatch(
      /No such file/,
    );
    expect(hashPaths(MACHINE_PATHS)).toEqual(before);
  });
});
