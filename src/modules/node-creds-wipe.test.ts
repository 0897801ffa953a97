import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { taskContext } from '../../test/support/task-context.js';
import { LocalConnection } from '../connection/local.js';
import { TaskError } from '../engine/errors.js';
import type { NodeCredsWipeArgs } from './node-creds-wipe.js';
import { applyChanges, resourcesOf, restartHandler, type SnapshotSink } from '../engine/apply.js';
import { reported, type Change, type RestartRequest } from '../engine/module.js';
import { configBackupKey, pendingMarkerPath, type ConfigBackup } from '../engine/restart-backup.js';
import { MASK, SecretSet } from '../secrets/index.js';
import { forgetReadAhead, readAhead, readNode, type NodeEntry, type NodeRead } from '../connection/read-files.js';
import { ROOT_REGISTRIES_CONF } from '../containers-image/registries-conf.js';
import nodeCredsWipe, {
  confHelpers,
  credsLag,
  credsReads,
  gatherCreds,
  helpersOf,
  helperWarnings,
  notRemoved,
  planCredsWipe,
  removeAllRegistryAuth,
  type CredsObserved,
} from './node-creds-wipe.js';

const creds = (name: string): string =>
  readFileSync(new URL(`../../test/fixtures/image-modules/creds/${name}`, import.meta.url), 'utf8');
const toml = (name: string): string => readFileSync(new URL(`../containerd/fixtures/${name}`, import.meta.url), 'utf8');

const REG = 'registry.test:5000';
const DOCKER = '/root/.docker/config.json';
const KUBELET = '/var/lib/kubelet/config.json';
const CONFIG = '/etc/containerd/config.toml';
const KUBELET_IN = creds('tabs.in.json').replace('"registry.test:5000"', '"https://registry.test:5000"');

function args(over: Partial<NodeCredsWipeArgs> = {}): NodeCredsWipeArgs {
  return {
    registry: REG,
    paths: [DOCKER, KUBELET],
    containerd_auth: true,
    config_file: CONFIG,
    restart_command: 'systemctl restart containerd',
    restart_timeout: 60,
    all: false,
    registries_conf: '/etc/containers/registries.conf',
    ...over,
  };
}

function observed(configText: string | null = toml('two-registries.toml')): CredsObserved {
  return {
    files: [
      { path: DOCKER, kind: 'file', content: creds('tabs.in.json') },
      { path: KUBELET, kind: 'file', content: KUBELET_IN },
    ],
    config:
      configText === null
        ? { path: CONFIG, kind: 'absent', content: null }
        : { path: CONFIG, kind: 'file', content: configText, mode: 0o644, uid: 0, gid: 0 },
  };
}

const SECRETS = [
  'Y2ktYm90OmV4cGlyZWQtdG9rZW4tMjAyMw==',
  'b3RoZXItdXNlcjpvdGhlci1wYXNz',
  'stale-password',
  'b3RoZXI6c2VjcmV0',
];

/** What output shows of the changes: the engine masks every diff with the run's secrets layer. */
function expectNoSecrets(changes: Change[]): void {
  const set = new SecretSet();
  const out = JSON.stringify(
    reported(changes).map((c) => ({ summary: c.summary, diff: c.diff && set.maskDiff(c.diff) })),
  );
  for (const s of SECRETS) expect(out).not.toContain(s);
}

/** The plan as a report shows it, and the restart handlers its restart requests become. */
function wipe(a: NodeCredsWipeArgs, o: CredsObserved) {
  const plan = planCredsWipe(a, o);
  const handlers = plan.filter((c): c is RestartRequest => c.op === 'restart.request').map(restartHandler);
  return { plan, changes: reported(plan), handlers };
}

/** The unit tests exercise the apply path, not the snapshot store (its own tests and the e2e suites do). */
const noSnapshot: SnapshotSink = { save: async () => undefined, facts: () => undefined };

