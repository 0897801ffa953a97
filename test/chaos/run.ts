/**
 * `npm run chaos -- [--runs N] [--seed S | --seeds A,B,...] [--nodes N] [--containerd 1.6,1.7,2.1]`:
 * brings up a lab (the containerd versions given are cycled over the nodes: a mixed fleet), or uses
 * the one named by TRUSTPLAY_LAB_DIR), runs N seeded faults (default 20, from a random base seed
 * that is printed), prints one line per seed as it goes and the table at the end. Exit 1 when any
 * invariant was violated. Needs root and the lab's Debian packages, like the lab.
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { labDown, labState, labUp } from '../lab/lab.js';
import { Chaos, table, type SeedResult } from './chaos.js';
import { CONTAINERD_VERSIONS, type ContainerdVersionKey } from '../lab/containerd-versions.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      seed: { type: 'string' },
      seeds: { type: 'string' },
      nodes: { type: 'string' },
      containerd: { type: 'string' },
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
  const versions = (values.containerd ?? '1.6').split(',').map((v) => v.trim());
  const unknown = versions.filter((v) => !(CONTAINERD_VERSIONS as readonly string[]).includes(v));
  if (unknown.length) {
    console.error(`--containerd takes ${CONTAINERD_VERSIONS.join(', ')}; not ${unknown.join(', ')}`);
    return 3;
  }
  const nodes = Number(values.nodes ?? 10);
  const containerd = Array.from({ length: nodes }, (_, i) => versions[i % versions.length] as ContainerdVersionKey);
  console.log(`chaos: seeds ${seeds[0]}${seeds.length > 1 ? `..${seeds.at(-1)}` : ''} (${seeds.length} faults)`);
  const shared = process.env.TRUSTPLAY_LAB_DIR;
  const lab = shared ? labState(shared) : await labUp({ nodes, containerd });
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
