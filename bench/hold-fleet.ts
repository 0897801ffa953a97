/**
 * `node --import tsx bench/hold-fleet.ts N`: starts the bench fleet of N hosts with its project
 * (inventory, playbook), converges it once, prints the trustplay command to time against it and
 * holds it until SIGINT/SIGTERM. For profiling by hand (bench/results/where-time-goes.md).
 */
import { join } from 'node:path';
import { startFleet } from './fleet.js';
import { makeProject } from './compare.js';
import { root } from './util.js';

const n = Number(process.argv[2] ?? 20);
const fleet = await startFleet(n);
const p = await makeProject(fleet);
const cmd = [
  'node',
  join(root, 'dist/cli/main.js'),
  'run',
  p.tpPlaybook,
  '-i',
  p.tpInventory,
  '--state-dir',
  join(p.dir, 'state'),
  '--forks',
  String(n),
];
process.stdout.write(`${cmd.join(' ')}\n`);
let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  void fleet.stop().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
setInterval(() => undefined, 1 << 30);