describe('planCredsWipe', () => {
  it('removes the registry from both files and its containerd auth, and notifies the verified restart only for config.toml', () => {
    const { changes, handlers } = wipe(args(), observed());
    expect(changes.map((c) => c.summary)).toEqual([
      `remove auths."registry.test:5000" from ${DOCKER}`,
      `remove auths."https://registry.test:5000" from ${KUBELET}`,
      `remove registry.configs."registry.test:5000".auth from ${CONFIG}`,
    ]);
    expect(changes.map(resourcesOf)).toEqual([
      [{ kind: 'file', path: DOCKER }],
      [{ kind: 'file', path: KUBELET }],
      [{ kind: 'file', path: CONFIG }],
    ]);
    expect(handlers).toEqual([
      {
        id: `containerd.restart ${CONFIG}`,
        name: 'Restart containerd (verified)',
        module: 'containerd.restart',
        args: { config_file: CONFIG, restart_command: 'systemctl restart containerd', restart_timeout: 60 },
      },
    ]);
    // The config.toml edit is the shared byte-preserving one: TLS tables and the other registry stay.
    expect(changes[2]?.diff?.after).toBe(toml('two-registries.remove-auth.expected.toml'));
    expect(new SecretSet().maskDiff(changes[2]!.diff!).after).toBe(
      toml('two-registries.remove-auth.expected.toml').replace('auth = "b3RoZXI6c2VjcmV0"', `auth = "${MASK}"`),
    );
    expect(changes[2]?.diff?.after).toContain('insecure_skip_verify = true');
    expectNoSecrets(changes);
  });

  it('passes the socket to the restart handler when the task names one', () => {
    const { handlers } = wipe(args({ socket: '/run/k3s/containerd/containerd.sock' }), observed());
    expect(handlers[0]?.args?.['socket']).toBe('/run/k3s/containerd/containerd.sock');
  });

  it('is idempotent: nothing left to remove means no change', () => {
    const after = wipe(args(), observed()).changes;
    const next: CredsObserved = {
      files: [
        { path: DOCKER, kind: 'file', content: creds('tabs.out.json') },
        { path: KUBELET, kind: 'file', content: creds('tabs.out.json') },
      ],
      config: { path: CONFIG, kind: 'file', content: toml('two-registries.remove-auth.expected.toml') },
    };
    expect(after).toHaveLength(3);
    expect(planCredsWipe(args(), next)).toEqual([]);
  });

  it('ignores absent files and non-files, and config.toml when containerd_auth is false', () => {
    const obs: CredsObserved = {
      files: [
        { path: DOCKER, kind: 'absent', content: null },
        { path: KUBELET, kind: 'other', content: null },
      ],
      config: null,
    };
    expect(planCredsWipe(args({ containerd_auth: false }), obs)).toEqual([]);
    expect(planCredsWipe(args(), { ...obs, config: { path: CONFIG, kind: 'absent', content: null } })).toEqual([]);
  });

  it("on Docker's containerd.io config (CRI disabled) cleans the credential files and leaves config.toml alone: no CRI auth is read there", () => {
    const dockerConfig = readFileSync(
      new URL('../../test/fixtures/published-configs/containerd-io.toml', import.meta.url),
      'utf8',
    );
    const obs: CredsObserved = {
      ...observed(),
      config: { path: CONFIG, kind: 'file', content: dockerConfig },
    };
    const changes = planCredsWipe(args(), obs);
    expect(changes.map((c) => (c.op === 'file.write' ? c.path : c.op))).toEqual([DOCKER, KUBELET]);
  });

  it('with all: true removes the whole files (naming their registries) and every registry auth, but never TLS', () => {
    const { changes } = wipe(args({ all: true }), observed());
    expect(changes.map((c) => c.summary)).toEqual([
      `remove ${DOCKER} (credentials for registry.test:5000, other.example:5000)`,
      `remove ${KUBELET} (credentials for https://registry.test:5000, other.example:5000)`,
      `remove registry.configs."registry.test:5000".auth, registry.configs."other.example".auth from ${CONFIG}`,
    ]);
    expect(changes[0]?.diff?.after).toBe('');
    const after = changes[2]?.diff?.after ?? '';
    expect(after).not.toMatch(/\.auth\]/);
    expect(after).toContain('insecure_skip_verify = true');
    expect(after).toContain('ca_file = "/etc/ssl/other-ca.pem"');
    expectNoSecrets(changes);
  });

  it('refuses a credential file that is not JSON, and a config.toml it cannot edit, with what to do', () => {
    const broken: CredsObserved = { files: [{ path: DOCKER, kind: 'file', content: '{"auths": ' }], config: null };
    expect(() => planCredsWipe(args(), broken)).toThrow(TaskError);
    expect(() => planCredsWipe(args(), broken)).toThrow(/^\/root\/\.docker\/config\.json is not valid JSON/);
    const v1 = observed(toml('version1.toml'));
    let err: unknown;
    try {
      planCredsWipe(args(), v1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).kind).toBe('refused');
    expect((err as TaskError).message).toMatch(
      /version 1 containerd config.*set containerd_auth: false to clean only the credential files/,
    );
  });

  it('removeAllRegistryAuth also clears the deprecated `auths` table', () => {
    const text =
      'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.auths."https://a.test"]\n  auth = "YTpi"\n[plugins."io.containerd.grpc.v1.cri".registry.configs."b.test".tls]\n  ca_file = "/b.pem"\n';
    const r = removeAllRegistryAuth(text);
    if (!r.ok) throw new Error(r.error);
    expect(r.removed).toEqual(['registry.auths."https://a.test"']);
    expect(r.text).not.toContain('YTpi');
    expect(r.text).toContain('ca_file = "/b.pem"');
  });
});

