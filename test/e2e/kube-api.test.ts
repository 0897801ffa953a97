/**
 * Proves the lab's Kubernetes API emulator is faithful enough for trustplay's k8s.sa.clear: the real
 * kubectl 1.32 on this machine talks to it exactly as it would to a cluster, and every assertion is
 * on kubectl's own exit code and output.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeKubeconfig } from '../lab/kube-api/kubeconfig.js';
import { startKubeApi, type KubeApi } from '../lab/kube-api/server.js';
import { makeTestCerts, type TestCerts } from '../lab/kube-api/test-certs.js';

const haveKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
// In CI a missing kubectl is a failure (the suite runs and fails), elsewhere the suite is reported as skipped.
const suite = describe.skipIf(!haveKubectl && process.env.CI !== 'true');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir = '';
let certs: TestCerts;
let api: KubeApi;
const token = { admin: randomBytes(16).toString('hex'), readonly: randomBytes(16).toString('hex') };
const kubeconfig = { admin: '', readonly: '', bad: '' };
let mark = 0;
/** Requests the emulator saw during the current test. */
const recent = (): ReturnType<KubeApi['requests']> => api.requests().slice(mark);

/** Runs the real kubectl with a throw-away kubeconfig, cache and HOME: ~/.kube is never read or written. */
function kubectl(who: keyof typeof kubeconfig, args: string[], stdin?: string): Promise<Run> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: dir, NO_COLOR: '1' };
    delete env.KUBECONFIG;
    const child = execFile(
      'kubectl',
      ['--kubeconfig', kubeconfig[who], '--cache-dir', join(dir, `cache-${who}`), ...args],
      { env, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code =
          err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(stdin ?? '');
  });
}

