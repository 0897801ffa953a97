/**
 * docker.tls end to end: the real CLI against a real Docker Engine (Debian docker.io, dockerd
 * 20.10) running in a lab node's mount namespace (test/lab/docker-engine.ts), pulling through the
 * Engine API on the node's socket (POST /images/create, no docker CLI) from the lab registry, which
 * that node reaches on [::1] so dockerd really verifies TLS. One 2-node lab: node2 runs dockerd,
 * node1 does not (dockerd hidden there).
 *   a stale hand-made ca.crt, pull fails with x509 unknown authority -> check writes nothing -> run
 *   replaces ca.crt, the next pull succeeds with the same dockerd (no restart) -> a second run is
 *   ok -> restore puts the stale file back byte for byte (mode too) and x509 is back; a node without
 *   Docker Engine fails the task, by name.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { JsonReport } from '../../src/report/json.js';
import type { LabNode } from '../lab/lab.js';
import { trustplay } from '../support/cli.js';
import { dockerPull, dockerVersion } from '../support/docker-api.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { hidePrograms, inNode } from '../support/lab-node.js';

vi.setConfig({ testTimeout: 120_000 });

describeLab('docker.tls end to end (real dockerd in a lab node, Engine API pulls)', () => {
  const env = useLab({ nodes: 2, docker: [false, true] });
  let work: string;
  let node: LabNode;
  let playbook: string;
  let runId = '';
  let before = '';
  const args = (...extra: string[]) => [...extra, '-i', env.lab.inventoryPath, '--state-dir', path.join(work, 'state')];
  const dockerdPid = (): number => Number(readFileSync(path.join(node.files['/run'], 'docker.pid'), 'utf8'));
  const pull = (): Promise<string> => dockerPull(node.docker!.hostSocket, env.lab.image.ref, { fresh: true });
  /** Every file under the node's /etc/docker/certs.d, with mode, owner and sha256: what a restore must put back. */
  const certsState = async (): Promise<string> => {
    const r = await inNode(
      node,
      `find /etc/docker/certs.d -type f 2>/dev/null | sort | while read -r f; do echo "$f $(stat -c '%a %u:%g' "$f") $(sha256sum < "$f")"; done`,
    );
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };

  beforeAll(() => {
    work = mkdtempSync(path.join(os.tmpdir(), 'tp-e2e-docker-'));
    node = env.lab.nodes[1]!;
    playbook = path.join(work, 'docker-trust.yaml');
    writeFileSync(
      playbook,
      [
        '- hosts: all',
        '  tasks:',
        '    - name: Docker Engine trusts the lab CA',
        '      docker.tls:',
        '        registry: "{{ registry }}"',
        '        ca: "{{ registry_ca }}"',
        '',
      ].join('\n'),
    );
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('before: dockerd on the node fails the pull with the real x509 unknown-authority error', async () => {
    expect(await dockerVersion(node.docker!.hostSocket)).toMatch(/^\d+\.\d+/);
    // A stale CA someone put there by hand (another certificate, mode 0640): what restore must bring back.
    const dir = `/etc/docker/certs.d/${env.lab.registries.registry.host}`;
    const stale = readFileSync(path.join(path.dirname(env.lab.ca), 'selfsigned.pem'), 'utf8');
    const seeded = await inNode(
      node,
      `mkdir -p '${dir}' && cat > '${dir}/ca.crt' && chmod 0640 '${dir}/ca.crt'`,
      stale,
    );
    expect(seeded.code, seeded.stderr).toBe(0);
    expect(await pull()).toMatch(
      new RegExp(
        `^Get "https://${env.lab.registries.registry.host}/v2/": x509: certificate signed by unknown authority$`,
      ),
    );
    before = await certsState();
    expect(before).toMatch(/ca\.crt 640 0:0 [0-9a-f]{64}/);
  });

  it('check says it would update ca.crt and writes nothing', async () => {
    const r = await trustplay(['check', playbook, ...args('--limit', node.name)]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout).toContain(
      `update /etc/docker/certs.d/${env.lab.registries.registry.host}/ca.crt (CA certificate, 0644)`,
    );
    expect(await certsState()).toBe(before);
  });

  it('run replaces certs.d/<host:port>/ca.crt with the lab CA and the next pull succeeds with the same dockerd (no restart)', async () => {
    const pid = dockerdPid();
    const r = await trustplay(['run', playbook, ...args('--limit', node.name)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`update /etc/docker/certs.d/${env.lab.registries.registry.host}/ca.crt`);
    runId = /snapshot (\S+) saved/.exec(r.stderr)?.[1] ?? '';
    expect(runId).not.toBe('');
    const ca = (await inNode(node, `cat /etc/docker/certs.d/${env.lab.registries.registry.host}/ca.crt`)).stdout;
    expect(ca).toBe(readFileSync(env.lab.ca, 'utf8'));
    expect(await pull()).toBe('');
    expect(dockerdPid()).toBe(pid);
  });

  it('a second run is ok: nothing to change', async () => {
    const r = await trustplay(['run', playbook, ...args('--limit', node.name, '--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as JsonReport;
    expect(report.hosts[node.name]!.tasks.map((t) => [t.status, t.changes])).toEqual([['ok', []]]);
  });

  it('restore puts certs.d back byte for byte and the pull fails with x509 again', async () => {
    const r = await trustplay(['restore', runId, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await certsState()).toBe(before);
    expect(await pull()).toMatch(/x509: certificate signed by unknown authority/);
  });

  it('a node without Docker Engine fails the task with what was looked for, and changes nothing', async () => {
    const undo = await hidePrograms(env.lab.nodes[0]!, ['dockerd']);
    try {
      const r = await trustplay(['run', playbook, ...args('--limit', 'node1')]);
      expect(r.code, r.stdout + r.stderr).not.toBe(0);
      expect(r.stdout + r.stderr).toContain(
        'node1: no Docker Engine found (looked for dockerd on PATH and the socket /run/docker.sock)',
      );
      expect((await inNode(env.lab.nodes[0]!, 'ls /etc/docker/certs.d 2>&1')).stdout).toMatch(/No such file/);
    } finally {
      await undo();
    }
  });
});