describe('credsLag: the running containerd still holds credentials config.toml no longer has', () => {
  const wiped = toml('two-registries.remove-auth.expected.toml');
  const withConfig = (text: string, extra: Partial<CredsObserved> = {}): CredsObserved => ({
    files: [],
    config: { path: CONFIG, kind: 'file', content: text, raw: Buffer.from(text) },
    ...extra,
  });
  const record = (config: string) =>
    JSON.stringify({
      trustplay: 'restarted',
      sha256: createHash('sha256').update(config).digest('hex'),
      config: Buffer.from(config).toString('base64'),
      socket: { path: '/run/containerd/containerd.sock', id: '1 2' },
    });

  it('1.x: plans the verified restart from what the daemon reports (CRI Status), naming the registry, not its credentials', () => {
    const lag = credsLag(args(), withConfig(wiped, { daemon: { configPath: '', authKeys: [REG, 'other.example'] } }));
    expect(lag.map((c) => c.op)).toEqual(['custom', 'restart.request']);
    expect(reported(lag)[0]!.summary).toBe(
      `restart containerd: it still holds credentials for ${REG} that ${CONFIG} no longer has (removed after containerd started), so it keeps using them`,
    );
    expect(JSON.stringify(lag)).not.toMatch(/stale-password|stale-user/);
    // Another registry's credentials held by the daemon are not this task's; the file still has them anyway.
    expect(credsLag(args(), withConfig(wiped, { daemon: { configPath: '', authKeys: ['other.example'] } }))).toEqual(
      [],
    );
    // A daemon in step with the file: nothing.
    expect(credsLag(args(), withConfig(wiped, { daemon: { configPath: '', authKeys: [] } }))).toEqual([]);
    expect(
      credsLag(args({ containerd_auth: false }), withConfig(wiped, { daemon: { configPath: '', authKeys: [REG] } })),
    ).toEqual([]);
  });

  it("2.x: from trustplay's restart record while that daemon runs; nothing when someone restarted it since, or no record", () => {
    const before = toml('two-registries.toml');
    const v2 = { containerdMajor: 2, restartRecord: record(before) };
    const lag = credsLag(args(), withConfig(wiped, { ...v2, recordDaemon: 'same' }));
    expect(lag.map((c) => c.op)).toEqual(['custom', 'restart.request']);
    expect(reported(lag)[0]!.summary).toBe(
      `restart containerd: ${CONFIG} changed since trustplay last restarted containerd (credentials for ${REG} were removed), and containerd 2.x does not report the registry settings it runs with, so it may still use them`,
    );
    expect(credsLag(args(), withConfig(wiped, { ...v2, recordDaemon: 'restarted-after-edit' }))).toEqual([]);
    expect(credsLag(args(), withConfig(wiped, { ...v2, recordDaemon: 'restarted-before-edit' }))).toEqual([]);
    expect(credsLag(args(), withConfig(wiped, { containerdMajor: 2 }))).toEqual([]);
    // The record is the file: in effect.
    expect(
      credsLag(args(), withConfig(wiped, { containerdMajor: 2, restartRecord: record(wiped), recordDaemon: 'same' })),
    ).toEqual([]);
  });

  it('the module plans it only when nothing else restarts containerd (a write, or a pending change, brings its own)', async () => {
    const ctx = taskContext({ host: 'h' });
    const daemon = { configPath: '', authKeys: [REG] };
    const plan = async (o: CredsObserved) => (await nodeCredsWipe.plan(args(), o, ctx)).map((c) => c.op);
    expect(await plan(withConfig(wiped, { daemon }))).toEqual(['custom', 'restart.request']);
    expect(await plan(withConfig(toml('two-registries.toml'), { daemon }))).toEqual(['file.write', 'restart.request']);
    expect(await plan(withConfig(wiped, { daemon, pending: { content: null } }))).toEqual([
      'custom',
      'restart.request',
    ]);
  });
});

