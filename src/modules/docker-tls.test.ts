/**
 * docker.tls on real files: gather reads a certs.d tree in a temporary directory through the local
 * connection (the same reader as on a node), the plan is applied by the engine's applier, and
 * planning again on the result is empty. Refusals and warnings come from the pure plan.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { taskContext } from '../../test/support/task-context.js';
import { applyChanges, resourcesOf, type SnapshotSink } from '../engine/apply.js';
import { TaskError } from '../engine/errors.js';
import { reported, type Change, type Resource } from '../engine/module.js';
import { fileRestoreProblem } from '../snapshots/managed-paths.js';
import dockerTls, { planDockerTls, type DockerTlsArgs, type DockerTlsObserved } from './docker-tls.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CA = readFileSync(join(HERE, '../../test/fixtures/containerd-tls/test-ca.pem'), 'utf8');
const CLIENT_KEY = readFileSync(join(HERE, '../../test/fixtures/containerd-tls/test-client.key'), 'utf8');
const REG = 'registry.example:5000';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'tp-docker-tls-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function args(over: Partial<DockerTlsArgs> = {}): DockerTlsArgs {
  return {
    registry: REG,
    certs_dir: join(root, 'certs.d'),
    daemon_json: join(root, 'daemon.json'),
    state: 'present',
    ...over,
  };
}

/** Every resource the applier saved, in order. */
function recordingSink(): SnapshotSink & { saved: Resource[]; modules: string[] } {
  const saved: Resource[] = [];
  const modules: string[] = [];
  return {
    saved,
    modules,
    save: (_host, _conn, resources, origin) => {
      saved.push(...resources);
      modules.push(origin.module);
      return Promise.resolve();
    },
    facts: () => undefined,
  };
}

/** gather + plan + apply, the way the engine runs a task; returns the plan and the warnings. */
async function run(a: DockerTlsArgs, sink = recordingSink()): Promise<{ changes: Change[]; warnings: string[] }> {
  const ctx = taskContext();
  const observed = await dockerTls.gather(ctx, a);
  const changes = await dockerTls.plan(a, observed, ctx);
  await applyChanges(ctx, changes, sink, 'docker.tls');
  return { changes, warnings: ctx.warnings };
}

const dir = () => join(root, 'certs.d', REG);
const mode = (p: string) => statSync(p).mode & 0o777;

