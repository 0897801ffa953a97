/**
 * Issue 9: trustplay against Ansible on the same loopback fleet, same work, same run.
 *
 * Work (both tools): trust a registry's CA through `certs.d/<registry>/hosts.toml` + `ca.crt`,
 * ensure `config_path` in config.toml (already set on the fleet, so no restart in either tool), and
 * remove the registry's entry from /root/.docker/config.json keeping another registry's entry.
 * trustplay runs through its real CLI (dist/cli/main.js, built by `npm run bench`); Ansible through
 * `ansible-playbook` with the tuned ansible.cfg in bench/ansible.
 *
 * Phases per tool: first run (every host changes; the fleet is reset before it), converged run (no
 * changes), check (`trustplay check` / `ansible-playbook --check`); plus the floor: N parallel
 * `ssh -o ControlMaster=no host true`. Each rep runs the tools in alternating order (A B, B A...)
 * so machine noise hits both; medians are reported. Ansible's control masters are closed after
 * every run, so each of its runs starts cold, like trustplay's (which keeps no connection between
 * runs).
 */
import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { renderHostsToml } from '../src/containerd/hosts-toml.js';
import { selfSignedCa } from '../test/lab/certs.js';
import {
  BENCH_REGISTRY,
  CERTS_D,
  fleetConfigToml,
  OTHER_REGISTRY,
  pool,
  startFleet,
  type Fleet,
  type SshCounts,
} from './fleet.js';
import { median, root, runNode } from './util.js';

const run = promisify(execFile);

export type Tool = 'trustplay' | 'ansible';
export type Phase = 'first' | 'converged' | 'check';
const PHASES: Phase[] = ['first', 'converged', 'check'];

/** One measured run. */
export interface Sample {
  ms: number;
  /** trustplay: the CLI process's peak RSS. Ansible: the largest process of the tree (GNU time %M). */
  peakRssKb: number;
  /** Ansible only: peak of the summed RSS of ansible-playbook's whole process tree (forks + ssh), sampled every 100 ms. */
  peakTreeRssKb?: number;
  /** Per host, averaged: SSH connections and session channels (sshd log). */
  connectionsPerHost: number;
  sessionsPerHost: number;
  /** Hosts that reported a change. */
  changedHosts: number;
}

/** Medians over reps for one (hosts, tool, phase). */
export interface PhaseResult {
  hosts: number;
  tool: Tool | 'floor' | 'ssh2-floor';
  phase: Phase | 'ssh true' | 'ssh2 true';
  medianMs: number;
  samplesMs: number[];
  peakRssMb: number;
  peakTreeRssMb?: number;
  connectionsPerHost: number;
  sessionsPerHost: number;
  changedHosts: number;
}

export interface CompareResults {
  date: string;
  machine: { cpus: number; model: string; node: string; ansible: string; openssh: string };
  reps: number;
  notes: string[];
  results: PhaseResult[];
}

// Processes this benchmark started and has not reaped yet, stopped by pid on SIGINT; `true` = the
// pid leads its own process group (ansible-playbook under GNU time), so the whole group goes.
const live = new Map<number, boolean>();

