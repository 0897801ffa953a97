/**
 * containerd.tls end to end: the real CLI against the lab (real containerd 1.6, a registry with a
 * private CA, sshd per node). Tests run in order and share the lab; each node plays one story:
 *   node1: x509 before -> `ca` fixes it -> second run changes nothing (same containerd pid)
 *          -> state: absent returns to x509;
 *   node2: check mode writes nothing -> skip_verify (warned) fixes it;
 *   node3: style: legacy fixes it -> a restart that leaves containerd unable to start is rolled back.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { createCriClient } from '../../src/cri/client.js';
import { classifyPullError } from '../../src/cri/classify.js';
import { labState, type Lab, type LabNode } from '../lab/lab.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, hashPaths, inNode } from '../support/lab-node.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURES = path.join(ROOT, 'test/fixtures/containerd-tls');
const stateDir = mkdtempSync(path.join(os.tmpdir(), 'tp-e2e-tls-'));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

interface Cli {
  code: number;
  stdout: string;
  stderr: string;
}

function trustplay(lab: Lab, cmd: 'run' | 'check', playbook: string, ...extra: string[]): Promise<Cli> {
  const argv = [
    '--import',
    'tsx',
    'src/cli/main.ts',
    cmd,
    path.join(FIXTURES, playbook),
    '-i',
    lab.inventoryPath,
    '--state-dir',
    stateDir,
    ...extra,
  ];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      argv,
      { cwd: ROOT, timeout: 120_000, env: { ...process.env, NO_COLOR: '1' } },
      (err, stdout, stderr) => {
        resolve({
          code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
          stdout: String(stdout),
          stderr: String(stderr),
        });
      },
    );
  });
}

/** Removes the cached image, then pulls through the node's CRI: '' on success, else the classified failure. */
async function pull(node: LabNode, ref: string): Promise<string> {
  const msg = await criPull(node.hostSocket, ref, { fresh: true });
  return msg && `${classifyPullError(msg).class}: ${msg}`;
}

const pid = (lab: Lab, name: string): number => labState(lab.dir).nodes.find((n) => n.name === name)!.containerdPid;
const jsonTasks = (
  out: string,
): Array<{
  host: string;
  task: string;
  status: string;
  durationMs: number;
  changes: string[];
  warnings: string[];
  error?: { message: string };
}> => Object.values((JSON.parse(out) as { hosts: Record<string, { tasks: [] }> }).hosts).flatMap((h) => h.tasks);

