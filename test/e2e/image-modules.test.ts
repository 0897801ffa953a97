/**
 * `image.pull.verify` and `image.rmi` through the real CLI against the lab: every failure class
 * from real endpoints (and the raw containerd message kept as detail), credentials that never show
 * up in any output, the digest check, check mode counting a failed verification as drift, and
 * rmi removing every tag of an image, then being ok.
 *
 * Order matters: node1, node2 and node3 (containerd 1.6, 1.7 and 2.1) are made to trust the lab CA
 * for registry.test, auth.test, expired.test and wrongname.test first (hosts.toml written by hand,
 * as an operator would); node4 trusts nothing. Every assertion on a trusted node holds on each version.
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
      // 1.x writes config_path = "" and 2.x config_path = '' (version 3 files use literal strings).
      `sed -i -E "s#^      config_path = (''|\\"\\")\\$#      config_path = '/etc/containerd/certs.d'#" /etc/containerd/config.toml`,
      `grep -q "config_path = '/etc/containerd/certs.d'" /etc/containerd/config.toml`,
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

describeLab('image.pull.verify and image.rmi through the CLI (lab: containerd 1.6, 1.7, 2.1)', () => {
  // node1-3 trust the lab CA (one per containerd version); node4 (1.6) trusts nothing.
  const env = useLab({ nodes: 4, containerd: ['1.6', '1.7', '2.1', '1.6'] });
  const TRUSTED = ['node1', 'node2', 'node3'];
  const trustedNodes = (): LabNode[] => env.lab.nodes.filter((n) => TRUSTED.includes(n.name));
  const label = (host: string): string =>
    `${host} (containerd ${env.lab.nodes.find((n) => n.name === host)!.containerd.version})`;
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
    for (const node of trustedNodes())
      await trustLabCa(
        env.lab,
        node,
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

  it('classifies every failure class from a real endpoint, one line each, with the raw containerd message as detail, on 1.6, 1.7 and 2.1', async () => {
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

    for (const host of TRUSTED) {
      const ok = taskResult(report, host, 'trusted registry');
      expect(ok.status, label(host)).toBe('ok');
      expect(ok.changes).toEqual([]);
      expect(ok.data).toEqual({
        imageRef: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
        repoDigest: `${lab.registries.registry.host}/aegis/aegis-hc-install@${lab.image.digest}`,
      });
    }

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
      // containerd 1.6 reports the registry's 401; 1.7 and 2.1 word it as "pull access denied ...
      // authorization failed: no basic auth credentials". Both classify the same.
      [
        'missing credentials',
        /refused the pull: missing or wrong credentials/,
        /401 Unauthorized|pull access denied, .*authorization failed: no basic auth credentials/i,
      ],
      ['unknown name', /the node cannot resolve nosuch\.test:5000/, /lookup nosuch\.test.* on 127\.0\.0\.1:53/],
      ['hanging registry', /timed out/, /did not finish within 2000 ms/],
    ];
    for (const host of TRUSTED) {
      for (const [task, message, raw] of expected) {
        const r = taskResult(report, host, task);
        const what = `${label(host)}: ${task}`;
        expect(r.status, what).toBe('failed');
        expect(r.ignored, what).toBe(true);
        expect(r.error?.kind, what).toBe('verification');
        expect(r.error?.message, what).toMatch(message);
        expect(r.error?.message, what).toMatch(/^pulling \S+ failed: /);
        expect(r.error?.message, what).not.toContain('\n');
        expect(r.error?.detail, what).toMatch(raw);
        if (task === 'missing credentials')
          expect(r.error?.detail, what).toMatch(
            label(host).includes('containerd 1.6')
              ? /401 Unauthorized/
              : /authorization failed: no basic auth credentials/,
          );
      }
    }
    // node4 trusts nothing: the good registry is an unknown authority there.
    expect(taskResult(report, 'node4', 'trusted registry').error?.message).toMatch(
      /does not trust; trust the registry's CA/,
    );
    expect(taskResult(report, 'node4', 'wrong name').error?.message).toMatch(
      /certificate is valid for other\.test|does not trust/,
    );

    const ms = (host: string) => taskResult(report, host, 'trusted registry').durationMs;
    console.log(
      `image.pull.verify over SSH (CLI, first pull of a 1-layer image): ${TRUSTED.map((h) => `${label(h)} ${ms(h)} ms`).join(', ')}; whole 10-task run ${report.durationMs} ms for 4 hosts`,
    );
  });

  it('pulls from the basic-auth registry only with `auth`, and the password never appears in any output', async () => {
    const password = env.lab.registries.auth.auth?.password;
    if (!password) throw new Error('the lab auth registry has no password');
    const pb = writePlaybook(
      dir,
      [
        '- hosts: "nodes:!node4"',
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
        for (const host of TRUSTED)
          expect(taskResult(jsonReport(run), host, 'with credentials').data?.['repoDigest'], label(host)).toBe(
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
    for (const host of TRUSTED)
      expect(taskResult(jsonReport(bad), host, 'with credentials').error?.message, label(host)).toMatch(
        /refused the pull: missing or wrong credentials/,
      );
    expect(bad.stdout + bad.stderr).not.toContain(wrong);
  });

  it('checks the digest: the right one passes, another fails the run (exit 1) and is drift for check (exit 2)', async () => {
    const task = (digest: string) =>
      writePlaybook(
        dir,
        `- hosts: "nodes:!node4"\n  tasks:\n    - name: digest\n      image.pull.verify: { image: "${ref('registry')}", expect_digest: "${digest}" }\n`,
      );
    const good = await runCli(['run', task(env.lab.image.digest), '-i', inventory, ...state()]);
    expect(good.code, good.stdout + good.stderr).toBe(0);
    const other = `sha256:${'0'.repeat(64)}`;
    const bad = await runCli(['run', task(other), '-i', inventory, '--format', 'json', ...state()]);
    expect(bad.code).toBe(1);
    for (const host of TRUSTED) {
      const r = taskResult(jsonReport(bad), host, 'digest');
      expect(r.error?.kind, label(host)).toBe('verification');
      expect(r.error?.message, label(host)).toBe(
        `${ref('registry')} resolved to ${env.lab.image.digest}, not the expected ${other}: the tag now points at another image (or another registry answered); check what was pushed`,
      );
    }
    const drift = await runCli(['check', task(other), '-i', inventory, ...state()]);
    expect(drift.code, drift.stdout + drift.stderr).toBe(2);
  });

  it('image.rmi: check says it would remove (and does not), run removes every tag, a second run is ok', async () => {
    // Pulled from registry.test and auth.test by the tests above: one image, two tags.
    const before = await imageOn(trustedNodes()[0]!, ref('registry'));
    for (const node of trustedNodes())
      expect((await imageOn(node, ref('registry')))?.repoTags.sort(), node.name).toEqual(
        [ref('registry'), ref('auth')].sort(),
      );
    const pb = writePlaybook(
      dir,
      `- hosts: "nodes:!node4"\n  tasks:\n    - name: rmi\n      image.rmi: { image: "${ref('registry')}" }\n`,
    );

    const check = await runCli(['check', pb, '-i', inventory, ...state()]);
    expect(check.code, check.stdout + check.stderr).toBe(2);
    expect(check.stdout).toContain(
      `would remove image ${ref('registry')} (${before!.id.replace(/^sha256:/, '').slice(0, 12)}: `,
    );
    for (const node of trustedNodes()) expect(await imageOn(node, ref('registry')), node.name).not.toBeNull();

    const first = await runCli(['run', pb, '-i', inventory, '--format', 'json', ...state()]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const removed = taskResult(jsonReport(first), 'node1', 'rmi');
    for (const node of trustedNodes()) {
      const r = taskResult(jsonReport(first), node.name, 'rmi');
      expect(r.status, label(node.name)).toBe('changed');
      expect(r.changes[0], label(node.name)).toMatch(/^remove image /);
      expect(await imageOn(node, ref('registry')), label(node.name)).toBeNull();
      expect(await imageOn(node, ref('auth')), label(node.name)).toBeNull();
    }

    const second = await runCli(['run', pb, '-i', inventory, '--format', 'json', ...state()]);
    expect(second.code).toBe(0);
    const again = taskResult(jsonReport(second), 'node1', 'rmi');
    for (const host of TRUSTED) {
      expect(taskResult(jsonReport(second), host, 'rmi').status, label(host)).toBe('ok');
      expect(taskResult(jsonReport(second), host, 'rmi').changes).toEqual([]);
    }
    console.log(`image.rmi over SSH (CLI): removing ${removed.durationMs} ms, absent ${again.durationMs} ms`);
  });

  it('check mode still verifies: a passing pull is exit 0 (and really pulled), a failing one is drift, exit 2', async () => {
    for (const node of trustedNodes()) expect(await imageOn(node, ref('registry')), node.name).toBeNull();
    const pass = writePlaybook(
      dir,
      `- hosts: "nodes:!node4"\n  tasks:\n    - name: verify\n      image.pull.verify: { image: "${ref('registry')}" }\n`,
    );
    const ok = await runCli(['check', pass, '-i', inventory, ...state()]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    for (const node of trustedNodes()) expect(await imageOn(node, ref('registry')), node.name).not.toBeNull();

    const fail = writePlaybook(
      dir,
      `- hosts: nodes\n  tasks:\n    - name: verify\n      image.pull.verify: { image: "${ref('registry')}" }\n`,
    );
    const drift = await runCli(['check', fail, '-i', inventory, '--format', 'json', ...state()]);
    expect(drift.code).toBe(2);
    const report: JsonReport = jsonReport(drift);
    for (const host of TRUSTED) expect(taskResult(report, host, 'verify').status, label(host)).toBe('ok');
    expect(taskResult(report, 'node4', 'verify').error?.kind).toBe('verification');
  });

  it('retries what a retry can fix (with back-off), and not a certificate problem', async () => {
    const pb = writePlaybook(
      dir,
      [
        '- hosts: "nodes:!node4"',
        '  tasks:',
        `    - { name: closed, image.pull.verify: { image: "${ref('closed')}", retries: 1 }, ignore_errors: true }`,
        `    - { name: untrusted, image.pull.verify: { image: "${ref('selfsigned')}", retries: 3 }, ignore_errors: true }`,
        '',
      ].join('\n'),
    );
    const report = jsonReport(await runCli(['run', pb, '-i', inventory, '--format', 'json', ...state()]));
    for (const host of TRUSTED) {
      expect(taskResult(report, host, 'closed').error?.message, label(host)).toMatch(
        /^pulling \S+ failed \(2 attempts\): the node cannot connect/,
      );
      expect(taskResult(report, host, 'untrusted').error?.message, label(host)).toMatch(
        /^pulling \S+ failed: \S+ presents a certificate signed by a CA/,
      );
    }
  });
});