describe('credential helpers: reported with the command that clears them, never removed or run', () => {
  const CONTAINERS = '/run/containers/0/auth.json';
  const files = (): CredsObserved['files'] => [
    { path: DOCKER, kind: 'file', content: creds('helpers-credhelpers.in.json'), uid: 0 },
    { path: KUBELET, kind: 'file', content: creds('helpers-credsstore.in.json'), uid: 0 },
    { path: CONTAINERS, kind: 'file', content: creds('helpers-containers-auth.in.json'), uid: 0 },
    { path: '/root/.config/containers/auth.json', kind: 'file', content: '{"auths": {}, "credsStore": "desktop"}' },
    {
      path: '/home/ci/creds.json',
      kind: 'file',
      content: '{"credHelpers": {"registry.test:5000": "pass"}}',
      uid: 1000,
    },
    { path: '/absent.json', kind: 'absent', content: null },
  ];
  const a = args({ paths: files().map((f) => f.path), containerd_auth: false });

  it('names, per file, the helper that may hold the registry: credHelpers for it, else credsStore (not in auth.json)', () => {
    const h = helpersOf(a, files());
    expect(notRemoved(h)).toEqual([
      { file: DOCKER, registry: 'registry.test:5000', helper: 'pass' },
      { file: KUBELET, registry: 'registry.test:5000', helper: 'secretservice' },
      { file: CONTAINERS, registry: 'registry.test:5000', helper: 'secretservice' },
      { file: '/home/ci/creds.json', registry: 'registry.test:5000', helper: 'pass' },
    ]);
    expect(helpersOf(a, [{ path: DOCKER, kind: 'file', content: creds('tabs.in.json') }])).toEqual([]);
  });

  it("warns once per file with the exact commands (the tool's logout, or the helper's erase), as the owner", () => {
    expect(helperWarnings(a, helpersOf(a, files()))).toEqual([
      `${DOCKER}: registry.test:5000's credentials may be in the store of credential helper \`pass\` (credHelpers."registry.test:5000"), which trustplay never touches (it keeps credHelpers and credsStore, and runs no helper); to remove them, as the file's owner (uid 0), in a session where the helper works: \`DOCKER_CONFIG=/root/.docker docker logout registry.test:5000\` (or \`printf %s registry.test:5000 | docker-credential-pass erase\`)`,
      `${KUBELET}: registry.test:5000's credentials may be in the store of credential helper \`secretservice\` (credsStore, the default helper for registries credHelpers does not name), which trustplay never touches (it keeps credHelpers and credsStore, and runs no helper); to remove them, as the file's owner (uid 0), in a session where the helper works: \`DOCKER_CONFIG=/var/lib/kubelet docker logout registry.test:5000\` (or \`printf %s registry.test:5000 | docker-credential-secretservice erase\`)`,
      `${CONTAINERS}: registry.test:5000's credentials may be in the store of credential helper \`secretservice\` (credHelpers."registry.test:5000"), which trustplay never touches (it keeps credHelpers and credsStore, and runs no helper); to remove them, as the file's owner (uid 0), in a session where the helper works: \`skopeo logout --authfile ${CONTAINERS} registry.test:5000\` (or \`printf %s registry.test:5000 | docker-credential-secretservice erase\`)`,
      // Docker reads only $DOCKER_CONFIG/config.json: another file name gets the helper's command alone.
      `/home/ci/creds.json: registry.test:5000's credentials may be in the store of credential helper \`pass\` (credHelpers."registry.test:5000"), which trustplay never touches (it keeps credHelpers and credsStore, and runs no helper); to remove them, as the file's owner (uid 1000), in a session where the helper works: \`printf %s registry.test:5000 | docker-credential-pass erase\``,
    ]);
  });

  it('quotes what the file names, so a hostile helper name or key cannot become a command', () => {
    const evil: CredsObserved['files'] = [
      { path: DOCKER, kind: 'file', content: '{"credHelpers": {"https://registry.test:5000": "x; rm -rf /"}}' },
    ];
    const [w] = helperWarnings(a, helpersOf(a, evil));
    expect(w).toContain("printf %s https://registry.test:5000 | 'docker-credential-x; rm -rf /' erase");
  });

  it('plans the auths edit as before and leaves credHelpers and credsStore byte for byte; the module warns and reports not_removed', async () => {
    const obs: CredsObserved = { files: files().slice(0, 3), config: null, helpers: helpersOf(a, files().slice(0, 3)) };
    const ctx = taskContext({ host: 'h' });
    const changes = reported(await nodeCredsWipe.plan(a, obs, ctx));
    expect(changes.map((c) => c.summary)).toEqual([
      `remove auths."registry.test:5000" from ${DOCKER}`,
      `remove auths."registry.test:5000" from ${KUBELET}`,
      `remove auths."registry.test:5000" from ${CONTAINERS}`,
    ]);
    expect(changes.map((c) => (c.op === 'file.write' ? c.content : null))).toEqual([
      creds('helpers-credhelpers.out.json'),
      creds('helpers-credsstore.out.json'),
      creds('helpers-containers-auth.out.json'),
    ]);
    expect(ctx.warnings).toHaveLength(3);
    expect(ctx.warnings.join('\n')).not.toMatch(/Y2ktYm90|b3RoZXI|cTpx/);
    expect(nodeCredsWipe.result!(obs)).toEqual({
      not_removed: [
        { file: DOCKER, registry: 'registry.test:5000', helper: 'pass' },
        { file: KUBELET, registry: 'registry.test:5000', helper: 'secretservice' },
        { file: CONTAINERS, registry: 'registry.test:5000', helper: 'secretservice' },
      ],
    });
    // Converged files: nothing to change, the warning stays (the store may still hold it).
    const done: CredsObserved = {
      files: [{ path: DOCKER, kind: 'file', content: creds('helpers-credhelpers.out.json'), uid: 0 }],
      config: null,
    };
    done.helpers = helpersOf(a, done.files);
    const ctx2 = taskContext({ host: 'h' });
    expect(await nodeCredsWipe.plan(a, done, ctx2)).toEqual([]);
    expect(ctx2.warnings).toHaveLength(1);
    // No helper anywhere: no warning, no data.
    expect(nodeCredsWipe.result!({ files: [], config: null })).toEqual({});
  });

  it('all: true removes the files as it is asked, and warns that every helper they named keeps its store', async () => {
    const all = { ...a, all: true };
    const obs: CredsObserved = { files: files().slice(0, 3), config: null };
    obs.helpers = helpersOf(all, obs.files);
    const ctx = taskContext({ host: 'h' });
    const changes = reported(await nodeCredsWipe.plan(all, obs, ctx));
    expect(changes.map((c) => c.op)).toEqual(['file.remove', 'file.remove', 'file.remove']);
    expect(notRemoved(obs.helpers)).toEqual([
      { file: DOCKER, registry: '123456789012.dkr.ecr.eu-west-1.amazonaws.com', helper: 'ecr-login' },
      { file: DOCKER, registry: 'europe-docker.pkg.dev', helper: 'gcloud' },
      { file: DOCKER, registry: 'registry.test:5000', helper: 'pass' },
      { file: DOCKER, registry: '*', helper: 'secretservice' },
      { file: KUBELET, registry: '*', helper: 'secretservice' },
      { file: CONTAINERS, registry: 'quay.io', helper: 'pass' },
      { file: CONTAINERS, registry: 'registry.test:5000', helper: 'secretservice' },
    ]);
    expect(ctx.warnings[1]).toBe(
      `${KUBELET} goes whole (all: true) but names credential helper \`secretservice\` (credsStore, the default helper for registries credHelpers does not name): its store may still hold the credentials they had (trustplay runs no helper, and what pointed at them goes with the file); to erase them, as the file's owner (uid 0), in a session where the helper works: \`docker-credential-secretservice list\` (the registries it holds), then \`printf %s REGISTRY | docker-credential-secretservice erase\` for each`,
    );
    expect(ctx.warnings[2]).toContain(
      '`printf %s quay.io | docker-credential-pass erase`; `printf %s registry.test:5000 | docker-credential-secretservice erase`',
    );
  });
});

