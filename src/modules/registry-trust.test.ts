/**
 * registry.trust's own logic: which runtimes it fixes from what a node has (and the task's
 * `runtimes`), the arguments each runtime's module gets (its defaults filled the way the engine
 * fills them), and a plan that is the runtimes' own plans in a fixed order with their warnings and
 * failures named by runtime. Gather (detection on a node) is proven in the lab
 * (test/e2e/registry-trust.test.ts).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { taskContext } from '../../test/support/task-context.js';
import { criPluginsDisabledIn } from '../containerd/config.js';
import { resolveArgs } from '../engine/args.js';
import { TaskError } from '../engine/errors.js';
import type { Change } from '../engine/module.js';
import { fileRestoreProblem } from '../snapshots/managed-paths.js';
import containerdTls from './containerd-tls.js';
import containersTls, { type ContainersTlsObserved } from './containers-tls.js';
import dockerTls, { type DockerTlsObserved } from './docker-tls.js';
import { builtinModules } from './index.js';
import registryTrust, {
  moduleArgsFor,
  selectRuntimes,
  type RegistryTrustArgs,
  type RegistryTrustObserved,
  type RuntimeEvidence,
} from './registry-trust.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CA = readFileSync(join(HERE, '../../test/fixtures/containerd-tls/test-ca.pem'), 'utf8');
const REG = 'registry.example:5000';

const none: RuntimeEvidence = { containerd: [], containerdCriDisabled: [], docker: [], containers: [] };
const all: RuntimeEvidence = {
  containerd: ['containerd 1.7 running'],
  containerdCriDisabled: [],
  docker: ['dockerd at /usr/sbin/dockerd'],
  containers: ['skopeo at /usr/bin/skopeo'],
};

function args(over: Partial<RegistryTrustArgs> = {}): RegistryTrustArgs {
  return { registry: REG, ca: CA, state: 'present', runtimes: 'auto', ...over };
}

describe('selectRuntimes', () => {
  it('auto: every runtime found, containerd first', () => {
    expect(selectRuntimes('n1', all, 'auto')).toEqual({ runtimes: ['containerd', 'docker', 'containers'], notes: [] });
    expect(selectRuntimes('n1', { ...none, containers: ['podman at /usr/bin/podman'] }, 'auto').runtimes).toEqual([
      'containers',
    ]);
  });

  it('auto: a node with none fails, naming what was looked for (green means checked)', () => {
    expect(() => selectRuntimes('n1', none, 'auto')).toThrow(TaskError);
    expect(() => selectRuntimes('n1', none, 'auto')).toThrow(
      /^n1: no container runtime found \(looked for containerd: .*; Docker Engine: dockerd on PATH or the socket \/run\/docker\.sock; containers\/image: podman, buildah, skopeo, crio on PATH\): registry\.trust has nothing to configure here\.$/,
    );
  });

  it('auto: a containerd that serves Docker only (CRI disabled) is left to Docker Engine, and said so', () => {
    const dockerOnly = { ...all, containerdCriDisabled: ['cri'] };
    const r = selectRuntimes('n1', dockerOnly, 'auto');
    expect(r.runtimes).toEqual(['docker', 'containers']);
    expect(r.notes).toEqual([
      expect.stringMatching(/^containerd left out: its config\.toml disables the CRI plugin \(cri\)/),
    ]);
  });

  it('auto: a containerd only installed (no daemon runs) is left out where another runtime is there, and kept alone', () => {
    const podmanHost = {
      ...none,
      containerd: ['containerd at /usr/bin/containerd'],
      containerdStopped: true,
      containers: ['podman at /usr/bin/podman'],
    };
    const r = selectRuntimes('n1', podmanHost, 'auto');
    expect(r.runtimes).toEqual(['containers']);
    expect(r.notes).toEqual([
      'containerd left out: it is installed (containerd at /usr/bin/containerd) but no containerd daemon runs, so no pull goes through it (once it runs, the next run covers it too)',
    ]);
    // Alone, it stays: containerd.tls then says what is wrong with it.
    expect(selectRuntimes('n1', { ...podmanHost, containers: [] }, 'auto').runtimes).toEqual(['containerd']);
    // Listed explicitly, it is the operator's choice.
    expect(selectRuntimes('n1', podmanHost, ['containerd', 'containers']).runtimes).toEqual([
      'containerd',
      'containers',
    ]);
  });

  it('auto: a CRI-disabled containerd with no Docker Engine stays, so containerd.tls refuses it with its reason', () => {
    const r = selectRuntimes(
      'n1',
      { ...none, containerd: ['containerd at /usr/bin/containerd'], containerdCriDisabled: ['cri'] },
      'auto',
    );
    expect(r.runtimes).toEqual(['containerd']);
  });

  it('an explicit list: exactly those, in the fixed order; a listed runtime the node lacks fails by name', () => {
    expect(selectRuntimes('n1', all, ['containers', 'containerd']).runtimes).toEqual(['containerd', 'containers']);
    // Listed, a Docker-only containerd is the user's choice: containerd.tls then says why it refuses.
    expect(selectRuntimes('n1', { ...all, containerdCriDisabled: ['cri'] }, ['containerd']).runtimes).toEqual([
      'containerd',
    ]);
    expect(() => selectRuntimes('n1', { ...all, docker: [] }, ['containerd', 'docker'])).toThrow(
      'n1: runtimes lists docker, which this node does not have (looked for Docker Engine: dockerd on PATH or the socket /run/docker.sock).',
    );
  });
});

describe('arguments each runtime module gets', () => {
  it('registry, material and state, then its own schema defaults as the engine fills them', () => {
    const raw = moduleArgsFor(args({ client_cert: 'c.pem', client_key: 'k.pem' }));
    expect(raw).toEqual({ registry: REG, ca: CA, client_cert: 'c.pem', client_key: 'k.pem', state: 'present' });
    const c = resolveArgs('containerd.tls', containerdTls.schema, raw, {});
    expect(c).toMatchObject({
      registry: REG,
      style: 'auto',
      config_path: '/etc/containerd/certs.d',
      config_file: '/etc/containerd/config.toml',
      verify_ca: 'auto',
      restart_command: 'systemctl restart containerd',
      state: 'present',
    });
    expect(resolveArgs('docker.tls', dockerTls.schema, raw, {})).toMatchObject({
      certs_dir: '/etc/docker/certs.d',
      daemon_json: '/etc/docker/daemon.json',
    });
    expect(resolveArgs('containers.tls', containersTls.schema, raw, {})).toMatchObject({
      certs_dir: '/etc/containers/certs.d',
      registries_conf: '/etc/containers/registries.conf',
    });
  });

  it('state: absent without material, and nothing the task did not give', () => {
    expect(moduleArgsFor({ registry: REG, state: 'absent', runtimes: 'auto' })).toEqual({
      registry: REG,
      state: 'absent',
    });
  });

  it('runtimes defaults to auto and takes only the three names; the schema is the engine’s', async () => {
    expect(resolveArgs('registry.trust', registryTrust.schema, { registry: REG, ca: CA }, {})['runtimes']).toBe('auto');
    expect(() =>
      resolveArgs('registry.trust', registryTrust.schema, { registry: REG, runtimes: ['crio'] }, {}),
    ).toThrow(TaskError);
    expect(() => resolveArgs('registry.trust', registryTrust.schema, { registry: REG, runtimes: [] }, {})).toThrow(
      TaskError,
    );
    expect(() =>
      resolveArgs('registry.trust', registryTrust.schema, { registry: REG, client_cert: 'c.pem' }, {}),
    ).toThrow(/client_key/);
    expect(await builtinModules('registry.trust')).toBe(registryTrust);
  });
});

describe('plan', () => {
  const dir = (p: string) => ({ path: p, exists: false, files: {} });
  const docker = (over: Partial<DockerTlsObserved> = {}): DockerTlsObserved => ({
    dir: dir(`/etc/docker/certs.d/${REG}`),
    otherNames: [],
    material: { ca: CA },
    materialWarnings: [],
    engine: ['dockerd at /usr/sbin/dockerd'],
    insecureRegistries: [REG],
    ...over,
  });
  const containers = (over: Partial<ContainersTlsObserved> = {}): ContainersTlsObserved => ({
    dir: dir(`/etc/containers/certs.d/${REG}`),
    otherNames: [],
    material: { ca: CA },
    materialWarnings: [],
    programs: ['/usr/bin/skopeo'],
    confProblems: [],
    ...over,
  });
  const observed = (parts: RegistryTrustObserved['parts']): RegistryTrustObserved => ({ found: all, notes: [], parts });
  const moduleArgs = (m: { name: string; schema: Record<string, unknown> }) =>
    resolveArgs(m.name, m.schema, moduleArgsFor(args()), {});

  it("is each runtime's own plan, in order, with each module's warnings prefixed by its runtime", async () => {
    const ctx = taskContext({ host: 'n1' });
    const d = moduleArgs(dockerTls);
    const c = moduleArgs(containersTls);
    const changes: Change[] = await registryTrust.plan(
      args(),
      observed([
        { runtime: 'docker', args: d, observed: docker() },
        { runtime: 'containers', args: c, observed: containers() },
      ]),
      ctx,
    );
    const own = [
      ...(await dockerTls.plan(d as never, docker(), taskContext())),
      ...(await containersTls.plan(c as never, containers(), taskContext())),
    ];
    expect(changes).toEqual(own);
    expect(changes.map((ch) => (ch.op === 'file.write' ? ch.path : ch.op))).toEqual([
      `/etc/docker/certs.d/${REG}/ca.crt`,
      `/etc/containers/certs.d/${REG}/ca.crt`,
    ]);
    expect(ctx.warnings).toEqual([
      expect.stringMatching(new RegExp(`^docker: ${REG} is listed in daemon\\.json's insecure-registries`)),
    ]);
  });

  it("a runtime module's failure is named by the runtime (after the host)", async () => {
    const ctx = taskContext({ host: 'n1' });
    const plan = registryTrust.plan(
      args(),
      observed([{ runtime: 'containers', args: moduleArgs(containersTls), observed: containers({ programs: [] }) }]),
      ctx,
    );
    await expect(plan).rejects.toThrow(/^n1: containers: no containers\/image program found/);
    await expect(plan).rejects.toBeInstanceOf(TaskError);
  });

  it('the result names the runtimes fixed and why one was left out', () => {
    expect(
      registryTrust.result!({
        ...observed([{ runtime: 'docker', args: {}, observed: docker() }]),
        notes: ['containerd left out: ...'],
      }),
    ).toEqual({ runtimes: ['docker'], notes: ['containerd left out: ...'] });
  });
});

describe('restore', () => {
  it('may write what any of the three modules writes, and nothing else', () => {
    for (const p of [
      '/etc/containerd/config.toml',
      `/etc/containerd/certs.d/${REG}/hosts.toml`,
      `/etc/docker/certs.d/${REG}/ca.crt`,
      `/etc/containers/certs.d/${REG}/client.key`,
      '/etc/rancher/k3s/registries.yaml',
    ])
      expect(fileRestoreProblem('registry.trust', p)).toBeNull();
    expect(fileRestoreProblem('registry.trust', '/root/.ssh/authorized_keys')).toMatch(/not a kind of file/);
    expect(fileRestoreProblem('registry.trust', '/root/.docker/config.json')).toMatch(/not a kind of file/);
  });
});

describe('criPluginsDisabledIn', () => {
  it("reads Docker's packaged config (CRI disabled) and says nothing of others", () => {
    expect(criPluginsDisabledIn('disabled_plugins = ["cri"]\n')).toEqual(['cri']);
    expect(criPluginsDisabledIn('version = 2\ndisabled_plugins = ["io.containerd.internal.v1.opt"]\n')).toEqual([]);
    expect(criPluginsDisabledIn('not = [toml')).toEqual([]);
    expect(criPluginsDisabledIn(null)).toEqual([]);
  });
});
