/**
 * Issues 2 and 21's figures: start-up time of `trustplay --version` and the time and peak memory
 * to validate a 1,000-host inventory with a 50-task playbook (targets: < 100 ms; < 300 ms, < 150 MB).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfSignedCa } from '../test/lab/certs.js';
import { median, runNode } from './util.js';

export async function benchStartup(runs = 15): Promise<Record<string, string | number>[]> {
  // Interleaved with an empty Node process (`node -e 0`, the floor any Node CLI pays), same environment.
  const measure = async (env: Record<string, string | undefined>): Promise<{ version: number; floor: number }> => {
    const times: number[] = [];
    const floor: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await runNode(['dist/cli/main.js', '--version'], env);
      if (r.code !== 0) throw new Error(`trustplay --version failed: ${r.stderr}`);
      times.push(r.ms);
      floor.push((await runNode(['-e', '0'], env)).ms);
    }
    return { version: median(times), floor: median(floor) };
  };
  const row = (label: string, m: { version: number; floor: number }): Record<string, string | number>[] => [
    { measure: label, median: `${m.version.toFixed(0)} ms`, target: '< 100 ms', runs },
    { measure: '  floor: `node -e 0` in the same environment', median: `${m.floor.toFixed(0)} ms`, target: '-', runs },
  ];
  const rows = row('trustplay --version (process start to exit)', await measure({}));
  // Node reads and parses the whole bundle NODE_EXTRA_CA_CERTS names before any code runs (~50 ms
  // for Debian's ca-certificates.crt on a 2-core test machine): a cost of the environment, shown apart.
  if (process.env['NODE_EXTRA_CA_CERTS'])
    rows.push(
      ...row(
        '  the same without NODE_EXTRA_CA_CERTS (set in this environment)',
        await measure({ NODE_EXTRA_CA_CERTS: undefined }),
      ),
    );
  return rows;
}

export async function benchValidate(hosts = 1000, tasks = 50, runs = 7): Promise<Record<string, string | number>[]> {
  const dir = await mkdtemp(join(tmpdir(), 'trustplay-bench-'));
  try {
    // validate reads each task's `ca` file on the controller, as run does: a real one.
    const ca = (await selfSignedCa(dir, 'ca', 'trustplay bench CA')).cert;
    const inv = [
      'vars:',
      '  registry: registry.example.com:5000',
      '  image: registry.example.com:5000/app:1',
      `  ca: ${ca}`,
      'hosts:',
    ];
    for (let i = 0; i < hosts; i++)
      inv.push(
        `  node${i}: { address: 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}, vars: { rack: r${i % 20} } }`,
      );
    inv.push(
      'groups:',
      '  masters:',
      '    hosts: [node0, node1, node2]',
      '  workers:',
      `    hosts: [${Array.from({ length: hosts - 3 }, (_, i) => `node${i + 3}`).join(', ')}]`,
    );
    for (let r = 0; r < 20; r++)
      inv.push(
        `  rack${r}:`,
        `    hosts: [${Array.from({ length: hosts }, (_, i) => i)
          .filter((i) => i % 20 === r)
          .map((i) => `node${i}`)
          .join(', ')}]`,
        `    vars: { rack_name: rack-${r} }`,
      );
    const pb = ['- hosts: workers', '  tasks:'];
    for (let t = 0; t < tasks; t++) {
      const kind = t % 5;
      if (kind === 0)
        pb.push(`    - name: trust ${t}`, '      containerd.tls: { registry: "{{ registry }}", ca: "{{ ca }}" }');
      else if (kind === 1) pb.push(`    - name: wipe ${t}`, '      node.creds.wipe: { registry: "{{ registry }}" }');
      else if (kind === 2)
        pb.push(
          `    - name: rmi ${t}`,
          '      image.rmi: { image: "{{ image }}" }',
          '      when: rack_name is defined',
        );
      else if (kind === 3)
        pb.push(
          `    - name: verify ${t}`,
          '      image.pull.verify: { image: "{{ image }}", retries: 2 }',
          '      tags: [verify]',
        );
      else pb.push(`    - name: sa ${t}`, '      k8s.sa.clear: { namespace: [default, "{{ rack_name }}"] }');
    }
    await writeFile(join(dir, 'inventory.yaml'), inv.join('\n') + '\n');
    await writeFile(join(dir, 'playbook.yaml'), pb.join('\n') + '\n');
    const times: number[] = [];
    const rss: number[] = [];
    const floor: number[] = [];
    // Interleaved with validate, so both see the same machine: the chosen parser alone on the same files.
    for (let i = 0; i < runs; i++) {
      const r = await runNode([
        'dist/cli/main.js',
        'validate',
        join(dir, 'playbook.yaml'),
        '-i',
        join(dir, 'inventory.yaml'),
      ]);
      if (r.code !== 0) throw new Error(`validate failed: ${r.stdout}${r.stderr}`);
      times.push(r.ms);
      rss.push(r.maxRssKb);
      const y = await runNode(['bench/yaml-floor.mjs', join(dir, 'playbook.yaml'), join(dir, 'inventory.yaml')]);
      if (y.code !== 0) throw new Error(`the yaml floor failed: ${y.stderr}`);
      floor.push(y.ms);
    }
    return [
      {
        measure: `validate ${hosts} hosts x ${tasks} tasks (whole process)`,
        median: `${median(times).toFixed(0)} ms`,
        target: '< 300 ms',
        runs,
      },
      {
        measure: '  floor: Node + `yaml` parsing the same two files, nothing else',
        median: `${median(floor).toFixed(0)} ms (validate / floor ${(median(times) / median(floor)).toFixed(2)}x)`,
        target: '-',
        runs,
      },
      { measure: 'validate peak RSS', median: `${(median(rss) / 1024).toFixed(0)} MB`, target: '< 150 MB', runs },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
