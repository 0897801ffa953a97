/**
 * Ctrl-C during a 10-host run that restarts containerd, end to end with the real CLI on the lab:
 * the run stops in order (exit 130, a recap of what was not run, every node's lock released, the
 * snapshot completed and marked interrupted), no node is left with a config.toml its running
 * containerd has not loaded, a second run converges, and `restore` of the interrupted run puts back
 * byte for byte every file it saved. A config.toml left written but not restarted (the node-side
 * pending marker) is finished by the next run, or rolled back when containerd rejects it; a daemon
 * that lags a config_path set by hand is restarted, saying so, and an unrelated edit restarts
 * nothing (on containerd 2.x, which cannot report its registry settings, from trustplay's record
 * of the config it last restarted with, and an unrelated edit is said in a warning). The nodes run
 * containerd 1.6, 1.7 and 2.1, and each per-node case runs on one node of each. Then a `kill -9`
 * mid-run: the next run starts at once (the nodes dropped the dead run's locks) and converges.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Manifest } from '../../src/snapshots/store.js';
import type { LabNode } from '../lab/lab.js';
import { startTrustplay, trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, inNode, managedState } from '../support/lab-node.js';

const pb = 'playbooks/fix-registry.yaml';
// Ten nodes on a shared 2-core machine: one run takes tens of seconds under load.
const SLOW = 240_000;

/** `path -> "mode owner sha"` (or "absent") for every managed file of a node. */
function byPath(state: string): Map<string, string> {
  return new Map(
    state
      .trim()
      .split('\n')
      .map((l) => [l.split(' ')[0]!, l] as const),
  );
}

