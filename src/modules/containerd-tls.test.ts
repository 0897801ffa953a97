/**
 * The pure plan of containerd.tls on real config files (src/containerd/fixtures: `containerd config
 * default` of 1.6, 1.7 and 2.x, comments, mirrors, another config_path, imports, a missing file):
 * golden plans (test/fixtures/containerd-tls/plans/*.txt; UPDATE_GOLDEN=1 rewrites them, review the
 * diff), proof that config.toml lines the task does not own are unchanged, convergence (planning
 * again on the result gives zero changes), refusals before anything is written, and masking.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import TOML from '@iarna/toml';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { taskContext } from '../../test/support/task-context.js';
import { lineDiff } from '../containerd/line-diff.js';
import { TaskError } from '../engine/errors.js';
import { SecretSet } from '../secrets/index.js';
import type { ContainerdTlsArgs } from './containerd-tls.js';
import type { ContainerdFacts, HostsDirFacts } from '../containerd/facts.js';
import { resourcesOf } from '../engine/apply.js';
import { reported, type Change, type Diff } from '../engine/module.js';
import containerdTls from './containerd-tls.js';
import {
  planContainerdTls as planOps,
  readMaterial,
  registryDir,
  type ContainerdTlsArgs as Args,
  type TlsMaterial,
  type TlsObserved,
} from './containerd-tls.js';

/** One reported change as the golden files show it: the file operation, and whether a restart follows. */
interface PlannedChange {
  summary: string;
  op:
    | { kind: 'write'; path: string; content: Buffer; mode: number }
    | { kind: 'remove'; path: string }
    | { kind: 'rmdir'; path: string };
  diff?: Diff;
  restart: boolean;
}

/** The plan's operations in the goldens' shape (`restart` on the config write a restart request names). */
function planContainerdTls(a: Args, o: TlsObserved, host?: string): { changes: PlannedChange[]; warnings: string[] } {
  const plan = planOps(a, o, host);
  const restarts = new Set(plan.changes.flatMap((c) => (c.op === 'restart.request' ? [c.config] : [])));
  const changes = plan.changes.flatMap((c): PlannedChange[] => {
    const diff = 'diff' in c && c.diff ? { diff: c.diff } : {};
    if (c.op === 'file.write')
      return [
        {
          summary: c.summary,
          op: { kind: 'write', path: c.path, content: Buffer.from(c.content), mode: c.mode ?? 0o644 },
          restart: restarts.has(c.path),
          ...diff,
        },
      ];
    if (c.op === 'file.remove')
      return [{ summary: c.summary, op: { kind: 'remove', path: c.path }, restart: false, ...diff }];
    if (c.op === 'dir.remove') return [{ summary: c.summary, op: { kind: 'rmdir', path: c.path }, restart: false }];
    if (c.op === 'restart.request') return [];
    throw new Error(`containerd.tls planned an unexpected ${c.op}`);
  });
  return { changes, warnings: plan.warnings };
}

const HERE = dirname(fileURLToPath(import.meta.url));
const CONFIGS = join(HERE, '../containerd/fixtures');
const GOLDEN = join(HERE, '../../test/fixtures/containerd-tls/plans');
const UPDATE = process.env['UPDATE_GOLDEN'] === '1';
const REG = 'registry.test:5000';
const CERTS = '/etc/containerd/certs.d';

// A throw-away self-signed CA (public material only; generated for these tests).
const CA = readFileSync(join(HERE, '../../test/fixtures/containerd-tls/test-ca.pem'), 'utf8');
const CLIENT_KEY = readFileSync(join(HERE, '../../test/fixtures/containerd-tls/test-client.key'), 'utf8');

function args(a: Partial<ContainerdTlsArgs> = {}): ContainerdTlsArgs {
  return {
    registry: REG,
    style: 'auto',
    migrate_legacy: false,
    verify_ca: 'auto',
    config_path: CERTS,
    config_file: '/etc/containerd/config.toml',
    restart_command: 'systemctl restart containerd',
    restart_timeout: 60,
    state: 'present',
    ...a,
  };
}