describe('docker.tls on a certs.d tree', () => {
  it('writes ca.crt into certs.d/<host:port>/, converges, and state: absent removes it and the directory', async () => {
    const sink = recordingSink();
    const first = await run(args({ ca: CA }), sink);
    expect(reported(first.changes).map((c) => c.summary)).toEqual([`write ${dir()}/ca.crt (CA certificate, 0644)`]);
    expect(readFileSync(join(dir(), 'ca.crt'), 'utf8')).toBe(CA);
    expect(mode(join(dir(), 'ca.crt'))).toBe(0o644);
    // Saved before it was written, under this module's name, and restorable there.
    expect(sink.saved).toEqual([{ kind: 'file', path: join(dir(), 'ca.crt') }]);
    expect(sink.modules).toEqual(['docker.tls']);
    expect(fileRestoreProblem('docker.tls', join(dir(), 'ca.crt'))).toBeNull();
    expect((await run(args({ ca: CA }))).changes).toEqual([]);

    const gone = await run(args({ state: 'absent' }));
    expect(reported(gone.changes).map((c) => c.summary)).toEqual([
      `remove ${dir()}/ca.crt (written by docker.tls)`,
      `remove the empty directory ${dir()}`,
    ]);
    expect(existsSync(dir())).toBe(false);
    expect((await run(args({ state: 'absent' }))).changes).toEqual([]);
  });

  it('a client pair: the key (0600) before the certificate, never in a summary; dropping it removes both', async () => {
    const a = args({ ca: CA, client_cert: CA, client_key: CLIENT_KEY });
    const secrets: string[] = [];
    const ctx = taskContext({ secret: (v) => secrets.push(v) });
    const observed = await dockerTls.gather(ctx, a);
    expect(secrets).toEqual([CLIENT_KEY]);
    const changes = await dockerTls.plan(a, observed, ctx);
    const files = reported(changes).map((c) => (c.op === 'file.write' ? c.path.slice(dir().length + 1) : c.op));
    expect(files).toEqual(['ca.crt', 'client.key', 'client.cert']);
    const key = reported(changes).find((c) => c.op === 'file.write' && c.path.endsWith('client.key'));
    expect(key?.diff?.secret).toBe(true);
    for (const c of reported(changes)) expect(c.summary).not.toContain('PRIVATE KEY');
    await applyChanges(ctx, changes, recordingSink(), 'docker.tls');
    expect(mode(join(dir(), 'client.key'))).toBe(0o600);
    expect(mode(join(dir(), 'client.cert'))).toBe(0o644);

    const dropped = await run(args({ ca: CA }));
    expect(reported(dropped.changes).map((c) => c.summary)).toEqual([
      `remove ${dir()}/client.cert (no longer configured)`,
      `remove ${dir()}/client.key (no longer configured)`,
    ]);
  });

  it('a changed CA is an update with a diff; a mode someone changed is put back', async () => {
    await run(args({ ca: CA }));
    writeFileSync(join(dir(), 'ca.crt'), 'old\n');
    const upd = await run(args({ ca: CA }));
    expect(reported(upd.changes)[0]).toMatchObject({
      summary: `update ${dir()}/ca.crt (CA certificate, 0644)`,
      diff: { before: 'old\n', after: CA },
    });
    const { chmodSync } = await import('node:fs');
    chmodSync(join(dir(), 'ca.crt'), 0o600);
    const m = await run(args({ ca: CA }));
    expect(reported(m.changes).map((c) => c.summary)).toEqual([`set mode 0644 on ${dir()}/ca.crt (was 0600)`]);
  });

  it('state: absent leaves files it did not write, and the directory with them', async () => {
    await run(args({ ca: CA }));
    writeFileSync(join(dir(), 'corp-root.crt'), CA);
    const gone = await run(args({ state: 'absent' }));
    expect(reported(gone.changes).map((c) => c.summary)).toEqual([`remove ${dir()}/ca.crt (written by docker.tls)`]);
    expect(gone.warnings).toEqual([
      `${dir()} keeps corp-root.crt, which docker.tls did not write, so the directory stays`,
    ]);
    expect(readFileSync(join(dir(), 'corp-root.crt'), 'utf8')).toBe(CA);
  });

  it('warns when dockerd would not verify the registry (insecure-registries, loopback) or refuses the directory', async () => {
    writeFileSync(join(root, 'daemon.json'), JSON.stringify({ 'insecure-registries': [REG] }));
    const listed = await run(args({ ca: CA }));
    expect(listed.warnings).toEqual([
      `${REG} is listed in daemon.json's insecure-registries: dockerd does not verify its certificate at all, so the CA written here is not used until that changes`,
    ]);
    const loop = await run(args({ ca: CA, registry: '127.0.0.1:5000' }));
    expect(loop.warnings[0]).toMatch(
      /^127\.0\.0\.1 is a loopback address, which dockerd treats as an insecure registry/,
    );
    writeFileSync(join(root, 'daemon.json'), '{ "insecure-registries": [');
    mkdirSync(dir(), { recursive: true });
    writeFileSync(join(dir(), 'extra.key'), CLIENT_KEY);
    const broken = await run(args({ ca: CA }));
    expect(broken.warnings).toEqual([
      expect.stringMatching(/daemon\.json is not valid JSON .*: dockerd will not start with it; fix it by hand$/),
      `${dir()} holds extra.key without the matching extra.cert: dockerd refuses the whole directory then, and every pull from ${REG} fails; remove or complete them`,
    ]);
  });

  it('refuses a managed name that is a link, and a registry directory that is a file', async () => {
    const { symlinkSync } = await import('node:fs');
    mkdirSync(dir(), { recursive: true });
    symlinkSync('/etc/hostname', join(dir(), 'ca.crt'));
    await expect(run(args({ ca: CA }))).rejects.toThrow(/ca\.crt is a symbolic link/);
    rmSync(dir(), { recursive: true });
    writeFileSync(dir(), '');
    await expect(run(args({ ca: CA }))).rejects.toThrow(/is not a directory/);
    // A name that is no registry never becomes a path (the schema refuses it first; gather too).
    await expect(run(args({ ca: CA, registry: '..' }))).rejects.toThrow(/is not a registry name/);
  });
});

describe('planDockerTls', () => {
  const observed = (over: Partial<DockerTlsObserved> = {}): DockerTlsObserved => ({
    dir: { path: `/etc/docker/certs.d/${REG}`, exists: false, files: {} },
    otherNames: [],
    material: { ca: CA },
    materialWarnings: [],
    engine: ['dockerd at /usr/bin/dockerd'],
    insecureRegistries: null,
    ...over,
  });
  const a = (over: Partial<DockerTlsArgs> = {}): DockerTlsArgs => ({
    registry: REG,
    certs_dir: '/etc/docker/certs.d',
    daemon_json: '/etc/docker/daemon.json',
    state: 'present',
    ca: CA,
    ...over,
  });

  it('a node without Docker Engine fails with what was looked for (green means checked), whatever the state', () => {
    for (const state of ['present', 'absent'] as const)
      expect(() => planDockerTls(a({ state }), observed({ engine: [] }), 'node7')).toThrow(
        new TaskError(
          "node7: no Docker Engine found (looked for dockerd on PATH and the socket /run/docker.sock): docker.tls has nothing to configure here; use the module for this host's runtime (containerd.tls).",
          'refused',
        ),
      );
  });

  it('present without a CA or a client pair is refused before anything is written', () => {
    expect(() => planDockerTls(a({ ca: undefined }), observed({ material: {} }))).toThrow(/needs `ca`/);
  });

  it('every change is a file operation on the registry directory, saved first (no restart, no custom op)', () => {
    const { changes } = planDockerTls(a(), observed());
    expect(changes.map((c) => c.op)).toEqual(['file.write']);
    expect(changes.flatMap(resourcesOf)).toEqual([{ kind: 'file', path: `/etc/docker/certs.d/${REG}/ca.crt` }]);
  });
});
