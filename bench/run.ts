/**
 * `npm run bench [-- SECTION...]`: prints figures (never asserts them). Sections: startup,
 * validate, mask (the secrets layer's maskers on 1 MB inputs), security (bounded inputs refused,
 * snapshot manifest verification), engine (converged check on 20 loopback SSH hosts), diagnose
 * (issue 20: `diagnose` of 20 lab nodes vs a converged check of them; root and the lab), relay (a
 * CRI call through the become relay vs the direct forward, on a 2-node lab), and, only when asked,
 * ansible
 * (trustplay vs Ansible on N loopback hosts: `npm run bench -- ansible [--hosts 20,100] [--reps 3]`,
 * minutes, writes bench/results/latest.json and latest.md), and short (issue 21's CI form: 20 hosts
 * converged, trustplay against the ssh2 floor, one rep, no Ansible: `npm run bench -- short`).
 * agent (issue 23, pull mode on an N-node lab: rollout times per --max-unavailable and the API
 * load per node per interval: `npm run bench -- agent [--nodes 20] [--max-unavailable 1,5,20]
 * [--intervals 3] [--interval 10]`, minutes, writes bench/results/agent.md) only when asked too.
 * scale (issue 21: a converged check of an N-host bench fleet at the default --forks, wall time,
 * peak RSS and machine CPU: `npm run bench -- scale [--hosts 1000] [--forks N]`, minutes) only
 * when asked too.
 * Default: all but ansible, short, agent and scale.
 */
import { benchStartup, benchValidate } from './validate-startup.js';
import { table } from './util.js';

const argv = process.argv.slice(2);
// Values of --flags are not section names.
const wanted = new Set(argv.filter((a, i) => !a.startsWith('-') && !argv[i - 1]?.startsWith('--')));
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const all = wanted.size === 0;

async function main(): Promise<void> {
  const rows: Array<Record<string, string | number>> = [];
  if (all || wanted.has('startup')) rows.push(...(await benchStartup()));
  if (all || wanted.has('validate')) rows.push(...(await benchValidate()));
  if (all || wanted.has('mask')) rows.push(...(await import('./mask.js')).benchMask());
  if (rows.length) process.stdout.write(table(rows) + '\n');
  if (all || wanted.has('security')) {
    const { benchSecurity } = await import('./security.js');
    process.stdout.write('\n' + table(await benchSecurity()) + '\n');
  }
  if (all || wanted.has('engine')) {
    const { benchEngine } = await import('./engine.js');
    process.stdout.write('\n' + table(await benchEngine()) + '\n');
  }
  if (all || wanted.has('diagnose')) {
    const { benchDiagnose } = await import('./diagnose.js');
    process.stdout.write('\n' + table(await benchDiagnose()) + '\n');
  }
  if (all || wanted.has('relay')) {
    const { benchRelay } = await import('./relay.js');
    process.stdout.write('\n' + table(await benchRelay()) + '\n');
  }
  if (wanted.has('short')) {
    const { shortCompare } = await import('./compare.js');
    const n = Number(flag('hosts') ?? 20);
    process.stdout.write(`${await shortCompare(n, (line) => process.stderr.write(`${line}\n`))}\n`);
  }
  if (wanted.has('scale')) {
    const { benchScale } = await import('./scale.js');
    const n = Number(flag('hosts') ?? 1000);
    const forks = flag('forks') === undefined ? undefined : Number(flag('forks'));
    const r = await benchScale(n, forks, (line) => process.stderr.write(`${line}\n`));
    const floor = (r.floorS[0] + r.floorS[1]) / 2;
    process.stdout.write(
      `\nbench scale: ${r.hosts} hosts, --forks ${r.forks}: converged check ${r.checkS.toFixed(1)} s (target < 30 s), peak RSS ${r.checkPeakMb} MB (target < 400 MB), machine CPU ${r.checkMachineCpuS.toFixed(1)} s; first run ${r.firstRunS.toFixed(1)} s; fleet start ${r.startFleetS.toFixed(0)} s\n` +
        `  ssh2 floor on the same fleet (connect + auth + one \`true\` per host), before / after the check: ${r.floorS.map((s) => s.toFixed(1)).join(' / ')} s, machine CPU ${r.floorMachineCpuS.map((s) => s.toFixed(1)).join(' / ')} s; check / ssh2 floor = ${(r.checkS / floor).toFixed(2)}x\n`,
    );
  }
  if (wanted.has('agent')) {
    const { benchAgent, agentMarkdown } = await import('./agent.js');
    const nodes = Number(flag('nodes') ?? 20);
    const maxUnavailable = (flag('max-unavailable') ?? '1,5,20').split(',').map(Number);
    const intervals = Number(flag('intervals') ?? 3);
    const intervalS = Number(flag('interval') ?? 10);
    if (
      !Number.isInteger(nodes) ||
      nodes < 1 ||
      maxUnavailable.some((n) => !Number.isInteger(n) || n < 1) ||
      !Number.isInteger(intervals) ||
      intervals < 1 ||
      !(intervalS >= 1)
    ) {
      throw new Error(
        'usage: npm run bench -- agent [--nodes 20] [--max-unavailable 1,5,20] [--intervals 3] [--interval 10]',
      );
    }
    const r = await benchAgent({
      nodes,
      maxUnavailable,
      intervals,
      intervalS,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    if (typeof r === 'string') process.stdout.write(`\nagent: ${r}\n`);
    else process.stdout.write(`\n${agentMarkdown(r)}\n`);
  }
  if (wanted.has('ansible')) {
    const { compare, markdown, writeResults } = await import('./compare.js');
    const hosts = (flag('hosts') ?? '20,100').split(',').map(Number);
    const reps = Number(flag('reps') ?? 3);
    if (hosts.some((n) => !Number.isInteger(n) || n < 1) || !Number.isInteger(reps) || reps < 1) {
      throw new Error('usage: npm run bench -- ansible [--hosts 20,100] [--reps 3]');
    }
    // Written after each host count too, so a failure at 100 hosts keeps the 20-host figures.
    const results = await compare(
      hosts,
      reps,
      (line) => process.stderr.write(`${line}\n`),
      async (r) => void (await writeResults(r)),
    );
    const files = await writeResults(results);
    process.stdout.write(`\n${markdown(results)}\nwritten: ${files.json}, ${files.md}\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
