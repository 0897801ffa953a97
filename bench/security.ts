/**
 * Issue 13's figures: how long the bounded inputs take to be refused through the real CLI (a 1 KB
 * template bomb, 2,000-level YAML nesting; process start to exit, exit code 3 checked), and what
 * verifying a 1,000-resource snapshot manifest costs in process (HMAC, strict schema, path checks;
 * the schema is compiled once, on the first read).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, runNode } from './util.js';

async function refused(file: string, runs: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await runNode(['dist/cli/main.js', 'validate', file]);
    if (r.code !== 3) throw new Error(`validate ${file} should exit 3, got ${r.code}: ${r.stdout}${r.stderr}`);
    times.push(r.ms);
  }
  return times;
}

export async function benchSecurity(runs = 7): Promise<Record<string, string | number>[]> {
  const dir = await mkdtemp(join(tmpdir(), 'trustplay-bench-sec-'));
  const prevKey = process.env['TRUSTPLAY_SNAPSHOT_KEY_FILE'];
  try {
    const bomb = join(dir, 'bomb.yaml');
    const vars = Array.from({ length: 10 }, (_, i) => `    v${i}: "${`{{ v${i + 1} }}`.repeat(10)}"`).join('\n');
    await writeFile(
      bomb,
      `- hosts: localhost\n  vars:\n${vars}\n    v10: "xxxxxxxxxx"\n  tasks:\n    - node.creds.wipe:\n        registry: "{{ v0 }}"\n`,
    );
    const deep = join(dir, 'deep.yaml');
    const body = Array.from({ length: 2000 }, (_, i) => `${'  '.repeat(i + 3)}k${i}:`).join('\n');
    await writeFile(deep, `- hosts: localhost\n  vars:\n    a:\n${body} v\n  tasks: []\n`);
    const baseline = join(dir, 'ok.yaml');
    await writeFile(baseline, '- hosts: localhost\n  tasks: []\n');
    const base = await runNode(['dist/cli/main.js', 'validate', baseline]);
    if (base.code !== 0) throw new Error(`validate of an empty play failed: ${base.stderr}`);

    // A 1,000-resource manifest, written and read back by the real store.
    process.env['TRUSTPLAY_SNAPSHOT_KEY_FILE'] = join(dir, 'snapshot.key');
    const { SnapshotStore } = await import('../src/snapshots/store.js');
    const store = new SnapshotStore(join(dir, 'state'));
    await store.init();
    const resources = Array.from({ length: 1000 }, (_, i) => ({
      kind: 'file' as const,
      module: 'containerd.tls',
      path: `/etc/containerd/certs.d/registry-${i}.example:5000/hosts.toml`,
      exists: true,
      blob: 'a'.repeat(64),
      size: 120,
      mode: 0o644,
      uid: 0,
      gid: 0,
    }));
    const hosts = Object.fromEntries(
      Array.from({ length: 100 }, (_, h) => [
        `node${h}`,
        { facts: { containerd: '1.7.24' }, resources: resources.slice(h * 10, h * 10 + 10) },
      ]),
    );
    await store.writeManifest({
      version: 2,
      runId: 'bench',
      time: new Date().toISOString(),
      command: 'run x.yaml',
      complete: true,
      hosts,
    });
    const t0 = performance.now();
    await store.readManifest('bench');
    const first = performance.now() - t0;
    const verify: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await store.readManifest('bench');
      verify.push(performance.now() - t);
    }
    return [
      {
        measure: 'validate, empty play (baseline: process start to exit)',
        median: `${base.ms.toFixed(0)} ms`,
        target: '',
        runs: 1,
      },
      {
        measure: 'refuse a 1 KB template bomb (validate, exit 3)',
        median: `${median(await refused(bomb, runs)).toFixed(0)} ms`,
        target: 'well under 1 s',
        runs,
      },
      {
        measure: 'refuse 2,000-level YAML nesting (validate, exit 3)',
        median: `${median(await refused(deep, runs)).toFixed(0)} ms`,
        target: 'well under 1 s',
        runs,
      },
      {
        measure: 'verify a 1,000-resource manifest (first read, schema compiled)',
        median: `${first.toFixed(1)} ms`,
        target: '',
        runs: 1,
      },
      {
        measure: 'verify a 1,000-resource manifest (HMAC + schema + paths)',
        median: `${median(verify).toFixed(1)} ms`,
        target: '',
        runs,
      },
    ];
  } finally {
    if (prevKey === undefined) delete process.env['TRUSTPLAY_SNAPSHOT_KEY_FILE'];
    else process.env['TRUSTPLAY_SNAPSHOT_KEY_FILE'] = prevKey;
    await rm(dir, { recursive: true, force: true });
  }
}
