/**
 * `image.pull.verify` and `image.rmi` through the real CLI against the lab: every failure class
 * from real endpoints (and the raw containerd message kept as detail), credentials that never show
 * up in any output, the digest check, check mode counting a failed verification as drift, and
 * rmi removing every tag of an image, then being ok.
 *
 * Order matters: node1 is made to trust the lab CA for registry.test, auth.test, expired.test and
 * wrongname.test first (hosts.toml written by hand, as an operator would); node2 trusts nothing.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCriClient, waitForCri } from '../../src/cri/client.js';
import type { JsonReport } from '../../src/report/json.js';
import type { Lab, LabNode } from '../lab/lab.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { inNode } from '../support/lab-node.js';
import { jsonReport, runCli, scratchDir, taskResult, writePlaybook } from '../fixtures/image-modules/run-cli.js';

async function trustLabCa(lab: Lab, node: LabNode, hosts: string[]): Promise<void> {
  const ca = readFileSync(lab.ca, 'utf8');
  const r = await inNode(
    node,
    [
      'set -e',
      'mkdir -p /etc/containerd/certs.d',
      'cat > /etc/containerd/certs.d/lab-ca.crt',
      ...hosts.map(
        (h) =>
          // The CA at the top level too: after the [host] entry answers 404, containerd tries
          // `server`, which would otherwise fail as an unknown authority and hide "not found".
          `mkdir -p '/etc/containerd/certs.d/${h}' && printf 'server = "https://${h}"\\nca = "/etc/containerd/certs.d/lab-ca.crt"\\n\\n[host."https://${h}"]\\n  capabilities = ["pull", "resolve"]\\n  ca = "/etc/containerd/certs.d/lab-ca.crt"\\n' > '/etc/containerd/certs.d/${h}/hosts.toml'`,
      ),
      `sed -i 's|^      config_path = ""$|      config_path = "/etc/containerd/certs.d"|' /etc/containerd/config.toml`,
      'grep -q "config_path = \\"/etc/containerd/certs.d\\"" /etc/containerd/config.toml',
      'systemctl restart containerd',
    ].join('\n'),
    ca,
  );
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  await waitForCri(node.hostSocket, 20_000);
}

async function imageOn(node: LabNode, ref: string): Promise<{ id: string; repoTags: string[] } | null> {
  const cri = createCriClient(node.hostSocket);
  try {
    return await cri.imageStatus(ref);
  } finally {
    await cri.close();
  }
}

describeLab('image.pull.verify and image.rmi through the CLI (lab)', () => {
  const env = useLab({ nodes: 2 });
  let dir: string;
  let inventory: string;
  let hanging: Server;
  let hangingPort = 0;
  const held = new Set<Socket>();
  const ref = (name: keyof Lab['registries'], repo = 'aegis/aegis-hc-install:latest'): string =>
    `${env.lab.registries[name].host}/${repo}`;
  const state = (): string[] => ['--state-dir', `${dir}/state`];

  beforeAll(async () => {
    dir = scratchDir('tp-image-e2e-');
    inventory = env.lab.inventoryPath;
    // A "registry" that accepts connections and never answers: the timeout class.
    hanging = createServer((s) => {
      held.add(s);
      s.on('error', () => undefined);
      s.once('close', () => held.delete(s));
    });
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    hangingPort = (hanging.address() as { port: number }).port;
    await trustLabCa(
      env.lab,
      env.lab.nodes[0]!,
      ['registry', 'auth', 'expired', 'wrongname'].map((n) => env.lab.registries[n as keyof Lab['registries']].host),
    );
  });

  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((resolve) => (hanging ? hanging.close(() => resolve()) : resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lab nodes resolve names only through loopback, so a made-up registry name fails as DNS without a query leaving the machine', async () => {
    for (const node of env.lab.nodes) {
      const r = await inNode(node, 'cat /etc/resolv.conf');
      const servers = r.stdout
        .split('\n')
        .filter((l) => /^\s*nameserver\s/.test(l))
        .map((l) => l.trim().split(/\s+/)[1]);
      expect(servers.length, node.name).toBeGreaterThan(0);
      for (const s of servers) expect(s, node.name).toMatch(/^127\./);
    }
  });

  it('classifies every failure class from a real endpoint, one line each, with the raw containerd message as detail', async () => {
    const lab = env.lab;
    const cases: [string, string, number?][] = [
      ['trusted registry', ref('registry')],
      ['self-signed', ref('selfsigned')],
      ['wrong name', ref('wrongname')],
      ['expired', ref('expired')],
      ['plain http', ref('plain')],
      ['closed port', ref('closed')],
      ['missing image', ref('registry', 'aegis/no-such-image:1')],
      ['missing credentials', ref('auth')],
      ['unknown name', 'nosuch.test:5000/aegis/aegis-hc-install:latest'],
      ['hanging registry', `127.0.0.1:${hangingPort}/aegis/aegis-hc-install:latest`, 2],
    ];
    const tasks = cases
      .map(
        ([name, image, timeout]) =>
          `    - name: ${name}\n      image.pull.verify: { image: "${image}"${timeout ? `, timeout: ${timeout}` : ''} }\n      ignore_errors: true`,
      )
      .join('\n');
    const pb = writePlaybook(dir, `- hosts: nodes\n  tasks:\n${tasks}\n`);
    const run = await runCli(['run', pb, '-i', inventory, '--format', 'json', ...state()]);
    const report = jsonReport(run);

    const n1 = (task: string) => taskResult(report, 'node1', task);
    const ok = n1('trusted registry');
    expect(ok.status).toBe('ok');
    expect(ok.changes).toEqual([]);
    expect(ok.data).toEqual({
      imageRef: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      repoDigest: `${lab.registries.registry.host}/aegis/aegis-hc-install@${lab.image.digest}`,
    });

    const expected: [string, RegExp, RegExp][] = [
      [
        'self-signed',
        /presents a certificate signed by a CA this node does not trust; trust the registry's CA: containerd\.tls with `ca:/,
        /x509: certificate signed by unknown authority/,
      ],
      [
        'wrong name',
        /certificate is valid for other\.test, not for wrongname\.test/,
        /x509: certificate is valid for other\.test, not wrongname\.test/,
      ],
      ['expired', /certificate has expired or is not yet valid/, /x509: certificate has expired or is not yet valid/],
      [
        'plain http',
        /speaks plain HTTP, but the node pulls over HTTPS; .*plain_http: true/,
        /server gave HTTP response to HTTPS client/,
      ],
      [
        'closed port',
        new RegExp(`the node cannot connect to ${lab.registries.closed.host.replace(/\./g, '\\.')}`),
        /connection refused/,
      ],
      ['missing image', /does not have this image \(repository or tag not found\)/, /not found/],
      ['missing credentials', /refused the pull: missing or wrong credentials/, /401 Unauthorized|unauthorized/i],
      ['unknown name', /the node cannot resolve nosuch\.test:5000/, /lookup nosuch\.test.* on 127\.0\.0\.1:53/],
      ['hanging registry', /timed out/, /did not finish within 2000 ms/],
    ];
    for (const [task, message, raw] of expected) {
      const r = n1(task);
      expect(r.status, task).toBe('failed');
      expect(r.ignored, task).toBe(true);
      expect(r.error?.kind, task).toBe('verification');
      expect(r.error?.message, task).toMatch(message);
      expect(r.error?.message, task).toMatch(/^pulling \S+ failed: /);
      expect(r.error?.message, task).not.toContain('\n');
      expect(r.error?.detail, task).toMatch(raw);
    }
    // node2 trusts nothing: the good registry is an unknown authority there.
    expect(taskResult(report, 'node2', 'trusted registry').error?.message).toMatch(
      /does not trust; trust the registry's CA/,
    );
    expect(taskResult(report, 'node2', 'wrong name').error?.message).toMatch(
      /certificate is valid for other\.test|does not trust/,
    );

    const ms = (host: string) => taskResult(report, host, 'trusted registry').durationMs;
    console.log(
      `image.pull.verify over SSH (CLI, first pull of a 1-layer image): node1 ${ms('node1')} ms; whole 10-task run ${report.durationMs} ms for 2 hosts`,
    );
  });

  it('pulls from the basic-auth registry only with `auth`, and the password never appears in any output', async () => {
    const password = env.lab.registries.auth.auth?.password;
    if (!password) throw new Error('the lab auth registry has no password');
    const pb = writePlaybook(
      dir,
      [
        '- hosts: node1',
        '  tasks:',
        '    - name: with credentials',
        `      image.pull.verify: { image: "${ref('auth')}", auth: { username: "{{ auth_user }}", password: "{{ auth_password }}" } }`,
        '',
      ].join('\n'),
    );
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    for (const format of ['json', 'plain'] as const) {
      const run = await runCli([
        'run',
        pb,
        '-i',
        inventory,
        '-e',
        'auth_user=labuser',
        '-e',
        `auth_password=${password}`,
        '--diff',
        ...(format === 'json' ? ['--format', 'json'] : []),
        ...state(),
      ]);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      for (const out of [run.stdout, run.stderr]) {
        expect(out).not.toContain(password);
        expect(out).not.toContain(b64(`labuser:${password}`));
      }
      if (format === 'json')
        expect(taskResult(jsonReport(run), 'node1', 'with credentials').data?.['repoDigest']).toBe(
          `${env.lab.registries.auth.host}/aegis/aegis-hc-install@${env.lab.image.digest}`,
        );
    }

    const wrong = 'not-the-password-8731';
    const bad = await runCli([
      'run',
      pb,
      '-i',
      inventory,
      '-e',
      'auth_user=labuser',
      '-e',
      `auth_password=${wrong}`,
      '--format',
      'json',
      ...state(),
    ]);
    expect(bad.code).toBe(1);
    expect(taskResult(jsonReport(bad), 'node1', 'with credentials').error?.message).toMatch(
      /refused the pull: missing or wrong credentials/,
    );
    expect(bad.stdout + bad.stderr).not.toContain(wrong);
  });

  it('checks the digest: the right one passes, another fails the run (exit 1) and is drift for check (exit 2)', async () => {
    const task = (digest: string) =>
      writePlaybook(
        dir,
        `- hosts: node1\n  tasks:\n    - name: digest\n      image.pull.verify: { image: "${ref('registry')}", expect_digest: "${digest}" }\n`,
      );
    const good = await runCli(['run', task(env.lab.image.digest), '-i', inventory, ...state()]);
    expect(good.code, good.stdout + good.stderr).toBe(0);
    const other = `sha256:${'0'.repeat(64)}`;
    const bad = await runCli(['run', task(other), '-i', inventory, '--format', 'json', ...state()]);
    expect(bad.code).toBe(1);
    const r = taskResult(jsonReport(bad), 'node1', 'digest');
    expect(r.error?.kind).toBe('verification');
    expect(r.error?.message).toBe(
      `${ref('registry')} resolved to ${env.lab.image.digest}, not the expected ${other}: the tag now points at another image (or another registry answered); check what was pushed`,
    );
    const drift = await runCli(['check', task(other), '-i', inventory, ...state()]);
    expect(drift.code, drift.stdout + drift.stderr).toBe(2);
  });

  it('image.rmi: check says it would remove (and does not), run removes every tag, a second run is ok', async () => {
    const node = env.lab.nodes[0]!;
    // Pulled from registry.test and auth.test by the tests above: one image, two tags.
    const before = await imageOn(node, ref('registry'));
    expect(before?.repoTags.sort()).toEqual([ref('registry'), ref('auth')].sort());
    const pb = writePlaybook(
      dir,
      `- hosts: node1\n  tasks:\n    - name: rmi\n      image.rmi: { image: "${ref('registry')}" }\n`,
    );

    const check = await runCli(['check', pb, '-i', inventory, ...state()]);
    expect(check.code, check.stdout + check.stderr).toBe(2);
    expect(check.stdout).toContain(
      `would remove image ${ref('registry')} (${before!.id.replace(/^sha256:/, '').slice(0, 12)}: `,
    );
    expect(await imageOn(node, ref('registry'))).not.toBeNull();

    const first = await runCli(['run', pb, '-i', inventory, '--format', 'json', ...state()]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const removed = taskResult(jsonReport(first), 'node1', 'rmi');
    expect(removed.status).toBe('changed');
    expect(removed.changes[0]).toMatch(/^remove image /);
    expect(await imageOn(node, ref('registry'))).toBeNull();
    expect(await imageOn(node, ref('auth'))).toBeNull();

    const second = await runCli(['run', pb, '-i', inventory, '--format', 'json', ...state()]);
    expect(second.code).toBe(0);
    const again = taskResult(jsonReport(second), 'node1', 'rmi');
    expect(again.status).toBe('ok');
    expect(again.changes).toEqual([]);
    console.log(`image.rmi over SSH (CLI): removing ${removed.durationMs} ms, absent ${again.durationMs} ms`);
  });

  it('check mode still verifies: a passing pull is exit 0 (and really pulled), a failing one is drift, exit 2', async () => {
    const node = env.lab.nodes[0]!;
    expect(await imageOn(node, ref('registry'))).toBeNull();
    const pass = writePlaybook(
      dir,
      `- hosts: node1\n  tasks:\n    - name: verify\n      image.pull.verify: { image: "${ref('registry')}" }\n`,
    );
    const ok = await runCli(['check', pass, '-i', inventory, ...state()]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(await imageOn(node, ref('registry'))).not.toBeNull();

    const fail = writePlaybook(
      dir,
      `- hosts: nodes\n  tasks:\n    - name: verify\n      image.pull.verify: { image: "${ref('registry')}" }\n`,
    );
    const drift = await runCli(['check', fail, '-i', inventory, '--format', 'json', ...state()]);
    expect(drift.code).toBe(2);
    const report: JsonReport = jsonReport(drift);
    expect(taskResult(report, 'node1', 'verify').status).toBe('ok');
    expect(taskResult(report, 'node2', 'verify').error?.kind).toBe('verification');
  });

  it('retries what a retry can fix (with back-off), and not a certificate problem', async () => {
    const pb = writePlaybook(
      dir,
      [
        '- hosts: node1',
        '  tasks:',
        `    - { name: closed, image.pull.verify: { image: "${ref('closed')}", retries: 1 }, ignore_errors: true }`,
        `    - { name: untrusted, image.pull.verify: { image: "${ref('selfsigned')}", retries: 3 }, ignore_errors: true }`,
        '',
      ].join('\n'),
    );
    const report = jsonReport(await runCli(['run', pb, '-i', inventory, '--format', 'json', ...state()]));
    expect(taskResult(report, 'node1', 'closed').error?.message).toMatch(
      /^pulling \S+ failed \(2 attempts\): the node cannot connect/,
    );
    expect(taskResult(report, 'node1', 'untrusted').error?.message).toMatch(
      /^pulling \S+ failed: \S+ presents a certificate signed by a CA/,
    );
  });
});