function config(name: string | null): string | null {
  return name === null ? null : readFileSync(join(CONFIGS, name), 'utf8');
}

function facts(
  text: string | null,
  major: number,
  dir: HostsDirFacts = { path: `${CERTS}/${REG}`, exists: false, files: {} },
): ContainerdFacts {
  return {
    version: { raw: `containerd github.com/containerd/containerd ${major}.7.0`, major, minor: 7 },
    config:
      text === null
        ? { exists: false, text: null }
        : { exists: true, text, content: Buffer.from(text), mode: 0o644, uid: 0, gid: 0 },
    hostsDir: dir,
    extraDirs: {},
  };
}

function observed(f: ContainerdFacts, material: TlsMaterial = { ca: CA }): TlsObserved {
  return { facts: f, material, materialWarnings: [] };
}

/** What the node would look like after the planned changes (to check convergence). */
function applied(f: ContainerdFacts, changes: PlannedChange[]): ContainerdFacts {
  const next: ContainerdFacts = structuredClone(f);
  for (const c of changes) {
    const op = c.op;
    if (op.kind === 'write' && op.path === '/etc/containerd/config.toml') {
      next.config = { exists: true, text: op.content.toString(), content: op.content, mode: op.mode, uid: 0, gid: 0 };
    } else if (op.kind === 'write' && op.path.startsWith(`${next.hostsDir.path}/`)) {
      next.hostsDir.exists = true;
      next.hostsDir.files[op.path.slice(next.hostsDir.path.length + 1)] = {
        content: op.content,
        mode: op.mode,
        uid: 0,
        gid: 0,
      };
    } else if (op.kind === 'remove') {
      delete next.hostsDir.files[op.path.slice(next.hostsDir.path.length + 1)];
    } else if (op.kind === 'rmdir') {
      next.hostsDir.exists = false;
    }
  }
  return next;
}

/** A readable, stable rendering of a plan: summaries, ops, file texts, and config.toml as changed lines. */
function render(plan: { changes: PlannedChange[]; warnings: string[] }, before: string | null): string {
  const out: string[] = [];
  for (const c of plan.changes) {
    out.push(`## ${c.summary}${c.restart ? ' [notify: containerd.restart]' : ''}`);
    const op = c.op;
    if (op.kind !== 'write') {
      out.push(`${op.kind} ${op.path}`);
      continue;
    }
    out.push(`write ${op.path} mode ${op.mode.toString(8)}`);
    if (op.path.endsWith('config.toml')) {
      const d = lineDiff(before ?? '', op.content.toString());
      out.push(...d.removed.map((l) => `- ${l}`), ...d.added.map((l) => `+ ${l}`));
    } else if (op.path.endsWith('.key')) out.push('(private key)');
    else if (!op.path.endsWith('ca.crt')) out.push(op.content.toString().trimEnd());
  }
  for (const w of plan.warnings) out.push(`!! ${w}`);
  return `${out.join('\n')}\n`;
}

function golden(name: string, actual: string): void {
  const file = join(GOLDEN, `${name}.txt`);
  if (UPDATE || !existsSync(file)) {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(file, actual);
  }
  expect(actual).toBe(readFileSync(file, 'utf8'));
}

// Lines a hosts-style plan may add or remove in config.toml: config_path, the version of a new
// file, and the registry table header when the file had none.
const OWNED =
  /^\s*(config_path = .*|version = [23]|\[plugins\.(?:"|')io\.containerd\.(?:grpc\.v1\.cri|cri\.v1\.images)(?:"|')\.registry\]|)$/;

function configWrite(changes: PlannedChange[]): string | undefined {
  const c = changes.find((x) => x.op.kind === 'write' && x.op.path.endsWith('config.toml'));
  return c && c.op.kind === 'write' ? c.op.content.toString() : undefined;
}

function refusal(fn: () => unknown): TaskError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TaskError);
    expect((e as TaskError).kind).toBe('refused');
    return e as TaskError;
  }
  throw new Error('expected a refusal');
}

