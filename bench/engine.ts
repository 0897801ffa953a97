/**
 * Issue 3's figure: a converged `check` of a small playbook on 20 loopback SSH hosts — wall time,
 * peak memory, SSH connections and channels per host (targets: one connection per host; < 2 s).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection, type HostConnectionSpec } from '../src/connection/index.js';
import type { Connection } from '../src/connection/connection.js';
import { SshConnection } from '../src/connection/ssh.js';
import { runPlaybook } from '../src/engine/run.js';
import { parseInventory } from '../src/playbook/inventory.js';
import { parsePlaybook } from '../src/playbook/playbook.js';
import { RunSnapshot, SnapshotStore } from '../src/snapshots/store.js';
import { startSshd, type Sshd } from '../test/support/sshd.js';
import { testModules, testModuleSchemas } from '../test/support/test-modules.js';
import { median } from './util.js';

export async function benchEngine(hostCount = 20, runs = 5): Promise<Array<Record<string, string | number>>> {
  const dir = await mkdtemp(join(tmpdir(), 'trustplay-bench-engine-'));
  const servers: Sshd[] = [];
  try {
    for (let i = 0; i < hostCount; i++) servers.push(await startSshd({ address: `127.0.1.${i + 1}` }));
    const known = join(dir, 'known_hosts');
    await writeFile(known, (await Promise.all(servers.map((s) => readFile(s.knownHosts, 'utf8')))).join(''));
    const inv = parseInventory(
      'inv.yaml',
      `ssh: { known_hosts: ${known} }\nvars: { dir: ${dir} }\nhosts:\n${servers.map((s, i) => `  h${i}: { address: ${s.address}, port: ${s.port}, user: root, identity_file: ${s.clientKey} }`).join('\n')}\n`,
    ).inventory!;
    const pb = `- hosts: all\n  tasks:\n${[1, 2, 3].map((n) => `    - test.file: { path: "{{ dir }}/{{ inventory_hostname }}/f${n}", content: "content ${n}" }`).join('\n')}\n    - test.verify: { path: "{{ dir }}/{{ inventory_hostname }}/f1" }\n`;
    const loaded = parsePlaybook('bench.yaml', pb, { inventory: inv, extraModules: testModuleSchemas });
    if (!loaded.playbook) throw new Error(JSON.stringify(loaded.errors));
    const run = async (check: boolean) => {
      const conns: Connection[] = [];
      const t0 = process.hrtime.bigint();
      const result = await runPlaybook({
        playbook: loaded.playbook!,
        inventory: inv,
        playHosts: loaded.playHosts,
        modules: testModules,
        reporter: { event: () => undefined },
        check,
        snapshot: new RunSnapshot(new SnapshotStore(join(dir, 'state')), {
          runId: `bench-${Date.now()}`,
          command: 'bench',
        }),
        connectionFactory: (spec: HostConnectionSpec) => {
          const c = createConnection(spec);
          conns.push(c);
          return c;
        },
      });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const stats = conns.map((c) => (c instanceof SshConnection ? c.stats() : { connections: 0, channels: 0 }));
      return { ms, code: result.outcome.code, stats };
    };
    const first = await run(false);
    if (first.code !== 0) throw new Error(`first run failed with exit ${first.code}`);
    const times: number[] = [];
    let stats = first.stats;
    for (let i = 0; i < runs; i++) {
      const r = await run(true);
      if (r.code !== 0) throw new Error(`converged check exited ${r.code}`);
      times.push(r.ms);
      stats = r.stats;
    }
    const conns = stats.reduce((n, s) => n + s.connections, 0) / stats.length;
    const channels = stats.reduce((n, s) => n + s.channels, 0) / stats.length;
    return [
      { measure: `first run, ${hostCount} SSH hosts, 4 tasks`, value: `${first.ms.toFixed(0)} ms`, target: '' },
      {
        measure: `converged check, ${hostCount} SSH hosts (median of ${runs})`,
        value: `${median(times).toFixed(0)} ms`,
        target: '< 2000 ms',
      },
      { measure: 'SSH connections per host per run', value: conns.toFixed(1), target: '1' },
      { measure: 'SSH channels per host per check', value: channels.toFixed(1), target: '' },
      {
        measure: 'peak RSS of the benchmark process',
        value: `${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
        target: '',
      },
    ];
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}
