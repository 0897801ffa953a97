/**
 * playbooks/fix-registry.yaml, unchanged, on a mixed fleet (issue 22): one playbook fixes every
 * worker whatever runtime it pulls with.
 *   node1: the master (k8s.sa.clear against the API emulator);
 *   node2: a containerd Kubernetes node (CRI);
 *   node3: a Docker Engine host: a real dockerd, and its containerd runs Docker's containerd.io
 *          package config (`disabled_plugins = ["cri"]`, the published file in
 *          test/fixtures/published-configs), so the node has no CRI: trust, image removal and the
 *          pull check go through Docker Engine (its certs.d, its API over the node's socket);
 *   node4: a containers/image host (skopeo; podman and CRI-O pull through the same library, and
 *          are not packaged here): its containerd package is installed but stopped, as on a podman
 *          host, so registry.trust leaves it out.
 * x509 on every worker's own runtime -> `run` -> every pull succeeds -> `check` is clean -> the CA
 * removed on the Docker and the containers/image node is drift naming them -> `run` repairs only
 * them -> `restore` of the first run puts every file back byte for byte and x509 is back.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { JsonReport } from '../../src/report/json.js';
import { containersImageAvailable } from '../lab/containers-image.js';
import type { LabNode } from '../lab/lab.js';
import { trustplay } from '../support/cli.js';
import { dockerPull } from '../support/docker-api.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, inNode, trustFilesState } from '../support/lab-node.js';

vi.setConfig({ testTimeout: 240_000 });

if (process.env['CI'] && !containersImageAvailable())
  throw new Error('skopeo is needed for the mixed-fleet lab test in CI (apt-get install skopeo)');

const DOCKER_CONTAINERD_CONFIG = readFileSync(
  new URL('../fixtures/published-configs/containerd-io.toml', import.meta.url),
  'utf8',
);

describeLab('fix-registry.yaml on a mixed fleet (containerd, Docker Engine, containers/image)', () => {
  const env = useLab({ nodes: 4, docker: [false, false, true, false], containers: [false, false, false, true] });
  const pb = 'playbooks/fix-registry.yaml';
  let work: string;
  let cri: LabNode, docker: LabNode, podman: LabNode;
  let firstRun = '';
  const before: Record<string, string> = {};
  const args = (...extra: string[]) => [...extra, '-i', env.lab.inventoryPath, '--state-dir', path.join(work, 'state')];
  const reg = () => env.lab.registries.registry.host;

  const trustState = trustFilesState;
  /** The node's own runtime's answer for the lab image: '' when it pulled (skopeo: read the manifest). */
  const pull = async (node: LabNode): Promise<string> => {
    if (node === docker) return dockerPull(node.docker!.hostSocket, env.lab.image.ref, { fresh: true });
    if (node === podman) {
      const s = await inNode(node, `skopeo inspect --raw docker://${env.lab.image.ref} >/dev/null`);
      return s.code === 0 ? '' : s.stderr.trim();
    }
    return criPull(node.hostSocket, env.lab.image.ref, { fresh: true, timeoutMs: 60_000 });
  };
  const x509 = /x509: certificate signed by unknown authority/;

  beforeAll(async () => {
    if (!containersImageAvailable()) throw new Error('skopeo is not installed: apt-get install skopeo');
    work = mkdtempSync(path.join(os.tmpdir(), 'tp-e2e-mixed-'));
    [, cri, docker, podman] = env.lab.nodes as [LabNode, LabNode, LabNode, LabNode];
    // node3: Docker's containerd.io config (no CRI); dockerd reconnects to the restarted containerd.
    const d = await inNode(
      docker,
      'cat > /etc/containerd/config.toml && systemctl restart containerd',
      DOCKER_CONTAINERD_CONFIG,
    );
    expect(d.code, d.stderr).toBe(0);
    // node4: containerd installed, not running (a podman host).
    const p = await inNode(podman, 'systemctl stop containerd');
    expect(p.code, p.stderr).toBe(0);
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('before: every worker fails with x509 on its own runtime (CRI, Engine API, skopeo)', async () => {
    for (const n of [cri, docker, podman]) {
      expect(await pull(n), n.name).toMatch(x509);
      before[n.name] = await trustState(n);
    }
  });

  it('run fixes every worker through its own runtime (exit 0), and the pulls succeed', async () => {
    const r = await trustplay(['run', pb, ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    firstRun = readdirSync(path.join(work, 'state', 'runs'))[0]!.replace(/\.json$/, '');
    const report = JSON.parse(r.stdout) as JsonReport;
    const task = (n: LabNode, name: string) => report.hosts[n.name]!.tasks.find((t) => t.task === name)!;
    const trust = (n: LabNode) => task(n, "Trust the registry's CA");
    expect(trust(cri).data).toMatchObject({ runtimes: ['containerd'] });
    expect(trust(docker).data).toMatchObject({ runtimes: ['docker'] });
    expect(trust(podman).data).toMatchObject({ runtimes: ['containers'] });
    expect(trust(cri).changes.join('\n')).toContain(`/etc/containerd/certs.d/${reg()}/hosts.toml`);
    expect(trust(docker).changes.join('\n')).toContain(`/etc/docker/certs.d/${reg()}/ca.crt`);
    expect(trust(docker).changes.join('\n')).not.toContain('/etc/containerd');
    expect(trust(podman).changes.join('\n')).toContain(`/etc/containers/certs.d/${reg()}/ca.crt`);
    expect(trust(podman).changes.join('\n')).not.toContain('/etc/containerd');
    const digest = `${reg()}/aegis/aegis-hc-install@${env.lab.image.digest}`;
    for (const n of [cri, docker, podman]) {
      const verify = task(n, 'Pull the image through every runtime');
      expect(verify.status, n.name).toBe('ok');
      expect(verify.data, n.name).toMatchObject({ repoDigest: digest });
      expect(await pull(n), n.name).toBe('');
    }
  });

  it('check on the converged mixed fleet exits 0 and changes nothing', async () => {
    const r = await trustplay(['check', pb, ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as JsonReport;
    for (const [host, h] of Object.entries(report.hosts)) expect(h.recap.changed, host).toBe(0);
  });

  it('the CA removed on the Docker and the containers/image node is drift naming them, and run repairs only them', async () => {
    for (const [n, dir] of [
      [docker, '/etc/docker/certs.d'],
      [podman, '/etc/containers/certs.d'],
    ] as const) {
      const rm = await inNode(n, `rm ${dir}/${reg()}/ca.crt`);
      expect(rm.code, rm.stderr).toBe(0);
      expect(await pull(n), n.name).toMatch(x509);
    }
    const check = await trustplay(['check', pb, ...args()]);
    expect(check.code, check.stdout + check.stderr).toBe(2);
    for (const n of [docker, podman])
      expect(check.stdout).toMatch(new RegExp(`^${n.name} \\| would change \\| Trust the registry's CA$`, 'm'));
    expect(check.stdout).not.toMatch(new RegExp(`^${cri.name} \\| would change`, 'm'));
    const r = await trustplay(['run', pb, ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as JsonReport;
    for (const n of [docker, podman]) expect(report.hosts[n.name]!.recap.changed, n.name).toBeGreaterThan(0);
    expect(report.hosts[cri.name]!.recap.changed).toBe(0);
    for (const n of [cri, docker, podman]) expect(await pull(n), n.name).toBe('');
  });

  it('restore of the first run puts every file back byte for byte, and x509 is back on every runtime', async () => {
    const r = await trustplay(['restore', firstRun, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const n of [cri, docker, podman]) {
      expect(await trustState(n), n.name).toBe(before[n.name]);
      expect(await pull(n), n.name).toMatch(x509);
    }
  });
});
