/**
 * Jepsen-style fault injection on the lab: each seed picks a fault and when to inject it into a real
 * `trustplay run playbooks/fix-registry.yaml` over every node, then checks the promises trustplay
 * makes, counting every result:
 *
 * - no partial file: every managed file on every node equals its before or its after content;
 * - containerd serves the CRI on every node (within the stale-lock period) — never left on a config
 *   it rejects;
 * - `restore` of the faulted run's snapshot puts every node back byte for byte (which also proves
 *   nothing was changed without being saved first);
 * - the next run converges (exit 0), without waiting for a lock of the dead run.
 *
 * Faults: the controller killed with SIGKILL or stopped with SIGINT at a random point (before,
 * during and after file writes and restarts, during the health wait); a worker's certs.d on a full
 * tmpfs (disk full during the write); two runs of the same playbook at once (never both writing one
 * host); a check during a run (it sees before or after, never a failure from a mix); a restart that
 * hangs (containerd stopped, no socket: health timeout, rollback, host failed with both messages);
 * a worker's connection lost mid-run (its sshd killed, or frozen with SIGSTOP so the TCP connection
 * stays open without a FIN: the host is unreachable, exit 4, the others finish); a restart after
 * which containerd crash-loops (rollback); the registry down between trust and verify (the pulls
 * fail as unreachable, exit 1, and the trust stays: nothing is rolled back).
 *
 * The seed is printed; the same seed replays the same faults at the same offsets (timing on a busy
 * machine still varies, which is the point of running many).
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { nodeSshdPids, restartNodeSshd, startRegistry, stopRegistry, type Lab, type LabNode } from '../lab/lab.js';
import type { JsonReport } from '../../src/report/json.js';
import { startTrustplay, trustplay, type CliRun } from '../support/cli.js';
import { inNode, managedState } from '../support/lab-node.js';

export type FaultKind =
  | 'kill -9'
  | 'SIGINT'
  | 'disk full'
  | 'two runs'
  | 'check during run'
  | 'containerd hangs'
  | 'connection lost'
  | 'containerd crash-loops'
  | 'registry down';
export const FAULT_KINDS: FaultKind[] = [
  'kill -9',
  'SIGINT',
  'disk full',
  'two runs',
  'check during run',
  'containerd hangs',
  'connection lost',
  'containerd crash-loops',
  'registry down',
];

/** One seed's outcome. */
export interface SeedResult {
  seed: number;
  fault: FaultKind;
  /** What was done, e.g. "SIGKILL after 1830 ms" or "node4 certs.d full". */
  detail: string;
  converged: boolean;
  /** True, false, or null when the faulted run left no snapshot (nothing was changed). */
  restoredExactly: boolean | null;
  violations: string[];
}

/** mulberry32: a small, well-mixed PRNG whose whole state is the seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PLAYBOOK = 'playbooks/fix-registry.yaml';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type NodeFiles = Map<string, string>;

async function fleetFiles(lab: Lab): Promise<Map<string, NodeFiles>> {
  const out = new Map<string, NodeFiles>();
  await Promise.all(
    lab.nodes.map(async (n) => {
      const state = await managedState(n);
      out.set(
        n.name,
        new Map(
          state
            .trim()
            .split('\n')
            .map((l) => [l.split(' ')[0]!, l] as const),
        ),
      );
    }),
  );
  return out;
}

async function criServes(lab: Lab, node: LabNode, withinMs: number): Promise<boolean> {
  const { createCriClient } = await import('../../src/cri/client.js');
  const deadline = Date.now() + withinMs;
  for (;;) {
    const cri = createCriClient(node.hostSocket);
    try {
      await cri.version(5_000);
      return true;
    } catch {
      if (Date.now() > deadline) return false;
    } finally {
      await cri.close();
    }
    await sleep(500);
  }
}

/** The fleet before any run (pristine) and after a converging run, measured once. */
export interface Baseline {
  before: Map<string, NodeFiles>;
  after: Map<string, NodeFiles>;
  /** How long a converging run took: kill points are drawn up to a bit past it. */
  runMs: number;
}

