/**
 * `trustplay diagnose` through the real CLI against the lab's base registries, over SSH (the TCP
 * connection is a direct-tcpip channel opened by the node's sshd, so the node's /etc/hosts decides
 * where `*.test` goes): each cause named with its evidence, `--ca` as a pre-flight, the proposed
 * containerd.tls task applied as it was printed, and the exit codes 0/2/3/4. Credentials are named,
 * never shown. (The containerd-versus-diagnose agreement on every variant is diagnose-variants.test.ts.)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Diagnosis } from '../../src/diagnose/diagnose.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { nodeSshdPids, restartNodeSshd } from '../lab/lab.js';
import { waitFor } from '../lab/procs.js';
import { runCli, scratchDir } from '../fixtures/image-modules/run-cli.js';
import { rmSync } from 'node:fs';

interface DiagnoseJson {
  registry: string;
  exitCode: number;
  hosts: Diagnosis[];
}

describeLab('trustplay diagnose (lab, containerd 1.6, over SSH)', () => {
  const env = useLab({ nodes: 1 });
  let dir: string;
  beforeAll(() => {
    dir = scratchDir('tp-diagnose-');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const diagnose = async (registry: string, ...extra: string[]) => {
    const run = await runCli(['diagnose', registry, '-i', env.lab.inventoryPath, '--format', 'json', ...extra]);
    let json: DiagnoseJson;
    try {
      json = JSON.parse(run.stdout) as DiagnoseJson;
    } catch {
      throw new Error(`not JSON (exit ${run.code}): ${run.stdout}${run.stderr}`);
    }
    expect(json.exitCode).toBe(run.code);
    return { run, json, node: json.hosts[0]! };
  };

  it('unknown authority: names the issuer, checks --ca from the node, and its fix makes the node trust it', async () => {
    const reg = env.lab.registries.registry;
    const before = await diagnose(reg.host);
    expect(before.run.code).toBe(2);
    expect(before.node.cause).toBe('unknown-authority');
    expect(before.node.view).toBe('node (direct TCP channel)');
    expect(before.node.evidence.chain?.[0]).toMatchObject({
      subject: 'CN=registry.test',
      issuer: 'CN=trustplay lab CA',
    });
    expect(before.node.evidence.chain?.[0]?.sha256).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(before.node.fix?.task?.['containerd.tls']).toMatchObject({ registry: reg.host });

    const withCa = await diagnose(reg.host, '--ca', env.lab.ca);
    expect(withCa.node.ca_check).toMatchObject({ validates: true });
    const wrongCa = await diagnose(reg.host, '--ca', path.join(path.dirname(env.lab.ca), 'selfsigned.pem'));
    expect(wrongCa.node.ca_check).toMatchObject({ validates: false });
    expect(wrongCa.node.fix?.task?.['containerd.tls']?.['ca']).not.toBe(
      path.join(path.dirname(env.lab.ca), 'selfsigned.pem'),
    );

    // The fix exactly as proposed, run as a playbook.
    const task = withCa.node.fix?.task;
    expect(task).toEqual({ name: `trust ${reg.host}'s CA`, 'containerd.tls': { registry: reg.host, ca: env.lab.ca } });
    const playbook = path.join(dir, 'fix.yaml');
    writeFileSync(playbook, stringify([{ hosts: 'all', tasks: [task] }]));
    const applied = await runCli([
      'run',
      playbook,
      '-i',
      env.lab.inventoryPath,
      '--state-dir',
      path.join(dir, 'state'),
    ]);
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);

    const after = await diagnose(reg.host);
    expect(after.run.code).toBe(0);
    expect(after.node.cause).toBe('healthy');
    expect(after.node.evidence.trusted_by).toMatch(/trustplay lab CA \(hosts\.toml ca \/etc\/containerd\/certs\.d\//);
    expect(after.node.fix).toBeNull();

    // --expiry-warning: the lab's certificates live 30 days, so 60 days warns about the served leaf and
    // the CA the node trusts for the registry, naming both; 10 days warns about nothing.
    const soon = await diagnose(reg.host, '--expiry-warning', '60d');
    expect(soon.run.code).toBe(0);
    expect(soon.node.expiry_warnings?.map((w) => [w.subject, w.where.replace(/ \(.*/, '')])).toEqual([
      ['CN=registry.test', 'served by the registry'],
      ['CN=trustplay lab CA', 'trusted by the node'],
    ]);
    expect(soon.node.expiry_warnings?.[0]?.days_left).toBeLessThanOrEqual(30);
    const human = await runCli(['diagnose', reg.host, '-i', env.lab.inventoryPath, '--expiry-warning', '8w']);
    expect(human.stdout).toMatch(
      /WARNING: "CN=trustplay lab CA" \(trusted by the node \(hosts\.toml ca .*\)\) expires on .*, in \d+ days/,
    );
    expect((await diagnose(reg.host, '--expiry-warning', '10d')).node.expiry_warnings).toBeUndefined();
    expect((await runCli(['diagnose', reg.host, '--expiry-warning', 'soon'])).code).toBe(3);
  }, 300_000);

  it('TLS fine, 401: names the credentials the node holds, never their values', async () => {
    const reg = env.lab.registries.auth;
    const playbook = path.join(dir, 'auth.yaml');
    writeFileSync(
      playbook,
      stringify([{ hosts: 'all', tasks: [{ 'containerd.tls': { registry: reg.host, ca: env.lab.ca } }] }]),
    );
    expect(
      (await runCli(['run', playbook, '-i', env.lab.inventoryPath, '--state-dir', path.join(dir, 'state')])).code,
    ).toBe(0);
    const { run, node } = await diagnose(reg.host);
    expect(run.code).toBe(2);
    expect(node.cause).toBe('unauthorized');
    expect(node.summary).toMatch(/TLS is fine/);
    expect(node.evidence.http_status).toBe(401);
    expect(node.evidence.www_authenticate).toBe('Basic realm="trustplay-lab"');
    const password = reg.auth?.password ?? 'unset';
    expect(run.stdout + run.stderr).not.toContain(password);
    const human = await runCli(['diagnose', reg.host, '-i', env.lab.inventoryPath]);
    expect(human.stdout).toMatch(/UNAUTHORIZED/);
    expect(human.stdout + human.stderr).not.toContain(password);
  }, 180_000);

  it('names each base variant: self-signed, expired, wrong name, plain HTTP, refused, DNS', async () => {
    const r = env.lab.registries;
    const cases: [string, string, RegExp][] = [
      [r.selfsigned.host, 'self-signed', /self-signed \("selfsigned\.test"/],
      [r.expired.host, 'expired', /expired on Feb {2}1 00:00:00 2020 GMT/],
      [r.wrongname.host, 'name-mismatch', /valid for DNS:other\.test, not wrongname\.test/],
      [r.plain.host, 'plain-http', /answers plain HTTP/],
      [r.closed.host, 'unreachable', /refused/],
      ['nosuch.test:5000', 'dns', /cannot resolve nosuch\.test/],
    ];
    const got = await Promise.all(cases.map(([host]) => diagnose(host)));
    for (const [i, [host, cause, detail]] of cases.entries()) {
      const g = got[i]!;
      expect(g.node.cause, host).toBe(cause);
      expect(g.node.summary, host).toMatch(detail);
      expect(g.run.code, host).toBe(2);
      // Nothing insecure is ever proposed.
      expect(JSON.stringify(g.node.fix ?? {}), host).not.toMatch(/skip_verify|plain_http/);
    }
  }, 180_000);

  it('--fetch-ca: offers only a self-signed certificate the registry sends, writes it only with the matching fingerprint', async () => {
    const ss = env.lab.registries.selfsigned;
    const out = path.join(dir, 'fetched.pem');
    const offered = await diagnose(ss.host, '--fetch-ca');
    const fp = (offered.json as DiagnoseJson & { fetch_ca: { offered: { sha256: string } } }).fetch_ca.offered.sha256;
    expect(offered.run.code).toBe(2);
    expect(fp).toBe(offered.node.evidence.chain?.[0]?.sha256);
    const wrong = await diagnose(
      ss.host,
      '--fetch-ca',
      '--ca-fingerprint',
      `sha256:${'0'.repeat(64)}`,
      '--output',
      out,
    );
    expect(wrong.run.code).toBe(2);
    expect(wrong.run.stdout).toMatch(/does not match what selfsigned\.test:\d+ serves .*nothing was written/);
    expect(() => readFileSync(out)).toThrow();
    // Colons and upper case, as openssl prints fingerprints, are accepted.
    const colons = fp
      .replace('sha256:', '')
      .toUpperCase()
      .replace(/(..)(?=.)/g, '$1:');
    const ok = await diagnose(ss.host, '--fetch-ca', '--ca-fingerprint', colons, '--output', out);
    expect(ok.run.code).toBe(0);
    expect(readFileSync(out, 'utf8').trim()).toBe(
      readFileSync(path.join(path.dirname(env.lab.ca), 'selfsigned.pem'), 'utf8').trim(),
    );
    // A registry that does not send its root: nothing to fetch.
    const none = await runCli([
      'diagnose',
      env.lab.registries.wrongname.host,
      '-i',
      env.lab.inventoryPath,
      '--fetch-ca',
    ]);
    expect(none.code).toBe(2);
    expect(none.stdout).toMatch(/does not send a self-signed root to any node .*get its CA from the registry's owner/);
  }, 180_000);

  describe('exit codes', () => {
    it('3 for a bad registry name or an unreadable --ca; 4 for an unreachable node', async () => {
      expect((await runCli(['diagnose', 'not a name', '-i', env.lab.inventoryPath])).code).toBe(3);
      const noCa = await runCli([
        'diagnose',
        env.lab.registries.registry.host,
        '-i',
        env.lab.inventoryPath,
        '--ca',
        '/nonexistent.pem',
      ]);
      expect(noCa.code).toBe(3);
      expect(noCa.stderr).toMatch(/--ca \/nonexistent\.pem: cannot read it/);
      const inv = path.join(dir, 'down.yaml');
      writeFileSync(
        inv,
        readFileSync(env.lab.inventoryPath, 'utf8').replace(/ansible_port: \d+|port: \d+/, (m) =>
          m.replace(/\d+/, '1'),
        ),
      );
      const down = await runCli(['diagnose', env.lab.registries.registry.host, '-i', inv, '--format', 'json']);
      expect(down.code, down.stdout + down.stderr).toBe(4);
      expect((JSON.parse(down.stdout) as DiagnoseJson).hosts[0]?.cause).toBe('host-unreachable');
    }, 180_000);
  });

  it("sshd forbids TCP forwarding: the node's own openssl s_client makes the handshake, and the causes are the same", async () => {
    const node = env.lab.nodes[0]!;
    const cfg = path.join(node.root, 'ssh', 'sshd_config');
    const original = readFileSync(cfg, 'utf8');
    const restart = async () => {
      for (const pid of nodeSshdPids(node)) process.kill(pid, 'SIGTERM');
      await waitFor("the node's sshd to stop", () => Promise.resolve(nodeSshdPids(node).length === 0));
      await restartNodeSshd(node);
    };
    writeFileSync(cfg, `${original}AllowTcpForwarding no\n`);
    try {
      await restart();
      const r = env.lab.registries;
      const [selfsigned, auth, closed] = await Promise.all([
        diagnose(r.selfsigned.host),
        diagnose(r.auth.host),
        diagnose(r.closed.host),
      ]);
      for (const g of [selfsigned, auth, closed])
        expect(g.node.view, g.node.summary).toBe('node (openssl s_client: TCP forwarding is forbidden)');
      expect(selfsigned.node.cause, selfsigned.node.summary).toBe('self-signed');
      expect(selfsigned.node.evidence.chain?.[0]?.subject).toBe('CN=selfsigned.test');
      // The chain as served, and the registry's answer to GET /v2/ after the handshake.
      expect(auth.node.evidence.chain?.[0]?.issuer).toBe('CN=trustplay lab CA');
      expect(auth.node.evidence.http_status).toBe(401);
      expect(closed.node.cause, closed.node.summary).toBe('unreachable');
      expect(closed.node.summary).toMatch(/refused/);
    } finally {
      writeFileSync(cfg, original);
      await restart();
    }
  }, 180_000);
});
