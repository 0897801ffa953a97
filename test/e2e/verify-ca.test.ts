/**
 * containerd.tls `verify_ca` on the lab (one node, containerd 1.6, the machine's own package: the
 * pre-flight is a handshake from the node and diagnose's chain evaluation, the same on every
 * containerd version): a CA that did not sign what registry.test serves is refused with the
 * diagnosis and nothing is written (every managed file byte for byte, containerd not restarted);
 * verify_ca: false writes it anyway; the lab CA is applied and the pull works; a registry nobody
 * listens for (closed.test) fails the task under verify_ca: true with nothing written, and under
 * auto is a warning and the CA is written; run again, the converged task is not checked under auto
 * (it writes nothing), and still is under true. Then `check --expiry-warning 30d` on the converged node
 * warns (exit still 0) about a CA it trusts for the registry that expires in three days (made by
 * openssl here), on the node's line, naming the certificate's subject and fingerprint and the days left.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { selfSignedCa } from '../lab/certs.js';
import { labState } from '../lab/lab.js';
import { run } from '../lab/procs.js';
import { trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, managedState } from '../support/lab-node.js';

interface JsonTask {
  task: string;
  status: string;
  warnings: string[];
  error?: { message: string };
}

describeLab('containerd.tls verify_ca: the CA is checked against what the registry serves to the node', () => {
  const env = useLab({ nodes: 1 });
  let tmp: string;
  let wrongCa: string;
  const node = () => env.lab.nodes[0]!;
  const pid = () => labState(env.lab.dir).nodes[0]!.containerdPid;
  const runTask = async (args: Record<string, unknown>, cmd: 'run' | 'check' = 'run', ...extra: string[]) => {
    const file = join(tmp, `pb-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(file, stringify([{ hosts: 'nodes', tasks: [{ name: 'trust', 'containerd.tls': args }] }]));
    const r = await trustplay([
      cmd,
      file,
      '-i',
      env.lab.inventoryPath,
      '--state-dir',
      join(tmp, 'state'),
      '--format',
      'json',
      ...extra,
    ]);
    const report = JSON.parse(r.stdout) as { hosts: Record<string, { tasks: JsonTask[] }> };
    return { code: r.code, out: r.stdout + r.stderr, task: report.hosts[node().name]!.tasks[0]! };
  };

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'trustplay-e2e-verify-ca-'));
    wrongCa = (await selfSignedCa(tmp, 'other-ca', 'some other CA')).cert;
  });
  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('a CA that did not sign the served chain is refused with the diagnosis; nothing is written, containerd is not restarted', async () => {
    const reg = env.lab.registries.registry.host;
    const before = await managedState(node());
    const pid0 = pid();
    for (const verify_ca of [undefined, true]) {
      const r = await runTask({ registry: reg, ca: wrongCa, ...(verify_ca === undefined ? {} : { verify_ca }) });
      expect(r.code, r.out).toBe(1);
      expect(r.task.status).toBe('failed');
      const msg = r.task.error?.message ?? '';
      expect(msg).toMatch(
        /verify_ca: .*other-ca\.pem does not validate the chain registry\.test:\d+ serves to this node/,
      );
      // The diagnosis: cause, and the evidence (the served chain's issuer and fingerprint).
      expect(msg).toMatch(/The node sees now: unknown-authority: x509: certificate signed by unknown authority/);
      expect(msg).toMatch(
        /Served chain: subject "CN=registry\.test", issuer "CN=trustplay lab CA", sha256:[0-9a-f]{64}/,
      );
      expect(msg).toContain('nothing was written');
    }
    expect(await managedState(node())).toBe(before);
    expect(pid()).toBe(pid0);
  }, 300_000);

  it('verify_ca: false skips the check and writes the same CA (the pull then fails with x509)', async () => {
    const reg = env.lab.registries.registry.host;
    const r = await runTask({ registry: reg, ca: wrongCa, verify_ca: false });
    expect(r.code, r.out).toBe(0);
    expect(r.task.status).toBe('changed');
    expect(r.task.warnings.join('\n')).not.toMatch(/verify_ca/);
    expect(await criPull(node().hostSocket, env.lab.image.ref, { fresh: true })).toMatch(/x509/);
  }, 300_000);

  it('the lab CA validates what registry.test serves: applied under auto with no verify_ca warning, the pull works', async () => {
    const reg = env.lab.registries.registry.host;
    const r = await runTask({ registry: reg, ca: env.lab.ca });
    expect(r.code, r.out).toBe(0);
    expect(r.task.status).toBe('changed');
    expect(r.task.warnings.join('\n')).not.toMatch(/verify_ca/);
    expect(await criPull(node().hostSocket, env.lab.image.ref, { fresh: true })).toBe('');
    const check = await runTask({ registry: reg, ca: env.lab.ca, verify_ca: true }, 'check');
    expect(check.code, check.out).toBe(0);
  }, 300_000);

  it('a registry the node cannot reach: verify_ca: true fails with nothing written; auto warns and writes the CA', async () => {
    const reg = env.lab.registries.closed.host;
    const before = await managedState(node());
    const strict = await runTask({ registry: reg, ca: env.lab.ca, verify_ca: true });
    expect(strict.code, strict.out).toBe(1);
    expect(strict.task.error?.message).toMatch(
      /verify_ca: the CA could not be checked against what closed\.test:\d+ serves to this node \(.*refused.*\); verify_ca: true requires the check, so nothing was written/,
    );
    expect(await managedState(node())).toBe(before);

    const auto = await runTask({ registry: reg, ca: env.lab.ca });
    expect(auto.code, auto.out).toBe(0);
    expect(auto.task.status).toBe('changed');
    expect(auto.task.warnings).toContainEqual(
      expect.stringMatching(
        /verify_ca: the CA could not be checked against what closed\.test:\d+ serves .*written unchecked/,
      ),
    );
    expect(await managedState(node())).toMatch(new RegExp(`/etc/containerd/certs.d/${reg.replace('.', '\\.')}/ca.crt`));

    // Converged: under auto a task that writes nothing is not checked (no handshake, no warning);
    // verify_ca: true still checks every time.
    const again = await runTask({ registry: reg, ca: env.lab.ca });
    expect(again.code, again.out).toBe(0);
    expect(again.task.status).toBe('ok');
    expect(again.task.warnings.join('\n')).not.toMatch(/verify_ca/);
    const strictAgain = await runTask({ registry: reg, ca: env.lab.ca, verify_ca: true }, 'check');
    expect(strictAgain.code, strictAgain.out).toBe(1);
    expect(strictAgain.task.error?.message).toMatch(/verify_ca: true requires the check/);
  }, 300_000);

  it('check --expiry-warning 30d warns about a CA the node trusts for the registry that expires in 3 days; the exit code stays 0', async () => {
    const reg = env.lab.registries.registry.host;
    const short = (await selfSignedCa(tmp, 'short-ca', 'short-lived CA', 3)).cert;
    // The lab CA validates what the registry serves; the short-lived one rides along in the bundle.
    const task = { registry: reg, ca: [env.lab.ca, short] };
    const applied = await runTask(task);
    expect(applied.code, applied.out).toBe(0);
    const fp = (await run('openssl', ['x509', '-in', short, '-noout', '-fingerprint', '-sha256'])).stdout
      .trim()
      .replace(/^.*=/, '')
      .replace(/:/g, '')
      .toLowerCase();

    const warned = await runTask(task, 'check', '--expiry-warning', '30d');
    expect(warned.code, warned.out).toBe(0);
    expect(warned.task.status).toBe('ok');
    const line = new RegExp(
      `^expiry: certificate "CN=short-lived CA" \\(sha256:${fp}\\), trusted by the node \\(/etc/containerd/certs.d/${reg.replace(/\./g, '\\.')}/ca.crt\\) for ${reg.replace(/\./g, '\\.')}, expires in 2 days \\(`,
    );
    expect(warned.task.warnings.filter((w) => line.test(w))).toHaveLength(1);
    // Once per certificate: the task's copy of the same CA is not listed again.
    expect(warned.task.warnings.filter((w) => w.includes(fp))).toHaveLength(1);

    const quiet = await runTask(task, 'check', '--expiry-warning', '1d');
    expect(quiet.code, quiet.out).toBe(0);
    expect(quiet.task.warnings.join('\n')).not.toContain('short-lived CA');
    const none = await runTask(task, 'check');
    expect(none.task.warnings.join('\n')).not.toMatch(/^expiry:/m);
  }, 300_000);
});
