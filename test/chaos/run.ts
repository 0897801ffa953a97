/**
 * `npm run chaos -- [--runs N] [--seed S | --seeds A,B,...] [--nodes N]`: brings up a lab (or uses
 * the one named by TRUSTPLAY_LAB_DIR), runs N seeded faults (default 20, from a random base seed
 * that is printed), prints one line per seed as it goes and the table at the end. Exit 1 when any
 * invariant was violated. Needs root and the lab's Debian packages, like the lab.
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { labDown, labState, labUp } from '../lab/lab.js';
import { Chaos, table, type SeedResult } from './chaos.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      seed: { type: 'string' },
      seeds: { type: 'string' },
      nodes: { type: 'string' },
    },
  });
  const base = values.seed !== undefined ? Number(values.seed) : randomInt(1, 1_000_000);
  const seeds = values.seeds
    ? values.seeds.split(',').map(Number)
    : Array.from({ length: Number(values.runs ?? 20) }, (_, i) => base + i);
  if (seeds.some((s) => !Number.isInteger(s))) {
    console.error('--seed, --seeds and --runs take integers');
    return 3;
  }
  console.log(`chaos: seeds ${seeds[0]}${seeds.length > 1 ? `..${seeds.at(-1)}` : ''} (${seeds.length} faults)`);
  const shared = process.env.TRUSTPLAY_LAB_DIR;
  const lab = shared ? labState(shared) : await labUp({ nodes: Number(values.nodes ?? 10) });
  const chaos = await Chaos.create(lab, (l) => console.log(l));
  const results: SeedResult[] = [];
  try {
    const base = await chaos.baseline();
    console.log(`baseline: a converging run takes ${base.runMs} ms on ${lab.nodes.length} nodes`);
    for (const s of seeds) results.push(await chaos.seed(s, base));
  } finally {
    await chaos.dispose();
    if (!shared) await labDown(lab);
  }
  process.stdout.write(table(results));
  return results.some((r) => r.violations.length) ? 1 : 0;
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.stack : String(e));
    process.exitCode = 1;
  },
);
