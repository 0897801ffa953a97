/**
 * deploy/kubernetes/agent/ as a cluster would take it. There is no real API server on this machine:
 * the manifests go through the real kubectl 1.32 (`kubectl apply --dry-run=server`) to the lab's API
 * emulator (test/lab/kube-api), which serves discovery, OpenAPI v3 and typed decoding for these
 * kinds, with strict field validation as kubectl asks for it. Then the DaemonSet's arguments go
 * through the CLI's own parser and the agent's own checks, and the RBAC rules are held against the
 * requests the agent's code really makes (the real `trustplay agent` with the DaemonSet's arguments,
 * and the Lease and Event code of an enforce pass), so the manifests cannot drift from the code; the
 * example ConfigMap's playbook is validated as the agent would load it.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { agentConfig, LEADER_LEASE, nodeInventory } from '../../src/cli/commands/agent.js';
import { parseOptions } from '../../src/cli/options.js';
import { KubeClient } from '../../src/k8s/api.js';
import { FleetLeader, LeasePool } from '../../src/k8s/lease.js';
import { apiPatchPullSecrets, apiReadServiceAccounts } from '../../src/k8s/service-accounts-api.js';
import { nodeEvent } from '../../src/k8s/node-status.js';
import { rolloutHalt } from '../../src/k8s/rollout-gate.js';
import { watchConfigMap } from '../../src/k8s/watch.js';
import { writeKubeconfig } from '../lab/kube-api/kubeconfig.js';
import { startKubeApi, type KubeApi, type RequestRecord } from '../lab/kube-api/server.js';
import { makeTestCerts, type TestCerts } from '../lab/kube-api/test-certs.js';
import { trustplay } from '../support/cli.js';

const MANIFESTS = fileURLToPath(new URL('../../deploy/kubernetes/agent/', import.meta.url));
const haveKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
// In CI a missing kubectl is a failure (the suite runs and fails), elsewhere the suite is reported as skipped.
const suite = describe.skipIf(!haveKubectl && process.env.CI !== 'true');

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } } & Record<
  string,
  unknown
>;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir = '';
let certs: TestCerts;
let api: KubeApi;
let kubeconfig = '';
const token = randomBytes(16).toString('hex');

/** Every object of every manifest, by file. */
async function manifests(): Promise<{ file: string; objects: Obj[] }[]> {
  const files = (await readdir(MANIFESTS)).filter((f) => f.endsWith('.yaml')).sort();
  return Promise.all(
    files.map(async (file) => ({
      file,
      objects: parseAllDocuments(await readFile(join(MANIFESTS, file), 'utf8'))
        .map((d) => d.toJS() as Obj | null)
        .filter((o): o is Obj => o !== null),
    })),
  );
}

const only = async (kind: string): Promise<Obj[]> =>
  (await manifests()).flatMap((m) => m.objects).filter((o) => o.kind === kind);