describe("registries.conf's credential-helpers: containers/image's own helpers, reported the same way", () => {
  const SYS = '/etc/containers/registries.conf';
  const ROOT = '/root/.config/containers/registries.conf';
  const read = (files: Record<string, string>): NodeRead => ({
    entries: new Map<string, NodeEntry>(
      Object.entries(files).map(([path, text]) => [
        path,
        { kind: 'file', path, content: Buffer.from(text), mode: 0o644, uid: 0, gid: 0, size: text.length },
      ]),
    ),
    records: [],
  });
  const a = args({ paths: [], containerd_auth: false });

  it('names the helpers of the file that set the list last, not the auth.json files; none when unset or auth.json alone', () => {
    const r = read({
      [SYS]: 'credential-helpers = ["containers-auth.json", "secretservice"]\n',
      [`${SYS}.d/50-ecr.conf`]: 'credential-helpers = ["containers-auth.json", "ecr-login", "pass"]\n',
    });
    const h = confHelpers(a, r);
    expect(notRemoved(h)).toEqual([
      { file: `${SYS}.d/50-ecr.conf`, registry: REG, helper: 'ecr-login' },
      { file: `${SYS}.d/50-ecr.conf`, registry: REG, helper: 'pass' },
    ]);
    expect(confHelpers(a, read({ [SYS]: 'credential-helpers = ["containers-auth.json"]\n' }))).toEqual([]);
    expect(confHelpers(a, read({ [SYS]: 'unqualified-search-registries = ["docker.io"]\n' }))).toEqual([]);
    // Root's own registries.conf replaces the system's (and its drop-ins) for root's tools.
    const rooted = read({
      [SYS]: 'credential-helpers = ["secretservice"]\n',
      [`${SYS}.d/50-ecr.conf`]: 'credential-helpers = ["ecr-login"]\n',
      [ROOT]: 'credential-helpers = ["containers-auth.json"]\n',
    });
    expect(confHelpers(a, rooted)).toEqual([]);
  });

  it('warns with the file, the helpers and `skopeo logout` (which erases from each), and plans nothing for them', async () => {
    const obs: CredsObserved = { files: [], config: null };
    obs.helpers = confHelpers(a, read({ [`${SYS}.d/50-ecr.conf`]: 'credential-helpers = ["ecr-login"]\n' }));
    const ctx = taskContext({ host: 'h' });
    expect(await nodeCredsWipe.plan(a, obs, ctx)).toEqual([]);
    expect(ctx.warnings).toEqual([
      `${SYS}.d/50-ecr.conf: its credential-helpers names \`ecr-login\`: podman, skopeo and buildah look ${REG}'s credentials up there too (a login stores them in the first helper listed), and trustplay runs no helper; to remove them, as root, in a session where the helper works: \`skopeo logout ${REG}\` (it erases the registry from every helper listed; or \`printf %s ${REG} | docker-credential-ecr-login erase\`)`,
    ]);
    expect(nodeCredsWipe.result!(obs)).toEqual({
      not_removed: [{ file: `${SYS}.d/50-ecr.conf`, registry: REG, helper: 'ecr-login' }],
    });
    const all = { ...a, all: true };
    const ctxAll = taskContext({ host: 'h' });
    await nodeCredsWipe.plan(
      all,
      {
        files: [],
        config: null,
        helpers: confHelpers(all, read({ [SYS]: 'credential-helpers = ["pass", "gcloud"]\n' })),
      },
      ctxAll,
    );
    expect(ctxAll.warnings[0]).toBe(
      `${SYS}: its credential-helpers name \`pass\`, \`gcloud\`: podman, skopeo and buildah keep credentials there as well as in auth.json, and their stores may still hold every registry's (trustplay runs no helper); to erase them, as root, in a session where the helper works: \`docker-credential-pass list\` (the registries it holds), then \`printf %s REGISTRY | docker-credential-pass erase\` for each; \`docker-credential-gcloud list\` (the registries it holds), then \`printf %s REGISTRY | docker-credential-gcloud erase\` for each`,
    );
  });

  it('quotes what the file names, so a hostile helper name cannot become a command', () => {
    const h = confHelpers(a, read({ [SYS]: 'credential-helpers = ["x; rm -rf /"]\n' }));
    const [w] = helperWarnings(a, h);
    expect(w).toContain(`'docker-credential-x; rm -rf /' erase`);
  });
});