describe('containerd.tls plan (hosts style) on real config files', () => {
  const cases: Array<[string, string | null, number]> = [
    ['v1.6-default', 'v1.6-default.toml', 1],
    ['v1.7-default', 'v1.7-default.toml', 1],
    ['v2.x-default', 'v2.x-default.toml', 2],
    ['v2.1-default', 'v2.1-default.toml', 2],
    ['commented', 'commented.toml', 1],
    ['imports', 'imports.toml', 1],
    ['missing-1x', null, 1],
    ['missing-2x', null, 2],
  ];
  for (const [name, file, major] of cases) {
    it(`${name}: golden plan, only owned lines change, and a second plan is empty`, () => {
      const before = config(file);
      const f = facts(before, major);
      const plan = planContainerdTls(args({ ca: CA }), observed(f));
      golden(`hosts-ca.${name}`, render(plan, before));
      const after = configWrite(plan.changes);
      expect(after, 'config.toml is written').toBeDefined();
      TOML.parse(after!);
      if (before !== null) {
        const d = lineDiff(before, after!);
        for (const l of [...d.removed, ...d.added])
          expect(l, `unexpected changed line ${JSON.stringify(l)}`).toMatch(OWNED);
        expect(d.kept).toBe(before.split('\n').length - d.removed.length);
      }
      // Files before config.toml, so the restart finds hosts.toml and the CA in place.
      expect(plan.changes.at(-1)?.restart).toBe(true);
      expect(plan.changes.filter((c) => c.restart)).toHaveLength(1);
      const again = planContainerdTls(args({ ca: CA }), observed(applied(f, plan.changes)));
      expect(again.changes).toEqual([]);
    });
  }

  it('a config_path naming another single directory (k3s, microk8s) is refused, never repointed', () => {
    const e = refusal(() =>
      planContainerdTls(args({ ca: CA }), observed(facts(config('other-config-path.toml'), 1)), 'node9'),
    );
    expect(e.message).toBe(
      `node9: config.toml's config_path already names /etc/docker/certs.d, and registries configured under it would stop working if it were repointed to ${CERTS}; pass config_path: /etc/docker/certs.d to write this registry's hosts.toml there.`,
    );
  });

  it('microk8s’s template (test/fixtures/published-configs): `${SNAP_DATA}/args/certs.d` is the snap’s own directory, so the template is kept as written and only the registry’s files are planned there', () => {
    const template = readFileSync(join(HERE, '../../test/fixtures/published-configs/microk8s.toml'), 'utf8');
    const dir = '/var/snap/microk8s/current/args/certs.d';
    const a = args({
      ca: CA,
      config_file: '/var/snap/microk8s/current/args/containerd-template.toml',
      config_path: dir,
    });
    const f = facts(template, 1, { path: `${dir}/${REG}`, exists: false, files: {} });
    const plan = planContainerdTls(a, observed(f));
    expect(plan.changes.map((c) => c.summary)).toEqual([
      `write ${dir}/${REG}/ca.crt (CA certificate, 0644)`,
      `write ${dir}/${REG}/hosts.toml (hosts.toml, managed by trustplay, 0644)`,
    ]);
    // Another directory than the snap's own is still refused, never repointed.
    expect(refusal(() => planContainerdTls(args({ ca: CA }), observed(facts(template, 1)), 'mk8s')).message).toContain(
      'config_path already names ${SNAP_DATA}/args/certs.d',
    );
  });

  it('a node whose config_path is already right only gets its files, and no restart', () => {
    const f = facts(config('v1.6-default.config-path-1x.expected.toml'), 1);
    const plan = planContainerdTls(args({ ca: CA }), observed(f));
    expect(plan.changes.map((c) => c.summary)).toEqual([
      `write ${CERTS}/${REG}/ca.crt (CA certificate, 0644)`,
      `write ${CERTS}/${REG}/hosts.toml (hosts.toml, managed by trustplay, 0644)`,
    ]);
    expect(plan.changes.some((c) => c.restart)).toBe(false);
  });

  it('legacy mirrors are refused before anything is written, and migrated with migrate_legacy', () => {
    const text = config('mirrors.toml');
    const e = refusal(() => planContainerdTls(args({ ca: CA }), observed(facts(text, 1)), 'node9'));
    expect(e.message).toMatch(
      /^node9: config\.toml has legacy registry\.mirrors for docker\.io, registry\.test:5000 .*pass migrate_legacy: true/,
    );
    const plan = planContainerdTls(args({ ca: CA, migrate_legacy: true }), observed(facts(text, 1)));
    golden('hosts-ca.mirrors-migrate', render(plan, text));
    // The registry's own managed hosts.toml wins over the migrated one.
    expect(plan.changes.filter((c) => c.op.path === `${CERTS}/${REG}/hosts.toml`)).toHaveLength(1);
    expect(configWrite(plan.changes)).not.toContain('registry.mirrors."docker.io"');
  });

  it("removes this registry's own legacy tls table when switching it to hosts style", () => {
    const legacy = config('v1.6-default.legacy-tls-ca.expected.toml')!;
    const plan = planContainerdTls(args({ ca: CA }), observed(facts(legacy, 1)));
    const after = configWrite(plan.changes)!;
    expect(after).not.toContain('configs."registry.test:5000".tls');
    expect(after).toContain(`config_path = "${CERTS}"`);
    expect(plan.changes.at(-1)?.summary).toBe(
      `remove legacy registry.configs."${REG}".tls, set config_path = "${CERTS}" in /etc/containerd/config.toml (restarts containerd)`,
    );
  });

  it('refuses a version 1 config, a broken file and a missing containerd with one sentence', () => {
    expect(
      refusal(() => planContainerdTls(args({ ca: CA }), observed(facts(config('version1.toml'), 1)))).message,
    ).toMatch(/version 1 containerd config/);
    expect(
      refusal(() => planContainerdTls(args({ ca: CA }), observed(facts(config('broken.toml'), 1)))).message,
    ).toMatch(/not valid TOML at line/);
    const noBinary = { ...facts(null, 1), version: null };
    expect(refusal(() => planContainerdTls(args({ ca: CA }), observed(noBinary))).message).toMatch(
      /containerd --version` did not run/,
    );
    expect(
      refusal(() =>
        planContainerdTls(
          args({ ca: CA, config_path: '/srv/certs.d' }),
          observed(facts(config('multi-config-path.toml'), 1)),
        ),
      ).message,
    ).toMatch(/several directories .* \/srv\/certs\.d is not one of them/);
    // On 1.x a multi-directory config_path that lists ours is kept (1.x searches each in order).
    const multi = planContainerdTls(args({ ca: CA }), observed(facts(config('multi-config-path.toml'), 1)));
    expect(multi.changes.some((c) => c.restart)).toBe(false);
    // On 2.x it becomes the single directory (2.1+ reads none of a list), with a note.
    const multi2 = planContainerdTls(args({ ca: CA }), observed(facts(config('v2.x-default.toml'), 2)));
    expect(multi2.warnings.join('\n')).toMatch(/single directory/);
  });

  it('refuses when nothing says what to trust', () => {
    expect(refusal(() => planContainerdTls(args(), observed(facts(null, 1), {}))).message).toMatch(/needs one of `ca`/);
  });

  it('skip_verify and plain_http warn, and drop a CA file trustplay wrote before', () => {
    const first = planContainerdTls(args({ ca: CA }), observed(facts(null, 1)));
    const node = applied(facts(null, 1), first.changes);
    const skip = planContainerdTls(args({ skip_verify: true }), observed(node, {}));
    golden('hosts-skip-verify.after-ca', render(skip, node.config.text));
    expect(skip.warnings.join('\n')).toMatch(/insecure/);
    expect(skip.changes.map((c) => c.summary)).toContain(`remove ${CERTS}/${REG}/ca.crt (no longer configured)`);
    const http = planContainerdTls(args({ plain_http: true }), observed(facts(null, 2), {}));
    golden('hosts-plain-http.missing-2x', render(http, null));
    expect(http.warnings.join('\n')).toMatch(/plain_http: .*insecure/);
  });

  it('writes the client key 0600 and never shows it in a diff', () => {
    const material = { ca: CA, clientCert: CA, clientKey: CLIENT_KEY };
    const plan = planContainerdTls(
      args({ ca: CA, client_cert: 'c', client_key: 'k' }),
      observed(facts(null, 1), material),
    );
    const key = plan.changes.find((c) => c.op.path.endsWith('client.key'))!;
    expect(key.op.kind === 'write' && key.op.mode).toBe(0o600);
    expect(key.diff?.secret).toBe(true);
    // What output shows: the engine masks every diff with the secrets layer.
    const secrets = new SecretSet();
    expect(secrets.maskDiff(key.diff!).after).toMatch(/^\*{8} \(secret, \d+ bytes\)\n$/);
    for (const c of plan.changes) {
      const d = c.diff && secrets.maskDiff(c.diff);
      expect(`${c.summary}${d?.before ?? ''}${d?.after ?? ''}`).not.toContain('PRIVATE KEY');
    }
    const hosts = plan.changes.find((c) => c.op.path.endsWith('hosts.toml'))!;
    expect(hosts.op.kind === 'write' && hosts.op.content.toString()).toContain(
      `client = [["${CERTS}/${REG}/client.cert", "${CERTS}/${REG}/client.key"]]`,
    );
  });

  it('rewrites a file with the wrong mode, and replaces a hand-written hosts.toml with a warning', () => {
    const plan = planContainerdTls(args({ ca: CA }), observed(facts(null, 1)));
    const node = applied(facts(null, 1), plan.changes);
    node.hostsDir.files['ca.crt']!.mode = 0o600;
    node.hostsDir.files['hosts.toml'] = {
      content: Buffer.from('server = "https://registry.test:5000"\n'),
      mode: 0o644,
      uid: 0,
      gid: 0,
    };
    const again = planContainerdTls(args({ ca: CA }), observed(node));
    expect(again.changes.map((c) => c.summary)).toEqual([
      `set mode 0644 on ${CERTS}/${REG}/ca.crt (was 0600)`,
      `update ${CERTS}/${REG}/hosts.toml (hosts.toml, managed by trustplay, 0644)`,
    ]);
    expect(again.warnings.join('\n')).toMatch(/was not written by trustplay; it is replaced by a managed one/);
  });
});

describe('containerd.tls state: absent (hosts style)', () => {
  it('removes the managed files and the empty directory, leaves config_path, and converges', () => {
    const present = planContainerdTls(args({ ca: CA }), observed(facts(config('v1.6-default.toml'), 1)));
    const node = applied(facts(config('v1.6-default.toml'), 1), present.changes);
    const absent = planContainerdTls(args({ state: 'absent' }), observed(node, {}));
    golden('hosts-absent.after-ca', render(absent, node.config.text));
    expect(absent.changes.some((c) => c.restart)).toBe(false);
    expect(planContainerdTls(args({ state: 'absent' }), observed(applied(node, absent.changes), {})).changes).toEqual(
      [],
    );
  });

  it('keeps the directory when it holds files trustplay did not write, and leaves an unmanaged hosts.toml alone', () => {
    const present = planContainerdTls(args({ ca: CA }), observed(facts(null, 1)));
    const node = applied(facts(null, 1), present.changes);
    node.hostsDir.files['mirror.crt'] = { content: Buffer.from('x'), mode: 0o644, uid: 0, gid: 0 };
    const absent = planContainerdTls(args({ state: 'absent' }), observed(node, {}));
    expect(absent.changes.map((c) => c.op.kind)).toEqual(['remove', 'remove']);
    node.hostsDir.files['hosts.toml'] = { content: Buffer.from('server = "https://x"\n'), mode: 0o644, uid: 0, gid: 0 };
    const hand = planContainerdTls(args({ state: 'absent' }), observed(node, {}));
    expect(hand.changes).toEqual([]);
    expect(hand.warnings.join()).toMatch(/not written by trustplay, so state: absent leaves it/);
  });
});

describe('containerd.tls style: legacy', () => {
  const legacyDir = registryDir(args({ style: 'legacy' }));

  it('sets registry.configs."<host>".tls on 1.x with the CA kept beside config.toml, and converges', () => {
    expect(legacyDir).toBe(`/etc/containerd/tls/${REG}`);
    const before = config('v1.6-default.toml');
    const f = facts(before, 1, { path: legacyDir, exists: false, files: {} });
    const plan = planContainerdTls(args({ style: 'legacy', ca: CA }), observed(f));
    golden('legacy-ca.v1.6-default', render(plan, before));
    expect(planContainerdTls(args({ style: 'legacy', ca: CA }), observed(applied(f, plan.changes))).changes).toEqual(
      [],
    );
  });

  it('refuses on containerd 2.x and with config_path set, pointing at style: hosts', () => {
    expect(
      refusal(() =>
        planContainerdTls(args({ style: 'legacy', ca: CA }), observed(facts(config('v2.x-default.toml'), 2))),
      ).message,
    ).toMatch(/containerd 2\.x ignores .*use style: hosts/);
    expect(
      refusal(() =>
        planContainerdTls(args({ style: 'legacy', ca: CA }), observed(facts(config('other-config-path.toml'), 1))),
      ).message,
    ).toMatch(/sets config_path .*use style: hosts/);
    expect(
      refusal(() => planContainerdTls(args({ style: 'legacy', plain_http: true }), observed(facts(null, 1), {})))
        .message,
    ).toMatch(/use style: hosts/);
  });

  it('state: absent removes the table and its CA file', () => {
    const f = facts(config('v1.6-default.toml'), 1, { path: legacyDir, exists: false, files: {} });
    const node = applied(f, planContainerdTls(args({ style: 'legacy', ca: CA }), observed(f)).changes);
    const absent = planContainerdTls(args({ style: 'legacy', state: 'absent' }), observed(node, {}));
    expect(absent.changes.map((c) => c.summary)).toEqual([
      `remove registry.configs."${REG}".tls in /etc/containerd/config.toml (restarts containerd)`,
      `remove ${legacyDir}/ca.crt (written by containerd.tls style: legacy)`,
      `remove the empty directory ${legacyDir}`,
    ]);
    expect(configWrite(absent.changes)).toBe(config('v1.6-default.toml'));
  });
});

describe('containerd.tls changes and material', () => {
  it('declares each file as a resource and asks for the verified restart for config.toml only', () => {
    const a = args({ ca: CA, socket: '/run/x.sock', restart_timeout: 7 });
    const changes = planOps(a, observed(facts(null, 1))).changes;
    expect(changes.map(resourcesOf)).toEqual([
      [{ kind: 'file', path: `${CERTS}/${REG}/ca.crt` }],
      [{ kind: 'file', path: `${CERTS}/${REG}/hosts.toml` }],
      [{ kind: 'file', path: '/etc/containerd/config.toml' }],
      [],
    ]);
    expect(changes.map((c) => c.op)).toEqual(['file.write', 'file.write', 'file.write', 'restart.request']);
    expect(changes[3]).toMatchObject({
      unit: 'containerd',
      config: '/etc/containerd/config.toml',
      health: { socket: '/run/x.sock', timeoutSec: 7 },
    });
  });

  it('reads inline PEM and files, and says which path is missing or not a certificate', async () => {
    expect((await readMaterial(args({ ca: CA.trim() }))).material.ca).toBe(`${CA.trim()}\n`);
    const dir = join(HERE, '../../test/fixtures/containerd-tls');
    expect((await readMaterial(args({ ca: join(dir, 'test-ca.pem') }))).material.ca).toBe(CA);
    await expect(readMaterial(args({ ca: '/nonexistent/ca.pem' }))).rejects.toThrow(
      'the CA certificate file /nonexistent/ca.pem does not exist on the controller: fix the path in the task or its variable.',
    );
    await expect(readMaterial(args({ ca: join(dir, 'test-client.key') }))).rejects.toThrow(
      /test-client\.key is not a PEM certificate/,
    );
    await expect(readMaterial(args({ ca: CA, client_cert: CA, client_key: CA }))).rejects.toThrow(
      /client_key \(inline\) is not a PEM private key/,
    );
    const ok = await readMaterial(args({ client_cert: CA, client_key: CLIENT_KEY }));
    expect(ok.material.clientKey).toBe(CLIENT_KEY);
  });

  it('a list of CAs (a rotation: old and new together) is one bundle, each item read and checked, duplicates once', async () => {
    const dir = join(HERE, '../../test/fixtures/containerd-tls');
    const client = readFileSync(join(HERE, '../../test/fixtures/git-repo/files/registry-ca.pem'), 'utf8');
    const both = await readMaterial(args({ ca: [join(dir, 'test-ca.pem'), client.trim(), CA] }));
    expect(both.material.ca).toBe(`${CA}${client}`);
    await expect(readMaterial(args({ ca: [CA, join(dir, 'test-client.key')] }))).rejects.toThrow(
      /test-client\.key is not a PEM certificate/,
    );
  });
});

describe('containerd.tls on 2.x: a daemon that lags the registry settings, told from the restart record', () => {
  // containerd 2.x does not report its registry settings: trustplay's record of the config it last
  // restarted containerd with stands in for the daemon's answer.
  const record = (text: string) =>
    JSON.stringify({
      trustplay: 'restarted',
      sha256: createHash('sha256').update(text).digest('hex'),
      config: Buffer.from(text).toString('base64'),
    });
  const pristine = config('v2.x-default.toml')!;
  const converged = () => {
    const first = planContainerdTls(args({ ca: CA }), observed(facts(pristine, 2)));
    return applied(facts(pristine, 2), first.changes);
  };
  const plan = (node: ContainerdFacts) => {
    const ctx = taskContext();
    const changes = reported(
      containerdTls.plan(args({ ca: CA }), { ...observed(node), versionSource: null }, ctx) as Change[],
    );
    return { summaries: changes.map((c) => c.summary), warnings: ctx.warnings };
  };

  it('restarts, saying why, when the file names another config_path than the config containerd was restarted with', () => {
    const node = converged();
    node.restartRecord = record(pristine);
    const { summaries } = plan(node);
    expect(summaries).toEqual([
      'restart containerd: /etc/containerd/config.toml changed since trustplay last restarted containerd (config_path was "/etc/containerd/certs.d:/etc/docker/certs.d", the file says "/etc/containerd/certs.d"), and containerd 2.x does not report the registry settings it runs with, so the trust in the file may not be in effect',
    ]);
  });

  it('restarts nothing when the file is what containerd was restarted with, or when no record exists', () => {
    const node = converged();
    expect(plan(node).summaries).toEqual([]);
    node.restartRecord = record(node.config.text!);
    expect(plan(node)).toEqual({ summaries: [], warnings: [] });
  });

  it('restarts nothing for an edit of other keys, and says so in a warning', () => {
    const node = converged();
    node.restartRecord = record(node.config.text!);
    const edited = node.config.text!.replace('max_concurrent_downloads = 3', 'max_concurrent_downloads = 4');
    expect(edited).not.toBe(node.config.text);
    node.config = { ...node.config, text: edited, content: Buffer.from(edited) };
    const { summaries, warnings } = plan(node);
    expect(summaries).toEqual([]);
    expect(warnings.join('\n')).toMatch(
      /config\.toml changed since trustplay last restarted containerd, outside the registry settings: .*not restarting/,
    );
  });
});
