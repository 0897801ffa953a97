/**
 * registry.trust end to end: one task, written once, fixes every runtime of a mixed 2-node lab.
 *   node1: containerd (CRI) and containers/image (skopeo; the lab hides this machine's dockerd there);
 *   node2: containerd (CRI), Docker Engine (a real dockerd, Engine API pulls over its socket, the
 *          registry reached on [::1] so dockerd really verifies TLS) and containers/image (skopeo).
 * From the real x509 unknown-authority error on every runtime of both nodes (CRI pull, Engine API
 * pull, `skopeo inspect`) -> one `registry.trust` task run -> every pull succeeds -> a second run is
 * ok with no changes -> restore puts every file back byte for byte (mode and owner too) and x509 is
 * back everywhere. A runtime listed in `runtimes` that a node lacks fails the task by name.
 * (CRI-O pulls through the same containers/image library as skopeo; it is not packaged here.)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

vi.setConfig({ testTimeout: 180_000 });

if (process.env['CI'] && !containersImageAvailable())
  throw new Error('skopeo is needed for the registry.trust lab test in CI (apt-get install skopeo)');

describeLab('registry.trust end to end (containerd, Docker Engine and containers/image on a mixed lab)', () => {
  const env = useLab({ nodes: 2, docker: [false, true], containers: [true, true] });
  let work: string;
  let nodes: LabNode[];
  let playbook: string;
  let runId = '';
  const before: Record<string, string> = {};
  const args = (...extra: string[]) => [...extra, '-i', env.lab.inventoryPath, '--state-dir', path.join(work, 'state')];

  const trustState = trustFilesState;
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

  beforeAll(async () => {
    if (!containersImageAvailable()) throw new Error('skopeo is not installed: apt-get install skopeo');
    work = mkdtempSync(path.join(os.tmpdir(), 'tp-e2e-registry-trust-'));
    nodes = env.lab.nodes.slice(0, 2);
    playbook = path.join(work, 'trust.yaml');
    writeFileSync(
      playbook,
      [
        '- hosts: all',
        '  tasks:',
        '    - name: Every runtime trusts the lab CA',
        '      registry.trust:',
        '        registry: "{{ registry }}"',
        '        ca: "{{ registry_ca }}"',
        '',
      ].join('\n'),
    );
  });
  afterAll(async () => {
    rmSync(work, { recursive: true, force: true });
  });

  it('before: every runtime on both nodes fails with the real x509 unknown-authority error', async () => {
    expect(nodes[0]!.docker).toBeUndefined();
    expect(nodes[1]!.docker).toBeDefined();
    expect(await pulls(nodes[0]!)).toEqual({ cri: x509, skopeo: x509 });
    expect(await pulls(nodes[1]!)).toEqual({ cri: x509, docker: x509, skopeo: x509 });
    for (const n of nodes) before[n.name] = await trustState(n);
  });

  it('before: image.pull.verify fails on every runtime, each named with its own classified cause', async () => {
    const book = path.join(work, 'verify-before.yaml');
    writeFileSync(
      book,
      ['- hosts: all', '  tasks:', '    - image.pull.verify:', '        image: "{{ image }}"', ''].join('\n'),
    );
    const r = await trustplay(['run', book, ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const report = JSON.parse(r.stdout) as JsonReport;
    const error = (n: LabNode) => report.hosts[n.name]!.tasks[0]!.error?.message ?? '';
    for (const [n, runtimes] of [
      [nodes[0]!, ['containerd', 'containers']],
      [nodes[1]!, ['containerd', 'docker', 'containers']],
    ] as const)
      for (const rt of runtimes)
        expect(error(n)).toMatch(
          new RegExp(`${rt}: pulling \\S+ failed: [^;]*signed by a CA this node does not trust`),
        );
    expect(error(nodes[0]!)).not.toContain('docker:');
  });

  it('one registry.trust task fixes every runtime on both nodes', async () => {
    const r = await trustplay(['run', playbook, ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as JsonReport;
    runId = report.runId;
    expect(runId).not.toBe('');
    const reg = env.lab.registries.registry.host;
    const task = (n: LabNode) => report.hosts[n.name]!.tasks[0]!;
    for (const n of nodes) expect(task(n).status).toBe('changed');
    const changes = (n: LabNode) => task(n).changes.join('\n');
    expect(changes(nodes[0]!)).toContain(`/etc/containerd/certs.d/${reg}/hosts.toml`);
    expect(changes(nodes[0]!)).toContain(`/etc/containers/certs.d/${reg}/ca.crt`);
    expect(changes(nodes[0]!)).not.toContain('/etc/docker/certs.d');
    for (const dir of ['/etc/containerd/certs.d', '/etc/docker/certs.d', '/etc/containers/certs.d'])
      expect(changes(nodes[1]!)).toContain(`${dir}/${reg}/`);
    expect(task(nodes[0]!).data).toMatchObject({ runtimes: ['containerd', 'containers'] });
    expect(task(nodes[1]!).data).toMatchObject({ runtimes: ['containerd', 'docker', 'containers'] });
    expect(await pulls(nodes[0]!)).toEqual({ cri: '', skopeo: '' });
    expect(await pulls(nodes[1]!)).toEqual({ cri: '', docker: '', skopeo: '' });
  });

  it('a second run is ok: nothing to change on any runtime', async () => {
    const r = await trustplay(['run', playbook, ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as JsonReport;
    for (const n of nodes) expect(report.hosts[n.name]!.tasks.map((t) => [t.status, t.changes])).toEqual([['ok', []]]);
  });

  /** A playbook of one task of `module` on the lab image (image.pull.verify or image.rmi). */
  const imagePlaybook = (module: string, extra: string[] = []): string => {
    const file = path.join(work, `${module}.yaml`);
    writeFileSync(
      file,
      [
        '- hosts: all',
        '  tasks:',
        `    - ${module}:`,
        '        image: "{{ image }}"',
        ...extra.map((l) => `        ${l}`),
        '',
      ].join('\n'),
    );
    return file;
  };

  it('image.pull.verify pulls through every runtime (CRI, Engine API, skopeo) and reports each repo digest', async () => {
    const r = await trustplay(['run', imagePlaybook('image.pull.verify'), ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as JsonReport;
    const digest = `${env.lab.registries.registry.host}/aegis/aegis-hc-install@${env.lab.image.digest}`;
    const data = (n: LabNode) =>
      report.hosts[n.name]!.tasks[0]!.data as { pulls: Record<string, { repoDigest: string }> };
    expect(Object.keys(data(nodes[0]!).pulls)).toEqual(['containerd', 'containers']);
    expect(Object.keys(data(nodes[1]!).pulls)).toEqual(['containerd', 'docker', 'containers']);
    for (const n of nodes) for (const p of Object.values(data(n).pulls)) expect(p.repoDigest).toBe(digest);
  });

  it('image.rmi removes the image from the CRI and Docker Engine stores (skopeo keeps none), then is ok', async () => {
    const book = imagePlaybook('image.rmi');
    const first = await trustplay(['run', book, ...args('--format', 'json')]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const report = JSON.parse(first.stdout) as JsonReport;
    const changes = report.hosts[nodes[1]!.name]!.tasks[0]!.changes.join('\n');
    expect(changes).toMatch(/remove image \S+ \(/);
    expect(changes).toMatch(/remove image \S+ from Docker Engine \(/);
    expect(report.hosts[nodes[0]!.name]!.tasks[0]!.data).toMatchObject({ runtimes: ['containerd'] });
    const inspect = await inNode(
      nodes[1]!,
      `curl -s -o /dev/null -w '%{http_code}' --unix-socket /run/docker.sock http://docker/images/${encodeURIComponent(env.lab.image.ref)}/json`,
    );
    expect(inspect.stdout).toBe('404');
    const again = await trustplay(['run', book, ...args('--format', 'json')]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const second = JSON.parse(again.stdout) as JsonReport;
    for (const n of nodes) expect(second.hosts[n.name]!.tasks[0]!.status).toBe('ok');
  });

  it('a runtime listed in `runtimes` that a node lacks fails the task by name, and nothing changes', async () => {
    const listed = path.join(work, 'listed.yaml');
    writeFileSync(
      listed,
      [
        '- hosts: all',
        '  tasks:',
        '    - registry.trust:',
        '        registry: "{{ registry }}"',
        '        ca: "{{ registry_ca }}"',
        '        runtimes: [containerd, docker]',
        '',
      ].join('\n'),
    );
    const state = await trustState(nodes[0]!);
    const r = await trustplay(['run', listed, ...args('--limit', nodes[0]!.name)]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout + r.stderr).toContain(
      `${nodes[0]!.name}: runtimes lists docker, which this node does not have (looked for Docker Engine: dockerd on PATH or the socket /run/docker.sock).`,
    );
    expect(await trustState(nodes[0]!)).toBe(state);
  });

  it('restore puts every file back byte for byte and every runtime fails with x509 again', async () => {
    const r = await trustplay(['restore', runId, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const n of nodes) expect(await trustState(n)).toBe(before[n.name]);
    expect(await pulls(nodes[0]!)).toEqual({ cri: x509, skopeo: x509 });
    expect(await pulls(nodes[1]!)).toEqual({ cri: x509, docker: x509, skopeo: x509 });
  });
});
