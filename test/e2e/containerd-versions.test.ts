/**
 * Version-specific behaviour on the real binaries, one lab node per version (node1 containerd
 * 1.6.20, node2 1.7.24, node3 2.1.9, each with its own `config default` file):
 *   - the version trustplay acts on is the RUNNING daemon's (CRI Version), not PATH's `containerd`;
 *   - what containerd 2.1 really does with the settings trustplay refuses or rewrites.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { classifyPullError } from '../../src/cri/classify.js';
import type { LabNode } from '../lab/lab.js';
import { trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, inNode } from '../support/lab-node.js';

describeLab('containerd versions on the real binaries (1.6, 1.7, 2.1 in one lab)', () => {
  const env = useLab({ nodes: 3, containerd: ['1.6', '1.7', '2.1'] });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tp-e2e-versions-'));
  const state = path.join(tmp, 'state');
  let trustCa: string;
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const node = (version: string): LabNode => env.lab.nodes.find((n) => n.containerd.version === version)!;
  const cli = (cmd: string, playbook: string, host: string, ...extra: string[]) =>
    trustplay([cmd, playbook, '-i', env.lab.inventoryPath, '--state-dir', state, '--limit', host, ...extra]);
  const pull = async (n: LabNode): Promise<string> => {
    const msg = await criPull(n.hostSocket, env.lab.image.ref, { fresh: true, timeoutMs: 60_000 });
    return msg ? classifyPullError(msg).class : 'ok';
  };

  beforeAll(() => {
    trustCa = path.join(tmp, 'trust-ca.yaml');
    writeFileSync(
      trustCa,
      [
        '- hosts: nodes',
        '  tasks:',
        '    - name: Trust the lab CA',
        '      containerd.tls:',
        '        registry: "{{ registry }}"',
        '        ca: "{{ registry_ca }}"',
        '',
      ].join('\n'),
    );
  });

  it('2.1: with containerd 1.6 on PATH, trustplay takes the running daemon’s version (CRI), says so, fixes the node', async () => {
    const n = node('2.1');
    // An upgrade in progress (or k3s/RKE2): PATH's containerd is another binary than the daemon.
    const swap = await inNode(n, 'ln -sf /usr/bin/containerd /usr/local/sbin/containerd && containerd --version');
    expect(swap.stdout).toMatch(/ 1\.6\./);
    try {
      expect(await pull(n)).toBe('unknown-authority');
      const facts = await trustplay(['facts', '-i', env.lab.inventoryPath, '--limit', n.name, '--format', 'json']);
      expect(facts.code, facts.stdout + facts.stderr).toBe(0);
      const f = (
        JSON.parse(facts.stdout) as { hosts: Record<string, { facts: { containerd: Record<string, unknown> } }> }
      ).hosts[n.name]!.facts.containerd;
      expect(f.version).toMatch(/2\.1\.9/);
      expect(f.major).toBe(2);
      expect(f.source).toBe('the running daemon (CRI Version on /run/containerd/containerd.sock)');

      const r = await cli('run', trustCa, n.name);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).not.toContain('containerd 1.x cannot load');
      expect(r.stdout).toContain(
        `${n.name}: the running containerd is 2.1 (the running daemon (CRI Version on /run/containerd/containerd.sock)) but \`containerd\` on PATH is 1.6`,
      );
      expect(await pull(n)).toBe('ok');
    } finally {
      await inNode(n, `ln -sf ${n.containerd.binary} /usr/local/sbin/containerd`);
    }
  });

  it('1.6 and 1.7: containerd on PATH is the running one, and no mismatch is reported', async () => {
    for (const v of ['1.6', '1.7']) {
      const n = node(v);
      const r = await cli('run', trustCa, n.name);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).not.toContain('on PATH is');
      expect(await pull(n), v).toBe('ok');
    }
  });
});
