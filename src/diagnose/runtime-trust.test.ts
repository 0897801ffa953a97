/**
 * Each runtime's judgement in diagnose (Docker Engine, containers/image), on certificates made by
 * openssl at test time (the lab's PKI code; no key is committed): what the runtime trusts, its
 * verdict on the served chain, an insecure registry, and the module the fix task names.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type LabPki } from '../../test/lab/certs.js';
import { insecureBecause } from '../modules/docker-tls.js';
import { certsFromPem, type Cert } from './certificate.js';
import type { Diagnosis } from './diagnose.js';
import { fixFor, trustModuleFor, trustModuleForAll } from './fixes.js';
import { judgeRuntime, type RuntimeTrustRead } from './runtime-trust.js';

let dir: string;
let pki: LabPki;
const load = async (file: string): Promise<Cert[]> => certsFromPem(await readFile(file, 'utf8'));

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tp-runtime-trust-'));
  pki = await makePki(dir);
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const read = (over: Partial<RuntimeTrustRead['trust']> = {}, anchors: RuntimeTrustRead['anchors'] = []) => ({
  trust: {
    runtime: 'docker' as const,
    evidence: ['dockerd at /usr/sbin/dockerd'],
    certs_dir: '/etc/docker/certs.d/registry.test:5000',
    exists: false,
    ca_files: [],
    ...over,
  },
  anchors,
});
const input = async (runtimes: Array<'containerd' | 'docker' | 'containers'> = ['docker']) => ({
  registry: 'registry.test:5000',
  served: await load(pki.registry.cert),
  osAnchors: [],
  osStore: '/etc/ssl/certs/ca-certificates.crt',
  hostname: 'registry.test',
  now: new Date(),
  runtimes,
});

describe('judgeRuntime', () => {
  it('no certs.d directory: the system roots only, unknown authority, fixed by its own module', async () => {
    const t = judgeRuntime(read(), await input());
    expect(t.cause).toBe('unknown-authority');
    expect(t.detail).toMatch(
      /^no \/etc\/docker\/certs\.d\/registry\.test:5000\/ca\.crt: Docker Engine verifies registry\.test:5000 against the system roots only \(\/etc\/ssl\/certs\/ca-certificates\.crt\): no CA the node trusts signed this chain/,
    );
    expect(t.fix).toBe(
      "docker.tls with ca: <the registry's CA>, written as /etc/docker/certs.d/registry.test:5000/ca.crt",
    );
    // Several runtimes on the node: registry.trust is named too.
    const several = judgeRuntime(read(), await input(['containerd', 'docker']));
    expect(several.fix).toMatch(/^docker\.tls \(or registry\.trust, for every runtime of the node\) with ca: /);
  });

  it('a directory without *.crt is said so', async () => {
    const t = judgeRuntime(read({ exists: true }), await input());
    expect(t.detail).toMatch(/^\/etc\/docker\/certs\.d\/registry\.test:5000 has no \*\.crt: /);
  });

  it('the registry CA in certs.d: healthy, trusted by it', async () => {
    const ca = (await load(pki.ca.cert)).map((cert) => ({ cert, source: 'certs.d /etc/docker/certs.d/r/ca.crt' }));
    const t = judgeRuntime(read({ exists: true, ca_files: ['/etc/docker/certs.d/r/ca.crt'] }, ca), await input());
    expect(t.cause).toBe('healthy');
    expect(t.findings).toEqual([]);
    expect(t.trusted_by).toMatch(/trustplay lab CA.*\(certs\.d \/etc\/docker\/certs\.d\/r\/ca\.crt\)/);
    expect(t.fix).toBeUndefined();
  });

  it('a CA that is not the registry’s: unknown authority, with the root given named', async () => {
    const other = (await load(pki.selfSigned.cert)).map((cert) => ({ cert, source: 'certs.d x/ca.crt' }));
    const t = judgeRuntime(read({ exists: true, ca_files: ['x/ca.crt'] }, other), await input());
    expect(t.cause).not.toBe('healthy');
    expect(t.detail).toMatch(/^Docker Engine trusts x\/ca\.crt and the OS store for registry\.test:5000: /);
  });

  it('an insecure registry: not verified at all, with what verifying would say', async () => {
    const t = judgeRuntime(read({ insecure: 'registry.test:5000 is listed in daemon.json' }), await input());
    expect(t.cause).toBe('insecure');
    expect(t.detail).toContain('Docker Engine does not verify registry.test:5000 at all');
    expect(t.detail).toContain('verifying, it would fail: no CA the node trusts');
    expect(t.fix).toMatch(/take registry\.test:5000 out of its insecure list/);
  });

  it('containers/image reading Docker’s directory: its fix writes its own', async () => {
    const t = judgeRuntime(
      read({ runtime: 'containers', evidence: ['skopeo at /usr/bin/skopeo'], exists: true }),
      await input(['containers']),
    );
    expect(t.detail).toMatch(/containers\/image verifies/);
    expect(t.fix).toBe(
      "containers.tls with ca: <the registry's CA>, written as /etc/containers/certs.d/registry.test:5000/ca.crt",
    );
  });
});

describe('the fix task’s module follows the node’s runtimes', () => {
  it('containerd alone or not read: containerd.tls; several: registry.trust; one other: its own', () => {
    expect(trustModuleFor(undefined)).toBe('containerd.tls');
    expect(trustModuleFor(['containerd'])).toBe('containerd.tls');
    expect(trustModuleFor(['containerd', 'docker'])).toBe('registry.trust');
    expect(trustModuleFor(['docker'])).toBe('docker.tls');
    expect(trustModuleFor(['containers'])).toBe('containers.tls');
    expect(trustModuleForAll([['containerd'], undefined])).toBe('containerd.tls');
    expect(trustModuleForAll([['docker'], ['docker']])).toBe('docker.tls');
    expect(trustModuleForAll([['docker'], ['containerd']])).toBe('registry.trust');
  });

  it('fixFor writes the task with that module', () => {
    const d = (runtimes?: Diagnosis['runtimes']): Diagnosis => ({
      host: 'n',
      registry: 'r.test',
      cause: 'unknown-authority',
      summary: '',
      findings: [],
      evidence: {},
      fix: null,
      ...(runtimes ? { runtimes } : {}),
    });
    expect(Object.keys(fixFor(d(), { registry: 'r.test' })?.task ?? {})).toEqual(['name', 'containerd.tls']);
    expect(fixFor(d(['docker']), { registry: 'r.test' })?.task?.['docker.tls']).toMatchObject({ registry: 'r.test' });
    expect(fixFor(d(['containerd', 'containers']), { registry: 'r.test' })?.task?.['registry.trust']).toMatchObject({
      registry: 'r.test',
    });
    const mtls = fixFor({ ...d(['docker', 'containers']), cause: 'client-cert-required' }, { registry: 'r.test' });
    expect(mtls?.action).toContain('give them to registry.trust');
    expect(Object.keys(mtls?.task ?? {})).toEqual(['name', 'registry.trust']);
  });
});

describe('dockerd’s insecure registries', () => {
  it('a name the node resolves into 127.0.0.0/8 is insecure; ::1 is verified', () => {
    expect(insecureBecause('registry.test:5000', [], ['127.0.0.1'])).toMatch(
      /registry\.test resolves to 127\.0\.0\.1 on the node, a loopback address/,
    );
    expect(insecureBecause('registry.test:5000', [], ['::1'])).toBeNull();
    expect(insecureBecause('registry.test:5000', null)).toBeNull();
    expect(insecureBecause('registry.test:5000', ['registry.test:5000'], ['::1'])).toMatch(/insecure-registries/);
  });
});
