/**
 * The fault-injection suite in CI: one fixed seed per kind of fault (controller SIGKILL and SIGINT
 * mid-run, a full disk, two concurrent runs, a check during a run, a restart that hangs, a worker's
 * sshd killed and one frozen mid-run, a restart after which containerd crash-loops, the registry
 * down between trust and verify) on a 10-node lab of containerd 1.6, 1.7 and 2.1 nodes, every
 * invariant checked (see chaos.ts).
 * `npm run chaos` runs many more seeds and prints the table.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { Chaos, table, type Baseline, type SeedResult } from './chaos.js';

// One seed per kind of fault: 7 kill -9, 8 SIGINT, 12 disk full, 18 two runs, 6 check during run,
// 1 containerd hangs, 2 and 3 connection lost (sshd killed, sshd frozen), 30 containerd
// crash-loops, 4 registry down.
const SEEDS = [7, 8, 12, 18, 6, 1, 2, 3, 30, 4];
const results: SeedResult[] = [];

describeLab('chaos: seeded faults on 10 nodes (containerd 1.6, 1.7, 2.1), invariants checked', () => {
  // A mixed fleet, as `npm run chaos -- --containerd 1.6,1.7,2.1` cycles it: node1 1.6, node2 1.7,
  // node3 2.1, node4 1.6, ... (4 x 1.6, 3 x 1.7, 3 x 2.1).
  const env = useLab({
    nodes: 10,
    containerd: Array.from({ length: 10 }, (_, i) => (['1.6', '1.7', '2.1'] as const)[i % 3]!),
  });
  let chaos: Chaos;
  let base: Baseline;
  beforeAll(async () => {
    chaos = await Chaos.create(env.lab, (l) => console.log(l));
    base = await chaos.baseline();
  }, 300_000);
  afterAll(async () => {
    if (results.length) console.log(table(results));
    await chaos?.dispose();
  });

  for (const seed of SEEDS)
    it(`seed ${seed}: no invariant is violated`, async () => {
      const r = await chaos.seed(seed, base);
      results.push(r);
      expect(r.violations, `${r.fault}: ${r.detail}`).toEqual([]);
      expect(r.converged).toBe(true);
    }, 300_000);
});
