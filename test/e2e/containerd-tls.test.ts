/**
 * containerd.tls end to end: the real CLI against the lab (real containerd 1.6.20, 1.7.24 and
 * 2.1.9, each node with its own version's `config default` file; a registry with a private CA;
 * sshd per node). Tests run in order and share one 9-node lab: each story runs on one node per
 * version at once (one CLI run, `--limit` the three), and where a version behaves differently the
 * test names it:
 *   A (node1 1.6, node4 1.7, node7 2.1): x509 before -> `ca` fixes it -> second run changes
 *      nothing (same containerd pid) -> state: absent returns to x509;
 *   B (node2, node5, node8): check mode writes nothing -> skip_verify (warned) fixes it;
 *   C (node3, node6, node9): style: legacy fixes 1.x and is refused on 2.1 (which ignores it) ->
 *      a restart that leaves containerd unable to start is rolled back, on every version.
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
type JsonTask = {
  host: string;
  task: string;
  status: string;
  durationMs: number;
  changes: string[];
  warnings: string[];
  error?: { message: string };
};

/** The lab's versions, in the order each story's nodes are listed. */
const VERSIONS = ['1.6', '1.7', '2.1'] as const;

describeLab('containerd.tls end to end (real CLI, lab containerd 1.6, 1.7 and 2.1)', () => {
  const handle = useLab({
    nodes: 9,
    containerd: ['1.6', '1.6', '1.6', '1.7', '1.7', '1.7', '2.1', '2.1', '2.1'],
  });
  let lab: Lab;
  /** Story nodes, one per version (1.6, 1.7, 2.1). */
  let A: LabNode[];
  let B: LabNode[];
  let C: LabNode[];
  let missing: string;
  const limit = (nodes: LabNode[]): string => nodes.map((n) => n.name).join(',');
  const label = (n: LabNode): string => `${n.name} (containerd ${n.containerd.version})`;
  const is2x = (n: LabNode): boolean => n.containerd.version.startsWith('2.');
  const pids = (nodes: LabNode[]): number[] => nodes.map((n) => pid(lab, n.name));

  it('before: every node fails the CRI pull with x509 unknown authority, on every version', async () => {
    lab = handle.lab;
    const role = (i: number): LabNode[] => VERSIONS.map((_, v) => lab.nodes[v * 3 + i]!);
    [A, B, C] = [role(0), role(1), role(2)];
    expect(A.map((n) => n.containerd.version)).toEqual([...VERSIONS]);
    missing = lab.image.ref.replace(/:latest$/, ':no-such-tag');
    for (const n of lab.nodes)
      expect(await pull(n, lab.image.ref), label(n)).toMatch(
        /^unknown-authority: .*x509: certificate signed by unknown authority/,
      );
  });

  it('with `ca`: hosts.toml + ca.crt + config_path in the file’s own version table, one verified restart, the pull succeeds and a missing image is "not found"', async () => {
    const pid0 = pids(A);
    const r = await trustplay(lab, 'run', 'trust-ca.yaml', '--limit', limit(A), '--format', 'json');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { hosts: Record<string, { tasks: JsonTask[] }> };
    const reg = lab.registries.registry.host;
    for (const [i, n] of A.entries()) {
      const tasks = report.hosts[n.name]!.tasks;
      expect(
        tasks.map((t) => [t.task, t.status]),
        label(n),
      ).toEqual([
        ["Trust the registry's CA", 'changed'],
        ['Restart containerd (verified)', 'changed'],
      ]);
      console.log(
        `${label(n)}: containerd.tls ${tasks[0]!.durationMs} ms, verified restart + CRI health check ${tasks[1]!.durationMs} ms`,
      );
      expect(pid(lab, n.name), label(n)).not.toBe(pid0[i]);
      // 1.x files are version 2 (grpc.v1.cri table), 2.1's own default is version 3 (cri.v1.images).
      const table = is2x(n)
        ? `[plugins.'io.containerd.cri.v1.images'.registry]`
        : `[plugins."io.containerd.grpc.v1.cri".registry]`;
      const files = await inNode(
        n,
        `cd /etc/containerd/certs.d/${reg} && stat -c '%n %a' ca.crt hosts.toml && head -n 1 hosts.toml && grep -A1 -F ${JSON.stringify(table)} /etc/containerd/config.toml | tail -n 1`,
      );
      expect(files.stdout, label(n)).toMatch(
        /^ca\.crt 644\nhosts\.toml 644\n# Managed by trustplay — changes will be overwritten\.\n +config_path = ["']\/etc\/containerd\/certs\.d["']\n$/,
      );
      expect(await pull(n, lab.image.ref), label(n)).toBe('');
      // The layout matters: with the CA on the host entry only, containerd reports this as x509.
      expect(await pull(n, missing), label(n)).toMatch(/^not-found: /);
    }
  }, 120_000);

  it('a second run reports ok with zero changes, and containerd is not restarted', async () => {
    const pid1 = pids(A);
    const t0 = Date.now();
    const r = await trustplay(lab, 'run', 'trust-ca.yaml', '--limit', limit(A));
    console.log(`${limit(A)}: converged run through the CLI took ${Date.now() - t0} ms`);
    expect(r.code, r.stderr).toBe(0);
    for (const n of A) expect(r.stdout, label(n)).toMatch(new RegExp(`${n.name} +ok=1 +changed=0 +failed=0`));
    expect(r.stdout).not.toContain('Restart containerd');
    expect(pids(A)).toEqual(pid1);
  }, 120_000);

  it('check mode reports the drift with a diff and writes nothing', async () => {
    const before = hashPaths(B.map((n) => n.files['/etc/containerd']));
    const pid0 = pids(B);
    const r = await trustplay(lab, 'check', 'trust-ca.yaml', '--limit', limit(B), '--diff');
    expect(r.code, r.stderr).toBe(2);
    // A version 2 file gets a basic string, a version 3 file (2.1's default) a literal one, as its own keys.
    expect(r.stdout).toMatch(/\+ +config_path = ["']\/etc\/containerd\/certs\.d["']/);
    expect(r.stdout).toContain('+-----BEGIN CERTIFICATE-----');
    expect(hashPaths(B.map((n) => n.files['/etc/containerd']))).toEqual(before);
    expect(pids(B)).toEqual(pid0);
    for (const n of B) expect(await pull(n, lab.image.ref), label(n)).toMatch(/^unknown-authority: /);
  }, 120_000);

  it('with skip_verify: the pull succeeds and the run warns that it is insecure', async () => {
    const r = await trustplay(lab, 'run', 'skip-verify.yaml', '--limit', limit(B));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/skip_verify: .*insecure/);
    for (const n of B) {
      expect(await pull(n, lab.image.ref), label(n)).toBe('');
      expect(await pull(n, missing), label(n)).toMatch(/^not-found: /);
    }
  }, 120_000);

  it('state: absent removes the managed files without a restart and the node is back to x509', async () => {
    const pid1 = pids(A);
    const r = await trustplay(lab, 'run', 'absent.yaml', '--limit', limit(A));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`remove the empty directory /etc/containerd/certs.d/${lab.registries.registry.host}`);
    expect(pids(A)).toEqual(pid1);
    for (const n of A) expect(await pull(n, lab.image.ref), label(n)).toMatch(/^unknown-authority: /);
    const again = await trustplay(lab, 'run', 'absent.yaml', '--limit', limit(A));
    for (const n of A) expect(again.stdout, label(n)).toMatch(new RegExp(`${n.name} +ok=1 +changed=0`));
  }, 120_000);

  it('with style: legacy: on 1.6 and 1.7 registry.configs."<host>".tls and a CA beside config.toml fix the pull; 2.1 refuses it (2.x ignores that table) and writes nothing', async () => {
    const [legacy1x, legacy2x] = [C.filter((n) => !is2x(n)), C.filter(is2x)];
    const before2x = hashPaths(legacy2x.map((n) => n.files['/etc/containerd']));
    const r = await trustplay(lab, 'run', 'legacy.yaml', '--limit', limit(C));
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const reg = lab.registries.registry.host;
    for (const n of legacy1x) {
      const cfg = await inNode(
        n,
        `grep -A1 'configs."${reg}".tls' /etc/containerd/config.toml; stat -c '%a' /etc/containerd/tls/${reg}/ca.crt`,
      );
      expect(cfg.stdout, label(n)).toContain(`ca_file = "/etc/containerd/tls/${reg}/ca.crt"`);
      expect(cfg.stdout.trim().endsWith('644'), label(n)).toBe(true);
      expect(await pull(n, lab.image.ref), label(n)).toBe('');
    }
    for (const n of legacy2x) {
      expect(r.stdout, label(n)).toMatch(
        new RegExp(
          `^${n.name} \\| FAILED \\| Legacy CRI tls table with the CA\\n.*containerd 2\\.x ignores registry\\.configs\\."${reg.replace(/\./g, '\\.')}"\\.tls, so it would have no effect; use style: hosts instead\\.`,
          'm',
        ),
      );
      expect(await pull(n, lab.image.ref), label(n)).toMatch(/^unknown-authority: /);
    }
    expect(hashPaths(legacy2x.map((n) => n.files['/etc/containerd']))).toEqual(before2x);
    const again = await trustplay(lab, 'run', 'legacy.yaml', '--limit', limit(legacy1x));
    for (const n of legacy1x) expect(again.stdout, label(n)).toMatch(new RegExp(`${n.name} +ok=1 +changed=0`));
  }, 120_000);

  it('a restart that leaves containerd unable to start is rolled back on every version (2.1 rejects the config too): previous config.toml back, containerd serving, host failed with both errors', async () => {
    const cfgFile = (n: LabNode): string => path.join(n.files['/etc/containerd'], 'config.toml');
    const before = C.map((n) => readFileSync(cfgFile(n)));
    const r = await trustplay(lab, 'run', 'broken-restart.yaml', '--limit', limit(C), '--format', 'json');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as { hosts: Record<string, { tasks: JsonTask[] }> };
    for (const [i, n] of C.entries()) {
      const restart = report.hosts[n.name]!.tasks.find((t) => t.task === 'Restart containerd (verified)')!;
      expect(restart.status, label(n)).toBe('failed');
      expect(restart.error?.message, label(n)).toMatch(
        /^containerd did not come back after the config change \(`.*systemctl restart containerd` failed \(exit 1: failed\): Job for containerd\.service failed/,
      );
      expect(restart.error?.message).toContain(
        'the previous /etc/containerd/config.toml was restored and containerd restarted (it answers on /run/containerd/containerd.sock)',
      );
      console.log(`${label(n)}: failed restart + rollback + second restart took ${restart.durationMs} ms`);
      expect(readFileSync(cfgFile(n)).equals(before[i]!), label(n)).toBe(true);
      const cri = createCriClient(n.hostSocket);
      try {
        expect((await cri.version(10_000)).runtimeName, label(n)).toBe('containerd');
      } finally {
        await cri.close();
      }
      // The restored config is the one running: 1.x pulls through its legacy table, 2.1 still fails x509.
      expect(await pull(n, lab.image.ref), label(n)).toEqual(
        is2x(n) ? expect.stringMatching(/^unknown-authority: /) : '',
      );
      await inNode(n, 'rm -f /run/lab/tp-broke-once');
    }
  }, 120_000);
});
