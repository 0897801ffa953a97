/**
 * The whole seed procedure, undone: `trustplay run playbooks/fix-registry.yaml` on the lab, then
 * `trustplay restore` of its snapshot. Every file the run touched is byte-identical afterwards (with
 * mode and owner), the ServiceAccounts' pull secrets are back, and the CRI pull fails with x509
 * again, on a worker of each containerd version (1.6, 1.7, 2.1 with its version 3 file).
 * `restore --check` changes nothing; a corrupted blob is refused before anything is written;
 * snapshot files are private and the manifest holds no secret.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { LabNode } from '../lab/lab.js';
import { describeLab, LOGIN_MODES, useLab } from '../support/lab-fixture.js';
import { criPull, inNode, managedState as nodeState } from '../support/lab-node.js';
import { pullSecrets, trustplay } from '../snapshots/cli.js';

const pullError = (node: LabNode, ref: string): Promise<string> => criPull(node.hostSocket, ref);

/** Every secret value the lab holds: auth strings in the nodes' credential files, registry password, API tokens. */
async function labSecrets(nodes: LabNode[], extra: string[]): Promise<string[]> {
  const out = new Set(extra);
  for (const n of nodes) {
    for (const f of ['/root/.docker/config.json', '/var/lib/kubelet/config.json']) {
      const r = await inNode(n, `cat ${f}`);
      const doc = JSON.parse(r.stdout) as { auths: Record<string, { auth?: string }> };
      for (const e of Object.values(doc.auths)) if (e.auth) out.add(e.auth);
    }
  }
  return [...out].filter((s) => s.length >= 6);
}

// The same suite logged in as root and as a sudo user with become (a password on node1 and node3,
// NOPASSWD on node2 and node4: the other way round from the fix-registry suite, so each containerd
// version is reached both ways).
// On the sudo user's password nodes every command authenticates (no credential cache), which
// makes each CLI run a few times slower than as root on this 2-core machine.
vi.setConfig({ testTimeout: 120_000 });

