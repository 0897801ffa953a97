/**
 * `node.creds.wipe` through the real CLI against the lab's seeded stale credentials: only
 * registry.test's entries go from /root/.docker/config.json (`registry.test:<port>`), kubelet's
 * config.json (`https://registry.test:<port>`) and containerd's `configs."registry.test:<port>".auth`;
 * other.example's entries and every TLS table survive byte for byte; mode stays 0600; containerd
 * is restarted (verified) only where config.toml changed; nothing secret is printed; the run's
 * snapshot can put it all back. node1, node2 and node3 run containerd 1.6, 1.7 and 2.1 and carry
 * containerd-held credentials in their own version's table (2.1: the version 3 file's
 * `plugins."io.containerd.cri.v1.images".registry.configs`, deprecated there but still read);
 * node4 (2.1) has none, so its config.toml and containerd are never touched; its
 * /root/.docker/config.json also names credential helpers (`credHelpers`) for registry.test and
 * other.example, as `docker login` with a helper leaves it: its auths entry goes, the credHelpers
 * lines stay byte for byte, and the task warns with the command that erases the helper's copy
 * (exit 0, in check as in run: nothing trustplay may do would change it) and lists it as
 * `not_removed`.
 *
 * Order matters: check first (nothing changes), then run, then run again (ok), restore, all: true.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCriClient, waitForCri } from '../../src/cri/client.js';
import { daemonRegistry } from '../../src/containerd/daemon-config.js';
import { startTrustplay } from '../support/cli.js';
import { lineDiff } from '../../src/containerd/line-diff.js';
import { labState, type LabNode } from '../lab/lab.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { inNode, untilEveryNodeHas } from '../support/lab-node.js';
import { jsonReport, runCli, scratchDir, taskResult, writePlaybook } from '../fixtures/image-modules/run-cli.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
/** The CRI registry configs table of a node's own config file (version 2 on 1.x, version 3 on 2.x). */
const criConfigs = (node: LabNode): string =>
  node.containerd.version.startsWith('2.')
    ? 'plugins."io.containerd.cri.v1.images".registry.configs'
    : 'plugins."io.containerd.grpc.v1.cri".registry.configs';
const SECRETS = [
  b64('ci-bot:expired-token-2023'),
  b64('other-user:other-pass'),
  'expired-token-2023',
  'stale-pass-4411',
  'other-pass-9902',
];

