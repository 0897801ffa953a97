/**
 * The seed's whole procedure end to end, with the CLI as a user types it, on the lab: pulls fail
 * with x509; `run` fixes every node; `check` is clean; a deleted hosts.toml is drift naming the
 * node and task; `run` fixes only the drifted nodes; `restore` returns the fleet to the x509 failure; a
 * stopped node makes `check` exit 4 while the others are still checked. The workers run containerd
 * 1.6, 1.7 and 2.1 (each with its own version's default config): one playbook, a mixed fleet.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { classifyPullError } from '../../src/cri/classify.js';
import type { JsonReport } from '../../src/report/json.js';
import type { Lab, LabNode } from '../lab/lab.js';
import { trustplay } from '../support/cli.js';
import { describeLab, LOGIN_MODES, useLab } from '../support/lab-fixture.js';
import { criPull, inNode } from '../support/lab-node.js';

async function pull(lab: Lab, node: LabNode): Promise<'ok' | string> {
  const msg = await criPull(node.hostSocket, lab.image.ref, { fresh: true, timeoutMs: 60_000 });
  return msg ? classifyPullError(msg).class : 'ok';
}

// The same suite logged in as root and as a sudo user with become (NOPASSWD on node1 and node3,
// a password on node2 and node4): every expectation holds the same either way.
// On the sudo user's password nodes every command authenticates (no credential cache), which
// makes each CLI run a few times slower than as root on this 2-core machine.
vi.setConfig({ testTimeout: 120_000 });

for (const mode of LOGIN_MODES)
  describeLab(`fix-registry.yaml end to end ${mode.title} (workers on containerd 1.6, 1.7 and 2.1)`, () => {
    const env = useLab({ nodes: 4, containerd: ['1.6', '1.6', '1.7', '2.1'], login: mode.login(4) });
    let state: string;
    let workers: LabNode[];
    const pb = 'playbooks/fix-registry.yaml';
    const args = (...extra: string[]) => [...extra, '-i', env.lab.inventoryPath, '--state-dir', state];

    beforeAll(async () => {
      state = await mkdtemp(join(tmpdir(), 'trustplay-e2e-state-'));
      workers = env.lab.nodes.filter((n) => n.name !== 'node1');
    });
    afterAll(async () => {
      if (state) await rm(state, { recursive: true, force: true });
    });

    it('before: every worker fails to pull with x509 unknown authority', async () => {
      for (const n of workers) expect(await pull(env.lab, n), n.name).toBe('unknown-authority');
      expect(workers.map((n) => n.containerd.version)).toEqual(['1.6', '1.7', '2.1']);
    });

    let firstRun = '';
    it('run fixes every node (exit 0), and the pulls succeed', async () => {
      const r = await trustplay(['run', pb, ...args()]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^success in /m);
      firstRun = (await readdir(join(state, 'runs')))[0]!.replace(/\.json$/, '');
      for (const n of workers)
        expect(await pull(env.lab, n), `${n.name} (containerd ${n.containerd.version})`).toBe('ok');
    });

    it('check on the converged fleet exits 0 and changes nothing', async () => {
      const r = await trustplay(['check', pb, ...args('--format', 'json')]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as JsonReport;
      for (const [host, h] of Object.entries(report.hosts)) expect(h.recap.changed, host).toBe(0);
    });

    it('a deleted hosts.toml is drift (exit 2) naming the node and the task, on every version', async () => {
      // Drift on the 1.7 and 2.1 workers; the 1.6 worker stays converged.
      const drifted = workers.slice(1);
      for (const n of drifted) {
        const rm = await inNode(n, `rm /etc/containerd/certs.d/${env.lab.registries.registry.host}/hosts.toml`);
        expect(rm.code).toBe(0);
      }
      const r = await trustplay(['check', pb, ...args()]);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      for (const n of drifted)
        expect(r.stdout).toMatch(new RegExp(`^${n.name} \\| would change \\| Trust the registry's CA$`, 'm'));
      expect(r.stdout).not.toMatch(new RegExp(`^${workers[0]!.name} \\| would change`, 'm'));
      expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^drift on /);
    });

    it('run again fixes only the drifted nodes', async () => {
      const r = await trustplay(['run', pb, ...args('--format', 'json')]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as JsonReport;
      for (const n of workers.slice(1)) expect(report.hosts[n.name]!.recap.changed, n.name).toBeGreaterThan(0);
      for (const n of [workers[0]!, env.lab.nodes[0]!]) expect(report.hosts[n.name]!.recap.changed, n.name).toBe(0);
    });

    it('drift on the 1.6 worker alone is reported for it alone, and run repairs it', async () => {
      // The test above drifted the 1.7 and 2.1 workers, this one the 1.6 worker: every version is
      // drifted and repaired here, and the restore suite (its sudo logins the other way round)
      // drifts every worker too, so each version is drifted with NOPASSWD and with a password.
      const [n16, ...others] = workers;
      const rm = await inNode(n16!, `rm /etc/containerd/certs.d/${env.lab.registries.registry.host}/hosts.toml`);
      expect(rm.code).toBe(0);
      const check = await trustplay(['check', pb, ...args()]);
      expect(check.code, check.stdout + check.stderr).toBe(2);
      expect(check.stdout).toMatch(new RegExp(`^${n16!.name} \\| would change \\| Trust the registry's CA$`, 'm'));
      for (const n of others) expect(check.stdout).not.toMatch(new RegExp(`^${n.name} \\| would change`, 'm'));
      const r = await trustplay(['run', pb, ...args('--format', 'json')]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as JsonReport;
      expect(report.hosts[n16!.name]!.recap.changed).toBeGreaterThan(0);
      for (const n of others) expect(report.hosts[n.name]!.recap.changed, n.name).toBe(0);
      expect(await pull(env.lab, n16!)).toBe('ok');
    });

    it('restore of the first run returns the fleet to the x509 failure', async () => {
      const r = await trustplay(['restore', firstRun, ...args()]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      for (const n of workers) expect(await pull(env.lab, n)).toBe('unknown-authority');
      const again = await trustplay(['run', pb, ...args()]);
      expect(again.code, again.stdout + again.stderr).toBe(0);
    });

    it('a stopped node makes check exit 4 while the others are still checked', async () => {
      const node3 = workers[1]!;
      process.kill(node3.sshdPid, 'SIGTERM');
      const r = await trustplay(['check', pb, ...args('--format', 'json')]);
      expect(r.code, r.stdout + r.stderr).toBe(4);
      const report = JSON.parse(r.stdout) as JsonReport;
      expect(report.hosts[node3.name]!.recap.unreachable).toBe(1);
      for (const n of env.lab.nodes.filter((x) => x !== node3)) {
        expect(report.hosts[n.name]!.recap.unreachable, n.name).toBe(0);
        expect(report.hosts[n.name]!.recap.ok, n.name).toBeGreaterThan(0);
      }
      expect(r.stderr + r.stdout).not.toMatch(/internal error/);
    });
  });