for (const mode of LOGIN_MODES)
  describeLab(
    `restore of fix-registry.yaml on the lab ${mode.title} (master 1.6; workers on containerd 1.6, 1.7 and 2.1)`,
    () => {
      const handle = useLab({ nodes: 4, containerd: ['1.6', '1.6', '1.7', '2.1'], login: mode.login(4, true) });
      let dir: string;
      let stateDir: string;
      let runId = '';
      const before = new Map<string, string>();
      const afterRun = new Map<string, string>();
      const snapshot = (s: string) => ['--state-dir', s, '-i', handle.lab.inventoryPath];
      const states = async () =>
        new Map(await Promise.all(handle.lab.nodes.map(async (n) => [n.name, await nodeState(n)] as const)));

      beforeAll(async () => {
        dir = mkdtempSync(join(tmpdir(), 'tp-restore-'));
        stateDir = join(dir, 'state');
        for (const [k, v] of await states()) before.set(k, v);
      });
      afterAll(() => rmSync(dir, { recursive: true, force: true }));

      it('before: every worker pull fails with x509; the run fixes the fleet and leaves a snapshot', async () => {
        for (const n of handle.lab.nodes.slice(1))
          expect(await pullError(n, handle.lab.image.ref)).toMatch(/x509: certificate signed by unknown authority/);
        const t0 = Date.now();
        const r = await trustplay(['run', 'playbooks/fix-registry.yaml', ...snapshot(stateDir)]);
        console.log(`fix-registry run on 4 nodes: ${Date.now() - t0} ms wall`);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        runId = /snapshot (\S+) saved/.exec(r.stderr)?.[1] ?? '';
        expect(runId).not.toBe('');
        for (const n of handle.lab.nodes.slice(1)) expect(await pullError(n, handle.lab.image.ref)).toBe('');
        expect(await pullSecrets(handle.lab, 'default')).toEqual([]);
        for (const [k, v] of await states()) afterRun.set(k, v);
        // The run changed the workers' files (otherwise the restore below would prove nothing).
        for (const n of handle.lab.nodes.slice(1)) expect(afterRun.get(n.name)).not.toBe(before.get(n.name));
      });

      it('snapshot files are 0600 and directories 0700, and the manifest holds no secret value', async () => {
        const walk = (p: string): void => {
          const st = statSync(p);
          if (st.isDirectory()) {
            expect(st.mode & 0o777, p).toBe(0o700);
            for (const e of readdirSync(p)) walk(join(p, e));
          } else expect(st.mode & 0o777, p).toBe(0o600);
        };
        walk(stateDir);
        const manifest = readFileSync(join(stateDir, 'runs', `${runId}.json`), 'utf8');
        const auth = handle.lab.registries.auth?.auth;
        const secrets = await labSecrets(handle.lab.nodes, [
          ...(auth ? [auth.password] : []),
          ...Object.values(handle.lab.kube?.tokens ?? {}),
        ]);
        expect(secrets.length).toBeGreaterThan(2);
        // The blobs do hold the credential files (that is what restore puts back): the test can see them...
        const blobs = readdirSync(join(stateDir, 'blobs', 'sha256'))
          .map((b) => readFileSync(join(stateDir, 'blobs', 'sha256', b), 'utf8'))
          .join('\n');
        expect(secrets.some((s) => blobs.includes(s))).toBe(true);
        // ...but the manifest, which `snapshots show --format json` prints, never does.
        for (const s of secrets) expect(manifest.includes(s), 'a secret value is in the manifest').toBe(false);
        const show = await trustplay(['snapshots', 'show', runId, '--state-dir', stateDir]);
        for (const s of secrets) expect(show.stdout.includes(s)).toBe(false);
        // The sudo user's nodes keep config.toml root-only (0600), and the snapshot records that.
        expect(show.stdout).toContain(
          `file /etc/containerd/config.toml  mode ${handle.lab.loginUser ? '0600' : '0644'}`,
        );
      });

      it('restore --check reports what would change and changes nothing', async () => {
        const r = await trustplay(['restore', runId, '--check', '--diff', ...snapshot(stateDir)]);
        expect(r.code, r.stdout + r.stderr).toBe(2);
        expect(r.stdout).toContain('would restore /etc/containerd/config.toml');
        expect(r.stdout).toContain(
          'would set imagePullSecrets of serviceaccount default/default back to registry-test-pull, other-registry-pull',
        );
        expect(r.stdout).not.toMatch(/"auth": "(?!\*{8})/);
        for (const [k, v] of await states()) expect(v, k).toBe(afterRun.get(k));
        expect(await pullSecrets(handle.lab, 'default')).toEqual([]);
      });

      it('a corrupted blob is detected by its digest and the restore is refused before anything is written', async () => {
        const bad = join(dir, 'bad-state');
        cpSync(stateDir, bad, { recursive: true });
        const blobDir = join(bad, 'blobs', 'sha256');
        const victim = readdirSync(blobDir).sort()[0]!;
        const text = readFileSync(join(blobDir, victim));
        text[0] = text[0]! ^ 1;
        writeFileSync(join(blobDir, victim), text);
        const r = await trustplay(['restore', runId, ...snapshot(bad)]);
        expect(r.code).toBe(3);
        expect(r.stderr).toMatch(new RegExp(`blob ${victim.slice(0, 12)} is damaged.*nothing was changed`));
        for (const [k, v] of await states()) expect(v, k).toBe(afterRun.get(k));
        expect(await pullSecrets(handle.lab, 'default')).toEqual([]);
        // A missing manifest is refused the same way.
        const missing = await trustplay(['restore', 'no-such-run', ...snapshot(stateDir)]);
        expect(missing.code).toBe(3);
        expect(missing.stderr).toContain('no snapshot `no-such-run`');
      });

      let restoreId = '';
      it('restore puts every file back byte for byte with mode and owner, the pull secrets too, and x509 is back', async () => {
        const t0 = Date.now();
        const r = await trustplay(['restore', runId, ...snapshot(stateDir)]);
        console.log(`restore on 3 nodes: ${Date.now() - t0} ms wall`);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        expect(r.stdout).toContain('handler: Restart containerd (verified)');
        for (const [k, v] of await states()) expect(v, k).toBe(before.get(k));
        expect(await pullSecrets(handle.lab, 'default')).toEqual(['registry-test-pull', 'other-registry-pull']);
        expect(await pullSecrets(handle.lab, 'aegis')).toEqual(['registry-test-pull']);
        for (const n of handle.lab.nodes.slice(1))
          expect(await pullError(n, handle.lab.image.ref)).toMatch(/x509: certificate signed by unknown authority/);
        restoreId = /snapshot (\S+) saved/.exec(r.stderr)?.[1] ?? '';
        expect(restoreId).not.toBe('');
        // A second restore finds nothing to do.
        const again = await trustplay(['restore', runId, '--check', ...snapshot(stateDir)]);
        expect(again.code, again.stdout).toBe(0);
      });

      it('the restore was itself snapshotted: restoring that snapshot re-applies the fix', async () => {
        const r = await trustplay(['restore', restoreId, ...snapshot(stateDir)]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        for (const [k, v] of await states()) expect(v, k).toBe(afterRun.get(k));
        for (const n of handle.lab.nodes.slice(1)) expect(await pullError(n, handle.lab.image.ref)).toBe('');
        expect(await pullSecrets(handle.lab, 'default')).toEqual([]);
      });

      it('snapshots list shows the runs; prune --keep 1 keeps the newest and the blobs it needs', async () => {
        const list = await trustplay(['snapshots', 'list', '--state-dir', stateDir, '--format', 'json']);
        const entries = JSON.parse(list.stdout) as Array<{
          id: string;
          command: string;
          complete: boolean;
          hosts: string[];
        }>;
        expect(entries.map((e) => e.command)).toEqual([
          `restore ${restoreId}`,
          `restore ${runId}`,
          'run playbooks/fix-registry.yaml',
        ]);
        expect(entries.every((e) => e.complete)).toBe(true);
        const prune = await trustplay(['snapshots', 'prune', '--keep', '1', '--state-dir', stateDir]);
        expect(prune.code).toBe(0);
        expect(readdirSync(join(stateDir, 'runs'))).toEqual([`${entries[0]!.id}.json`]);
        const check = await trustplay(['restore', entries[0]!.id, '--check', ...snapshot(stateDir)]);
        expect(check.code, check.stderr).toBe(2);
      });

      it('facts shows trust and credential entries without values', async () => {
        const r = await trustplay(['facts', '-i', handle.lab.inventoryPath, '--format', 'json']);
        expect(r.code, r.stderr).toBe(0);
        const facts = JSON.parse(r.stdout) as {
          hosts: Record<
            string,
            {
              facts: {
                config: { config_path: string | null };
                certs_d: Array<{ registry: string; hosts_toml: boolean }>;
                credential_files: Array<{ registries: string[] }>;
              };
            }
          >;
        };
        const node2 = facts.hosts['node2']!.facts;
        expect(node2.config.config_path).toBe('/etc/containerd/certs.d');
        expect(node2.certs_d).toContainEqual(
          expect.objectContaining({ registry: handle.lab.registries.registry.host, hosts_toml: true }),
        );
        expect(node2.credential_files[0]!.registries).not.toContain(handle.lab.registries.registry.host);
        const secrets = await labSecrets(handle.lab.nodes, []);
        for (const s of secrets) expect(r.stdout.includes(s)).toBe(false);
      });

      it('drift on every worker (a deleted hosts.toml) is reported by check and repaired by run', async () => {
        // The fix-registry suite drifts its workers with the sudo logins the other way round:
        // between the two, every containerd version is drifted and repaired with NOPASSWD and
        // with a password.
        const workers = handle.lab.nodes.slice(1);
        const pb = 'playbooks/fix-registry.yaml';
        for (const n of workers) {
          const rm = await inNode(n, `rm /etc/containerd/certs.d/${handle.lab.registries.registry.host}/hosts.toml`);
          expect(rm.code, rm.stderr).toBe(0);
        }
        const check = await trustplay(['check', pb, ...snapshot(stateDir)]);
        expect(check.code, check.stdout + check.stderr).toBe(2);
        for (const n of workers)
          expect(check.stdout).toMatch(new RegExp(`^${n.name} \\| would change \\| Trust the registry's CA$`, 'm'));
        const r = await trustplay(['run', pb, ...snapshot(stateDir)]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        for (const [k, v] of await states()) expect(v, k).toBe(afterRun.get(k));
        for (const n of workers) expect(await pullError(n, handle.lab.image.ref)).toBe('');
      });

      it("facts is a run of the read-only node.facts module: the run's --limit, host lock, report and host variables", async () => {
        const node2 = handle.lab.nodes[1]!;
        const report = join(dir, 'facts-report.json');
        // The run's own host selection: a pattern matching nothing is the run's exit 3 and sentence.
        const none = await trustplay(['facts', '-i', handle.lab.inventoryPath, '--limit', 'no-such-*']);
        expect(none.code).toBe(3);
        expect(none.stderr).toContain('`no-such-*` matches no host in the inventory');
        // A host variable restore reads is shown where facts shows the node.
        const hold = await inNode(
          node2,
          'mkdir /run/trustplay.lock && (setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > /run/trustplay.lock/pid) && p=$(cat /run/trustplay.lock/pid) && set -- $(cat /proc/$p/stat) && printf "other-run ops@elsewhere pid 42\\nholder %s %s\\n" "$p" "${22}" > /run/trustplay.lock/owner',
        );
        expect(hold.code, hold.stderr).toBe(0);
        try {
          const r = await trustplay([
            'facts',
            '-i',
            handle.lab.inventoryPath,
            '--limit',
            `${node2.name},${handle.lab.nodes[2]!.name}`,
            '-e',
            'containerd_restart_timeout=7',
            '--lock-timeout',
            '1',
            '--report',
            report,
          ]);
          // node2's lock is held by another run: facts waits for it like any run, then says who holds it.
          expect(r.code, r.stdout + r.stderr).toBe(4);
          expect(r.stderr).toMatch(
            /node2: waiting for the lock held by trustplay run other-run from ops@elsewhere pid 42/,
          );
          expect(r.stdout).toMatch(/^node2:\n {2}UNREACHABLE: node2 is busy: another trustplay run \(other-run/m);
          expect(r.stdout).toContain(
            'restore restarts containerd with: systemctl restart containerd (waits 7 s for the CRI socket)',
          );
          const rep = JSON.parse(readFileSync(report, 'utf8')) as {
            hosts: Record<string, { tasks: Array<{ module: string }> }>;
          };
          expect(Object.keys(rep.hosts).sort()).toEqual([node2.name, handle.lab.nodes[2]!.name].sort());
          expect(rep.hosts[handle.lab.nodes[2]!.name]!.tasks.map((t) => t.module)).toEqual(['node.facts']);
        } finally {
          await inNode(node2, 'kill $(cat /run/trustplay.lock/pid); rm -rf /run/trustplay.lock');
        }
      });
    },
  );
