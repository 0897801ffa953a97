/**
 * A registry CA rotation in two runs without an outage (issue 20), on containerd 1.6, 1.7 and 2.1
 * and the lab's k3s stand-in (containerd 2.1, registries.yaml): run 1 trusts the old and the new CA
 * together (`ca` as a list: one bundle in the CA file), the registry then switches to a leaf signed
 * by the new CA and every pull keeps working with nothing run in between, and run 2 drops the old
 * CA. `diagnose --ca OLD` shows the outage the bundle avoided (the old CA alone no longer validates
 * what the registry serves), and `diagnose` names the new CA as the one the node trusts.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Diagnosis } from '../../src/diagnose/diagnose.js';
import type { Lab, LabNode } from '../lab/lab.js';
import { startRegistry, stopRegistry } from '../lab/lab.js';
import { run } from '../lab/procs.js';
import { trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, inNode } from '../support/lab-node.js';
import { selfSignedCa } from '../lab/certs.js';

async function pull(lab: Lab, node: LabNode): Promise<string> {
  return (await criPull(node.hostSocket, lab.image.ref, { fresh: true, timeoutMs: 60_000 })) || 'ok';
}

/** A new CA and a registry.test leaf it signs, made with openssl as an operator would. */
async function newCa(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const f = (n: string) => join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await selfSignedCa(dir, 'ca2', 'trustplay lab CA 2');
  await run('openssl', [
    'req',
    '-new',
    ...ec,
    '-keyout',
    f('leaf2.key'),
    '-out',
    f('leaf2.csr'),
    '-subj',
    '/CN=registry.test',
  ]);
  await writeFile(
    f('leaf2.ext'),
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:registry.test\n',
  );
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    f('leaf2.csr'),
    '-CA',
    f('ca2.pem'),
    '-CAkey',
    f('ca2.key'),
    '-set_serial',
    '4242',
    '-days',
    '30',
    '-extfile',
    f('leaf2.ext'),
    '-out',
    f('leaf2.pem'),
  ]);
  return { ca: f('ca2.pem'), cert: f('leaf2.pem'), key: f('leaf2.key') };
}

describeLab('CA rotation in two runs without an outage (containerd 1.6, 1.7, 2.1 and k3s)', () => {
  const env = useLab({
    nodes: 4,
    containerd: ['1.6', '1.7', '2.1', '2.1'],
    flavour: ['containerd', 'containerd', 'containerd', 'k3s'],
  });
  let tmp: string;
  let next: { ca: string; cert: string; key: string };
  const reg = (): string => env.lab.registries.registry.host;
  const playbook = async (name: string, cas: string[]): Promise<string> => {
    const file = join(tmp, name);
    await writeFile(
      file,
      stringify([
        { hosts: 'nodes', tasks: [{ name: 'Trust the registry CA', 'containerd.tls': { registry: reg(), ca: cas } }] },
      ]),
    );
    return file;
  };
  const runPb = (file: string, ...extra: string[]) =>
    trustplay([...extra, file, '-i', env.lab.inventoryPath, '--state-dir', join(tmp, 'state')]);
  const caFileOf = (n: LabNode): string =>
    n.flavour === 'k3s' ? `/etc/rancher/k3s/tls/${reg()}/ca.crt` : `/etc/containerd/certs.d/${reg()}/ca.crt`;
  const diagnose = async (...extra: string[]) => {
    const r = await trustplay(['diagnose', reg(), '-i', env.lab.inventoryPath, '--format', 'json', ...extra]);
    return { code: r.code, hosts: (JSON.parse(r.stdout) as { hosts: Diagnosis[] }).hosts };
  };

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'trustplay-e2e-rotation-'));
    next = await newCa(tmp);
  });
  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('run 1 trusts the old and the new CA together: one bundle in each node’s CA file, the pulls work', async () => {
    for (const n of env.lab.nodes) expect(await pull(env.lab, n), n.name).toMatch(/x509|certificate/);
    const r = await runPb(await playbook('both.yaml', [env.lab.ca, next.ca]), 'run');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const bundle = (await readFile(env.lab.ca, 'utf8')) + (await readFile(next.ca, 'utf8'));
    for (const n of env.lab.nodes) {
      expect((await inNode(n, `cat '${caFileOf(n)}'`)).stdout, n.name).toBe(bundle);
      expect(await pull(env.lab, n), n.name).toBe('ok');
    }
  }, 240_000);

  it('the registry switches to a leaf by the new CA: every pull keeps working with nothing run, and the old CA alone would have failed', async () => {
    const home = join(env.lab.dir, 'registries', 'registry');
    await stopRegistry(env.lab, 'registry');
    const config = await readFile(join(home, 'config.yml'), 'utf8');
    const pki = join(env.lab.ca, '..');
    const swapped = config.replace(join(pki, 'registry.pem'), next.cert).replace(join(pki, 'registry.key'), next.key);
    expect(swapped).not.toBe(config);
    await writeFile(join(home, 'config.yml'), swapped);
    await startRegistry(env.lab, 'registry');

    for (const n of env.lab.nodes) expect(await pull(env.lab, n), n.name).toBe('ok');
    const d = await diagnose();
    expect(d.code, JSON.stringify(d.hosts.map((h) => [h.host, h.cause, h.summary]))).toBe(0);
    for (const h of d.hosts) {
      expect(h.cause, h.host).toBe('healthy');
      expect(h.evidence.trusted_by, h.host).toMatch(/^CN=trustplay lab CA 2 \(hosts\.toml ca /);
    }
    // The outage the bundle avoided: the old CA alone no longer verifies what the registry serves.
    const verify = (ca: string) =>
      run(
        'openssl',
        [
          's_client',
          '-connect',
          `127.0.0.1:${env.lab.registries.registry.port}`,
          '-servername',
          'registry.test',
          '-verify_hostname',
          'registry.test',
          '-CAfile',
          ca,
          '-verify_return_error',
        ],
        { input: '' },
      ).then(
        () => 'ok',
        (e: Error) => e.message,
      );
    expect(await verify(next.ca)).toBe('ok');
    expect(await verify(env.lab.ca)).toMatch(/verify error|unable to get local issuer/);
  }, 240_000);

  it('run 2 drops the old CA: only the CA file changes (no restart on containerd nodes), the pulls work, and it converges', async () => {
    const pb = await playbook('new.yaml', [next.ca]);
    const r = await runPb(pb, 'run');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const only = await readFile(next.ca, 'utf8');
    for (const n of env.lab.nodes) {
      expect((await inNode(n, `cat '${caFileOf(n)}'`)).stdout, n.name).toBe(only);
      expect(await pull(env.lab, n), n.name).toBe('ok');
    }
    expect(r.stdout).not.toMatch(/restart containerd/);
    const check = await runPb(pb, 'check');
    expect(check.code, check.stdout + check.stderr).toBe(0);
  }, 240_000);
});