describeLab('node.creds.wipe through the CLI (lab: containerd 1.6, 1.7, 2.1)', () => {
  const env = useLab({ nodes: 4, containerd: ['1.6', '1.7', '2.1', '2.1'] });
  let dir: string;
  let pb: string;
  let reg: string;
  // What each node's files held after seeding, read from this machine (the node's dirs live here).
  const seeded = new Map<string, Record<string, string>>();
  const authBlock = (node: LabNode): string[] => [
    `[${criConfigs(node)}."${reg}".auth]`,
    '  username = "ci-bot"',
    '  password = "stale-pass-4411"',
  ];
  /** Nodes with containerd-held credentials (one per version), and the one without. */
  const seededNodes = (): LabNode[] => env.lab.nodes.slice(0, 3);
  const plain = (): LabNode => env.lab.nodes[3]!;
  const label = (n: LabNode): string => `${n.name} (containerd ${n.containerd.version})`;

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
  /** What node4's wipe warns about its credential helper (registry and helper name only). */
  const helperWarning = (): string =>
    `/root/.docker/config.json: ${reg}'s credentials may be in the store of credential helper \`pass\` (credHelpers."${reg}"), which trustplay never touches (it keeps credHelpers and credsStore, and runs no helper); to remove them, as the file's owner (uid 0), in a session where the helper works: \`DOCKER_CONFIG=/root/.docker docker logout ${reg}\` (or \`printf %s ${reg} | docker-credential-pass erase\`)`;
  const helperLines = (): string =>
    [`\t"credHelpers": {`, `\t\t"${reg}": "pass",`, `\t\t"other.example:5000": "secretservice"`, '\t}'].join('\n');

  beforeAll(async () => {
    dir = scratchDir('tp-creds-e2e-');
    reg = env.lab.registries.registry.host;
    // containerd-held credentials on node1-3: the stale one for registry.test (next to a TLS table
    // that must stay) and one for another registry.
    for (const node of seededNodes()) {
      const CRI = criConfigs(node);
      const extra = [
        '',
        ...authBlock(node),
        '',
        `[${CRI}."${reg}".tls]`,
        '  insecure_skip_verify = false',
        '',
        `[${CRI}."other.example:5000".auth]`,
        '  username = "other-user"',
        '  password = "other-pass-9902"',
        '',
      ].join('\n');
      const r = await inNode(node, 'cat >> /etc/containerd/config.toml && systemctl restart containerd', extra);
      expect(r.stderr, label(node)).toBe('');
      expect(r.code, label(node)).toBe(0);
      await waitForCri(node.hostSocket, 20_000);
    }
    // node4: credential helpers named for the lab registry and for another one, in the tab-indented
    // style the docker CLI writes. No helper program is installed: trustplay must never run one.
    const helperFile = `${JSON.stringify(
      {
        auths: {
          [reg]: { auth: b64('ci-bot:expired-token-2023') },
          'other.example:5000': { auth: b64('other-user:other-pass') },
        },
        credHelpers: { [reg]: 'pass', 'other.example:5000': 'secretservice' },
      },
      null,
      '\t',
    )}\n`;
    const w = await inNode(
      plain(),
      'cat > /root/.docker/config.json && chmod 600 /root/.docker/config.json',
      helperFile,
    );
    expect(w.code, w.stderr).toBe(0);
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
    // node4's helper: a warning with the command (shown once: only node4's file names a helper).
    expect(run.stdout.split(`|   warning: ${helperWarning()}\n`)).toHaveLength(2);
    expect(run.stdout.match(/\| {3}warning: /g)).toHaveLength(1);
    noSecrets(run.stdout + run.stderr);
    for (const node of env.lab.nodes) expect(read(node), node.name).toEqual(seeded.get(node.name));
    expect(env.lab.nodes.map(pid)).toEqual(pids);
  });

  it("run removes only registry.test's entries (from 2.1's version 3 table too), keeps everything else byte for byte and the files' mode, and restarts containerd only where config.toml changed", async () => {
    const pids = new Map(env.lab.nodes.map((n) => [n.name, pid(n)]));
    const run = await runCli(['run', pb, '-i', env.lab.inventoryPath, '--diff', '--format', 'json', ...state()]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    noSecrets(run.stdout + run.stderr);
    const report = jsonReport(run);
    for (const node of seededNodes()) {
      expect(taskResult(report, node.name, 'wipe').changes, label(node)).toEqual([
        `remove auths."${reg}" from /root/.docker/config.json`,
        `remove auths."https://${reg}" from /var/lib/kubelet/config.json`,
        `remove registry.configs."${reg}".auth from /etc/containerd/config.toml`,
      ]);
      const restart = report.hosts[node.name]?.tasks.find((t) => t.module === 'containerd.restart');
      expect(restart?.status, label(node)).toBe('changed');
    }
    const p4 = taskResult(report, plain().name, 'wipe');
    expect(p4.changes).toHaveLength(2);
    // A warning, not a failure: the run exits 0, and the helper's store is named as not removed.
    expect(p4.status).toBe('changed');
    expect(p4.warnings).toEqual([helperWarning()]);
    expect(p4.data).toEqual({ not_removed: [{ file: '/root/.docker/config.json', registry: reg, helper: 'pass' }] });
    for (const node of seededNodes()) expect(taskResult(report, node.name, 'wipe').data, node.name).toBeUndefined();
    // The credHelpers lines (both registries') are exactly as they were.
    expect(read(plain())['docker']).toContain(helperLines());
    expect(seeded.get(plain().name)!['docker']).toContain(helperLines());
    expect(report.hosts[plain().name]?.tasks.some((t) => t.module === 'containerd.restart')).toBe(false);

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
    for (const node of seededNodes()) {
      const CRI = criConfigs(node);
      const c = lineDiff(seeded.get(node.name)!['config']!, read(node)['config']!);
      expect(c.added, label(node)).toEqual([]);
      expect(
        c.removed.filter((l) => l.trim() !== ''),
        label(node),
      ).toEqual(authBlock(node));
      expect(read(node)['config']).toContain(`[${CRI}."${reg}".tls]\n  insecure_skip_verify = false`);
      expect(read(node)['config']).toContain(
        `[${CRI}."other.example:5000".auth]\n  username = "other-user"\n  password = "other-pass-9902"`,
      );
      expect(pid(node), label(node)).not.toBe(pids.get(node.name));
      // The real binary restarted on the edited file and serves the CRI again.
      await waitForCri(node.hostSocket, 10_000);
    }
    expect(read(plain())['config']).toBe(seeded.get(plain().name)!['config']);
    expect(pid(plain())).toBe(pids.get(plain().name));

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

  it('a second run finds nothing to remove: ok, unchanged, no restart; the helper warning stays, and check is clean (exit 0)', async () => {
    const pids = env.lab.nodes.map(pid);
    const run = await runCli(['run', pb, '-i', env.lab.inventoryPath, '--format', 'json', ...state()]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const report = jsonReport(run);
    for (const { name: host } of env.lab.nodes) {
      expect(report.hosts[host]?.recap.changed, host).toBe(0);
      expect(taskResult(report, host, 'wipe').status, host).toBe('ok');
    }
    // The helper's store may still hold the credential whatever trustplay does: said every run.
    expect(taskResult(report, plain().name, 'wipe').warnings).toEqual([helperWarning()]);
    // Not drift: check cannot ask for a change trustplay would never make.
    const check = await runCli(['check', pb, '-i', env.lab.inventoryPath, '--format', 'json', ...state()]);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    const checked = jsonReport(check);
    for (const node of env.lab.nodes)
      expect(taskResult(checked, node.name, 'wipe').warnings, node.name).toEqual(
        node === plain() ? [helperWarning()] : [],
      );
    noSecrets(check.stdout + check.stderr);
    expect(env.lab.nodes.map(pid)).toEqual(pids);
  });

  it('restore from the snapshot puts every removed entry back byte for byte', async () => {
    const id = seeded.get('runId')!['id']!;
    const run = await runCli(['restore', id, '-i', env.lab.inventoryPath, ...state()]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    noSecrets(run.stdout + run.stderr);
    for (const node of env.lab.nodes) expect(read(node), node.name).toEqual(seeded.get(node.name));
    for (const node of seededNodes()) await waitForCri(node.hostSocket, 20_000);
  });

  it('all: true removes the credential files themselves and every registry auth, but keeps TLS, on every version', async () => {
    const all = writePlaybook(
      dir,
      '- hosts: nodes\n  tasks:\n    - name: wipe all\n      node.creds.wipe: { registry: "{{ registry }}", all: true }\n',
    );
    const limit = seededNodes()
      .map((n) => n.name)
      .join(',');
    const run = await runCli([
      'run',
      all,
      '-i',
      env.lab.inventoryPath,
      '--limit',
      limit,
      '--format',
      'json',
      ...state(),
    ]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    noSecrets(run.stdout + run.stderr);
    seeded.set('allRunId', { id: jsonReport(run).runId });
    for (const node of seededNodes()) {
      expect(taskResult(jsonReport(run), node.name, 'wipe all').changes, label(node)).toEqual([
        `remove /root/.docker/config.json (credentials for ${reg}, other.example:5000)`,
        `remove /var/lib/kubelet/config.json (credentials for https://${reg}, other.example:5000)`,
        `remove registry.configs."${reg}".auth, registry.configs."other.example:5000".auth from /etc/containerd/config.toml`,
      ]);
      const after = read(node);
      expect(after['docker']).toBe('<absent>');
      expect(after['kubelet']).toBe('<absent>');
      expect(after['config']).not.toMatch(/\.auth\]/);
      expect(after['config']).toContain(`[${criConfigs(node)}."${reg}".tls]\n  insecure_skip_verify = false`);
      await waitForCri(node.hostSocket, 10_000);
    }
  });

  it("a run killed between its config.toml write and containerd's restart, its pending marker lost: the next run sees containerd still holds the credentials and restarts it, on 1.6 and 1.7 (CRI Status) and 2.1 (trustplay's restart record)", async () => {
    // Credentials back in every seeded node's file and daemon, restarted by trustplay (restore):
    // on 2.1 its restart record is what tells the daemon still holds them.
    const back = await runCli(['restore', seeded.get('allRunId')!['id']!, '-i', env.lab.inventoryPath, ...state()]);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    const nodes = seededNodes();
    const limit = ['--limit', nodes.map((n) => n.name).join(',')];
    for (const node of nodes) await waitForCri(node.hostSocket, 20_000);
    // The restart never comes: the run is killed while it would run. Its restart command goes on
    // on the node, holding the host's lock until it ends (the host is busy): 15 s outlasts the kill.
    const hang = writePlaybook(
      dir,
      '- hosts: nodes\n  tasks:\n    - name: wipe\n      node.creds.wipe: { registry: "{{ registry }}", restart_command: "touch /run/lab/tp-wipe-restarting; sleep 15" }\n',
    );
    const run = startTrustplay(['run', hang, '-i', env.lab.inventoryPath, ...limit, ...state()]);
    await untilEveryNodeHas(nodes, '/run/lab/tp-wipe-restarting', run);
    run.child.kill('SIGKILL');
    await run.done;
    const pids = new Map(nodes.map((n) => [n.name, pid(n)]));
    for (const node of nodes) {
      // Written, not restarted; and the record of that (the pending marker) is gone.
      expect(read(node)['config'], label(node)).not.toContain(`."${reg}".auth]`);
      const r = await inNode(node, 'rm /etc/containerd/config.toml.trustplay-pending /run/lab/tp-wipe-restarting');
      expect(r.code, `${label(node)}: ${r.stderr}`).toBe(0);
    }
    const daemonAuth = async (node: LabNode): Promise<string[]> => {
      const cri = createCriClient(node.hostSocket);
      try {
        return (await daemonRegistry(cri))?.authKeys ?? [];
      } finally {
        await cri.close();
      }
    };
    // The signal on 1.x: the daemon itself names the registry it still holds credentials for.
    for (const node of nodes.slice(0, 2)) expect(await daemonAuth(node), label(node)).toContain(reg);

    const check = await runCli(['check', pb, '-i', env.lab.inventoryPath, ...limit, ...state()]);
    expect(check.code, check.stdout + check.stderr).toBe(2);
    noSecrets(check.stdout + check.stderr);
    const said = (node: LabNode) =>
      node.containerd.version.startsWith('2.')
        ? `restart containerd: /etc/containerd/config.toml changed since trustplay last restarted containerd (credentials for ${reg} were removed), and containerd 2.x does not report the registry settings it runs with, so it may still use them`
        : `restart containerd: it still holds credentials for ${reg} that /etc/containerd/config.toml no longer has (removed after containerd started), so it keeps using them`;
    for (const node of nodes) expect(check.stdout, label(node)).toContain(`would ${said(node)}`);

    const fix = await runCli(['run', pb, '-i', env.lab.inventoryPath, ...limit, ...state()]);
    expect(fix.code, fix.stdout + fix.stderr).toBe(0);
    for (const node of nodes) {
      expect(fix.stdout, label(node)).toMatch(
        new RegExp(`^${node.name} \\| changed \\| handler: Restart containerd \\(verified\\)$`, 'm'),
      );
      expect(pid(node), label(node)).not.toBe(pids.get(node.name));
      expect(await daemonAuth(node), label(node)).not.toContain(reg);
    }
    // In step now: nothing more to do.
    const again = await runCli(['run', pb, '-i', env.lab.inventoryPath, ...limit, '--format', 'json', ...state()]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    for (const node of nodes) expect(jsonReport(again).hosts[node.name]?.recap.changed, label(node)).toBe(0);
    // Five runs and three restarts: tens of seconds on a shared 2-core machine.
  }, 240_000);
});