describeLab('interrupting a run (SIGINT, SIGTERM, kill -9) on 10 hosts', () => {
  // node1 (the master) 1.6, then the workers in threes: 1.6, 1.7, 2.1.
  const env = useLab({ nodes: 10, containerd: ['1.6', '1.6', '1.7', '2.1', '1.6', '1.7', '2.1', '1.6', '1.7', '2.1'] });
  /** Three workers from `first` (1-based node number): one per containerd version. */
  const trio = (first: number) => env.lab.nodes.slice(first - 1, first + 2);
  let state: string;
  const args = (...extra: string[]) => [...extra, '-i', env.lab.inventoryPath, '--state-dir', state];
  const workers = () => env.lab.nodes.filter((n) => n.name !== 'node1');
  const before = new Map<string, string>();
  const pristine = new Map<string, string>();
  /** Every worker back to its first config.toml (running it) and no registry trust, by hand. */
  const untrust = () =>
    Promise.all(
      workers().map(async (n) => {
        const r = await inNode(
          n,
          'cat > /etc/containerd/config.toml && rm -rf /etc/containerd/certs.d/* && systemctl restart containerd',
          pristine.get(n.name),
        );
        expect(r.code, r.stderr).toBe(0);
      }),
    );

  beforeAll(async () => {
    state = await mkdtemp(join(tmpdir(), 'trustplay-interrupt-'));
    for (const n of env.lab.nodes) {
      before.set(n.name, await managedState(n));
      pristine.set(n.name, (await inNode(n, 'cat /etc/containerd/config.toml')).stdout);
    }
  });
  afterAll(async () => {
    if (state) await rm(state, { recursive: true, force: true });
  });

  const locks = async (nodes: LabNode[]) =>
    (
      await Promise.all(
        nodes.map(async (n) => ((await inNode(n, 'ls -d /run/trustplay.lock')).code === 0 ? [n.name] : [])),
      )
    ).flat();

  let interrupted = '';
  it(
    'SIGINT after the first change: exit 130, recap of what was not run, locks released, snapshot marked interrupted',
    async () => {
      const run = startTrustplay(['run', pb, ...args()]);
      await run.line(/^node\d+ \| changed \| Trust the registry's CA$/);
      run.child.kill('SIGINT');
      const r = await run.done;
      expect(r.code, r.stdout + r.stderr).toBe(130);
      expect(r.stderr).toMatch(/SIGINT: stopping — no new change starts/);
      const lines = r.stdout.trim().split('\n');
      expect(lines.at(-1)).toMatch(
        /^interrupted by SIGINT: \d+ tasks? not run on .*; changes in flight were finished or rolled back \(exit 130\) in /,
      );
      expect(r.stdout).toMatch(/^RECAP$/m);
      expect(r.stdout).toMatch(/\| skipped \| .*\(not run: interrupted by SIGINT/);
      expect(await locks(env.lab.nodes)).toEqual([]);
      interrupted = (await readdir(join(state, 'runs')))[0]!.replace(/\.json$/, '');
      const m = JSON.parse(await readFile(join(state, 'runs', `${interrupted}.json`), 'utf8')) as Manifest;
      expect(m.complete).toBe(true);
      expect(m.interrupted).toMatchObject({ signal: 'SIGINT' });
    },
    SLOW,
  );

  it(
    'no worker is left with a config.toml its containerd has not loaded: a changed config was restarted',
    async () => {
      for (const n of workers()) {
        const cfg = await inNode(
          n,
          `grep -Ec "config_path = [\\"']/etc/containerd/certs.d[\\"']" /etc/containerd/config.toml`,
        );
        if (cfg.stdout.trim() !== '1') continue;
        // The restart ran (its health check passed): the daemon pulls with the new trust.
        expect(await criPull(n.hostSocket, env.lab.image.ref, { fresh: true, timeoutMs: 60_000 }), n.name).toBe('');
      }
    },
    SLOW,
  );

  it(
    'a second run converges, and check is clean',
    async () => {
      const r = await trustplay(['run', pb, ...args()]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const c = await trustplay(['check', pb, ...args()]);
      expect(c.code, c.stdout + c.stderr).toBe(0);
    },
    SLOW,
  );

  it(
    'restore of the interrupted run puts back byte for byte every file it saved',
    async () => {
      const m = JSON.parse(await readFile(join(state, 'runs', `${interrupted}.json`), 'utf8')) as Manifest;
      const r = await trustplay(['restore', interrupted, ...args()]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      let files = 0;
      for (const n of env.lab.nodes) {
        const was = byPath(before.get(n.name)!);
        const now = byPath(await managedState(n));
        for (const res of m.hosts[n.name]?.resources ?? []) {
          if (res.kind !== 'file') continue;
          files++;
          expect(now.get(res.path) ?? `${res.path} absent`, `${n.name}:${res.path}`).toBe(
            was.get(res.path) ?? `${res.path} absent`,
          );
        }
      }
      expect(files).toBeGreaterThan(0);
    },
    SLOW,
  );

  it(
    "`check | head` exits with the run's code (drift: 2) and releases every lock",
    async () => {
      // The fleet is back in the interrupted run's before-state: check finds drift.
      const out = await new Promise<string>((resolve) =>
        execFile(
          'bash',
          [
            '-c',
            `node --import tsx src/cli/main.ts check ${pb} -i ${env.lab.inventoryPath} --state-dir ${state} | head -n 1; echo "exit \${PIPESTATUS[0]}"`,
          ],
          { env: { ...process.env, CI: '' }, timeout: 180_000 },
          (_e, stdout) => resolve(String(stdout)),
        ),
      );
      expect(out.trim().split('\n')).toEqual([`trustplay check ${pb} (10 hosts)`, 'exit 2']);
      expect(await locks(env.lab.nodes)).toEqual([]);
    },
    SLOW,
  );

  it(
    '--lock-timeout 8 waits 8 s, shows who holds the lock while waiting, then names the holder',
    async () => {
      const node2 = env.lab.nodes[1]!;
      // Another run's lock, held by a live process and freshly refreshed.
      const hold = await inNode(
        node2,
        'mkdir /run/trustplay.lock && (setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > /run/trustplay.lock/pid) && p=$(cat /run/trustplay.lock/pid) && set -- $(cat /proc/$p/stat) && printf "other-run ops@elsewhere pid 42\\nholder %s %s\\n" "$p" "${22}" > /run/trustplay.lock/owner',
      );
      expect(hold.code, hold.stderr).toBe(0);
      try {
        const t0 = Date.now();
        const r = await trustplay(['check', pb, ...args('--limit', node2.name, '--lock-timeout', '8')]);
        const waited = Date.now() - t0;
        expect(r.code, r.stdout + r.stderr).toBe(4);
        expect(r.stdout).toMatch(
          /^node2 \| waiting for the lock held by trustplay run other-run from ops@elsewhere pid 42, holder alive, last seen \d+s ago \(up to 8s\)$/m,
        );
        expect(r.stdout).toMatch(
          /node2 is busy: another trustplay run \(other-run from ops@elsewhere pid 42, holder alive, last seen \d+s ago\) holds \/run\/trustplay.lock; waited 8s/,
        );
        expect(waited).toBeGreaterThanOrEqual(8000);
      } finally {
        await inNode(node2, 'kill $(cat /run/trustplay.lock/pid); rm -rf /run/trustplay.lock');
      }
    },
    SLOW,
  );

  // As a run killed between writing config.toml and restarting containerd leaves a node: the file
  // edited, the marker with the config before it, containerd still running the old one.
  const leavePending = (node: LabNode, edit: string) =>
    inNode(
      node,
      `set -e; cd /etc/containerd; m=$(base64 -w0 < config.toml); printf '{"trustplay":"pending-restart","previous":"%s","mode":%d,"uid":0,"gid":0}\\n' "$m" "$((0$(stat -c %a config.toml)))" > config.toml.trustplay-pending; ${edit}`,
    );

  // The CRI registry table's config_path as the lab's `config default` leaves it ('' on 2.1, "" on
  // 1.x), set to certs.d: the first config_path after the table header, whichever plugin holds it.
  const setConfigPath = `sed -i '/\\.registry\\]$/,/config_path/ s|config_path = .*|config_path = "/etc/containerd/certs.d"|' config.toml && grep -q 'certs.d"' config.toml`;

  it(
    'a config.toml written but not restarted by a dead run is finished by the next run (restart, health check), on 1.6, 1.7 and 2.1',
    async () => {
      for (const node of trio(2)) {
        const r0 = await leavePending(node, setConfigPath);
        expect(r0.code, r0.stderr).toBe(0);
        const check = await trustplay(['check', pb, ...args('--limit', node.name)]);
        expect(check.code, check.stdout).toBe(2);
        expect(check.stdout).toMatch(/would finish the change an interrupted trustplay run left/);
        const r = await trustplay(['run', pb, ...args('--limit', node.name)]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        expect(r.stdout).toMatch(
          /^ +\| {3}finish the change an interrupted trustplay run left: \/etc\/containerd\/config\.toml was written but containerd was not restarted/m,
        );
        // Said once: the next task of the run (node.creds.wipe) sees the marker as this run's own.
        expect(r.stdout.match(/finish the change an interrupted/g), node.name).toHaveLength(1);
        expect(r.stdout).toMatch(
          new RegExp(`^${node.name} \\| changed \\| handler: Restart containerd \\(verified\\)$`, 'm'),
        );
        expect((await inNode(node, 'ls /etc/containerd/config.toml.trustplay-pending')).code, node.name).not.toBe(0);
      }
    },
    SLOW,
  );

  it(
    'a pending config.toml that containerd rejects is rolled back to the config before it, on 1.6, 1.7 and 2.1',
    async () => {
      for (const node of trio(5)) {
        const original = (await inNode(node, 'sha256sum < /etc/containerd/config.toml')).stdout;
        const r0 = await leavePending(
          node,
          `sed -i 's|max_concurrent_downloads = 3|max_concurrent_downloads = "three"|' config.toml; grep -q '"three"' config.toml`,
        );
        expect(r0.code, r0.stderr).toBe(0);
        const r = await trustplay(['run', pb, ...args('--limit', node.name)]);
        expect(r.code, r.stdout + r.stderr).toBe(1);
        expect(r.stdout).toMatch(/the previous \/etc\/containerd\/config\.toml was restored and containerd restarted/);
        expect((await inNode(node, 'sha256sum < /etc/containerd/config.toml')).stdout, node.name).toBe(original);
        expect((await inNode(node, 'ls /etc/containerd/config.toml.trustplay-pending')).code).not.toBe(0);
        // Settled: the next run converges.
        const again = await trustplay(['run', pb, ...args('--limit', node.name)]);
        expect(again.code, again.stdout + again.stderr).toBe(0);
      }
    },
    SLOW,
  );

  it(
    "a daemon that lags config.toml's registry settings (edited by hand, no restart) is restarted, saying so, on 1.6, 1.7 and 2.1; an unrelated edit restarts nothing",
    async () => {
      // containerd last restarted by trustplay with config_path other.d; then someone points the
      // file at certs.d by hand and does not restart it.
      const otherDir = join(state, 'other-dir.yaml');
      await writeFile(
        otherDir,
        [
          '- hosts: workers',
          '  tasks:',
          '    - containerd.tls:',
          '        registry: "{{ registry }}"',
          '        ca: "{{ registry_ca }}"',
          '        config_path: /etc/containerd/other.d',
          '',
        ].join('\n'),
      );
      for (const node of trio(8)) {
        const v2 = node.containerd.version === '2.1';
        const first = await trustplay(['run', otherDir, ...args('--limit', node.name)]);
        expect(first.code, first.stdout + first.stderr).toBe(0);
        const edit = await inNode(
          node,
          `sed -i 's|/etc/containerd/other.d|/etc/containerd/certs.d|' /etc/containerd/config.toml && grep -q 'certs.d' /etc/containerd/config.toml`,
        );
        expect(edit.code, edit.stderr).toBe(0);
        const check = await trustplay(['check', pb, ...args('--limit', node.name)]);
        expect(check.code, check.stdout).toBe(2);
        expect(check.stdout).toContain(
          v2
            ? 'would restart containerd: /etc/containerd/config.toml changed since trustplay last restarted containerd (config_path was "/etc/containerd/other.d", the file says "/etc/containerd/certs.d"), and containerd 2.x does not report the registry settings it runs with, so the trust in the file may not be in effect'
            : 'would restart containerd: it runs with config_path "/etc/containerd/other.d" but /etc/containerd/config.toml says "/etc/containerd/certs.d" (changed after containerd started), so the trust in the file is not in effect',
        );
        const r = await trustplay(['run', pb, ...args('--limit', node.name)]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        expect(r.stdout).toMatch(
          new RegExp(`^${node.name} \\| changed \\| handler: Restart containerd \\(verified\\)$`, 'm'),
        );
        // The restart put the trust in effect: the run's own verify pull passed (exit 0).
        const other = await inNode(
          node,
          `sed -i 's|max_concurrent_downloads = 3|max_concurrent_downloads = 4|' /etc/containerd/config.toml && grep -q 'downloads = 4' /etc/containerd/config.toml`,
        );
        expect(other.code, other.stderr).toBe(0);
        const again = await trustplay(['run', pb, ...args('--limit', node.name)]);
        expect(again.code, again.stdout + again.stderr).toBe(0);
        expect(again.stdout).toMatch(new RegExp(`^${node.name} +ok=\\d+ +changed=0 `, 'm'));
        // Where only trustplay's record can tell (2.x), the unrelated edit is said, not acted on.
        if (v2)
          expect(again.stdout).toMatch(
            /changed since trustplay last restarted containerd, outside the registry settings/,
          );
      }
    },
    SLOW,
  );

  it(
    'SIGTERM exits 143; kill -9 mid-run: the next run starts at once (no stale lock to wait for) and converges',
    async () => {
      // The per-node cases above converged every worker: give this run changes to make again.
      await untrust();
      const term = startTrustplay(['run', pb, ...args()]);
      await term.line(/^node\d+ \| changed \| /);
      term.child.kill('SIGTERM');
      expect((await term.done).code).toBe(143);
      expect(await locks(env.lab.nodes)).toEqual([]);

      await untrust();
      const killed = startTrustplay(['run', pb, ...args()]);
      await killed.line(/^node\d+ \| changed \| /);
      killed.child.kill('SIGKILL');
      await killed.done;
      // With a lock timeout of 1 s, any lock the dead run left would make the re-run exit 4 (busy).
      const r = await trustplay(['run', pb, ...args('--lock-timeout', '1')]);
      expect(r.stdout + r.stderr).not.toMatch(/busy|waiting for the lock/);
      // Wherever the kill landed (a config.toml written, its restart not yet run), the re-run
      // finishes the change: every pull verifies.
      expect(r.code, r.stdout + r.stderr).toBe(0);
    },
    SLOW,
  );
});
