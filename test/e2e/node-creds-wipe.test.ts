/**
 * `node.creds.wipe` through the real CLI against the lab's seeded stale credentials: only
 * registry.test's entries go from /root/.docker/config.json (`registry.test:<port>`), kubelet's
 * config.json (`https://registry.test:<port>`) and containerd's `configs."registry.test:<port>".auth`;
 * other.example's entries and every TLS table survive byte for byte; mode stays 0600; containerd
 * is restarted (verified) only where config.toml changed; nothing secret is printed; the run's
 * snapshot can put it all back.
 *
 * Order matters: check first (nothing changes), then run, then run again (ok), restore, all: true.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitForCri } from '../../src/cri/client.js';
import { lineDiff } from '../../src/containerd/line-diff.js';
import { labState, type LabNode } from '../lab/lab.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { inNode } from '../support/lab-node.js';
import { jsonReport, runCli, scratchDir, taskResult, writePlaybook } from '../fixtures/image-modules/run-cli.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const CRI = 'plugins."io.containerd.grpc.v1.cri".registry.configs';
const SECRETS = [
  b64('ci-bot:expired-token-2023'),
  b64('other-user:other-pass'),
  'expired-token-2023',
  'stale-pass-4411',
  'other-pass-9902',
];

describeLab('node.creds.wipe through the CLI (lab)', () => {
  const env = useLab({ nodes: 2 });
  let dir: string;
  let pb: string;
  let reg: string;
  // What each node's files held after seeding, read from this machine (the node's dirs live here).
  const seeded = new Map<string, Record<string, string>>();
  let authBlock: string[];

  const files = (node: LabNode): Record<string, string> => ({
    docker: path.join(node.files['/root'], '.docker', 'config.json'),
    kubelet: path.join(node.files['/var/lib'], 'kubelet', 'config.json'),
    config: path.join(node.files['/etc/containerd'], 'config.toml'),
  });
  const read = (node: LabNode): Record<string, string> =>
    Object.fromEntries(
      Object.entries(files(node)).map(([k, p]) => [k, existsSync(p) ? readFileSync(p, 'utf8') : '<absent>']),
    );
  const pid = (node: LabNode): number => labState(env.lab.dir).nodes.find((n) => n.name === node.name)!.containerdPid;
  const state = (): string[] => ['--state-dir', path.join(dir, 'state')];
  const noSecrets = (out: string): void => {
    for (const s of SECRETS) expect(out).not.toContain(s);
  };

  beforeAll(async () => {
    dir = scratchDir('tp-creds-e2e-');
    reg = env.lab.registries.registry.host;
    const node1 = env.lab.nodes[0]!;
    // containerd-held credentials on node1: the stale one for registry.test (next to a TLS table
    // that must stay) and one for another registry.
    authBlock = [`[${CRI}."${reg}".auth]`, '  username = "ci-bot"', '  password = "stale-pass-4411"'];
    const extra = [
      '',
      ...authBlock,
      '',
      `[${CRI}."${reg}".tls]`,
      '  insecure_skip_verify = false',
      '',
      `[${CRI}."other.example:5000".auth]`,
      '  username = "other-user"',
      '  password = "other-pass-9902"',
      '',
    ].join('\n');
    const r = await inNode(node1, 'cat >> /etc/containerd/config.toml && systemctl restart containerd', extra);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    await waitForCri(node1.hostSocket, 20_000);
    for (const node of env.lab.nodes) seeded.set(node.name, read(node));
    pb = writePlaybook(
      dir,
      '- hosts: nodes\n  tasks:\n    - name: wipe\n      node.creds.wipe: { registry: "{{ registry }}" }\n',
    );
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('check mode lists what it would remove, masks the diff, and changes nothing', async () => {
    const pids = env.lab.nodes.map(pid);
    const run = await runCli(['check', pb, '-i', env.lab.inventoryPath, '--diff', ...state()]);
    expect(run.code, run.stdout + run.stderr).toBe(2);
    expect(run.stdout).toContain(`would remove auths."${reg}" from /root/.docker/config.json`);
    expect(run.stdout).toContain(`would remove auths."https://${reg}" from /var/lib/kubelet/config.json`);
    expect(run.stdout).toContain(`would remove registry.configs."${reg}".auth from /etc/containerd/config.toml`);
    expect(run.stdout).toContain('"auth": "********"');
    noSecrets(run.stdout + run.stderr);
    for (const node of env.lab.nodes) expect(read(node), node.name).toEqual(seeded.get(node.name));
    expect(env.lab.nodes.map(pid)).toEqual(pids);
  });

  it("run removes only registry.test's entries, keeps everything else byte for byte and the files' mode, and restarts containerd only where config.toml changed", async () => {
    const [node1, node2] = [env.lab.nodes[0]!, env.lab.nodes[1]!];
    const [pid1, pid2] = [pid(node1), pid(node2)];
    const run = await runCli(['run', pb, '-i', env.lab.inventoryPath, '--diff', '--format', 'json', ...state()]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    noSecrets(run.stdout + run.stderr);
    const report = jsonReport(run);
    expect(taskResult(report, 'node1', 'wipe').changes).toEqual([
      `remove auths."${reg}" from /root/.docker/config.json`,
      `remove auths."https://${reg}" from /var/lib/kubelet/config.json`,
      `remove registry.configs."${reg}".auth from /etc/containerd/config.toml`,
    ]);
    expect(taskResult(report, 'node2', 'wipe').changes).toHaveLength(2);
    const restart = report.hosts['node1']?.tasks.find((t) => t.module === 'containerd.restart');
    expect(restart?.status).toBe('changed');
    expect(report.hosts['node2']?.tasks.some((t) => t.module === 'containerd.restart')).toBe(false);

    for (const node of env.lab.nodes) {
      const before = seeded.get(node.name)!;
      const after = read(node);
      for (const [file, key] of [
        ['docker', reg],
        ['kubelet', `https://${reg}`],
      ] as const) {
        const d = lineDiff(before[file]!, after[file]!);
        // Exactly the entry's four lines go; the other registry's lines stay as they were.
        expect(d.added, `${node.name} ${file}`).toEqual([]);
        expect(d.removed, `${node.name} ${file}`).toEqual([
          `\t\t"${key}": {`,
          `\t\t\t"auth": "${b64('ci-bot:expired-token-2023')}"`,
          '\t\t},',
        ]);
        expect(after[file]).toContain(
          `\t\t"other.example:5000": {\n\t\t\t"auth": "${b64('other-user:other-pass')}"\n\t\t}`,
        );
        expect(statSync(files(node)[file]!).mode & 0o7777, `${node.name} ${file}`).toBe(0o600);
      }
    }
    const c = lineDiff(seeded.get('node1')!['config']!, read(node1)['config']!);
    expect(c.added).toEqual([]);
    expect(c.removed.filter((l) => l.trim() !== '')).toEqual(authBlock);
    expect(read(node1)['config']).toContain(`[${CRI}."${reg}".tls]\n  insecure_skip_verify = false`);
    expect(read(node1)['config']).toContain(
      `[${CRI}."other.example:5000".auth]\n  username = "other-user"\n  password = "other-pass-9902"`,
    );
    expect(read(node2)['config']).toBe(seeded.get('node2')!['config']);

    expect(pid(node1)).not.toBe(pid1);
    await waitForCri(node1.hostSocket, 10_000);
    expect(pid(node2)).toBe(pid2);

    // Everything removed went to the snapshot first.
    const manifests = readdirSync(path.join(dir, 'state', 'runs')).map((f) =>
      readFileSync(path.join(dir, 'state', 'runs', f), 'utf8'),
    );
    const mine = manifests.find((m) => m.includes(report.runId));
    expect(mine).toBeDefined();
    for (const p of ['/root/.docker/config.json', '/var/lib/kubelet/config.json', '/etc/containerd/config.toml'])
      expect(mine).toContain(`"${p}"`);
    noSecrets(mine!);
    // The facts say which registries each file held credentials for, without their values.
    const facts = (JSON.parse(mine!) as { hosts: Record<string, { facts: { credentials?: Record<string, unknown> } }> })
      .hosts['node1']!.facts.credentials!;
    expect(facts['/root/.docker/config.json']).toEqual(expect.arrayContaining(['other.example:5000']));
    seeded.set('runId', { id: report.runId });
  });

  it('a second run finds nothing to remove: ok, unchanged, no restart', async () => {
    const pid1 = pid(env.lab.nodes[0]!);
    const run = await runCli(['run', pb, '-i', env.lab.inventoryPath, '--format', 'json', ...state()]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const report = jsonReport(run);
    for (const host of ['node1', 'node2']) {
      expect(report.hosts[host]?.recap.changed, host).toBe(0);
      expect(taskResult(report, host, 'wipe').status, host).toBe('ok');
    }
    expect(pid(env.lab.nodes[0]!)).toBe(pid1);
  });

  it('restore from the snapshot puts every removed entry back byte for byte', async () => {
    const id = seeded.get('runId')!['id']!;
    const run = await runCli(['restore', id, '-i', env.lab.inventoryPath, ...state()]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    noSecrets(run.stdout + run.stderr);
    for (const node of env.lab.nodes) expect(read(node), node.name).toEqual(seeded.get(node.name));
    await waitForCri(env.lab.nodes[0]!.hostSocket, 20_000);
  });

  it('all: true removes the credential files themselves and every registry auth, but keeps TLS', async () => {
    const node1 = env.lab.nodes[0]!;
    const all = writePlaybook(
      dir,
      '- hosts: node1\n  tasks:\n    - name: wipe all\n      node.creds.wipe: { registry: "{{ registry }}", all: true }\n',
    );
    const run = await runCli(['run', all, '-i', env.lab.inventoryPath, '--format', 'json', ...state()]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    noSecrets(run.stdout + run.stderr);
    expect(taskResult(jsonReport(run), 'node1', 'wipe all').changes).toEqual([
      `remove /root/.docker/config.json (credentials for ${reg}, other.example:5000)`,
      `remove /var/lib/kubelet/config.json (credentials for https://${reg}, other.example:5000)`,
      `remove registry.configs."${reg}".auth, registry.configs."other.example:5000".auth from /etc/containerd/config.toml`,
    ]);
    const after = read(node1);
    expect(after['docker']).toBe('<absent>');
    expect(after['kubelet']).toBe('<absent>');
    expect(after['config']).not.toMatch(/\.auth\]/);
    expect(after['config']).toContain(`[${CRI}."${reg}".tls]\n  insecure_skip_verify = false`);
    await waitForCri(node1.hostSocket, 10_000);
  });
});
