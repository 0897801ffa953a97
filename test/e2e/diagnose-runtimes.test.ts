/**
 * `trustplay diagnose` reads each runtime's trust for the registry, on a mixed 2-node lab:
 *   node1: containerd (CRI) and containers/image (skopeo; dockerd hidden there);
 *   node2: containerd (CRI), Docker Engine (a real dockerd; the registry reached on [::1], so dockerd
 *          really verifies TLS) and containers/image (skopeo).
 * Before any fix, every runtime is named with its own state (no CA of its own: unknown authority),
 * as the real pulls fail (x509 on the CRI, the Engine API and skopeo); the proposed task is
 * registry.trust (the nodes have several runtimes). After containerd.tls alone, containerd is
 * healthy but diagnose still fails the node on the runtime that is not (and containers/image on
 * node2 reads the ca.crt docker.tls wrote in /etc/docker/certs.d, as skopeo then shows); after the
 * proposed registry.trust task, every runtime of both nodes is healthy and every pull succeeds.
 * (CRI-O pulls through the same containers/image library as skopeo; it is not packaged here.)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { Diagnosis } from '../../src/diagnose/diagnose.js';
import { containersImageAvailable } from '../lab/containers-image.js';
import type { LabNode } from '../lab/lab.js';
import { trustplay } from '../support/cli.js';
import { dockerPull } from '../support/docker-api.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, inNode } from '../support/lab-node.js';

vi.setConfig({ testTimeout: 180_000 });

if (process.env['CI'] && !containersImageAvailable())
  throw new Error('skopeo is needed for the diagnose runtimes lab test in CI (apt-get install skopeo)');

interface DiagnoseJson {
  exitCode: number;
  hosts: Diagnosis[];
}

describeLab('trustplay diagnose reads each runtime’s trust (containerd, Docker Engine, containers/image)', () => {
  const env = useLab({ nodes: 2, docker: [false, true], containers: [true, true] });
  let work: string;
  let nodes: LabNode[];
  let reg: string;
  const args = (...extra: string[]) => [...extra, '-i', env.lab.inventoryPath, '--state-dir', path.join(work, 'state')];
  const diagnose = async (...extra: string[]) => {
    const r = await trustplay(['diagnose', reg, '-i', env.lab.inventoryPath, '--format', 'json', ...extra]);
    let json: DiagnoseJson;
    try {
      json = JSON.parse(r.stdout) as DiagnoseJson;
    } catch {
      throw new Error(`not JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
    }
    expect(json.exitCode).toBe(r.code);
    const by = (n: LabNode) => json.hosts.find((h) => h.host === n.name)!;
    return { code: r.code, by };
  };
  const human = async () => (await trustplay(['diagnose', reg, '-i', env.lab.inventoryPath])).stdout;
  const runtime = (d: Diagnosis, rt: string) => d.other_runtimes?.find((r) => r.runtime === rt);
  /** Each runtime's answer for the lab image on a node: '' when it verified the registry and pulled (or read the manifest). */
  const pulls = async (node: LabNode): Promise<Record<string, string>> => {
    const out: Record<string, string> = {
      cri: await criPull(node.hostSocket, env.lab.image.ref, { fresh: true, timeoutMs: 60_000 }),
    };
    if (node.docker) out['docker'] = await dockerPull(node.docker.hostSocket, env.lab.image.ref, { fresh: true });
    const s = await inNode(node, `skopeo inspect --raw docker://${env.lab.image.ref} >/dev/null`);
    out['skopeo'] = s.code === 0 ? '' : s.stderr.trim();
    return out;
  };
  const x509 = expect.stringMatching(/x509: certificate signed by unknown authority/) as unknown;
  const play = (file: string, plays: unknown[]) => {
    writeFileSync(path.join(work, file), stringify(plays));
    return path.join(work, file);
  };

  beforeAll(() => {
    if (!containersImageAvailable()) throw new Error('skopeo is not installed: apt-get install skopeo');
    work = mkdtempSync(path.join(os.tmpdir(), 'tp-e2e-diagnose-runtimes-'));
    nodes = env.lab.nodes.slice(0, 2);
    reg = env.lab.registries.registry.host;
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('before: each runtime of each node is named with no CA of its own, as every real pull fails with x509', async () => {
    expect(await pulls(nodes[0]!)).toEqual({ cri: x509, skopeo: x509 });
    expect(await pulls(nodes[1]!)).toEqual({ cri: x509, docker: x509, skopeo: x509 });
    const { code, by } = await diagnose();
    expect(code).toBe(2);
    const [n1, n2] = [by(nodes[0]!), by(nodes[1]!)];
    expect(n1.runtimes).toEqual(['containerd', 'containers']);
    expect(n2.runtimes).toEqual(['containerd', 'docker', 'containers']);
    for (const d of [n1, n2]) {
      expect(d.cause).toBe('unknown-authority');
      expect(d.evidence.trust?.ca_files).toEqual([]);
      // Several runtimes: the proposed task is registry.trust.
      expect(Object.keys(d.fix?.task ?? {})).toEqual(['name', 'registry.trust']);
      expect(runtime(d, 'containers')).toMatchObject({
        certs_dir: `/etc/containers/certs.d/${reg}`,
        exists: false,
        ca_files: [],
        cause: 'unknown-authority',
      });
      expect(runtime(d, 'containers')?.detail).toContain(
        `no /etc/containers/certs.d/${reg}/ca.crt: containers/image verifies ${reg} against the system roots only`,
      );
      expect(runtime(d, 'containers')?.fix).toMatch(/^containers\.tls \(or registry\.trust, for every runtime/);
    }
    expect(runtime(n1, 'docker')).toBeUndefined();
    expect(runtime(n2, 'docker')).toMatchObject({
      certs_dir: `/etc/docker/certs.d/${reg}`,
      exists: false,
      ca_files: [],
      cause: 'unknown-authority',
    });
    expect(runtime(n2, 'docker')?.insecure).toBeUndefined();
    expect(runtime(n2, 'docker')?.detail).toContain(
      `no /etc/docker/certs.d/${reg}/ca.crt: Docker Engine verifies ${reg} against the system roots only`,
    );
    expect(runtime(n2, 'docker')?.evidence.join()).toMatch(/dockerd at \//);

    const text = await human();
    expect(text).toContain(`  runtimes: containerd, docker, containers`);
    expect(text).toContain(`  docker (`);
    expect(text).toContain(`    docker: UNKNOWN-AUTHORITY: no /etc/docker/certs.d/${reg}/ca.crt`);
    expect(text).toContain(`    containers: UNKNOWN-AUTHORITY: no /etc/containers/certs.d/${reg}/ca.crt`);
    expect(text).toContain('    registry.trust:');
  });

  it('after containerd.tls alone: containerd is healthy, the node still fails on the runtime that is not', async () => {
    const book = play('partial.yaml', [
      { hosts: 'all', tasks: [{ 'containerd.tls': { registry: '{{ registry }}', ca: '{{ registry_ca }}' } }] },
      // Docker's directory only on node2: containers/image there reads it, having none of its own.
      { hosts: nodes[1]!.name, tasks: [{ 'docker.tls': { registry: '{{ registry }}', ca: '{{ registry_ca }}' } }] },
    ]);
    const r = await trustplay(['run', book, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await pulls(nodes[0]!)).toEqual({ cri: '', skopeo: x509 });
    expect(await pulls(nodes[1]!)).toEqual({ cri: '', docker: '', skopeo: '' });

    const { code, by } = await diagnose('--ca', env.lab.ca);
    expect(code).toBe(2);
    const [n1, n2] = [by(nodes[0]!), by(nodes[1]!)];
    expect(n1.evidence.trusted_by).toMatch(/trustplay lab CA/);
    expect(n1.cause).toBe('unknown-authority');
    expect(n1.summary).toContain('containers/image: ');
    // The fix as proposed, with the --ca that validates: registry.trust with that file.
    expect(n1.fix?.task).toEqual({ name: `trust ${reg}'s CA`, 'registry.trust': { registry: reg, ca: env.lab.ca } });
    expect(n2.cause).toBe('healthy');
    expect(runtime(n2, 'docker')).toMatchObject({ cause: 'healthy', ca_files: [`/etc/docker/certs.d/${reg}/ca.crt`] });
    expect(runtime(n2, 'containers')).toMatchObject({
      cause: 'healthy',
      certs_dir: `/etc/docker/certs.d/${reg}`,
      ca_files: [`/etc/docker/certs.d/${reg}/ca.crt`],
    });
    expect(runtime(n2, 'containers')?.trusted_by).toMatch(/trustplay lab CA/);
  });

  it('after the proposed registry.trust task: every runtime of both nodes is healthy and every pull succeeds', async () => {
    const { by } = await diagnose('--ca', env.lab.ca);
    const task = by(nodes[0]!).fix?.task;
    expect(task).toBeDefined();
    const r = await trustplay(['run', play('fix.yaml', [{ hosts: 'all', tasks: [task] }]), ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await pulls(nodes[0]!)).toEqual({ cri: '', skopeo: '' });
    expect(await pulls(nodes[1]!)).toEqual({ cri: '', docker: '', skopeo: '' });

    const after = await diagnose();
    expect(after.code).toBe(0);
    for (const n of nodes) {
      const d = after.by(n);
      expect(d.cause).toBe('healthy');
      expect(d.fix).toBeNull();
      for (const rt of d.other_runtimes ?? []) {
        expect(rt.cause, rt.runtime).toBe('healthy');
        expect(rt.trusted_by, rt.runtime).toMatch(/trustplay lab CA/);
      }
    }
    expect(runtime(after.by(nodes[0]!), 'containers')).toMatchObject({
      certs_dir: `/etc/containers/certs.d/${reg}`,
      ca_files: [`/etc/containers/certs.d/${reg}/ca.crt`],
    });
    expect(after.by(nodes[1]!).other_runtimes?.map((r) => r.runtime)).toEqual(['docker', 'containers']);
    const text = await human();
    expect(text).toContain('    docker: HEALTHY: Docker Engine trusts');
    expect(text).toContain('    containers: HEALTHY: containers/image trusts');
  });
});