describe('on a real host (local connection, real sh)', () => {
  let dir: string;
  const conn = new LocalConnection({ host: 'testhost' });
  const p = (name: string): string => path.join(dir, name);

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tp-creds-wipe-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const ctx = () => taskContext({ conn, host: 'testhost' });

  it("reads registries.conf and its drop-ins with the play's first read: the gather then needs no command of its own", async () => {
    mkdirSync(p('containers/registries.conf.d'), { recursive: true });
    writeFileSync(p('containers/registries.conf'), 'unqualified-search-registries = ["docker.io"]\n');
    writeFileSync(p('containers/registries.conf.d/50-ecr.conf'), 'credential-helpers = ["ecr-login"]\n');
    writeFileSync(p('auth.json'), '{"auths": {}}\n');
    const a = args({
      paths: [p('auth.json')],
      containerd_auth: false,
      registries_conf: p('containers/registries.conf'),
    });
    const calls: string[] = [];
    const counted = Object.assign(Object.create(conn) as LocalConnection, {
      exec: (...x: Parameters<LocalConnection['exec']>) => (calls.push('exec'), conn.exec(...x)),
    });
    // As the engine does for a play: what the task will read rides with the host's first read
    // (here one with a size limit, as containerd's facts read has).
    readAhead(counted, credsReads(a));
    await readNode(counted, { files: [p('carrier')], maxFileBytes: 1024 * 1024 });
    expect(calls).toEqual(['exec']);
    const obs = await gatherCreds(counted, a);
    expect(calls).toEqual(['exec']);
    // Root's own registries.conf, where this machine has one, would replace the one named here.
    if (!existsSync(ROOT_REGISTRIES_CONF))
      expect(notRemoved(obs.helpers ?? [])).toEqual([
        { file: p('containers/registries.conf.d/50-ecr.conf'), registry: REG, helper: 'ecr-login' },
      ]);
    forgetReadAhead(counted);
  });

  it('gathers every file in one command and applies edits keeping mode; the config backup is recorded before the write', async () => {
    mkdirSync(p('docker'), { recursive: true });
    writeFileSync(p('docker/config.json'), creds('tabs.in.json'), { mode: 0o600 });
    chmodSync(p('docker/config.json'), 0o600);
    writeFileSync(p('kubelet.json'), KUBELET_IN, { mode: 0o640 });
    chmodSync(p('kubelet.json'), 0o640);
    mkdirSync(p('a-directory.json'));
    writeFileSync(p('config.toml'), toml('two-registries.toml'));
    const a = args({
      paths: [p('docker/config.json'), p('missing.json'), p('a-directory.json'), p('kubelet.json')],
      config_file: p('config.toml'),
    });

    const obs = await gatherCreds(conn, a);
    expect(obs.files.map((f) => f.kind)).toEqual(['file', 'absent', 'other', 'file']);
    expect(obs.files[0]?.mode).toBe(0o600);
    expect(obs.files[3]?.content).toBe(KUBELET_IN);
    expect(obs.config?.content).toBe(toml('two-registries.toml'));

    const c = ctx();
    const changes = planCredsWipe(a, obs);
    expect(reported(changes)).toHaveLength(3);
    await applyChanges(c, changes, noSnapshot, 'node.creds.wipe');

    expect(readFileSync(p('docker/config.json'), 'utf8')).toBe(creds('tabs.out.json'));
    expect(statSync(p('docker/config.json')).mode & 0o7777).toBe(0o600);
    expect(readFileSync(p('kubelet.json'), 'utf8')).toBe(creds('tabs.out.json'));
    expect(statSync(p('kubelet.json')).mode & 0o7777).toBe(0o640);
    expect(readFileSync(p('config.toml'), 'utf8')).toBe(toml('two-registries.remove-auth.expected.toml'));
    const backup = c.hostState.get(configBackupKey(p('config.toml'))) as ConfigBackup;
    expect(backup.content?.toString('utf8')).toBe(toml('two-registries.toml'));

    // The restart handler has not run: the node records the change as pending. Within this run that
    // marker is its own (the restart is already due as a handler): nothing more is planned. A later
    // run (a new host state) plans only to finish it (restart with the health check), with the
    // pre-change config to roll back to.
    const again = await gatherCreds(conn, a);
    expect(again.pending?.content?.toString('utf8')).toBe(toml('two-registries.toml'));
    expect(reported(await nodeCredsWipe.plan(a, again, c))).toEqual([]);
    expect(reported(await nodeCredsWipe.plan(a, again, ctx())).map((ch) => ch.summary)).toEqual([
      expect.stringMatching(
        /^finish the change an interrupted trustplay run left: .*config\.toml was written but containerd was not restarted/,
      ),
    ]);
    // Once the restart settled (it removes the marker), nothing is left to do.
    rmSync(pendingMarkerPath(p('config.toml')));
    expect(planCredsWipe(a, await gatherCreds(conn, a))).toEqual([]);
  });

  it('a credential path that is a link is refused before anything is read: no diff of its target, no write', async () => {
    writeFileSync(p('shadow'), 'root:secret-hash:19000::::::\n', { mode: 0o600 });
    symlinkSync(p('shadow'), p('link.json'));
    const a = args({ paths: [p('link.json')], containerd_auth: false });
    await expect(gatherCreds(conn, a)).rejects.toThrow(`${p('link.json')} is a symbolic link: trustplay never reads`);
    expect(readFileSync(p('shadow'), 'utf8')).toBe('root:secret-hash:19000::::::\n');
  });

  it('gathers the helpers a file names; the edit keeps them byte for byte on disk', async () => {
    writeFileSync(p('helpers.json'), creds('helpers-credhelpers.in.json'), { mode: 0o600 });
    const a = args({ containerd_auth: false, paths: [p('helpers.json')] });
    const obs = await gatherCreds(conn, a);
    expect(notRemoved(obs.helpers ?? [])).toEqual([
      { file: p('helpers.json'), registry: 'registry.test:5000', helper: 'pass' },
    ]);
    expect(obs.helpers?.[0]?.uid).toBe(process.getuid!());
    await applyChanges(ctx(), planCredsWipe(a, obs), noSnapshot, 'node.creds.wipe');
    expect(readFileSync(p('helpers.json'), 'utf8')).toBe(creds('helpers-credhelpers.out.json'));
    // Nothing left to remove; the helper is still named, so it is still reported.
    const again = await gatherCreds(conn, a);
    expect(planCredsWipe(a, again)).toEqual([]);
    expect(again.helpers).toHaveLength(1);
  });

  it('all: true removes the files themselves', async () => {
    writeFileSync(p('all.json'), creds('tabs.in.json'));
    const a = args({ all: true, containerd_auth: false, paths: [p('all.json')] });
    await applyChanges(ctx(), planCredsWipe(a, await gatherCreds(conn, a)), noSnapshot, 'node.creds.wipe');
    expect(() => statSync(p('all.json'))).toThrow(/ENOENT/);
  });
});