function stopLive(pid: number, group: boolean): void {
  try {
    process.kill(group ? -pid : pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function treeRss(rootPid: number): { sumKb: number; maxKb: number } {
  const parent = new Map<number, number>();
  const rss = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(e), Number(f[1]));
      rss.set(Number(e), Number(f[21]) * 4);
    } catch {
      // exited while we looked
    }
  }
  const tree = new Set([rootPid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (!tree.has(pid) && tree.has(ppid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  let sumKb = 0;
  let maxKb = 0;
  for (const pid of tree) {
    const kb = rss.get(pid) ?? 0;
    sumKb += kb;
    maxKb = Math.max(maxKb, kb);
  }
  return { sumKb, maxKb };
}

/** Spawns a command, samples its process tree's RSS, resolves when it exits. */
function spawnMeasured(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<{ ms: number; code: number; stdout: string; stderr: string; peakTreeKb: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    // Its own process group, so a timeout or Ctrl-C stops ansible-playbook and its forks, not just `time`.
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const pid = child.pid;
    if (pid === undefined) {
      reject(new Error(`could not start ${cmd}`));
      return;
    }
    live.set(pid, true);
    let stdout = '';
    let stderr = '';
    let peakTreeKb = 0;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const sampler = setInterval(() => (peakTreeKb = Math.max(peakTreeKb, treeRss(pid).sumKb)), 100);
    const killer = setTimeout(() => stopLive(pid, true), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      clearInterval(sampler);
      clearTimeout(killer);
      live.delete(pid);
      resolve({ ms, code: code ?? (signal ? 128 : -1), stdout, stderr, peakTreeKb });
    });
  });
}

/** A fleet plus everything both tools need to run on it. */
export interface Project {
  dir: string;
  fleet: Fleet;
  ca: string;
  hostsToml: string;
  hostsDir: string;
  tpPlaybook: string;
  tpInventory: string;
  ansiblePlaybook: string;
  ansibleInventory: string;
  ansibleHome: string;
  runs: number;
}

/** Writes the CA, the hosts.toml both tools must produce, and both inventories for a fleet. */
export async function makeProject(fleet: Fleet): Promise<Project> {
  const dir = join(fleet.dir, 'compare');
  await mkdir(dir, { recursive: true });
  const caFile = (await selfSignedCa(dir, 'ca', 'trustplay bench CA', 3650)).cert;
  const ca = await readFile(caFile, 'utf8');
  const hostsDir = `${CERTS_D}/${BENCH_REGISTRY}`;
  const hostsToml = renderHostsToml({ registry: BENCH_REGISTRY, ca: `${hostsDir}/ca.crt` });
  const hostsTomlFile = join(dir, 'hosts.toml');
  await writeFile(hostsTomlFile, hostsToml);

  const tpInventory = join(dir, 'trustplay-inventory.yaml');
  await writeFile(
    tpInventory,
    [
      `ssh: { known_hosts: ${fleet.knownHosts} }`,
      `vars: { registry: "${BENCH_REGISTRY}", ca_file: ${caFile} }`,
      'hosts:',
      ...fleet.hosts.map(
        (h) =>
          `  ${h.name}: { address: ${h.address}, port: ${h.port}, user: root, identity_file: ${fleet.identityFile} }`,
      ),
      '',
    ].join('\n'),
  );
  const ansibleInventory = join(dir, 'ansible-inventory.yaml');
  await writeFile(
    ansibleInventory,
    [
      'all:',
      '  vars:',
      '    ansible_user: root',
      `    ansible_ssh_private_key_file: ${fleet.identityFile}`,
      `    registry: "${BENCH_REGISTRY}"`,
      `    hosts_dir: "${hostsDir}"`,
      `    ca_file: ${caFile}`,
      `    hosts_toml_file: ${hostsTomlFile}`,
      '  hosts:',
      ...fleet.hosts.map((h) => `    ${h.name}: { ansible_host: ${h.address}, ansible_port: ${h.port} }`),
      '',
    ].join('\n'),
  );
  // Ansible writes ~/.ansible on the controller: give it its own HOME so this machine's /root is never touched.
  const ansibleHome = join(dir, 'ansible-home');
  await mkdir(join(ansibleHome, 'tmp'), { recursive: true });
  return {
    dir,
    fleet,
    ca,
    hostsToml,
    hostsDir,
    tpPlaybook: join(root, 'bench/ansible/trustplay.yaml'),
    tpInventory,
    ansiblePlaybook: join(root, 'bench/ansible/playbook.yml'),
    ansibleInventory,
    ansibleHome,
    runs: 0,
  };
}

async function counted<T>(fleet: Fleet, fn: () => Promise<T>): Promise<{ value: T; counts: SshCounts[] }> {
  const mark = fleet.mark();
  const value = await fn();
  // sshd's stderr reaches us through a pipe: let the last lines land before counting.
  await new Promise((r) => setTimeout(r, 150));
  return { value, counts: fleet.countsSince(mark) };
}

function perHost(counts: SshCounts[]): { connectionsPerHost: number; sessionsPerHost: number } {
  const n = counts.length || 1;
  return {
    connectionsPerHost: counts.reduce((s, c) => s + c.connections, 0) / n,
    sessionsPerHost: counts.reduce((s, c) => s + c.sessions, 0) / n,
  };
}

function tail(s: string): string {
  return s.trim().split('\n').slice(-15).join('\n');
}

/** The trustplay command line (after `node`) of a phase on the project's fleet, every host at once. */
export function trustplayArgs(p: Project, phase: Phase): string[] {
  const args = [
    join(root, 'dist/cli/main.js'),
    phase === 'check' ? 'check' : 'run',
    p.tpPlaybook,
    '-i',
    p.tpInventory,
    '--state-dir',
    join(p.dir, 'state'),
    '--forks',
    String(p.fleet.hosts.length),
    '--format',
    'json',
  ];
  if (phase !== 'check') args.push('--detailed-exitcode');
  return args;
}

async function runTrustplay(p: Project, phase: Phase): Promise<Sample> {
  const args = trustplayArgs(p, phase);
  const { value: r, counts } = await counted(p.fleet, () => runNode(args));
  const want = phase === 'first' ? 2 : 0;
  if (r.code !== want)
    throw new Error(
      `trustplay ${phase} run exited ${r.code} (expected ${want}):\n${tail(r.stderr)}\n${tail(r.stdout)}`,
    );
  const report = JSON.parse(r.stdout) as {
    hosts?: Record<string, { recap?: { changed?: number } }> | Array<{ recap?: { changed?: number } }>;
  };
  const hostReports = Array.isArray(report.hosts) ? report.hosts : Object.values(report.hosts ?? {});
  const changedHosts = hostReports.filter((h) => (h.recap?.changed ?? 0) > 0).length;
  return { ms: r.ms, peakRssKb: r.maxRssKb, changedHosts, ...perHost(counts) };
}

async function closeControlMasters(dir: string): Promise<void> {
  const socks = await readdir(dir).catch(() => [] as string[]);
  // `ssh -O exit` asks each master (by its socket) to end: no process hunting by name.
  await pool(socks, 16, (s) => run('ssh', ['-O', 'exit', '-S', join(dir, s), 'bench-master']).catch(() => undefined));
  await rm(dir, { recursive: true, force: true });
}

async function runAnsible(p: Project, phase: Phase): Promise<Sample> {
  const n = p.fleet.hosts.length;
  const runDir = join(p.dir, `ansible-run-${++p.runs}`);
  const controlDir = join(p.dir, `cp${p.runs}`);
  await mkdir(runDir, { recursive: true });
  const cfg = (await readFile(join(root, 'bench/ansible/ansible.cfg.template'), 'utf8'))
    .replaceAll('@@inventory@@', p.ansibleInventory)
    .replaceAll('@@forks@@', String(n))
    .replaceAll('@@local_tmp@@', join(p.ansibleHome, 'tmp'))
    .replaceAll('@@known_hosts@@', p.fleet.knownHosts)
    .replaceAll('@@control_path_dir@@', controlDir);
  const cfgFile = join(runDir, 'ansible.cfg');
  await writeFile(cfgFile, cfg);
  const timeFile = join(runDir, 'time');
  const env = {
    ...process.env,
    ANSIBLE_CONFIG: cfgFile,
    ANSIBLE_HOME: p.ansibleHome,
    HOME: p.ansibleHome,
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_STDOUT_CALLBACK: 'default',
  };
  try {
    const { value: r, counts } = await counted(p.fleet, () =>
      spawnMeasured(
        '/usr/bin/time',
        ['-f', '%M', '-o', timeFile, 'ansible-playbook', p.ansiblePlaybook, ...(phase === 'check' ? ['--check'] : [])],
        env,
        30 * 60_000,
      ),
    );
    const recap = [...r.stdout.matchAll(/^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm)];
    const bad = recap.filter((m) => m[4] !== '0' || m[5] !== '0');
    if (r.code !== 0 || recap.length !== n || bad.length)
      throw new Error(
        `ansible-playbook ${phase} exited ${r.code} with ${recap.length}/${n} hosts in the recap:\n${tail(r.stdout)}\n${tail(r.stderr)}`,
      );
    const changedHosts = recap.filter((m) => m[3] !== '0').length;
    const peakRssKb = Number((await readFile(timeFile, 'utf8')).trim().split('\n').pop());
    return { ms: r.ms, peakRssKb, peakTreeRssKb: r.peakTreeKb, changedHosts, ...perHost(counts) };
  } finally {
    await closeControlMasters(controlDir);
  }
}

async function runFloor(fleet: Fleet): Promise<Sample> {
  const { value, counts } = await counted(fleet, async () => {
    const t0 = process.hrtime.bigint();
    const codes = await Promise.all(
      fleet.hosts.map(
        (h) =>
          new Promise<number>((resolve) => {
            const args = [
              '-o',
              'ControlMaster=no',
              '-o',
              'BatchMode=yes',
              '-o',
              `UserKnownHostsFile=${fleet.knownHosts}`,
              '-o',
              'GlobalKnownHostsFile=/dev/null',
              '-o',
              'StrictHostKeyChecking=yes',
              '-i',
              fleet.identityFile,
              '-p',
              String(h.port),
              `root@${h.address}`,
              'true',
            ];
            const c = spawn('ssh', args, { stdio: 'ignore' });
            if (c.pid !== undefined) live.set(c.pid, false);
            c.on('close', (code) => {
              if (c.pid !== undefined) live.delete(c.pid);
              resolve(code ?? -1);
            });
            c.on('error', () => resolve(-1));
          }),
      ),
    );
    return { ms: Number(process.hrtime.bigint() - t0) / 1e6, codes };
  });
  const failed = value.codes.filter((c) => c !== 0).length;
  if (failed) throw new Error(`the OpenSSH floor: ${failed} of ${fleet.hosts.length} \`ssh host true\` failed`);
  return { ms: value.ms, peakRssKb: NaN, changedHosts: 0, ...perHost(counts) };
}

/**
 * The ssh2 floor: one Node process (bench/ssh2-floor.mjs) connecting to every host at once with
 * ssh2 (handshake, publickey auth, known_hosts check) and running one `true` on each: the cost any
 * ssh2-based tool pays before doing any work.
 */
export async function runSsh2Floor(fleet: Fleet): Promise<Sample> {
  const script = join(root, 'bench/ssh2-floor.mjs');
  const targets = fleet.hosts.map((h) => `${h.address}:${h.port}`);
  const { value: r, counts } = await counted(fleet, () =>
    runNode([script, fleet.identityFile, fleet.knownHosts, ...targets]),
  );
  const out = /\{"ok":(\d+),"failed":(\d+)\}/.exec(r.stdout);
  if (r.code !== 0 || !out || out[2] !== '0')
    throw new Error(`the ssh2 floor failed (exit ${r.code}): ${tail(r.stdout)} ${tail(r.stderr)}`);
  return { ms: r.ms, peakRssKb: r.maxRssKb, changedHosts: 0, ...perHost(counts) };
}

/**
 * The CI short form (issue 21): an N-host converged run against the ssh2 floor, one rep, no
 * Ansible. The fleet is converged first by an unmeasured trustplay run. Printed, never asserted.
 */
export async function shortCompare(n: number, log: (s: string) => void = () => undefined): Promise<string> {
  const fleet = await startFleet(n);
  try {
    const p = await makeProject(fleet);
    await runTrustplay(p, 'first');
    await runSsh2Floor(fleet);
    const floor = await runSsh2Floor(fleet);
    const t = await runTrustplay(p, 'converged');
    log(`${n} hosts: ssh2 floor ${fmtS(floor.ms)} s, trustplay converged ${fmtS(t.ms)} s`);
    return `bench short: ${n} hosts converged: trustplay ${fmtS(t.ms)} s, ssh2 floor ${fmtS(floor.ms)} s, trustplay / ssh2 floor = ${ratio(t.ms, floor.ms)} (target ≤ 1.3x); SSH per host: ${t.connectionsPerHost.toFixed(1)} connection + ${t.sessionsPerHost.toFixed(1)} sessions (target 1 + 1)`;
  } finally {
    await fleet.stop();
  }
}

/** Checks every host holds the converged state (same bytes whichever tool wrote them). */
async function verifyConverged(p: Project, who: string): Promise<void> {
  const config = fleetConfigToml();
  const problems: string[] = [];
  await pool(p.fleet.hosts, 16, async (h) => {
    const etc = join(h.dir, 'etc-containerd');
    const hostsDir = join(etc, 'certs.d', BENCH_REGISTRY);
    const [hosts, ca, toml, docker] = await Promise.all(
      [
        join(hostsDir, 'hosts.toml'),
        join(hostsDir, 'ca.crt'),
        join(etc, 'config.toml'),
        join(h.dir, 'root', '.docker', 'config.json'),
      ].map((f) => readFile(f, 'utf8').catch(() => null)),
    );
    if (hosts !== p.hostsToml) problems.push(`${h.name}: hosts.toml ${hosts === null ? 'missing' : 'differs'}`);
    if (ca !== p.ca) problems.push(`${h.name}: ca.crt ${ca === null ? 'missing' : 'differs'}`);
    if (toml !== config) problems.push(`${h.name}: config.toml changed`);
    const auths = Object.keys((JSON.parse(docker ?? '{}') as { auths?: Record<string, unknown> }).auths ?? {});
    if (auths.includes(BENCH_REGISTRY) || !auths.includes(OTHER_REGISTRY))
      problems.push(`${h.name}: config.json auths = ${auths.join(', ')}`);
  });
  if (problems.length)
    throw new Error(`after ${who}'s first run the fleet is not converged: ${problems.slice(0, 5).join('; ')}`);
}

async function version(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  try {
    const r = await run(cmd, args, { env });
    return `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '';
  } catch {
    return 'unavailable';
  }
}

/** Runs the comparison for each host count; `log` gets progress lines, `partial` the results so far after each host count. */
export async function compare(
  hostCounts: number[],
  reps: number,
  log: (s: string) => void = () => undefined,
  partial: (r: CompareResults) => Promise<void> = async () => undefined,
): Promise<CompareResults> {
  // Even `--version` creates ~/.ansible/tmp: point HOME at a throwaway dir so /root stays untouched.
  const home = await mkdtemp(join(tmpdir(), 'trustplay-ansible-home-'));
  const ansible = await version('ansible-playbook', ['--version'], {
    ...process.env,
    HOME: home,
    ANSIBLE_HOME: home,
    ANSIBLE_LOCAL_TEMP: join(home, 'tmp'),
  }).finally(() => rm(home, { recursive: true, force: true }));
  if (ansible === 'unavailable') throw new Error('ansible-playbook is not installed: apt-get install -y ansible-core');
  const results: PhaseResult[] = [];
  let fleet: Fleet | undefined;
  const onSignal = (): void => {
    for (const [pid, group] of live) stopLive(pid, group);
    void (fleet?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const n of hostCounts) {
      const t0 = Date.now();
      fleet = await startFleet(n);
      log(`fleet of ${n} hosts up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const p = await makeProject(fleet);
      const samples = new Map<string, Sample[]>();
      const add = (k: string, s: Sample): void => void samples.set(k, [...(samples.get(k) ?? []), s]);
      // Warm-up (not measured): page cache, Python bytecode, the first sshd forks.
      await runFloor(fleet);
      for (let rep = 0; rep < reps; rep++) {
        const order: Tool[] = rep % 2 === 0 ? ['trustplay', 'ansible'] : ['ansible', 'trustplay'];
        add('floor', await runFloor(fleet));
        add('ssh2-floor', await runSsh2Floor(fleet));
        for (const tool of order) {
          for (const phase of PHASES) {
            if (phase === 'first') await fleet.reset();
            const s = tool === 'trustplay' ? await runTrustplay(p, phase) : await runAnsible(p, phase);
            if (phase === 'first') await verifyConverged(p, tool);
            const want = phase === 'first' ? n : 0;
            if (s.changedHosts !== want)
              throw new Error(`${tool} ${phase} run: ${s.changedHosts} hosts reported changes, expected ${want}`);
            log(`${n} hosts rep ${rep + 1}/${reps} ${tool} ${phase}: ${(s.ms / 1000).toFixed(2)} s`);
            add(`${tool}:${phase}`, s);
          }
        }
      }
      for (const [key, ss] of samples) {
        const [tool, phase] =
          key === 'floor' ? ['floor', 'ssh true'] : key === 'ssh2-floor' ? ['ssh2-floor', 'ssh2 true'] : key.split(':');
        const last = ss[ss.length - 1]!;
        const trees = ss.map((s) => s.peakTreeRssKb).filter((x): x is number => x !== undefined);
        results.push({
          hosts: n,
          tool: tool as PhaseResult['tool'],
          phase: phase as PhaseResult['phase'],
          medianMs: median(ss.map((s) => s.ms)),
          samplesMs: ss.map((s) => Math.round(s.ms)),
          peakRssMb: Math.max(...ss.map((s) => s.peakRssKb)) / 1024,
          ...(trees.length ? { peakTreeRssMb: Math.max(...trees) / 1024 } : {}),
          connectionsPerHost: last.connectionsPerHost,
          sessionsPerHost: last.sessionsPerHost,
          changedHosts: last.changedHosts,
        });
      }
      await fleet.stop();
      fleet = undefined;
      await partial(await summary(results, reps, ansible));
    }
  } finally {
    await fleet?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return summary(results, reps, ansible);
}

async function summary(results: PhaseResult[], reps: number, ansible: string): Promise<CompareResults> {
  return {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? '',
      node: process.version,
      ansible,
      openssh: await version('ssh', ['-V']),
    },
    reps,
    notes: [
      'Medians of `reps` runs per phase; tools interleaved per rep (A B, then B A).',
      "Every run starts cold: trustplay keeps no connection between runs, and Ansible's ControlPersist masters are closed after each run.",
      'config_path is already set on every host (containerd 1.6 default config), so neither tool restarts containerd.',
      'trustplay peak memory: the CLI process (its only process). Ansible: "largest" is the largest single process of the tree (GNU time %M); "tree" is the summed RSS of ansible-playbook, its forks and the ssh clients they run (ControlPersist masters detach from the tree and are not counted), sampled every 100 ms (pages shared between forks count in every process, so the sum overstates).',
      'Connections / sessions per host from each sshd log: "Accepted publickey" and "Starting session:" lines.',
    ],
    results,
  };
}

const fmtS = (ms: number): string => (ms / 1000).toFixed(2);
const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}x` : '—');

/** The markdown table (and the target lines under it). */
export function markdown(r: CompareResults): string {
  const get = (hosts: number, tool: string, phase: string): PhaseResult | undefined =>
    r.results.find((x) => x.hosts === hosts && x.tool === tool && x.phase === phase);
  const hostCounts = [...new Set(r.results.map((x) => x.hosts))];
  const lines = [
    '| hosts | run | trustplay s | Ansible s | OpenSSH floor s | ssh2 floor s | trustplay / Ansible | trustplay / OpenSSH floor | trustplay / ssh2 floor | trustplay peak MB | Ansible peak MB (largest / tree) | SSH conn + sessions per host (trustplay / Ansible) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const n of hostCounts) {
    const floor = get(n, 'floor', 'ssh true');
    const floor2 = get(n, 'ssh2-floor', 'ssh2 true');
    for (const phase of PHASES) {
      const t = get(n, 'trustplay', phase);
      const a = get(n, 'ansible', phase);
      if (!t || !a || !floor) continue;
      lines.push(
        `| ${n} | ${phase} | ${fmtS(t.medianMs)} | ${fmtS(a.medianMs)} | ${fmtS(floor.medianMs)} | ${floor2 ? fmtS(floor2.medianMs) : '—'} | ${ratio(t.medianMs, a.medianMs)} (${(a.medianMs / t.medianMs).toFixed(1)}x faster) | ${ratio(t.medianMs, floor.medianMs)} | ${floor2 ? ratio(t.medianMs, floor2.medianMs) : '—'} | ${t.peakRssMb.toFixed(0)} | ${a.peakRssMb.toFixed(0)} / ${(a.peakTreeRssMb ?? NaN).toFixed(0)} | ${t.connectionsPerHost.toFixed(1)} + ${t.sessionsPerHost.toFixed(1)} / ${a.connectionsPerHost.toFixed(1)} + ${a.sessionsPerHost.toFixed(1)} |`,
      );
    }
  }
  const out = [lines.join('\n'), ''];
  const lo = Math.min(...hostCounts);
  const hi = Math.max(...hostCounts);
  if (hi > lo) {
    for (const tool of ['trustplay', 'ansible'] as const) {
      const a = get(lo, tool, 'converged');
      const b = get(hi, tool, 'converged');
      if (a && b)
        out.push(
          `- ${tool} converged ${lo} → ${hi} hosts: ${fmtS(a.medianMs)} s → ${fmtS(b.medianMs)} s (${(b.medianMs / a.medianMs).toFixed(2)}x for ${(hi / lo).toFixed(0)}x the hosts; ${((b.medianMs - a.medianMs) / (hi - lo)).toFixed(1)} ms per extra host)`,
        );
    }
  }
  // Issue 21's targets, printed, never asserted.
  const f20 = get(20, 'floor', 'ssh true');
  const s20 = get(20, 'ssh2-floor', 'ssh2 true');
  for (const phase of PHASES) {
    const t = get(20, 'trustplay', phase);
    const a = get(20, 'ansible', phase);
    if (!t) continue;
    const want = phase === 'first' ? 15 : 25;
    if (a)
      out.push(
        `- target, ${phase} 20 hosts ≥ ${want}x faster than Ansible: ${(a.medianMs / t.medianMs).toFixed(1)}x (${a.medianMs / t.medianMs >= want ? 'met' : 'missed'})${s20 ? `; the most any ssh2-based tool could reach on this machine, Ansible / the ssh2 floor: ${(a.medianMs / s20.medianMs).toFixed(1)}x` : ''}`,
      );
    if (f20 && phase !== 'first')
      out.push(
        `- target, ${phase} 20 hosts ≤ 1.0x the OpenSSH floor: ${(t.medianMs / f20.medianMs).toFixed(2)}x (${t.medianMs / f20.medianMs <= 1 ? 'met' : 'missed'})`,
      );
    if (s20)
      out.push(
        `- target, ${phase} 20 hosts ≤ 1.3x the ssh2 floor: ${(t.medianMs / s20.medianMs).toFixed(2)}x (${t.medianMs / s20.medianMs <= 1.3 ? 'met' : 'missed'})`,
      );
    const sessions = t.connectionsPerHost + t.sessionsPerHost;
    out.push(
      `- target, ${phase}: 1 connection and ${phase === 'first' ? '≤ 3 sessions' : '1 session'} per host: ${t.connectionsPerHost.toFixed(1)} + ${t.sessionsPerHost.toFixed(1)} (${t.connectionsPerHost <= 1 && t.sessionsPerHost <= (phase === 'first' ? 3 : 1) ? 'met' : 'missed'}; ${sessions.toFixed(1)} in all)`,
    );
  }
  const t100 = get(100, 'trustplay', 'converged');
  if (t100) {
    const a100 = get(100, 'ansible', 'converged');
    if (a100)
      out.push(
        `- target, converged 100 hosts ≥ 25x faster than Ansible: ${(a100.medianMs / t100.medianMs).toFixed(1)}x (${a100.medianMs / t100.medianMs >= 25 ? 'met' : 'missed'})`,
      );
    const mem = Math.max(...PHASES.map((ph) => get(100, 'trustplay', ph)?.peakRssMb ?? 0));
    out.push(`- converged 100 hosts: ${fmtS(t100.medianMs)} s; trustplay peak memory ${mem.toFixed(0)} MB`);
  }
  out.push(
    '',
    `${r.machine.cpus} × ${r.machine.model}; Node ${r.machine.node}; ${r.machine.ansible}; ${r.machine.openssh}; median of ${r.reps} runs, ${r.date.slice(0, 10)}.`,
    '',
    ...r.notes.map((n) => `- ${n}`),
  );
  return out.join('\n') + '\n';
}

/** Writes bench/results/latest.json and latest.md. */
export async function writeResults(r: CompareResults): Promise<{ json: string; md: string }> {
  const dir = join(root, 'bench/results');
  await mkdir(dir, { recursive: true });
  const json = join(dir, 'latest.json');
  const md = join(dir, 'latest.md');
  await writeFile(json, `${JSON.stringify(r, null, 2)}\n`);
  await writeFile(md, markdown(r));
  return { json, md };
}
