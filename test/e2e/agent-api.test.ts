/**
 * The agent's use of the API, against the emulator (no lab): rollout Leases (a race for one Lease
 * has one winner, a released one is taken, an expired one is taken over, max-unavailable 2 lets
 * two hold at once), the fleet leader's Lease (one leader, renewed while it lives, taken over
 * when it stops, a racing or stale write refused by resourceVersion), ServiceAccounts read and
 * written through the agent's client, and `fleet status` turning Node conditions into check's exit
 * codes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseMaxUnavailable, rolloutSlots } from '../../src/cli/commands/agent.js';
import { KubeClient } from '../../src/k8s/api.js';
import { FleetLeader, LeasePool } from '../../src/k8s/lease.js';
import { LocalConnection } from '../../src/connection/local.js';
import { readServiceAccounts, writePullSecrets } from '../../src/k8s/kubectl.js';
import { watchConfigMap } from '../../src/k8s/watch.js';
import { publishCondition } from '../../src/k8s/node-status.js';
import { rolloutHalt } from '../../src/k8s/rollout-gate.js';
import { writeKubeconfig } from '../lab/kube-api/kubeconfig.js';
import { startKubeApi, type KubeApi } from '../lab/kube-api/server.js';
import { kindOf } from '../lab/kube-api/resources.js';
import { makeTestCerts } from '../lab/kube-api/test-certs.js';
import { startTrustplay, trustplay } from '../support/cli.js';
import { parseRestoreRequest, playbookVersion, requestTag } from '../../src/k8s/restore-request.js';

let dir = '';
let api: KubeApi;
let client: KubeClient;
let kubeconfig = '';
const token = randomBytes(16).toString('hex');

const pool = (identity: string, size = 1, durationSeconds = 30): LeasePool =>
  new LeasePool(client, {
    namespace: 'kube-system',
    prefix: 'trustplay-rollout',
    size,
    identity,
    durationSeconds,
    retryMs: 50,
  });

const LEASES = kindOf('coordination.k8s.io', 'leases');
if (LEASES === undefined) throw new Error('the emulator serves no Leases');

const holders = (): Record<string, string> =>
  Object.fromEntries(
    api
      .resources()
      .list(LEASES, undefined)
      .map((l) => [
        String((l.metadata as { name: string }).name),
        String((l.spec as { holderIdentity?: string }).holderIdentity ?? ''),
      ]),
  );

describe('the agent and the API: rollout Leases, Node conditions, fleet status', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trustplay-agent-api-'));
    const certs = await makeTestCerts(join(dir, 'pki'));
    api = await startKubeApi({ certFile: certs.certFile, keyFile: certs.keyFile, tokens: { [token]: 'admin' } });
    api.state().addNamespace('kube-system');
    client = new KubeClient({ server: api.url, caPem: certs.caPem, token });
    kubeconfig = join(dir, 'kubeconfig');
    await writeKubeconfig(kubeconfig, { server: api.url, caPem: certs.caPem, token });
  });
  afterAll(async () => {
    await api?.close();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => api.resources().clear());

  it('a race for one Lease has one winner; the other takes it once released', async () => {
    const [a, b] = [pool('node-a'), pool('node-b')];
    const stop = new AbortController();
    const first = await Promise.race([
      a.acquire(stop.signal).then((l) => ({ who: 'node-a', l })),
      b.acquire(stop.signal).then((l) => ({ who: 'node-b', l })),
    ]);
    expect(holders()).toEqual({ 'trustplay-rollout-0': first.who });
    // The loser keeps trying and gets nothing while the winner holds (and renews) it.
    await first.l?.renew();
    await new Promise((r) => setTimeout(r, 200));
    expect(holders()).toEqual({ 'trustplay-rollout-0': first.who });
    const loser = first.who === 'node-a' ? b : a;
    const waiting = loser.acquire();
    await first.l?.release();
    const second = await waiting;
    expect(second?.name).toBe('trustplay-rollout-0');
    expect(holders()).toEqual({ 'trustplay-rollout-0': first.who === 'node-a' ? 'node-b' : 'node-a' });
    stop.abort();
  });

  it('a Lease its holder stopped renewing is taken over after its duration, seen on the taker’s own clock', async () => {
    const crashed = await pool('node-a', 1, 1).acquire();
    expect(crashed).toBeDefined();
    const taken = await pool('node-b', 1, 1).acquire();
    expect(taken?.name).toBe('trustplay-rollout-0');
    // Not before node-b had seen the Lease unchanged for its whole duration (a lower bound only).
    const [created, takeover] = api.writes('leases');
    expect((takeover?.at ?? 0) - (created?.at ?? 0)).toBeGreaterThanOrEqual(1000);
    const lease = api.resources().list(LEASES, 'kube-system')[0];
    expect(lease?.spec).toMatchObject({ holderIdentity: 'node-b', leaseTransitions: 1 });
  });

  const leader = (identity: string, durationSeconds = 30): FleetLeader =>
    new FleetLeader(
      new LeasePool(client, {
        namespace: 'kube-system',
        prefix: 'trustplay-leader',
        size: 1,
        identity,
        durationSeconds,
      }),
      'trustplay-leader',
      durationSeconds,
    );
  const leaderPath = '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/trustplay-leader';

  it('the fleet leader: one of three agents leads, the others are told who holds it; it renews while it lives', async () => {
    const agents = ['node-a', 'node-b', 'node-c'].map((n) => ({ n, l: leader(n, 1) }));
    // All three look at once: the create races, the API server lets one win (409 for the others).
    const seen = await Promise.all(agents.map(async ({ n, l }) => ({ n, holder: await l.holder() })));
    const leaders = seen.filter((s) => s.holder === undefined).map((s) => s.n);
    expect(leaders).toHaveLength(1);
    const [winner] = leaders;
    expect(holders()).toEqual({ 'trustplay-leader': winner });
    // Three durations later the others still see the winner: it renewed every third of a duration.
    await new Promise((r) => setTimeout(r, 3000));
    for (const { n, l } of agents) expect(await l.holder()).toBe(n === winner ? undefined : winner);
    expect(api.writes('leases').filter((w) => w.verb !== 'create').length).toBeGreaterThanOrEqual(6);
    for (const { l } of agents) await l.resign();
    expect(holders()).toEqual({ 'trustplay-leader': '' });
  });

  it('a dead leader’s Lease is taken over after its duration; a stale renewal loses leadership (409), never overwrites', async () => {
    // A leader that died: its Lease is there, and nobody renews it.
    const created = await client.post('/apis/coordination.k8s.io/v1/namespaces/kube-system/leases', {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'trustplay-leader', namespace: 'kube-system' },
      spec: { holderIdentity: 'node-dead', leaseDurationSeconds: 1, renewTime: '2026-01-01T00:00:00.000000Z' },
    });
    expect(created.code).toBe(201);
    const b = leader('node-b', 1);
    // Its holder's clock means nothing here: node-b waits a whole duration of its own first.
    expect(await b.holder()).toBe('node-dead');
    await new Promise((r) => setTimeout(r, 1100));
    expect(await b.holder()).toBeUndefined();
    expect(b.leading).toBe(true);
    expect(holders()).toEqual({ 'trustplay-leader': 'node-b' });
    // Someone else writes the Lease (an operator, a partitioned agent's late takeover): node-b's
    // next renewal carries a stale resourceVersion, is refused, and node-b stops leading.
    const got = await client.get(leaderPath);
    const spec = got.body?.spec as Record<string, unknown>;
    expect((await client.put(leaderPath, { ...got.body, spec: { ...spec, holderIdentity: 'node-x' } })).code).toBe(200);
    await new Promise((r) => setTimeout(r, 700));
    expect(b.leading).toBe(false);
    expect(holders()).toEqual({ 'trustplay-leader': 'node-x' });
    await b.resign();
  });

  it("ServiceAccounts through the agent's client: a missing namespace told from a missing account, a conflicting write re-read, the newcomer kept", async () => {
    api.state().addNamespace('team');
    api.state().insertServiceAccount('team', { metadata: { name: 'default' }, imagePullSecrets: [{ name: 'stale' }] });
    const conn = new LocalConnection({ host: 'node-a', kube: client });
    const read = await readServiceAccounts(conn, {}, ['team', 'nowhere'], 'default');
    expect(read.map((r) => r.status)).toEqual(['ok', 'no-namespace']);
    const [team] = read;
    if (team?.status !== 'ok') throw new Error('no account');
    expect(team.sa.imagePullSecrets).toEqual(['stale']);
    // Another writer adds a secret after the read: the first write conflicts, the second keeps it.
    api.state().mutate('team', 'default', (sa) => {
      sa.imagePullSecrets = [{ name: 'stale' }, { name: 'newcomer' }];
    });
    const out = await writePullSecrets(conn, {}, team.sa, (current) => current.filter((n) => n !== 'stale'));
    expect(out).toEqual({ written: ['newcomer'], attempts: 2 });
    expect(api.state().getServiceAccount('team', 'default')?.imagePullSecrets).toEqual([{ name: 'newcomer' }]);
    const [noAccount] = await readServiceAccounts(conn, {}, ['team'], 'builder');
    expect(noAccount?.status).toBe('no-account');
  });

  it('the ConfigMap watch: a change to the watched ConfigMap is seen at once, one to another is not, the version already read is not a change', async () => {
    const cms = '/api/v1/namespaces/kube-system/configmaps';
    const cm = (name: string, text: string) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: 'kube-system' },
      data: { 'playbook.yaml': text },
    });
    const created = await client.post(cms, cm('trustplay-playbook', 'a'));
    expect((await client.post(cms, cm('other', 'a'))).code).toBe(201);
    const rv = String((created.body?.metadata as { resourceVersion: string }).resourceVersion);
    let current = rv;
    const seen: string[] = [];
    const stop = new AbortController();
    const watching = watchConfigMap(
      client,
      'kube-system',
      'trustplay-playbook',
      rv,
      () => current,
      (v) => seen.push(v),
      stop.signal,
      () => undefined,
    );
    const put = async (name: string, text: string): Promise<string> => {
      const got = await client.get(`${cms}/${name}`);
      const r = await client.put(`${cms}/${name}`, { ...got.body, data: { 'playbook.yaml': text } });
      expect(r.code).toBe(200);
      return String((r.body?.metadata as { resourceVersion: string }).resourceVersion);
    };
    await put('other', 'b');
    const v2 = await put('trustplay-playbook', 'b');
    const waitFor = async (n: number) => {
      for (let i = 0; i < 100 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 20));
    };
    await waitFor(1);
    expect(seen).toEqual([v2]);
    // A pass that already read v3 before the event came: not a change.
    current = await put('trustplay-playbook', 'c');
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual([v2]);
    stop.abort();
    await watching;
    // One watch request, no polling.
    const watches = api.requests().filter((r) => r.path === cms && r.query.watch === '1');
    expect(watches.map((r) => [r.query.fieldSelector, r.query.resourceVersion])).toEqual([
      ['metadata.name=trustplay-playbook', rv],
    ]);
  });

  it('--max-unavailable 2: two nodes hold a Lease at once, a third waits', async () => {
    const a = await pool('node-a', 2).acquire();
    const b = await pool('node-b', 2).acquire();
    expect([a?.name, b?.name].sort()).toEqual(['trustplay-rollout-0', 'trustplay-rollout-1']);
    const stop = new AbortController();
    const c = pool('node-c', 2).acquire(stop.signal);
    await new Promise((r) => setTimeout(r, 200));
    stop.abort();
    expect(await c).toBeUndefined();
    expect(Object.values(holders()).sort()).toEqual(['node-a', 'node-b']);
  });

  it('fleet status: 0 in sync, 2 on drift, 4 for a node without a report or with a stale one, 1 when one failed', async () => {
    for (const n of ['node-a', 'node-b']) {
      expect((await client.post('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: n } })).code).toBe(
        201,
      );
    }
    const status = () => trustplay(['fleet', 'status', '--kubeconfig', kubeconfig]);
    await publishCondition(client, 'node-a', 'InSync', 'in desired state');
    let r = await status();
    expect([r.code, r.stdout.trim().split('\n').at(-1)]).toEqual([4, 'agent missing or stale on node-b (exit 4)']);
    await publishCondition(client, 'node-b', 'InSync', 'in desired state');
    r = await status();
    expect([r.code, r.stdout.trim().split('\n').at(-1)]).toEqual([0, 'in desired state: 2 nodes in sync']);
    await publishCondition(client, 'node-b', 'Drift', 'drift on node-b (exit 2)');
    r = await status();
    expect([r.code, r.stdout.trim().split('\n').at(-1)]).toEqual([2, 'drift on node-b (exit 2)']);
    expect(r.stdout).toMatch(/^node-b\s+Drift\s+drift on node-b \(exit 2\)$/m);
    await publishCondition(client, 'node-a', 'InSync', 'in desired state', new Date(Date.now() - 3_600_000));
    r = await status();
    expect([r.code, r.stdout.trim().split('\n').at(-1)]).toEqual([4, 'agent missing or stale on node-a (exit 4)']);
    await publishCondition(client, 'node-b', 'Failed', 'failed on node-b (exit 1)');
    r = await status();
    expect([r.code, r.stdout.trim().split('\n').at(-1)]).toEqual([1, 'failed on node-b (exit 1)']);
    // The kubelet's conditions are never touched: only TrustplayInSync is written.
    const node = await client.get('/api/v1/nodes/node-b');
    expect((node.body?.status as { conditions: { type: string }[] }).conditions.map((c) => c.type)).toEqual([
      'TrustplayInSync',
    ]);
  });

  it('the fleet-wide max_fail from the Node conditions: any other failed node halts at 0%, a share at or under the limit does not, the own node never counts', async () => {
    for (const n of ['n1', 'n2', 'n3', 'n4']) {
      expect((await client.post('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: n } })).code).toBe(
        201,
      );
    }
    await publishCondition(client, 'n1', 'InSync', 'in desired state');
    await publishCondition(client, 'n2', 'Failed', 'failed on n2 (exit 1)');
    await publishCondition(client, 'n3', 'RolloutHalted', 'rollout halted');
    expect(await rolloutHalt(client, 'n1', 0)).toBe(
      'rollout halted: 1 of 4 nodes failed (n2), 25% > --max-fail-percentage 0%; this node was not changed',
    );
    expect(await rolloutHalt(client, 'n1', 25)).toBeUndefined();
    expect(await rolloutHalt(client, 'n2', 0)).toBeUndefined();
    await publishCondition(client, 'n4', 'Failed', 'failed on n4 (exit 1)');
    expect(await rolloutHalt(client, 'n1', 25)).toContain('2 of 4 nodes failed (n2, n4), 50%');
    const r = await trustplay([
      'agent',
      '--playbook-configmap',
      'kube-system/x',
      '--node-name',
      'n1',
      '--max-fail-percentage',
      '1x',
    ]);
    expect([r.code, r.stderr.trim()]).toEqual([
      3,
      '--max-fail-percentage must be a percentage of the Nodes from 0 to 100, not `1x`',
    ]);
  });

  it('--max-unavailable as a percentage of the Nodes, rounded up as a DaemonSet rounds it; 0 and other words are invalid input', async () => {
    for (const n of ['n1', 'n2', 'n3']) {
      expect((await client.post('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: n } })).code).toBe(
        201,
      );
    }
    const slots = async (text: string) => rolloutSlots(client, parseMaxUnavailable(text));
    expect(await Promise.all(['1', '2', '10%', '34%', '66%', '67%', '100%'].map(slots))).toEqual([1, 2, 1, 2, 2, 3, 3]);
    const r = await trustplay([
      'agent',
      '--playbook-configmap',
      'kube-system/x',
      '--node-name',
      'n1',
      '--max-unavailable',
      '0',
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      '--max-unavailable must be a number of nodes (at least 1) or a percentage of them (1% to 100%), not `0`',
    );
  });
  it('fleet restore: the annotation patch is seen by the ConfigMap watch, the request names the current playbook version, the exit code follows the agents’ answers, --clear removes it', async () => {
    const cms = '/api/v1/namespaces/kube-system/configmaps';
    const data = { 'playbook.yaml': '- hosts: workers\n  tasks: []\n', 'vars.yaml': 'x: 1\n' };
    const created = await client.post(cms, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'trustplay-playbook', namespace: 'kube-system' },
      data,
    });
    expect(created.code).toBe(201);
    for (const n of ['node-a', 'node-b'])
      expect((await client.post('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: n } })).code).toBe(
        201,
      );
    const rv = String((created.body?.metadata as { resourceVersion: string }).resourceVersion);
    const seen: string[] = [];
    const stop = new AbortController();
    const watching = watchConfigMap(
      client,
      'kube-system',
      'trustplay-playbook',
      rv,
      () => rv,
      (v) => seen.push(v),
      stop.signal,
      () => undefined,
    );
    const annotation = async () =>
      ((await client.get(`${cms}/trustplay-playbook`)).body?.metadata as { annotations?: Record<string, string> })
        .annotations;
    const base = ['--playbook-configmap', 'kube-system/trustplay-playbook', '--kubeconfig', kubeconfig];
    const before = 'abcdef012345';
    const run = startTrustplay(['fleet', 'restore', '--before', before, '--timeout', '2m', ...base]);
    let request: ReturnType<typeof parseRestoreRequest>['request'];
    for (let i = 0; i < 300 && request === undefined; i++) {
      request = parseRestoreRequest(await annotation()).request;
      if (request === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    expect(request).toMatchObject({ before, playbook: playbookVersion(data) });
    for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(seen).toHaveLength(1);
    // An answer to another request is not this one's.
    await publishCondition(client, 'node-a', 'Restored', `${requestTag('older')}: restored snapshot s0`);
    await publishCondition(
      client,
      'node-b',
      'RestoreFailed',
      `${requestTag(request?.id ?? '')}: restoring snapshot s1 failed (exit 1)`,
    );
    await new Promise((r) => setTimeout(r, 1500));
    expect(run.output().stdout).toBe('');
    await publishCondition(client, 'node-a', 'Restored', `${requestTag(request?.id ?? '')}: restored snapshot s2`);
    const done = await run.done;
    expect(done.code, done.stderr).toBe(1);
    expect(done.stdout).toMatch(/^node-a\s+Restored\s+restore request \S+: restored snapshot s2$/m);
    expect(done.stdout.trim().split('\n').at(-1)).toBe('restore failed on node-b (exit 1)');
    // Restored (enforcement paused) is drift for fleet status.
    const status = await trustplay(['fleet', 'status', '--kubeconfig', kubeconfig]);
    expect(status.stdout).toMatch(/^node-a\s+Paused\s/m);
    // Nobody answers a new request: 4 once the timeout is over.
    const silent = await trustplay(['fleet', 'restore', '--before', before, '--timeout', '1s', ...base]);
    expect([silent.code, silent.stdout.trim().split('\n').at(-1)]).toEqual([
      4,
      'no answer within 1s from node-a, node-b (exit 4)',
    ]);
    const cleared = await trustplay(['fleet', 'restore', '--clear', ...base]);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect((await annotation())?.['trustplay.dev/restore']).toBeUndefined();
    for (let i = 0; i < 100 && seen.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    expect(seen).toHaveLength(3);
    const bad = await trustplay(['fleet', 'restore', '--before', 'HEAD', ...base]);
    expect([bad.code, bad.stderr.trim()]).toEqual([
      3,
      '--before: a playbook version is 12 hex digits (the `playbook …` in `trustplay fleet status`), not `HEAD`',
    ]);
    stop.abort();
    await watching;
  });
});
