/**
 * The fault-injection suite in CI: one fixed seed per kind of fault (controller SIGKILL and SIGINT
 * mid-run, a full disk, two concurrent runs, a check during a run, a restart that hangs) on a
 * 10-node lab, every invariant checked (see chaos.ts). `npm run chaos` runs many more seeds and
 * prints the table.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { Chaos, table, type Baseline, type SeedResult } from './chaos.js';

// One seed per kind of fault: 7 kill -9, 9 SIGINT, 14 disk full, 1 two runs, 2 check during run,
// 4 containerd hangs.
const SEEDS = [7, 9, 14, 1, 2, 4];
const results: SeedResult[] = [];

describeLab('chaos: seeded faults on 10 nodes, invariants checked', () => {
  const env = useLab({ nodes: 10 });
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
