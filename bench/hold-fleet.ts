/**
 * `node --import tsx bench/hold-fleet.ts N`: starts the bench fleet of N hosts with its project
 * (inventory, playbook), prints the trustplay `run` command to time against it (the first run
 * converges the fleet) and holds it until SIGINT/SIGTERM. SIGUSR1 resets every host to the
 * unconverged state (as `bench ansible` does before a first run) and prints `reset` when done, so
 * first runs can be timed again and again. For profiling by hand (bench/results/where-time-goes.md).
 */
import { startFleet } from './fleet.js';
import { makeProject, trustplayArgs } from './compare.js';

const n = Number(process.argv[2] ?? 20);
const fleet = await startFleet(n);
const p = await makeProject(fleet);
// Without --format json and --detailed-exitcode: add them, or --format jsonl for a timeline.
const cmd = ['node', ...trustplayArgs(p, 'converged').slice(0, -3)];
process.stdout.write(`${cmd.join(' ')}\n`);
let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  void fleet.stop().then(() => process.exit(0));
};
process.on('SIGUSR1', () => {
  void fleet.reset().then(() => process.stdout.write('reset\n'));
});
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
setInterval(() => undefined, 1 << 30);