/** The real kubectl with a throw-away kubeconfig, cache and HOME (~/.kube is never read). */
function kubectl(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: dir, NO_COLOR: '1' };
    delete env.KUBECONFIG;
    execFile(
      'kubectl',
      ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args],
      { env, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code =
          err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** `kubectl get` of one object: its exit code and stderr (NotFound when it is not stored). */
const getObject = (o: Obj): Promise<Run> =>
  kubectl([
    'get',
    `${o.kind.toLowerCase()}${o.apiVersion.includes('/') ? `.${o.apiVersion.split('/')[0]}` : ''}`,
    o.metadata.name,
    ...(o.metadata.namespace !== undefined ? ['-n', o.metadata.namespace] : []),
  ]);

/** What kubectl prints for an object: `daemonset.apps/trustplay-agent`. */
const printed = (o: Obj): string =>
  `${o.kind.toLowerCase()}${o.apiVersion.includes('/') ? `.${o.apiVersion.split('/')[0]}` : ''}/${o.metadata.name}`;

suite('deploy/kubernetes/agent: the manifests, the real kubectl, the CLI and the code', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trustplay-agent-manifests-'));
    certs = await makeTestCerts(join(dir, 'pki'));
    api = await startKubeApi({ certFile: certs.certFile, keyFile: certs.keyFile, tokens: { [token]: 'admin' } });
    // Every cluster has `default` (the Events' Role and RoleBinding live there).
    api.state().addNamespace('default');
    kubeconfig = join(dir, 'kubeconfig');
    await writeKubeconfig(kubeconfig, { server: api.url, caPem: certs.caPem, token });
  });
  afterAll(async () => {
    await api?.close();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('every manifest passes `kubectl apply --dry-run=server` with strict field validation, and nothing is stored', async () => {
    const all = (await manifests()).flatMap((m) => m.objects);
    const [namespace] = await only('Namespace');
    expect(namespace).toBeDefined();
    const nsName = namespace?.metadata.name ?? '';
    // On an empty cluster: the Namespace alone (a real server refuses a dry-run create inside a
    // namespace that does not exist yet, and so does the emulator).
    let r = await kubectl(['apply', '--dry-run=server', '-f', join(MANIFESTS, 'namespace.yaml')]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`namespace/${nsName} created (server dry run)`);
    expect((await getObject(namespace as Obj)).stderr).toContain(`namespaces "${nsName}" not found`);

    // The namespace really created (as `kubectl apply -f namespace.yaml` does first), then the directory.
    r = await kubectl(['apply', '-f', join(MANIFESTS, 'namespace.yaml')]);
    expect(r.code).toBe(0);
    const mark = api.requests().length;
    r = await kubectl(['apply', '--dry-run=server', '-f', MANIFESTS]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').sort()).toEqual(
      all.map((o) => `${printed(o)} ${o.kind === 'Namespace' ? 'unchanged' : 'created'} (server dry run)`).sort(),
    );
    // Every write was a dry run under strict field validation: the server decoded each object.
    const writes = api
      .requests()
      .slice(mark)
      .filter((q) => q.method !== 'GET');
    expect(writes).toHaveLength(all.length - 1);
    for (const q of writes) expect(q.query).toMatchObject({ dryRun: 'All', fieldValidation: 'Strict' });
    expect(writes.every((q) => q.code === 201)).toBe(true);

    // Nothing stored: each object is NotFound afterwards, the Namespace aside.
    for (const o of all.filter((x) => x.kind !== 'Namespace')) {
      const got = await getObject(o);
      expect(got.code, `${printed(o)} was stored by a dry run`).toBe(1);
      expect(got.stderr).toMatch(/\(NotFound\)/);
    }
    expect(Object.values(api.resources().snapshot()).flat()).toEqual([]);
  });

  it('the server refuses a DaemonSet with a misspelt field, a wrong type or a selector that selects no pod, naming the field', async () => {
    const text = await readFile(join(MANIFESTS, 'daemonset.yaml'), 'utf8');
    const attempt = async (name: string, edited: string): Promise<Run> => {
      expect(edited).not.toBe(text);
      const file = join(dir, name);
      await writeFile(file, edited);
      return kubectl(['apply', '--dry-run=server', '-f', file]);
    };
    let r = await attempt('typo.yaml', text.replace(/^(\s+)tolerations:/m, '$1tolerattions:'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('strict decoding error: unknown field "spec.template.spec.tolerattions"');

    r = await attempt('nested-typo.yaml', text.replace(/^(\s+)mountPropagation:/m, '$1mountPropogation:'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown field "spec.template.spec.containers[0].volumeMounts[0].mountPropogation"');

    r = await attempt('type.yaml', text.replace(/^(\s+)hostPID: true/m, '$1hostPID: "yes"'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'cannot unmarshal string into Go struct field PodSpec.spec.template.spec.hostPID of type bool',
    );

    r = await attempt(
      'selector.yaml',
      text.replace(/(matchLabels:\n\s+app\.kubernetes\.io\/name:) trustplay-agent/, '$1 someone-else'),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('spec.template.metadata.labels: Invalid value');
    expect(r.stderr).toContain('`selector` does not match template `labels`');
    expect(Object.values(api.resources().snapshot()).flat()).toEqual([]);
  });

  it("the DaemonSet's command line is one the CLI takes, pointing at the manifests' own objects", async () => {
    const [ds] = await only('DaemonSet');
    const pod = (ds?.spec as { template: { spec: PodSpec } }).template.spec;
    const [container] = pod.containers;
    expect(container?.command).toEqual(['trustplay']);
    expect(container?.args[0]).toBe('agent');
    const { positionals, options } = await parseOptions(container?.args.slice(1) ?? []);
    expect(positionals).toEqual([]);
    // NODE_NAME comes from the downward API, as the agent reads it.
    const nodeEnv = container?.env.find((e) => e.name === 'NODE_NAME');
    expect(nodeEnv?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
    const saved = process.env.NODE_NAME;
    process.env.NODE_NAME = 'node-a';
    let c;
    try {
      c = await agentConfig(options);
    } finally {
      if (saved === undefined) delete process.env.NODE_NAME;
      else process.env.NODE_NAME = saved;
    }
    expect(c.node).toBe('node-a');
    const [cm] = await only('ConfigMap');
    expect(`${c.namespace}/${c.configMap}`).toBe(`${cm?.metadata.namespace}/${cm?.metadata.name}`);
    expect(Object.keys((cm?.data as Record<string, string>) ?? {})).toContain('playbook.yaml');
    expect(c.namespace).toBe(ds?.metadata.namespace);
    // The host root and the state dir are the hostPath volumes' mount points.
    const mountOf = (hostPath: string): string | undefined => {
      const volume = pod.volumes.find((v) => v.hostPath?.path === hostPath)?.name;
      return container?.volumeMounts.find((m) => m.name === volume)?.mountPath;
    };
    expect(mountOf('/')).toBe(c.hostRoot);
    expect(mountOf('/var/lib/trustplay')).toBe(options.stateDir);
    // The snapshot key file is in the Secret's mount, outside the state dir.
    const keyFile = container?.env.find((e) => e.name === 'TRUSTPLAY_SNAPSHOT_KEY_FILE')?.value ?? '';
    const secretVolume = pod.volumes.find((v) => v.secret !== undefined)?.name;
    const keyMount = container?.volumeMounts.find((m) => m.name === secretVolume)?.mountPath ?? '';
    expect(keyFile.startsWith(`${keyMount}/`)).toBe(true);
    expect(keyFile.startsWith(`${options.stateDir}/`)).toBe(false);
    // nsenter -t 1 needs the node's PID 1: hostPID, and the default prefix is the one that enters it.
    expect(pod.hostPID).toBe(true);
    expect(c.prefix.slice(0, 3)).toEqual(['nsenter', '-t', '1']);
    const [sa] = await only('ServiceAccount');
    expect(pod.serviceAccountName).toBe(sa?.metadata.name);
  });

  it("the example ConfigMap's playbook validates, with its variables, on a node as the agent sees it", async () => {
    const [cm] = await only('ConfigMap');
    const data = (cm?.data ?? {}) as Record<string, string>;
    const playbook = join(dir, 'example-playbook.yaml');
    const inventory = join(dir, 'example-inventory.yaml');
    await writeFile(playbook, data['playbook.yaml'] ?? '');
    await writeFile(inventory, stringify(await nodeInventory('node-a', data)));
    const r = await trustplay(['validate', playbook, '-i', inventory]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/valid — 3 plays, 1 host, 4 tasks, 1 handler/);
    expect(r.code).toBe(0);
  });

  it('the RBAC rules allow every request the agent makes, and each rule is used', async () => {
    const [ds] = await only('DaemonSet');
    const container = (ds?.spec as { template: { spec: PodSpec } }).template.spec.containers[0];
    const args = container?.args ?? [];
    const { options } = await parseOptions(args.slice(1));
    process.env.NODE_NAME = 'node-a';
    const c = await agentConfig(options).finally(() => delete process.env.NODE_NAME);
    const client = new KubeClient({ server: api.url, caPem: certs.caPem, token });
    expect(
      (await client.post('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } })).code,
    ).toBe(201);
    api.state().addNamespace(c.namespace);
    const mark = api.requests().length;

    // The real CLI with the DaemonSet's arguments, one pass. The ConfigMap is not there (the dry
    // run stored nothing), so no playbook runs on this machine: the pass fails on that read and
    // publishes Failed on its Node, which is the agent's read-ConfigMap, read-Node, patch-status path.
    const run = await trustplay([...args, '--once', '--kubeconfig', kubeconfig], { env: { NODE_NAME: 'node-a' } });
    expect(run.stderr).toContain(`cannot read ConfigMap ${c.namespace}/${c.configMap}: HTTP 404`);
    expect(run.code).toBe(1);
    const node = await client.get('/api/v1/nodes/node-a');
    expect(JSON.stringify(node.body)).toContain('"reason":"Failed"');

    // An enforce pass's other calls, through the agent's own code with its configuration: take a
    // rollout Lease (created), renew and release it, another node takes it (read, then taken),
    // and an Event on the Node.
    const pool = (identity: string): LeasePool =>
      new LeasePool(client, {
        namespace: c.namespace,
        prefix: 'trustplay-rollout',
        size: 'nodes' in c.maxUnavailable ? c.maxUnavailable.nodes : 1,
        identity,
        durationSeconds: c.leaseSeconds,
      });
    const held = await pool('node-a').acquire();
    await held?.renew();
    await held?.release();
    expect((await pool('node-b').acquire())?.name).toBe('trustplay-rollout-0');
    await nodeEvent(client, 'node-a', 'TrustplayChanged', 'a change');
    // Before a rollout Lease: the other nodes' conditions (--max-fail-percentage), one list of the Nodes.
    expect(await rolloutHalt(client, 'node-a', c.maxFailPercent)).toBeUndefined();
    // Between passes: the watch on the one ConfigMap (fieldSelector metadata.name), opened and closed.
    const stop = new AbortController();
    const watching = watchConfigMap(
      client,
      c.namespace,
      c.configMap,
      '1',
      () => '1',
      () => undefined,
      stop.signal,
      () => undefined,
    );
    for (let i = 0; i < 100 && !api.requests().some((q) => q.query.watch === '1'); i++)
      await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    await watching;

    // The fleet leader's part: the leader Lease, and k8s.sa.clear through the agent's API access
    // with the example playbook's arguments (an account not there yet: its namespace is read; then
    // one with a stale pull secret: read and patched).
    const leader = new FleetLeader(
      new LeasePool(client, {
        namespace: c.namespace,
        prefix: LEADER_LEASE,
        size: 1,
        identity: 'node-a',
        durationSeconds: c.leaseSeconds,
      }),
      LEADER_LEASE,
      c.leaseSeconds,
    );
    expect(await leader.holder()).toBeUndefined();
    await leader.resign();
    const [cm] = await only('ConfigMap');
    const data = (cm?.data ?? {}) as Record<string, string>;
    const plays = parse(data['playbook.yaml'] ?? '') as { tasks: Record<string, unknown>[] }[];
    const saTask = plays.flatMap((p) => p.tasks).find((t) => t['k8s.sa.clear'] !== undefined)?.['k8s.sa.clear'] as
      { service_account: string } | undefined;
    const namespaces = (parse(data['vars.yaml'] ?? '') as { namespaces: string[] }).namespaces;
    expect(saTask?.service_account).toBe('default');
    expect(namespaces.length).toBeGreaterThan(0);
    for (const read of await apiReadServiceAccounts(client, namespaces, saTask?.service_account ?? ''))
      expect(read.status).toBe('no-account');
    for (const ns of namespaces)
      api.state().insertServiceAccount(ns, { metadata: { name: 'default' }, imagePullSecrets: [{ name: 'stale' }] });
    for (const read of await apiReadServiceAccounts(client, namespaces, saTask?.service_account ?? '')) {
      expect(read.status).toBe('ok');
      if (read.status === 'ok') expect(await apiPatchPullSecrets(client, read.sa, [])).toBe('written');
    }

    const requests = api
      .requests()
      .slice(mark)
      .map(attributes)
      .filter((a): a is Attributes => a !== undefined);
    expect(requests.length).toBeGreaterThan(0);
    const rules = await grantedRules();
    for (const q of requests)
      expect(
        rules.some((r) => allows(r, q)),
        `${q.verb} ${q.resource} ${q.name ?? ''} in ${q.namespace ?? 'the cluster'} is not granted by rbac.yaml`,
      ).toBe(true);
    for (const r of rules)
      for (const resource of r.resources)
        for (const verb of r.verbs)
          expect(
            requests.some((q) => allows({ ...r, resources: [resource], verbs: [verb] }, q)),
            `rbac.yaml grants ${verb} ${resource} in ${r.namespace ?? 'the cluster'}, which the agent never does`,
          ).toBe(true);
  });
});

interface PodSpec {
  hostPID?: boolean;
  serviceAccountName?: string;
  containers: {
    command: string[];
    args: string[];
    env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
    volumeMounts: { name: string; mountPath: string }[];
  }[];
  volumes: { name: string; hostPath?: { path: string }; secret?: { secretName: string } }[];
}

/** A request as the RBAC authorizer sees it. */
interface Attributes {
  verb: string;
  apiGroup: string;
  /** With its subresource: `nodes/status`. */
  resource: string;
  namespace?: string;
  name?: string;
}

/** The RBAC attributes of a request to /api/v1/... or /apis/GROUP/v1/...; undefined for discovery. */
function attributes(q: RequestRecord): Attributes | undefined {
  const parts = q.path.split('/').filter(Boolean);
  const [group, tail] =
    parts[0] === 'api' ? ['', parts.slice(2)] : parts[0] === 'apis' ? [parts[1] ?? '', parts.slice(3)] : ['', []];
  if (tail.length === 0) return undefined;
  const namespaced = tail[0] === 'namespaces' && tail.length >= 3;
  const [resource, name, sub] = namespaced ? tail.slice(2) : tail;
  const watch = q.method === 'GET' && (q.query.watch === '1' || q.query.watch === 'true');
  const verb = watch
    ? 'watch'
    : { GET: name ? 'get' : 'list', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' }[q.method];
  if (resource === undefined || verb === undefined) return undefined;
  // As kube-apiserver's RequestInfo: a list or watch with fieldSelector metadata.name=X is authorized as on X.
  const selected = /^metadata\.name=([^,]+)$/.exec(q.query.fieldSelector ?? '')?.[1];
  const named = name ?? (verb === 'list' || verb === 'watch' ? selected : undefined);
  return {
    verb,
    apiGroup: group,
    resource: sub !== undefined ? `${resource}/${sub}` : resource,
    ...(namespaced ? { namespace: tail[1] } : {}),
    ...(named !== undefined ? { name: named } : {}),
  };
}

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
  /** Where a Role's rule applies; undefined for a ClusterRole bound cluster-wide. */
  namespace?: string;
}

/** The rules bound to the DaemonSet's ServiceAccount, from rbac.yaml. */
async function grantedRules(): Promise<Rule[]> {
  const [sa] = await only('ServiceAccount');
  const all = (await manifests()).flatMap((m) => m.objects);
  const toSa = (b: Obj): boolean =>
    ((b.subjects as { kind: string; name: string; namespace?: string }[] | undefined) ?? []).some(
      (s) => s.kind === 'ServiceAccount' && s.name === sa?.metadata.name && s.namespace === sa?.metadata.namespace,
    );
  const role = (kind: string, name: string, namespace?: string): Obj | undefined =>
    all.find((o) => o.kind === kind && o.metadata.name === name && o.metadata.namespace === namespace);
  return all
    .filter((b) => (b.kind === 'ClusterRoleBinding' || b.kind === 'RoleBinding') && toSa(b))
    .flatMap((b) => {
      const ref = b.roleRef as { kind: string; name: string };
      const ns = b.kind === 'RoleBinding' ? b.metadata.namespace : undefined;
      const r = role(ref.kind, ref.name, ref.kind === 'Role' ? ns : undefined);
      expect(r, `${b.kind} ${b.metadata.name} refers to a ${ref.kind} ${ref.name} not in the manifests`).toBeDefined();
      return ((r?.rules as Rule[] | undefined) ?? []).map((rule) => ({
        ...rule,
        ...(ns !== undefined ? { namespace: ns } : {}),
      }));
    });
}

/** RBAC's rule matching (no wildcards are used in the manifests, so none are honoured). */
function allows(r: Rule, q: Attributes): boolean {
  return (
    r.apiGroups.includes(q.apiGroup) &&
    r.resources.includes(q.resource) &&
    r.verbs.includes(q.verb) &&
    (r.namespace === undefined || r.namespace === q.namespace) &&
    (r.resourceNames === undefined || (q.name !== undefined && r.resourceNames.includes(q.name)))
  );
}