export class Chaos {
  private constructor(
    readonly lab: Lab,
    readonly stateDir: string,
    readonly log: (s: string) => void,
  ) {}

  static async create(lab: Lab, log: (s: string) => void = () => undefined): Promise<Chaos> {
    return new Chaos(lab, await mkdtemp(join(tmpdir(), 'trustplay-chaos-')), log);
  }

  async dispose(): Promise<void> {
    await rm(this.stateDir, { recursive: true, force: true });
  }

  /** An OpenSSH client config with fast keepalives, for the connection-lost fault. */
  private async keepaliveConfig(): Promise<string> {
    const file = join(this.stateDir, 'ssh_config');
    await writeFile(file, 'Host *\n  ServerAliveInterval 1\n  ServerAliveCountMax 3\n');
    return file;
  }

  private args(...extra: string[]): string[] {
    return [...extra, '-i', this.lab.inventoryPath, '--state-dir', this.stateDir];
  }

  private async snapshots(): Promise<string[]> {
    return (await readdir(join(this.stateDir, 'runs')).catch(() => [] as string[]))
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.replace(/\.json$/, ''));
  }

  private async newSnapshot(before: string[]): Promise<string | undefined> {
    return (await this.snapshots()).find((s) => !before.includes(s));
  }

  /** Converge once from pristine and come back: the two states every fault is judged against. */
  async baseline(): Promise<Baseline> {
    const before = await fleetFiles(this.lab);
    const known = await this.snapshots();
    const t0 = Date.now();
    const r = await trustplay(['run', PLAYBOOK, ...this.args()]);
    const runMs = Date.now() - t0;
    if (r.code !== 0) throw new Error(`the baseline run failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
    const after = await fleetFiles(this.lab);
    const id = await this.newSnapshot(known);
    if (!id) throw new Error('the baseline run left no snapshot');
    const back = await trustplay(['restore', id, ...this.args()]);
    if (back.code !== 0) throw new Error(`restoring the baseline failed: ${back.stdout}${back.stderr}`);
    return { before, after, runMs };
  }

  /** Runs one seed: inject, then check every invariant, then put the fleet back to pristine. */
  async seed(seed: number, base: Baseline): Promise<SeedResult> {
    const random = rng(seed);
    const fault = FAULT_KINDS[Math.floor(random() * FAULT_KINDS.length)]!;
    const delay = Math.floor(random() * base.runMs * 1.1);
    const workers = this.lab.nodes.filter((n) => n.name !== 'node1');
    const victim = workers[Math.floor(random() * workers.length)]!;
    const violations: string[] = [];
    const known = await this.snapshots();
    let detail = '';
    let fullDisk: LabNode | undefined;

    switch (fault) {
      case 'kill -9':
      case 'SIGINT': {
        const run = startTrustplay(['run', PLAYBOOK, ...this.args()]);
        await sleep(delay);
        const sig = fault === 'kill -9' ? 'SIGKILL' : 'SIGINT';
        run.child.kill(sig);
        const r = await run.done;
        detail = `${sig} after ${delay} ms (exit ${r.code})`;
        if (fault === 'SIGINT' && ![0, 130].includes(r.code))
          violations.push(`a SIGINT'd run exited ${r.code}, not 130 (or 0 when it had finished)`);
        break;
      }
      case 'disk full': {
        // A 4 KiB tmpfs over the worker's certs.d, filled: writing ca.crt or hosts.toml fails ENOSPC.
        fullDisk = victim;
        const m = await inNode(
          victim,
          'mkdir -p /etc/containerd/certs.d && mount -t tmpfs -o size=4k tmpfs /etc/containerd/certs.d && (dd if=/dev/zero of=/etc/containerd/certs.d/.fill bs=1k count=64 2>/dev/null; true)',
        );
        if (m.code !== 0) throw new Error(`cannot fill ${victim.name}'s certs.d: ${m.stderr}`);
        const r = await trustplay(['run', PLAYBOOK, ...this.args()]);
        detail = `${victim.name} certs.d full (exit ${r.code})`;
        if (r.code !== 1) violations.push(`a run with ${victim.name}'s disk full exited ${r.code}, not 1`);
        if (!new RegExp(`^${victim.name} \\| FAILED`, 'm').test(r.stdout))
          violations.push(`${victim.name}'s full disk was not reported as its failure`);
        if (!/No space left on device/.test(r.stdout)) violations.push('the disk-full error does not say ENOSPC');
        const others = new RegExp(`^(?!${victim.name} )\\S+ \\| FAILED`, 'm');
        if (others.test(r.stdout)) violations.push('a host other than the full one failed');
        break;
      }
      case 'two runs': {
        const a = startTrustplay(['run', PLAYBOOK, ...this.args('--format', 'json')]);
        await sleep(Math.floor(delay / 4));
        const b = startTrustplay(['run', PLAYBOOK, ...this.args('--format', 'json')]);
        const [ra, rb] = await Promise.all([a.done, b.done]);
        detail = `second run ${Math.floor(delay / 4)} ms later (exits ${ra.code}, ${rb.code})`;
        const changedHosts = (r: CliRun) => {
          const rep = JSON.parse(r.stdout) as { hosts: Record<string, { recap: { changed: number } }> };
          return Object.entries(rep.hosts)
            .filter(([, h]) => h.recap.changed > 0)
            .map(([h]) => h);
        };
        const both = changedHosts(ra).filter((h) => changedHosts(rb).includes(h));
        if (both.length) violations.push(`both runs changed ${both.join(', ')}`);
        for (const [n, r] of [
          ['first', ra],
          ['second', rb],
        ] as const)
          if (r.code !== 0) violations.push(`the ${n} of two concurrent runs exited ${r.code}`);
        break;
      }
      case 'containerd hangs': {
        // The victim's restart hangs (containerd stopped, no socket): health timeout, rollback.
        const r = await trustplay([
          'run',
          new URL('./hang-restart.yaml', import.meta.url).pathname,
          ...this.args('--limit', victim.name),
        ]);
        detail = `${victim.name}'s restart hangs (exit ${r.code})`;
        if (r.code !== 1) violations.push(`a run whose restart hangs exited ${r.code}, not 1`);
        if (!/did not come back after the config change/.test(r.stdout))
          violations.push('the hung restart was not reported');
        if (!/was restored and containerd restarted/.test(r.stdout))
          violations.push('the hung restart was not rolled back');
        break;
      }
      case 'connection lost': {
        // Keepalives every second, 3 missed: a frozen peer is lost after ~3 s, not OpenSSH's default
        // of never (or trustplay's default of 45 s).
        const freeze = random() < 0.5;
        const report = join(this.stateDir, `report-${seed}.json`);
        const run = startTrustplay([
          'run',
          PLAYBOOK,
          ...this.args('--ssh-config', await this.keepaliveConfig(), '--report', report),
        ]);
        await sleep(delay);
        const pids = nodeSshdPids(victim);
        for (const pid of pids) process.kill(pid, freeze ? 'SIGSTOP' : 'SIGKILL');
        const r = await run.done;
        // Repair the fault before the invariants are checked: the node comes back.
        if (freeze) for (const pid of pids) process.kill(pid, 'SIGCONT');
        else await restartNodeSshd(victim);
        detail = `${victim.name}'s sshd ${freeze ? 'frozen (SIGSTOP)' : 'killed'} after ${delay} ms (exit ${r.code})`;
        const rep = JSON.parse(await readFile(report, 'utf8')) as JsonReport;
        const lost = Object.entries(rep.hosts).filter(([, h]) => h.recap.unreachable > 0);
        const failed = Object.entries(rep.hosts).filter(([, h]) => h.recap.failed > 0);
        if (failed.length)
          violations.push(
            `hosts failed after ${victim.name}'s connection was lost: ${failed.map(([n, h]) => `${n} (${h.tasks.find((t) => t.status === 'failed')?.error?.message ?? ''})`).join(', ')}`,
          );
        if (lost.some(([n]) => n !== victim.name))
          violations.push(`hosts other than ${victim.name} were unreachable: ${lost.map(([n]) => n).join(', ')}`);
        if (lost.length) {
          if (r.code !== 4) violations.push(`a run with ${victim.name} unreachable exited ${r.code}, not 4`);
          const why = rep.hosts[victim.name]!.tasks.find((t) => t.status === 'unreachable')?.error?.message ?? '';
          if (
            !/SSH connection (was lost|failed)|no SSH handshake|cannot connect|refused|ECONNRESET|timed out/i.test(why)
          )
            violations.push(`${victim.name}'s unreachable message does not say the connection was lost: ${why}`);
        } else if (r.code !== 0) {
          // The fault landed after the victim's last command: nothing was lost, the run is a success.
          violations.push(`a run whose hosts all finished exited ${r.code}: ${r.stdout.slice(-300)}`);
        }
        break;
      }
      case 'containerd crash-loops': {
        const r = await trustplay([
          'run',
          new URL('./crash-loop-restart.yaml', import.meta.url).pathname,
          ...this.args('--limit', victim.name),
        ]);
        detail = `${victim.name}'s containerd crash-loops after the restart (exit ${r.code})`;
        if (r.code !== 1) violations.push(`a run whose restart crash-loops exited ${r.code}, not 1`);
        if (!/did not stay up: it stopped answering/.test(r.stdout))
          violations.push(`the crash loop was not reported: ${r.stdout.slice(-400)}`);
        if (!/was restored and containerd restarted/.test(r.stdout))
          violations.push('the crash loop was not rolled back');
        const cfg = await inNode(victim, 'cat /etc/containerd/config.toml | sha256sum');
        const was = base.before.get(victim.name)?.get('/etc/containerd/config.toml') ?? '';
        if (!was.includes(cfg.stdout.split(' ')[0]!))
          violations.push(`${victim.name}'s config.toml was not rolled back`);
        break;
      }
      case 'registry down': {
        const report = join(this.stateDir, `report-${seed}.json`);
        const run = startTrustplay(['run', PLAYBOOK, ...this.args('--report', report)]);
        // Between trust and verify: as the verifying play starts, after every worker trusts it.
        await run.line(/^PLAY Verify every worker pulls the image/);
        await stopRegistry(this.lab, 'registry');
        const r = await run.done;
        await startRegistry(this.lab, 'registry');
        detail = `registry stopped as the verify play started (exit ${r.code})`;
        const rep = JSON.parse(await readFile(report, 'utf8')) as JsonReport;
        const pulls = Object.values(rep.hosts).flatMap((h) => h.tasks.filter((t) => t.module === 'image.pull.verify'));
        const failedPulls = pulls.filter((t) => t.status === 'failed');
        if (r.code !== (failedPulls.length ? 1 : 0))
          violations.push(`a run with ${failedPulls.length} failed pulls exited ${r.code}`);
        for (const t of failedPulls)
          if (!/cannot connect to registry\.test/.test(t.error?.message ?? ''))
            violations.push(`${t.host}'s pull failed with the wrong class: ${t.error?.message ?? ''}`);
        const others = Object.values(rep.hosts).flatMap((h) =>
          h.tasks.filter(
            (t) => t.module !== 'image.pull.verify' && (t.status === 'failed' || t.status === 'unreachable'),
          ),
        );
        if (others.length)
          violations.push(`tasks other than the pulls failed: ${others.map((t) => `${t.host}: ${t.task}`).join(', ')}`);
        // Nothing rolled back that should not be: every worker keeps the trust it was given.
        const now = await fleetFiles(this.lab);
        for (const w of workers)
          for (const [path, line] of now.get(w.name) ?? [])
            if (line !== (base.after.get(w.name)?.get(path) ?? `${path} absent`))
              violations.push(`${w.name}:${path} is not the trusted state after the registry went down`);
        break;
      }
      case 'check during run': {
        const run = startTrustplay(['run', PLAYBOOK, ...this.args()]);
        await sleep(delay);
        const c = await trustplay(['check', PLAYBOOK, ...this.args()]);
        const r = await run.done;
        detail = `check after ${delay} ms (check exit ${c.code}, run exit ${r.code})`;
        if (![0, 2].includes(c.code)) violations.push(`a check during a run exited ${c.code}: ${c.stdout.slice(-300)}`);
        if (r.code !== 0) violations.push(`the run a check overlapped exited ${r.code}`);
        break;
      }
    }

    if (fullDisk) {
      // Old content kept: the failed write left nothing behind in the full directory.
      const left = await inNode(fullDisk, 'find /etc/containerd/certs.d -type f ! -name .fill');
      if (left.stdout.trim()) violations.push(`${fullDisk.name}: the failed write left ${left.stdout.trim()}`);
      const u = await inNode(fullDisk, 'umount /etc/containerd/certs.d');
      if (u.code !== 0) throw new Error(`cannot unmount ${fullDisk.name}'s full certs.d: ${u.stderr}`);
    }

    // Invariant: no partial file; every managed file is its before or its after content.
    const now = await fleetFiles(this.lab);
    for (const [node, files] of now)
      for (const [path, line] of files) {
        const was = base.before.get(node)?.get(path) ?? `${path} absent`;
        const will = base.after.get(node)?.get(path) ?? `${path} absent`;
        if (line !== was && line !== will)
          violations.push(`${node}:${path} is neither its before nor its after content`);
      }
    // Invariant: containerd serves on every node within the stale-lock period.
    for (const n of this.lab.nodes)
      if (!(await criServes(this.lab, n, 30_000))) violations.push(`${n.name}: containerd does not serve the CRI`);

    // Invariant: restore of what the faulted run saved puts every node back byte for byte.
    let restoredExactly: boolean | null = null;
    const faulted = await this.snapshots().then((all) => all.filter((s) => !known.includes(s)));
    for (const id of faulted.sort().reverse()) {
      const r = await trustplay(['restore', id, ...this.args()]);
      if (r.code !== 0) violations.push(`restore ${id} exited ${r.code}: ${r.stdout.slice(-300)}`);
    }
    if (faulted.length) {
      const back = await fleetFiles(this.lab);
      restoredExactly = [...back].every(([node, files]) =>
        [...files].every(([path, line]) => line === (base.before.get(node)?.get(path) ?? `${path} absent`)),
      );
      if (!restoredExactly) violations.push('restore of the faulted run did not put every node back byte for byte');
    }

    // Invariant: the next run converges at once (a dead run's lock never makes it wait).
    const known2 = await this.snapshots();
    const again = await trustplay(['run', PLAYBOOK, ...this.args('--lock-timeout', '5')]);
    const converged = again.code === 0;
    if (!converged) violations.push(`the re-run exited ${again.code}: ${again.stdout.slice(-400)}`);

    // Back to pristine for the next seed.
    const id = await this.newSnapshot(known2);
    if (id) await trustplay(['restore', id, ...this.args()]);
    const result = { seed, fault, detail, converged, restoredExactly, violations };
    this.log(
      `seed ${seed}: ${fault}, ${detail}: ${converged ? 'converged' : 'DID NOT CONVERGE'}, restore ${restoredExactly === null ? 'n/a' : restoredExactly ? 'exact' : 'NOT EXACT'}${violations.length ? `, VIOLATIONS: ${violations.join('; ')}` : ''}`,
    );
    return result;
  }
}

/** The table `npm run chaos` prints: per fault, how many were injected and how each promise held. */
export function table(results: SeedResult[]): string {
  const rows = [['fault', 'injected', 'converged on re-run', 'restores byte-identical', 'invariant violations']];
  for (const kind of [...FAULT_KINDS, 'total' as const]) {
    const rs = kind === 'total' ? results : results.filter((r) => r.fault === kind);
    const restores = rs.filter((r) => r.restoredExactly !== null);
    rows.push([
      kind,
      String(rs.length),
      `${rs.filter((r) => r.converged).length}/${rs.length}`,
      `${restores.filter((r) => r.restoredExactly).length}/${restores.length}`,
      String(rs.reduce((n, r) => n + r.violations.length, 0)),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  const seeds = results.map((r) => r.seed).join(',');
  return `chaos: seeds ${seeds} (replay: npm run chaos -- --seeds ${seeds})\n${lines.join('\n')}\n`;
}