describeLab('containerd.tls end to end (real CLI, lab containerd 1.6)', () => {
  const handle = useLab({ nodes: 3 });
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let node3: LabNode;
  let missing: string;

  it('before: every node fails the CRI pull with x509 unknown authority', async () => {
    lab = handle.lab;
    [node1, node2, node3] = lab.nodes as [LabNode, LabNode, LabNode];
    missing = lab.image.ref.replace(/:latest$/, ':no-such-tag');
    for (const n of lab.nodes)
      expect(await pull(n, lab.image.ref), n.name).toMatch(
        /^unknown-authority: .*x509: certificate signed by unknown authority/,
      );
  });

  it('with `ca`: hosts.toml + ca.crt + config_path, one verified restart, the pull succeeds and a missing image is "not found"', async () => {
    const pid0 = pid(lab, 'node1');
    const r = await trustplay(lab, 'run', 'trust-ca.yaml', '--limit', 'node1', '--format', 'json');
    expect(r.code, r.stderr).toBe(0);
    const tasks = jsonTasks(r.stdout);
    expect(tasks.map((t) => [t.task, t.status])).toEqual([
      ["Trust the registry's CA", 'changed'],
      ['Restart containerd (verified)', 'changed'],
    ]);
    console.log(
      `node1: containerd.tls ${tasks[0]!.durationMs} ms, verified restart + CRI health check ${tasks[1]!.durationMs} ms`,
    );
    expect(pid(lab, 'node1')).not.toBe(pid0);
    const reg = lab.registries.registry.host;
    const files = await inNode(
      node1,
      `cd /etc/containerd/certs.d/${reg} && stat -c '%n %a' ca.crt hosts.toml && head -n 1 hosts.toml && grep -c 'config_path = "/etc/containerd/certs.d"' /etc/containerd/config.toml`,
    );
    expect(files.stdout).toBe('ca.crt 644\nhosts.toml 644\n# Managed by trustplay — changes will be overwritten.\n1\n');
    expect(await pull(node1, lab.image.ref)).toBe('');
    // The layout matters: with the CA on the host entry only, containerd reports this as x509.
    expect(await pull(node1, missing)).toMatch(/^not-found: /);
  });

  it('a second run reports ok with zero changes, and containerd is not restarted', async () => {
    const pid1 = pid(lab, 'node1');
    const t0 = Date.now();
    const r = await trustplay(lab, 'run', 'trust-ca.yaml', '--limit', 'node1');
    console.log(`node1: converged run through the CLI took ${Date.now() - t0} ms`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/node1 +ok=1 +changed=0 +failed=0/);
    expect(r.stdout).not.toContain('Restart containerd');
    expect(pid(lab, 'node1')).toBe(pid1);
  });

  it('check mode reports the drift with a diff and writes nothing', async () => {
    const before = hashPaths([node2.files['/etc/containerd']]);
    const pid0 = pid(lab, 'node2');
    const r = await trustplay(lab, 'check', 'trust-ca.yaml', '--limit', 'node2', '--diff');
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toContain('+      config_path = "/etc/containerd/certs.d"');
    expect(r.stdout).toContain('+-----BEGIN CERTIFICATE-----');
    expect(hashPaths([node2.files['/etc/containerd']])).toEqual(before);
    expect(pid(lab, 'node2')).toBe(pid0);
    expect(await pull(node2, lab.image.ref)).toMatch(/^unknown-authority: /);
  });

  it('with skip_verify: the pull succeeds and the run warns that it is insecure', async () => {
    const r = await trustplay(lab, 'run', 'skip-verify.yaml', '--limit', 'node2');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/skip_verify: .*insecure/);
    expect(await pull(node2, lab.image.ref)).toBe('');
    expect(await pull(node2, missing)).toMatch(/^not-found: /);
  });

  it('state: absent removes the managed files without a restart and the node is back to x509', async () => {
    const pid1 = pid(lab, 'node1');
    const r = await trustplay(lab, 'run', 'absent.yaml', '--limit', 'node1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`remove the empty directory /etc/containerd/certs.d/${lab.registries.registry.host}`);
    expect(pid(lab, 'node1')).toBe(pid1);
    expect(await pull(node1, lab.image.ref)).toMatch(/^unknown-authority: /);
    const again = await trustplay(lab, 'run', 'absent.yaml', '--limit', 'node1');
    expect(again.stdout).toMatch(/node1 +ok=1 +changed=0/);
  });

  it('with style: legacy (containerd 1.x): registry.configs."<host>".tls and a CA beside config.toml fix the pull', async () => {
    const r = await trustplay(lab, 'run', 'legacy.yaml', '--limit', 'node3');
    expect(r.code, r.stderr).toBe(0);
    const reg = lab.registries.registry.host;
    const cfg = await inNode(
      node3,
      `grep -A1 'configs."${reg}".tls' /etc/containerd/config.toml; stat -c '%a' /etc/containerd/tls/${reg}/ca.crt`,
    );
    expect(cfg.stdout).toContain(`ca_file = "/etc/containerd/tls/${reg}/ca.crt"`);
    expect(cfg.stdout.trim().endsWith('644')).toBe(true);
    expect(await pull(node3, lab.image.ref)).toBe('');
    expect((await trustplay(lab, 'run', 'legacy.yaml', '--limit', 'node3')).stdout).toMatch(/node3 +ok=1 +changed=0/);
  });

  it('a restart that leaves containerd unable to start is rolled back: previous config.toml back, containerd serving, host failed with both errors', async () => {
    const cfgFile = path.join(node3.files['/etc/containerd'], 'config.toml');
    const before = readFileSync(cfgFile);
    const r = await trustplay(lab, 'run', 'broken-restart.yaml', '--limit', 'node3', '--format', 'json');
    expect(r.code).toBe(1);
    const tasks = jsonTasks(r.stdout);
    const restart = tasks.find((t) => t.task === 'Restart containerd (verified)')!;
    expect(restart.status).toBe('failed');
    expect(restart.error?.message).toMatch(
      /^containerd did not come back after the config change \(`.*systemctl restart containerd` failed \(exit 1: failed\): Job for containerd\.service failed/,
    );
    expect(restart.error?.message).toContain(
      'the previous /etc/containerd/config.toml was restored and containerd restarted (it answers on /run/containerd/containerd.sock)',
    );
    console.log(`node3: failed restart + rollback + second restart took ${restart.durationMs} ms`);
    expect(readFileSync(cfgFile).equals(before)).toBe(true);
    const cri = createCriClient(node3.hostSocket);
    try {
      expect((await cri.version(10_000)).runtimeName).toBe('containerd');
    } finally {
      await cri.close();
    }
    // The restored (legacy) config is the one running: the pull still works.
    expect(await pull(node3, lab.image.ref)).toBe('');
    await inNode(node3, 'rm -f /run/lab/tp-broke-once');
  });
});
