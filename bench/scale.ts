/**
 * Issue 21 at fleet scale: `npm run bench -- scale [--hosts 1000] [--forks N]`. Starts the bench
 * fleet (bench/fleet.ts), converges it with one unmeasured `trustplay run`, then measures a
 * converged `trustplay check` with `--forks` at its default (or the one given): wall time, the
 * CLI's peak RSS, and the machine's CPU (busy seconds from /proc/stat). The ssh2 floor (every
 * host at once: connect, auth, one `true`; bench/ssh2-floor.mjs) is measured on the same fleet just
 * before and just after the check, so the check's time reads against what any ssh2-based tool pays
 * on this machine at this hour. Printed, never asserted; Ansible is not run at this size
 * (bench/results/latest.md has its 20- and 100-host figures).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeProject, runSsh2Floor } from './compare.js';
import { startFleet } from './fleet.js';
import { root, runNode } from './util.js';

function busyTicks(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
  return f.reduce((a, b) => a + b, 0) - f[3]! - (f[4] ?? 0);
}

export interface ScaleResult {
  hosts: number;
  forks: string;
  startFleetS: number;
  firstRunS: number;
  checkS: number;
  checkPeakMb: number;
  checkMachineCpuS: number;
  checkExit: number;
  /** The ssh2 floor before and after the check: wall seconds and machine CPU seconds. */
  floorS: [number, number];
  floorMachineCpuS: [number, number];
}

export async function benchScale(
  n: number,
  forks: number | undefined,
  log: (s: string) => void = () => undefined,
): Promise<ScaleResult> {
  const t0 = Date.now();
  log(`starting ${n} hosts...`);
  const fleet = await startFleet(n);
  const startFleetS = (Date.now() - t0) / 1000;
  log(`${n} hosts up in ${startFleetS.toFixed(1)} s`);
  try {
    const p = await makeProject(fleet);
    const base = [join(root, 'dist/cli/main.js')];
    const common = ['-i', p.tpInventory, '--state-dir', join(p.dir, 'state'), '--format', 'json'];
    if (forks !== undefined) common.push('--forks', String(forks));
    const first = await runNode([...base, 'run', p.tpPlaybook, ...common]);
    if (first.code !== 0) throw new Error(`the first run exited ${first.code}: ${first.stderr.slice(-2000)}`);
    log(`first run ${(first.ms / 1000).toFixed(1)} s`);
    // What `f` took and the machine's CPU seconds meanwhile.
    const withCpu = async <T extends { ms: number }>(f: () => Promise<T>): Promise<T & { cpu: number }> => {
      const before = busyTicks();
      const r = await f();
      return { ...r, cpu: (busyTicks() - before) / 100 };
    };
    const floor = async (): Promise<{ s: number; cpu: number }> => {
      const r = await withCpu(() => runSsh2Floor(fleet));
      return { s: r.ms / 1000, cpu: r.cpu };
    };
    const floorBefore = await floor();
    log(`ssh2 floor ${floorBefore.s.toFixed(1)} s`);
    const check = await withCpu(() => runNode([...base, 'check', p.tpPlaybook, ...common]));
    if (check.code !== 0) throw new Error(`the check exited ${check.code}: ${check.stderr.slice(-2000)}`);
    const floorAfter = await floor();
    return {
      hosts: n,
      forks: forks === undefined ? 'default (50)' : String(forks),
      startFleetS,
      firstRunS: first.ms / 1000,
      checkS: check.ms / 1000,
      checkPeakMb: Math.round(check.maxRssKb / 1024),
      checkMachineCpuS: check.cpu,
      checkExit: check.code,
      floorS: [floorBefore.s, floorAfter.s],
      floorMachineCpuS: [floorBefore.cpu, floorAfter.cpu],
    };
  } finally {
    await fleet.stop();
  }
}