async function getSa(
  ns: string,
  name: string,
): Promise<Record<string, unknown> & { metadata: Record<string, unknown> }> {
  const r = await kubectl('admin', ['get', 'sa', name, '-n', ns, '-o', 'json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown> & { metadata: Record<string, unknown> };
}

const pullSecrets = (sa: Record<string, unknown>): string[] | undefined =>
  (sa.imagePullSecrets as { name: string }[] | undefined)?.map((s) => s.name);

/** A plain HTTPS GET to the emulator, for what kubectl does not show (headers, legacy discovery). */
function rawGet(
  path: string,
  headers: Record<string, string>,
): Promise<{ code: number; contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${api.url}${path}`, { ca: certs.caPem, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ code: res.statusCode ?? 0, contentType: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

suite('Kubernetes API emulator, driven by the real kubectl', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trustplay-kube-api-'));
    certs = await makeTestCerts(join(dir, 'pki'));
    api = await startKubeApi({
      certFile: certs.certFile,
      keyFile: certs.keyFile,
      tokens: { [token.admin]: 'admin', [token.readonly]: 'readonly' },
    });
    for (const [who, t] of [
      ['admin', token.admin],
      ['readonly', token.readonly],
      ['bad', 'not-a-known-token'],
    ] as const) {
      kubeconfig[who] = join(dir, `${who}.kubeconfig`);
      await writeKubeconfig(kubeconfig[who], { server: api.url, caPem: certs.caPem, token: t });
    }
  });

  afterAll(async () => {
    await api?.close();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  // Each test starts from the same cluster content (the store is reset, objects keep growing resourceVersions).
  beforeEach(() => {
    mark = api.requests().length;
    const store = api.state();
    store.namespaces.clear();
    store.serviceAccounts.clear();
    api.resources().clear();
    for (const ns of ['default', 'team-a', 'team-b']) store.addNamespace(ns);
    store.insertServiceAccount('default', {
      metadata: { name: 'default' },
      imagePullSecrets: [{ name: 'regcred' }, { name: 'other' }],
    });
    store.insertServiceAccount('team-a', { metadata: { name: 'default' }, imagePullSecrets: [{ name: 'regcred' }] });
    store.insertServiceAccount('team-a', { metadata: { name: 'builder' }, secrets: [{ name: 'builder-token' }] });
    store.insertServiceAccount('team-b', { metadata: { name: 'default' } });
  });

  it('serves aggregated discovery to kubectl, and legacy discovery to clients that ask for plain JSON', async () => {
    const r = await kubectl('admin', ['api-resources', '--api-group=', '--no-headers']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^serviceaccounts\s+sa\s+v1\s+true\s+ServiceAccount\s*$/m);
    expect(r.stdout).toMatch(/^namespaces\s+ns\s+v1\s+false\s+Namespace\s*$/m);
    const api0 = recent().find((q) => q.path === '/api');
    expect(api0?.accept).toContain('as=APIGroupDiscoveryList');

    const aggregated = await rawGet('/api', { Authorization: `Bearer ${token.admin}`, Accept: api0?.accept ?? '' });
    expect(aggregated.contentType).toBe('application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
    const legacy = await rawGet('/api', { Authorization: `Bearer ${token.admin}`, Accept: 'application/json' });
    expect(legacy.code).toBe(200);
    expect(JSON.parse(legacy.body)).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });
  });

  it('get -o json returns the ServiceAccount as the real API shapes it', async () => {
    const sa = await getSa('default', 'default');
    expect(sa.apiVersion).toBe('v1');
    expect(sa.kind).toBe('ServiceAccount');
    expect(sa.metadata).toMatchObject({ name: 'default', namespace: 'default' });
    expect(sa.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(sa.metadata.resourceVersion).toMatch(/^\d+$/);
    expect(sa.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(pullSecrets(sa)).toEqual(['regcred', 'other']);
    // A ServiceAccount without pull secrets has no imagePullSecrets key at all (Go's omitempty).
    expect(Object.keys(await getSa('team-b', 'default'))).not.toContain('imagePullSecrets');
  });

  it('-o jsonpath lists the pull secret names', async () => {
    const r = await kubectl('admin', [
      'get',
      'sa',
      'default',
      '-n',
      'default',
      '-o',
      'jsonpath={.imagePullSecrets[*].name}',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('regcred other');
  });

  it('lists ServiceAccounts across namespaces, and namespaces, as JSON and as tables', async () => {
    const all = await kubectl('admin', ['get', 'sa', '-A', '-o', 'json']);
    expect(all.code).toBe(0);
    const items = (JSON.parse(all.stdout) as { items: { metadata: { namespace: string; name: string } }[] }).items;
    expect(items.map((i) => `${i.metadata.namespace}/${i.metadata.name}`)).toEqual([
      'default/default',
      'team-a/builder',
      'team-a/default',
      'team-b/default',
    ]);
    expect(recent().at(-1)).toMatchObject({ method: 'GET', path: '/api/v1/serviceaccounts' });

    const ns = await kubectl('admin', ['get', 'namespaces', '-o', 'json']);
    expect(ns.code).toBe(0);
    const nsItems = (
      JSON.parse(ns.stdout) as { items: { kind?: string; metadata: { name: string }; status: { phase: string } }[] }
    ).items;
    expect(nsItems.map((i) => [i.metadata.name, i.status.phase])).toEqual([
      ['default', 'Active'],
      ['team-a', 'Active'],
      ['team-b', 'Active'],
    ]);

    const byName = await kubectl('admin', [
      'get',
      'sa',
      '-A',
      '--field-selector',
      'metadata.name=default',
      '-o',
      'jsonpath={range .items[*]}{.metadata.namespace}{" "}{end}',
    ]);
    expect(byName.stdout).toBe('default team-a team-b ');

    const tableOut = await kubectl('admin', ['get', 'sa', '-A']);
    expect(tableOut.code).toBe(0);
    expect(tableOut.stdout.split('\n')[0]).toMatch(/^NAMESPACE\s+NAME\s+SECRETS\s+AGE$/);
    expect(tableOut.stdout).toMatch(/^team-a\s+builder\s+1\s+\d+s$/m);

    const empty = await kubectl('admin', ['get', 'sa', '-n', 'nope']);
    expect(empty.code).toBe(0);
    expect(empty.stderr).toBe('No resources found in nope namespace.\n');
  });

  it('a strategic merge patch with an empty list removes imagePullSecrets; the same patch again is no change', async () => {
    const before = await getSa('default', 'default');
    const r = await kubectl('admin', ['patch', 'sa', 'default', '-n', 'default', '-p', '{"imagePullSecrets": []}']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('serviceaccount/default patched\n');
    expect(recent().find((q) => q.method === 'PATCH')?.contentType).toBe('application/strategic-merge-patch+json');

    const after = await getSa('default', 'default');
    expect(Object.keys(after)).not.toContain('imagePullSecrets');
    expect(Number(after.metadata.resourceVersion)).toBeGreaterThan(Number(before.metadata.resourceVersion));
    expect(after.metadata.uid).toBe(before.metadata.uid);
    expect(after.metadata.creationTimestamp).toBe(before.metadata.creationTimestamp);

    const again = await kubectl('admin', ['patch', 'sa', 'default', '-n', 'default', '-p', '{"imagePullSecrets": []}']);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe('serviceaccount/default patched (no change)\n');
    expect((await getSa('default', 'default')).metadata.resourceVersion).toBe(after.metadata.resourceVersion);
  });

  it('a strategic merge patch replaces imagePullSecrets whole (no merge key) but merges secrets by name', async () => {
    const r = await kubectl('admin', [
      'patch',
      'sa',
      'default',
      '-n',
      'default',
      '-p',
      '{"imagePullSecrets": [{"name": "new"}]}',
    ]);
    expect(r.code).toBe(0);
    expect(pullSecrets(await getSa('default', 'default'))).toEqual(['new']);

    const s = await kubectl('admin', [
      'patch',
      'sa',
      'builder',
      '-n',
      'team-a',
      '-p',
      '{"secrets": [{"name": "extra"}]}',
    ]);
    expect(s.code).toBe(0);
    expect((await getSa('team-a', 'builder')).secrets).toEqual([{ name: 'builder-token' }, { name: 'extra' }]);
  });

  it('a merge patch sets the list; a resourceVersion in it is a precondition', async () => {
    const r = await kubectl('admin', [
      'patch',
      'sa',
      'default',
      '-n',
      'team-b',
      '--type',
      'merge',
      '-p',
      '{"imagePullSecrets":[{"name":"a"},{"name":"b"}]}',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('serviceaccount/default patched\n');
    const sa = await getSa('team-b', 'default');
    expect(pullSecrets(sa)).toEqual(['a', 'b']);
    expect(recent().find((q) => q.method === 'PATCH')?.contentType).toBe('application/merge-patch+json');

    const stale = await kubectl('admin', [
      'patch',
      'sa',
      'default',
      '-n',
      'team-b',
      '--type',
      'merge',
      '-p',
      '{"metadata":{"resourceVersion":"1"},"imagePullSecrets":null}',
    ]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toBe(
      'Error from server (Conflict): Operation cannot be fulfilled on serviceaccounts "default": the object has been modified; please apply your changes to the latest version and try again\n',
    );
    expect(pullSecrets(await getSa('team-b', 'default'))).toEqual(['a', 'b']);
  });

  it('a JSON patch guarded by a test on resourceVersion applies when current and is refused when stale', async () => {
    const sa = await getSa('default', 'default');
    const rv = String(sa.metadata.resourceVersion);
    const guarded = (version: string): string =>
      JSON.stringify([
        { op: 'test', path: '/metadata/resourceVersion', value: version },
        { op: 'remove', path: '/imagePullSecrets/0' },
      ]);
    const ok = await kubectl('admin', ['patch', 'sa', 'default', '-n', 'default', '--type', 'json', '-p', guarded(rv)]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(recent().find((q) => q.method === 'PATCH')?.contentType).toBe('application/json-patch+json');
    const patched = await getSa('default', 'default');
    expect(pullSecrets(patched)).toEqual(['other']);

    const stale = await kubectl('admin', [
      'patch',
      'sa',
      'default',
      '-n',
      'default',
      '--type',
      'json',
      '-p',
      guarded(rv),
    ]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toBe(
      'The request is invalid: the server rejected our request due to an error in our request\n',
    );
    expect((await getSa('default', 'default')).metadata.resourceVersion).toBe(patched.metadata.resourceVersion);

    const replace = await kubectl('admin', [
      'patch',
      'sa',
      'default',
      '-n',
      'default',
      '--type',
      'json',
      '-p',
      JSON.stringify([
        { op: 'replace', path: '/imagePullSecrets', value: [{ name: 'x' }] },
        { op: 'add', path: '/imagePullSecrets/-', value: { name: 'y' } },
      ]),
    ]);
    expect(replace.code).toBe(0);
    expect(pullSecrets(await getSa('default', 'default'))).toEqual(['x', 'y']);
  });

  it('replace with the current resourceVersion succeeds; with a stale one kubectl reports the conflict', async () => {
    const sa = await getSa('team-a', 'default');
    const edited = { ...sa, imagePullSecrets: [] };
    const ok = await kubectl('admin', ['replace', '-f', '-'], JSON.stringify(edited));
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe('serviceaccount/default replaced\n');
    const put = recent().find((q) => q.method === 'PUT');
    expect(put?.query).toMatchObject({ fieldValidation: 'Strict', fieldManager: 'kubectl-replace' });
    expect(put?.body).toMatchObject({ metadata: { resourceVersion: sa.metadata.resourceVersion } });
    expect(Object.keys(await getSa('team-a', 'default'))).not.toContain('imagePullSecrets');

    const stale = await kubectl('admin', ['replace', '-f', '-'], JSON.stringify(sa));
    expect(stale.code).toBe(1);
    expect(stale.stdout).toBe('');
    expect(stale.stderr).toBe(
      'Error from server (Conflict): error when replacing "STDIN": Operation cannot be fulfilled on serviceaccounts "default": the object has been modified; please apply your changes to the latest version and try again\n',
    );
  });

  it('a concurrent edit between read and write makes the write conflict instead of being lost', async () => {
    const read = await getSa('default', 'default');
    // Someone else edits the account after our read, through the test hook...
    api.mutate('default', 'default', (s) => {
      s.imagePullSecrets = [...(s.imagePullSecrets ?? []), { name: 'added-by-colleague' }];
    });
    const write = await kubectl('admin', ['replace', '-f', '-'], JSON.stringify({ ...read, imagePullSecrets: [] }));
    expect(write.code).toBe(1);
    expect(write.stderr).toContain('the object has been modified');
    expect(pullSecrets(await getSa('default', 'default'))).toEqual(['regcred', 'other', 'added-by-colleague']);

    // ...or right as our write arrives (the race a retry loop must survive).
    const fresh = await getSa('default', 'default');
    api.onNextWrite((w, store) => {
      store.mutate(w.namespace, w.name, (s) => {
        s.imagePullSecrets = [{ name: 'raced' }];
      });
    });
    const raced = await kubectl('admin', ['replace', '-f', '-'], JSON.stringify({ ...fresh, imagePullSecrets: [] }));
    expect(raced.code).toBe(1);
    expect(raced.stderr).toContain('Error from server (Conflict)');
    expect(pullSecrets(await getSa('default', 'default'))).toEqual(['raced']);
  });

  it('--dry-run=server returns the result without storing it', async () => {
    const before = await getSa('default', 'default');
    const r = await kubectl('admin', [
      'patch',
      'sa',
      'default',
      '-n',
      'default',
      '-p',
      '{"imagePullSecrets": []}',
      '--dry-run=server',
      '-o',
      'json',
    ]);
    expect(r.code).toBe(0);
    expect(Object.keys(JSON.parse(r.stdout) as object)).not.toContain('imagePullSecrets');
    expect(recent().find((q) => q.method === 'PATCH')?.query.dryRun).toBe('All');
    expect(await getSa('default', 'default')).toEqual(before);
  });

  it('names a missing namespace, and a missing ServiceAccount, the way kubectl does for a real cluster', async () => {
    const sa = await kubectl('admin', ['get', 'sa', 'default', '-n', 'nope', '-o', 'json']);
    expect(sa.code).toBe(1);
    expect(sa.stdout).toBe('');
    expect(sa.stderr).toBe('Error from server (NotFound): namespaces "nope" not found\n');
    // kubectl turns the server's `serviceaccounts "default" not found` into the namespace error itself, after a GET of the namespace.
    expect(
      recent()
        .slice(-2)
        .map((q) => `${q.path} ${q.code}`),
    ).toEqual(['/api/v1/namespaces/nope/serviceaccounts/default 404', '/api/v1/namespaces/nope 404']);

    const ns = await kubectl('admin', ['get', 'namespace', 'nope']);
    expect(ns.stderr).toBe('Error from server (NotFound): namespaces "nope" not found\n');
    expect(ns.code).toBe(1);

    const missing = await kubectl('admin', ['get', 'sa', 'ghost', '-n', 'team-a', '-o', 'json']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('Error from server (NotFound): serviceaccounts "ghost" not found\n');

    const patch = await kubectl('admin', ['patch', 'sa', 'ghost', '-n', 'team-a', '-p', '{"imagePullSecrets": []}']);
    expect(patch.code).toBe(1);
    expect(patch.stderr).toBe('Error from server (NotFound): serviceaccounts "ghost" not found\n');
  });

  it('a bad token is refused with 401, and kubectl says the user must log in', async () => {
    const r = await kubectl('bad', ['get', 'sa', 'default', '-n', 'default', '-o', 'json']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(
      'error: You must be logged in to the server (the server has asked for the client to provide credentials)',
    );
    expect(recent().length).toBeGreaterThan(0);
    expect(recent().every((q) => q.code === 401 && q.user === undefined)).toBe(true);

    const none = await rawGet('/api/v1/namespaces', {});
    expect(none.code).toBe(401);
    expect(JSON.parse(none.body)).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Unauthorized',
      reason: 'Unauthorized',
      code: 401,
    });
  });

  it('a read-only token reads but cannot patch, with the RBAC wording of the real server', async () => {
    const read = await kubectl('readonly', [
      'get',
      'sa',
      'default',
      '-n',
      'team-a',
      '-o',
      'jsonpath={.imagePullSecrets[*].name}',
    ]);
    expect(read.code).toBe(0);
    expect(read.stdout).toBe('regcred');

    const r = await kubectl('readonly', ['patch', 'sa', 'default', '-n', 'team-a', '-p', '{"imagePullSecrets": []}']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'Error from server (Forbidden): serviceaccounts "default" is forbidden: User "lab-readonly" cannot patch resource "serviceaccounts" in API group "" in the namespace "team-a"\n',
    );
    expect(pullSecrets(await getSa('team-a', 'default'))).toEqual(['regcred']);
  });

  it('creates ServiceAccounts from kubectl create (protobuf) and from a JSON manifest, refusing duplicates and missing namespaces', async () => {
    const typed = await kubectl('admin', ['create', 'serviceaccount', 'robot', '-n', 'team-b']);
    expect(typed.stderr).toBe('');
    expect(typed.stdout).toBe('serviceaccount/robot created\n');
    expect(recent().find((q) => q.method === 'POST')?.contentType).toBe('application/vnd.kubernetes.protobuf');
    expect((await getSa('team-b', 'robot')).metadata.namespace).toBe('team-b');

    const dup = await kubectl('admin', ['create', 'serviceaccount', 'robot', '-n', 'team-b']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toBe('error: failed to create serviceaccount: serviceaccounts "robot" already exists\n');

    const noNs = await kubectl('admin', ['create', 'serviceaccount', 'robot', '-n', 'nope']);
    expect(noNs.code).toBe(1);
    expect(noNs.stderr).toBe('error: failed to create serviceaccount: namespaces "nope" not found\n');

    const manifest = {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'puller', labels: { app: 'x' } },
      imagePullSecrets: [{ name: 's1' }],
    };
    const fromFile = await kubectl('admin', ['create', '-n', 'team-b', '-f', '-'], JSON.stringify(manifest));
    expect(fromFile.code).toBe(0);
    expect(pullSecrets(await getSa('team-b', 'puller'))).toEqual(['s1']);
  });

  it("rejects unknown fields under kubectl's strict field validation", async () => {
    const sa = await getSa('team-a', 'default');
    const typo = { ...sa, imagePullSecret: [] };
    const r = await kubectl('admin', ['replace', '-f', '-'], JSON.stringify(typo));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'Error from server (BadRequest): error when replacing "STDIN": ServiceAccount in version "v1" cannot be handled as a ServiceAccount: strict decoding error: unknown field "imagePullSecret"\n',
    );
  });

  it('runs as its own process from a config file, serves the lab control paths, and stops on SIGTERM', async () => {
    const config = join(dir, 'kube-api.json');
    await writeFile(
      config,
      JSON.stringify({
        certFile: certs.certFile,
        keyFile: certs.keyFile,
        tokens: { [token.admin]: 'admin' },
        namespaces: { apps: { serviceAccounts: { default: { imagePullSecrets: ['regcred'] } } } },
      }),
    );
    const child: ChildProcess = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/lab/kube-api/main.ts', '--config', config],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      const line = await new Promise<string>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`kube-api main exited early with code ${String(code)}`)));
        createInterface({ input: child.stdout! }).once('line', resolve);
      });
      const info = JSON.parse(line) as { url: string; port: number; pid: number };
      expect(info.pid).toBe(child.pid);
      const kc = join(dir, 'process.kubeconfig');
      await writeKubeconfig(kc, { server: info.url, caPem: certs.caPem, token: token.admin });
      const env: NodeJS.ProcessEnv = { ...process.env, HOME: dir };
      const run = (args: string[]): Run => {
        const r = spawnSync('kubectl', ['--kubeconfig', kc, '--cache-dir', join(dir, 'cache-process'), ...args], {
          env,
          encoding: 'utf8',
        });
        return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
      };
      expect(run(['get', 'sa', 'default', '-n', 'apps', '-o', 'jsonpath={.imagePullSecrets[*].name}']).stdout).toBe(
        'regcred',
      );

      // Stage a colleague's edit to land just before the next write, through the control path.
      const arm = spawnSync(
        'curl',
        [
          '-sS',
          '--cacert',
          certs.caCertFile,
          '-H',
          `Authorization: Bearer ${token.admin}`,
          '-X',
          'POST',
          '-d',
          JSON.stringify({ namespace: 'apps', name: 'default', imagePullSecrets: ['raced'] }),
          `${info.url}/_lab/on-next-write`,
        ],
        { encoding: 'utf8' },
      );
      expect(JSON.parse(arm.stdout)).toEqual({ armed: true });
      const sa = JSON.parse(run(['get', 'sa', 'default', '-n', 'apps', '-o', 'json']).stdout) as Record<
        string,
        unknown
      >;
      const replace = spawnSync(
        'kubectl',
        ['--kubeconfig', kc, '--cache-dir', join(dir, 'cache-process'), 'replace', '-f', '-'],
        {
          env,
          encoding: 'utf8',
          input: JSON.stringify({ ...sa, imagePullSecrets: [] }),
        },
      );
      expect(replace.status).toBe(1);
      expect(replace.stderr).toContain('the object has been modified');
      expect(run(['get', 'sa', 'default', '-n', 'apps', '-o', 'jsonpath={.imagePullSecrets[*].name}']).stdout).toBe(
        'raced',
      );
    } finally {
      const exited = new Promise<number | null>((resolve) => {
        if (child.exitCode !== null) resolve(child.exitCode);
        else child.once('exit', (code) => resolve(code));
      });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });

  describe('what the node agent uses: ConfigMaps, Leases, Node status conditions, Events', () => {
    const lease = (holder: string, rv?: string): string =>
      JSON.stringify({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: {
          name: 'trustplay-restart-0',
          namespace: 'team-a',
          ...(rv !== undefined ? { resourceVersion: rv } : {}),
        },
        spec: { holderIdentity: holder, leaseDurationSeconds: 30, acquireTime: '2026-01-01T00:00:00.000000Z' },
      });

    it('discovery lists leases in coordination.k8s.io/v1, and configmaps, nodes (with status) and events in v1', async () => {
      const r = await kubectl('admin', ['api-resources', '--no-headers']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^leases\s+coordination\.k8s\.io\/v1\s+true\s+Lease\s*$/m);
      expect(r.stdout).toMatch(/^configmaps\s+cm\s+v1\s+true\s+ConfigMap\s*$/m);
      expect(r.stdout).toMatch(/^nodes\s+no\s+v1\s+false\s+Node\s*$/m);
      expect(r.stdout).toMatch(/^events\s+ev\s+v1\s+true\s+Event\s*$/m);
    });

    it('kubectl create configmap (a protobuf body) is read back with its data', async () => {
      const c = await kubectl('admin', [
        'create',
        'configmap',
        'agent-playbook',
        '-n',
        'team-a',
        '--from-literal=playbook.yaml=- hosts: all',
        '--from-literal=mode=check',
      ]);
      expect(c.stderr).toBe('');
      expect(c.stdout).toBe('configmap/agent-playbook created\n');
      const g = await kubectl('admin', ['get', 'cm', 'agent-playbook', '-n', 'team-a', '-o', 'json']);
      const cm = JSON.parse(g.stdout) as { data: Record<string, string>; metadata: { resourceVersion: string } };
      expect(cm.data).toEqual({ 'playbook.yaml': '- hosts: all', mode: 'check' });
      expect(cm.metadata.resourceVersion).toMatch(/^\d+$/);
      const t = await kubectl('admin', ['get', 'configmap', '-n', 'team-a']);
      expect(t.stdout).toMatch(/^NAME\s+DATA\s+AGE\nagent-playbook\s+2\s+\d+s\n$/);
      const missing = await kubectl('admin', ['get', 'cm', 'nope', '-n', 'team-a']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('configmaps "nope" not found');
    });

    it('a Lease is created, shown with its holder, and a write with a stale resourceVersion is refused with 409', async () => {
      const c = await kubectl('admin', ['create', '-f', '-'], lease('node1'));
      expect(c.stderr).toBe('');
      expect(c.stdout).toBe('lease.coordination.k8s.io/trustplay-restart-0 created\n');
      const t = await kubectl('admin', ['get', 'lease', '-n', 'team-a']);
      expect(t.stdout).toMatch(/^NAME\s+HOLDER\s+AGE\ntrustplay-restart-0\s+node1\s+\d+s\n$/);
      const got = JSON.parse(
        (await kubectl('admin', ['get', 'lease', 'trustplay-restart-0', '-n', 'team-a', '-o', 'json'])).stdout,
      ) as {
        metadata: { resourceVersion: string };
      };
      const rv = got.metadata.resourceVersion;
      // node2 takes it over with the resourceVersion it read: accepted, and the resourceVersion moves on.
      const takeover = await kubectl('admin', ['replace', '-f', '-'], lease('node2', rv));
      expect(takeover.stderr).toBe('');
      expect(takeover.code).toBe(0);
      // node3 read the same version and writes after node2: 409, whether through replace or apply.
      const stale = await kubectl('admin', ['replace', '-f', '-'], lease('node3', rv));
      expect(stale.code).toBe(1);
      expect(stale.stderr).toContain(
        'Operation cannot be fulfilled on leases.coordination.k8s.io "trustplay-restart-0": the object has been modified',
      );
      expect(
        recent()
          .filter((q) => q.code === 409)
          .map((q) => q.method),
      ).toEqual(['PUT']);
      // apply sends the stale resourceVersion in its patch; kubectl retries a conflict (as against a real
      // server, about 4 s of its own backoff) and then gives up.
      const applied = await kubectl('admin', ['apply', '-f', '-'], lease('node3', rv));
      expect(applied.code).toBe(1);
      expect(applied.stderr).toContain('the object has been modified');
      const patches = recent().filter((q) => q.method === 'PATCH');
      expect(patches.length).toBeGreaterThan(0);
      expect(patches.every((q) => q.code === 409)).toBe(true);
      const holder = await kubectl('admin', [
        'get',
        'lease',
        'trustplay-restart-0',
        '-n',
        'team-a',
        '-o',
        'jsonpath={.spec.holderIdentity}',
      ]);
      expect(holder.stdout).toBe('node2');
      expect(
        api.writes('leases').map((w) => [w.verb, (w.object.spec as { holderIdentity: string }).holderIdentity]),
      ).toEqual([
        ['create', 'node1'],
        ['update', 'node2'],
      ]);
    });

    it("a Node's status conditions are patched through the status subresource, merged by type", async () => {
      const node = {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'node7' },
        status: {
          conditions: [
            { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' },
          ],
        },
      };
      expect((await kubectl('admin', ['create', '-f', '-'], JSON.stringify(node))).stdout).toBe('node/node7 created\n');
      const condition = { type: 'TrustplayInSync', status: 'False', reason: 'Drift', message: '1 change pending' };
      const p = await kubectl('admin', [
        'patch',
        'node',
        'node7',
        '--subresource=status',
        '--type=strategic',
        '-p',
        JSON.stringify({ status: { conditions: [condition] } }),
      ]);
      expect(p.stderr).toBe('');
      expect(p.stdout).toBe('node/node7 patched\n');
      expect(recent().at(-1)).toMatchObject({ method: 'PATCH', path: '/api/v1/nodes/node7/status', code: 200 });
      const types = await kubectl('admin', [
        'get',
        'node',
        'node7',
        '-o',
        'jsonpath={range .status.conditions[*]}{.type}={.reason} {end}',
      ]);
      expect(types.stdout).toBe('Ready=KubeletReady TrustplayInSync=Drift ');
      // The same patch on the node itself leaves the status alone, as the real API does.
      const main = await kubectl('admin', [
        'patch',
        'node',
        'node7',
        '--type=merge',
        '-p',
        JSON.stringify({ status: { conditions: [] } }),
      ]);
      expect(main.stdout).toBe('node/node7 patched (no change)\n');
      const t = await kubectl('admin', ['get', 'nodes']);
      expect(t.stderr).toBe('');
      expect(t.stdout).toMatch(/^NAME\s+STATUS\s+AGE\nnode7\s+Ready\s+\d+s\n$/);
    });

    it('an Event is created and listed', async () => {
      const event = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: 'node7.trustplay.1', namespace: 'default' },
        involvedObject: { kind: 'Node', name: 'node7', apiVersion: 'v1' },
        reason: 'TrustplayChanged',
        message: 'containerd.tls changed /etc/containerd/config.toml',
        type: 'Normal',
        source: { component: 'trustplay-agent', host: 'node7' },
      };
      const c = await kubectl('admin', ['create', '-f', '-'], JSON.stringify(event));
      expect(c.stderr).toBe('');
      const list = await kubectl('admin', [
        'get',
        'events',
        '-n',
        'default',
        '-o',
        'jsonpath={range .items[*]}{.reason}: {.message}{end}',
      ]);
      expect(list.stdout).toBe('TrustplayChanged: containerd.tls changed /etc/containerd/config.toml');
      const readonly = await kubectl(
        'readonly',
        ['create', '-f', '-'],
        JSON.stringify({ ...event, metadata: { ...event.metadata, name: 'x' } }),
      );
      expect(readonly.code).toBe(1);
      expect(readonly.stderr).toContain('cannot create resource "events"');
    });
  });
});
