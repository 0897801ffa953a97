import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import TOML from '@iarna/toml';
import { describe, expect, it } from 'vitest';
import { inspectConfig, VERSION_1_REFUSAL } from './config.js';
import {
  ensureConfigPath,
  migrateLegacy,
  removeConfigPath,
  removeRegistryAuth,
  setLegacyTls,
  type EditOk,
} from './edits.js';
import { hostsTomlRejection, parseHostsToml } from './hosts-toml.js';
import { lineDiff } from './line-diff.js';
import { getIn, parsePlain } from '../toml/model.js';
import type { Result } from '../result.js';

const FIX = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const read = (name: string): string => readFileSync(join(FIX, name), 'utf8');
const UPDATE = process.env['UPDATE_GOLDEN'] === '1';
const CERTS = '/etc/containerd/certs.d';
const REG = 'registry.test:5000';

/** Compares with a committed golden file (UPDATE_GOLDEN=1 rewrites it; review the diff before committing). */
function golden(name: string, actual: string): void {
  const path = join(FIX, name);
  if (UPDATE || !existsSync(path)) writeFileSync(path, actual);
  expect(actual).toBe(readFileSync(path, 'utf8'));
}

function ok<T extends object>(r: Result<T>): T {
  if (!r.ok) throw new Error(`unexpected refusal: ${r.error}`);
  return r;
}

/** Every removed or added line must be one the edit owns: proves the other bytes are unchanged. */
function onlyOwnedLinesChanged(before: string, after: string, owned: RegExp): void {
  const d = lineDiff(before, after);
  for (const l of [...d.removed, ...d.added]) expect(l, `unexpected changed line ${JSON.stringify(l)}`).toMatch(owned);
  // And the unchanged lines are all there, in order.
  expect(d.kept).toBe(before.split('\n').length - d.removed.length);
}

interface Case {
  fixture: string | null;
  edit: string;
  run: (text: string | null) => Result<EditOk>;
  owned: RegExp;
}

const CONFIG_PATH_LINES =
  /^\s*(config_path = .*|version = [23]|\[plugins\.(?:"|')io\.containerd\.(?:grpc\.v1\.cri|cri\.v1\.images)(?:"|')\.registry\]|)$/;
const TLS_LINES =
  /^\s*(\[.*configs\."registry\.test:5000"\.tls\]|(?:configs\."registry\.test:5000"\.tls\.)?(?:insecure_skip_verify|ca_file) = .*|insecure_skip_verify = .*|ca_file = .*|cert_file = .*|key_file = .*|version = 2|\[plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\.configs\."registry\.test:5000"\.tls\]|)$/;

const cases: Case[] = [
  ...['v1.6-default.toml', 'v1.7-default.toml', 'commented.toml', 'imports.toml', null].map((fixture): Case => ({
    fixture,
    edit: 'config-path-1x',
    run: (t) => ensureConfigPath(t, CERTS, { containerdMajor: 1 }),
    owned: CONFIG_PATH_LINES,
  })),
  ...['v2.1-default.toml', 'v2.x-default.toml', null].map((fixture): Case => ({
    fixture,
    edit: 'config-path-2x',
    run: (t) => ensureConfigPath(t, CERTS, { containerdMajor: 2 }),
    owned: CONFIG_PATH_LINES,
  })),
  {
    fixture: 'mirrors.toml',
    edit: 'config-path-migrate',
    run: (t) => ensureConfigPath(t, CERTS, { containerdMajor: 1, migrateLegacy: true }),
    owned:
      /^\s*(config_path = .*|\[.*registry\.mirrors\.".*"\]|endpoint = .*|\[.*configs\."mirror\.internal"\.tls\]|ca_file = .*)$/,
  },
  ...['v1.6-default.toml', 'v1.7-default.toml', 'commented.toml', 'dotted-keys.toml', null].map((fixture): Case => ({
    fixture,
    edit: 'legacy-tls-ca',
    run: (t) => setLegacyTls(t, REG, { ca_file: `${CERTS}/${REG}/ca.crt` }, { containerdMajor: 1 }),
    owned: TLS_LINES,
  })),
  {
    fixture: 'two-registries.toml',
    edit: 'remove-auth',
    run: (t) => removeRegistryAuth(t, REG),
    owned: /^\s*(\[.*configs\."registry\.test:5000"\.auth\]|username = "stale-user"|password = "stale-password"|)$/,
  },
  {
    fixture: 'dotted-keys.toml',
    edit: 'remove-auth',
    run: (t) => removeRegistryAuth(t, REG),
    owned: /^\s*configs\."registry\.test:5000"\.auth\.username = "stale-user"$/,
  },
  {
    fixture: 'two-registries.toml',
    edit: 'legacy-tls-absent',
    run: (t) => setLegacyTls(t, REG, null, { containerdMajor: 1 }),
    owned: /^\s*(\[.*configs\."registry\.test:5000"\.tls\]|insecure_skip_verify = true|)$/,
  },
];

describe('config.toml edits against fixtures (golden files)', () => {
  for (const c of cases) {
    it(`${c.fixture ?? 'missing file'} × ${c.edit}`, () => {
      const before = c.fixture === null ? null : read(c.fixture);
      const r = ok(c.run(before));
      expect(r.changed).toBe(true);
      golden(`${(c.fixture ?? 'missing').replace(/\.toml$/, '')}.${c.edit}.expected.toml`, r.text);
      onlyOwnedLinesChanged(before ?? '', r.text, c.owned);
      // The result parses, and a second run is a no-op (idempotent).
      expect(() => TOML.parse(r.text)).not.toThrow();
      const again = ok(c.run(r.text));
      expect(again.changed).toBe(false);
      expect(again.text).toBe(r.text);
    });
  }

  it('ensureConfigPath on the 1.6 default changes exactly the config_path line', () => {
    const before = read('v1.6-default.toml');
    const r = ok(ensureConfigPath(before, CERTS, { containerdMajor: 1 }));
    const d = lineDiff(before, r.text);
    expect(d.removed).toEqual(['      config_path = ""']);
    expect(d.added).toEqual([`      config_path = "${CERTS}"`]);
  });

  it('a missing file becomes the minimal config for each containerd major', () => {
    expect(ok(ensureConfigPath(null, CERTS, { containerdMajor: 1 })).text).toBe(
      `version = 2\n\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "${CERTS}"\n`,
    );
    expect(ok(ensureConfigPath(null, CERTS, { containerdMajor: 2 })).text).toBe(
      `version = 3\n\n[plugins."io.containerd.cri.v1.images".registry]\n  config_path = "${CERTS}"\n`,
    );
  });

  it('the 2.x default (multi-directory config_path) is narrowed to the one directory, with a note', () => {
    const before = read('v2.x-default.toml');
    const r = ok(ensureConfigPath(before, CERTS, { containerdMajor: 2 }));
    expect(lineDiff(before, r.text).added).toEqual([`      config_path = '${CERTS}'`]);
    expect(r.notes.join(' ')).toMatch(/single directory/);
    expect(getIn(parsePlain(r.text), ['plugins', 'io.containerd.cri.v1.images', 'registry', 'config_path'])).toBe(
      CERTS,
    );
  });

  it('2.x pulling locally (discard_unpacked_layers or use_local_image_pull) keeps a multi-directory config_path: that path reads each directory', () => {
    const before = read('v2.x-default.toml');
    for (const key of ['discard_unpacked_layers', 'use_local_image_pull']) {
      const local = before.replace(`${key} = false`, `${key} = true`);
      expect(local).not.toBe(before);
      expect(inspectConfig(local, { containerdMajor: 2 })).toMatchObject({ ok: true, info: { localPull: true } });
      const r = ok(ensureConfigPath(local, CERTS, { containerdMajor: 2 }));
      expect([key, r.changed, r.text]).toEqual([key, false, local]);
    }
    expect(inspectConfig(before, { containerdMajor: 2 })).toMatchObject({ ok: true, info: { localPull: false } });
  });

  it('multi-directory config_path on 1.x: kept when dir is listed, refused when not', () => {
    const text = read('multi-config-path.toml');
    const kept = ok(ensureConfigPath(text, CERTS, { containerdMajor: 1 }));
    expect(kept.changed).toBe(false);
    const second = ok(ensureConfigPath(text, '/etc/docker/certs.d', { containerdMajor: 1 }));
    expect(second.changed).toBe(false);
    expect(second.notes.join(' ')).toMatch(/searches \/etc\/containerd\/certs\.d before/);
    const refused = ensureConfigPath(text, '/srv/certs.d', { containerdMajor: 1 });
    expect(!refused.ok && refused.error).toMatch(/several directories .* \/srv\/certs\.d is not one of them/);
  });

  it('a different single config_path is refused (its registries would stop working), and kept when passed as the directory', () => {
    const text = read('other-config-path.toml');
    const r = ensureConfigPath(text, CERTS, { containerdMajor: 1 });
    expect(!r.ok && r.error).toMatch(
      /already names \/etc\/docker\/certs\.d.*pass config_path: \/etc\/docker\/certs\.d/,
    );
    const same = ok(ensureConfigPath(text, '/etc/docker/certs.d', { containerdMajor: 2 }));
    expect([same.changed, same.text]).toEqual([false, text]);
  });

  it('imports are reported when the edit changes config.toml (they are merged over it), not on a run that changes nothing', () => {
    const r = ok(ensureConfigPath(read('imports.toml'), CERTS, { containerdMajor: 1 }));
    expect(r.notes.join(' ')).toMatch(/imports \/etc\/containerd\/conf\.d\/\*\.toml/);
    const again = ok(ensureConfigPath(r.text, CERTS, { containerdMajor: 1 }));
    expect([again.changed, again.notes]).toEqual([false, []]);
  });

  it('a version 2 file read by containerd 2.x is edited in the registry table 2.x uses (AKS writes cri.v1.images tables in version 2 files)', () => {
    const aks = [
      'version = 2',
      '[plugins."io.containerd.cri.v1.images".registry]',
      '  config_path = "/etc/containerd/certs.d"',
      '[plugins."io.containerd.cri.v1.images".registry.headers]',
      '  X-Meta-Source-Client = ["azure/aks"]',
      '',
    ].join('\n');
    expect(inspectConfig(aks, { containerdMajor: 2 })).toMatchObject({
      ok: true,
      info: { version: 2, configPath: CERTS, criRegistryTable: 'plugins."io.containerd.cri.v1.images".registry' },
    });
    const r = ok(ensureConfigPath(aks, CERTS, { containerdMajor: 2 }));
    expect([r.changed, r.text]).toEqual([false, aks]);
    // containerd 1.x does not know that table: there the version 2 table is the one in force.
    expect(inspectConfig(aks, { containerdMajor: 1 })).toMatchObject({ ok: true, info: { configPath: null } });
    // With both, 2.x's migration lets the version 2 table replace the images one: that one rules.
    const both = `${aks}[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = ""\n`;
    expect(inspectConfig(both, { containerdMajor: 2 })).toMatchObject({ ok: true, info: { configPath: '' } });
  });

  it('a config that disables the CRI plugin (Docker’s packaged config, no version line) is refused for that cause, short or full id', () => {
    for (const id of ['cri', 'io.containerd.grpc.v1.cri']) {
      const r = inspectConfig(`disabled_plugins = ["${id}"]\n`, { containerdMajor: 1 });
      expect(!r.ok && r.error).toBe(
        `config.toml disables containerd's CRI plugin (disabled_plugins = ["${id}"]): this containerd serves Docker, not Kubernetes, so CRI registry settings do nothing here; for Docker put the CA in /etc/docker/certs.d/<registry>/ca.crt, or remove "${id}" from disabled_plugins (and restart containerd) if this node should serve Kubernetes.`,
      );
    }
  });

  it('legacy mirrors (any containerd) and configs.tls (1.x) make config_path refuse before anything is written', () => {
    const mirrors = ensureConfigPath(read('mirrors.toml'), CERTS, { containerdMajor: 1 });
    expect(!mirrors.ok && mirrors.error).toMatch(
      /legacy registry\.mirrors for docker\.io, registry\.test:5000 and registry\.configs\.\*\.tls for mirror\.internal.*migrate_legacy: true/,
    );
    const tls = ensureConfigPath(read('two-registries.toml'), CERTS, { containerdMajor: 1 });
    expect(!tls.ok && tls.error).toMatch(/registry\.configs\.\*\.tls for registry\.test:5000, other\.example/);
    // On 2.x the tls tables are ignored rather than fatal: allowed, with a note.
    const v2 = ok(ensureConfigPath(read('two-registries.toml'), CERTS, { containerdMajor: 2 }));
    expect(v2.notes.join(' ')).toMatch(/ignores the legacy registry\.configs\.\*\.tls/);
  });

  it('migration writes hosts.toml files per docs/hosts.md and keeps credentials in config.toml', () => {
    const r = ok(ensureConfigPath(read('mirrors.toml'), CERTS, { containerdMajor: 1, migrateLegacy: true }));
    const files = r.hostsFiles;
    expect(Object.keys(files).sort()).toEqual(['docker.io', 'mirror.internal', 'registry.test:5000']);
    golden(
      'mirrors.migrated-hosts.expected.txt',
      Object.entries(files)
        .map(([d, t]) => `## ${d}/hosts.toml\n${t}`)
        .join('\n'),
    );
    const docker = TOML.parse(files['docker.io'] as string) as Record<string, unknown>;
    expect(docker['server']).toBe('https://registry-1.docker.io');
    expect(Object.keys(docker['host'] as object)).toEqual(['https://mirror.internal']);
    const after = parsePlain(r.text);
    const reg = ['plugins', 'io.containerd.grpc.v1.cri', 'registry'];
    expect(getIn(after, [...reg, 'mirrors'])).toEqual({});
    expect(getIn(after, [...reg, 'configs', 'mirror.internal'])).toEqual({
      auth: { username: 'puller', password: 'not-a-real-secret' },
    });
    // The result no longer trips containerd's "mirrors cannot be set when config_path is provided".
    const info = inspectConfig(r.text);
    expect(info.ok && Object.keys(info.info.mirrors)).toEqual([]);
  });

  it('migrateLegacy maps the "*" mirror to _default and leaves server unset', () => {
    const text =
      'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."*"]\n  endpoint = ["https://cache.internal"]\n';
    const r = ok(migrateLegacy(text, { containerdMajor: 1 }));
    expect(Object.keys(r.hostsFiles)).toEqual(['_default']);
    expect(r.hostsFiles['_default']).not.toMatch(/^server/m);
  });

  // A mirror listing only the registry itself folds into `server` (as k3s's did before k3s#9839):
  // without the empty [host] table containerd 1.x would reject the migrated file and drop its ca.
  it('migrateLegacy writes a [host] table when a registry mirrors only itself', () => {
    const text =
      'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."r.test:5000"]\n  endpoint = ["https://r.test:5000"]\n[plugins."io.containerd.grpc.v1.cri".registry.configs."r.test:5000".tls]\n  ca_file = "/etc/ssl/r-ca.pem"\n';
    const r = ok(migrateLegacy(text, { containerdMajor: 1 }));
    const file = r.hostsFiles['r.test:5000'] as string;
    expect(file).toMatch(/^server = "https:\/\/r\.test:5000"\nca = "\/etc\/ssl\/r-ca\.pem"\n\n\[host\]\n$/m);
    const p = parseHostsToml(file);
    expect(p.ok && hostsTomlRejection(p.hostTable, { major: 1 })).toBeNull();
  });

  it('legacy tls refuses on containerd 2.x and next to config_path, and on empty settings', () => {
    const v2 = setLegacyTls(read('v2.x-default.toml'), REG, { insecure_skip_verify: true }, { containerdMajor: 2 });
    expect(!v2.ok && v2.error).toMatch(/ignores registry\.configs\."registry\.test:5000"\.tls.*style: hosts/);
    const v2file = setLegacyTls(read('v1.6-default.toml'), REG, { insecure_skip_verify: true }, { containerdMajor: 2 });
    expect(v2file.ok).toBe(false);
    const cp = setLegacyTls(
      read('other-config-path.toml'),
      REG,
      { insecure_skip_verify: true },
      { containerdMajor: 1 },
    );
    expect(!cp.ok && cp.error).toMatch(/config_path to \/etc\/docker\/certs\.d.*refuses to load/);
    const empty = setLegacyTls(read('v1.6-default.toml'), REG, {}, { containerdMajor: 1 });
    expect(!empty.ok).toBe(true);
  });

  it('legacy tls owns its four keys: switching from skip-verify to a CA removes insecure_skip_verify', () => {
    const text = read('two-registries.toml');
    const r = ok(setLegacyTls(text, REG, { ca_file: '/ca.crt' }, { containerdMajor: 1 }));
    const tls = getIn(parsePlain(r.text), ['plugins', 'io.containerd.grpc.v1.cri', 'registry', 'configs', REG, 'tls']);
    expect(tls).toEqual({ ca_file: '/ca.crt' });
    // The other registry is untouched, byte for byte.
    expect(r.text).toContain(
      '[plugins."io.containerd.grpc.v1.cri".registry.configs."other.example".tls]\n      ca_file = "/etc/ssl/other-ca.pem"\n',
    );
  });

  it('removeRegistryAuth keeps TLS and the other registry, and matches host forms', () => {
    const text = read('two-registries.toml');
    const r = ok(removeRegistryAuth(text, REG));
    expect(r.removed).toEqual(['registry.configs."registry.test:5000".auth']);
    const configs = getIn(parsePlain(r.text), ['plugins', 'io.containerd.grpc.v1.cri', 'registry', 'configs']);
    expect(configs).toEqual({
      'registry.test:5000': { tls: { insecure_skip_verify: true } },
      'other.example': { auth: { auth: 'b3RoZXI6c2VjcmV0' }, tls: { ca_file: '/etc/ssl/other-ca.pem' } },
    });
    expect(r.notes.join(' ')).not.toMatch(/stale-password/);
    const forms =
      'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.configs."https://registry.test".auth]\n  username = "u"\n[plugins."io.containerd.grpc.v1.cri".registry.auths."https://registry.test"]\n  username = "u"\n';
    const f = ok(removeRegistryAuth(forms, 'registry.test'));
    expect(f.removed).toEqual([
      'registry.configs."https://registry.test".auth',
      'registry.auths."https://registry.test"',
    ]);
    expect(ok(removeRegistryAuth(forms, 'registry.test:5000')).changed).toBe(false);
  });

  it('refuses to edit inside an inline table instead of corrupting it', () => {
    const r = removeRegistryAuth(
      'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.configs]\n  "registry.test" = { auth = { username = "u" } }\n',
      'registry.test',
    );
    expect(!r.ok && r.error).toMatch(
      /inline value of "\\"registry\.test\\""|inline value of ""registry\.test""|inline/,
    );
  });

  it('removeConfigPath removes only our directory', () => {
    const set = ok(ensureConfigPath(read('v1.6-default.toml'), CERTS, { containerdMajor: 1 }));
    const back = ok(removeConfigPath(set.text, CERTS, { containerdMajor: 1 }));
    expect(back.changed).toBe(true);
    expect(lineDiff(set.text, back.text).removed).toEqual([`      config_path = "${CERTS}"`]);
    expect(ok(removeConfigPath(read('other-config-path.toml'), CERTS, { containerdMajor: 1 })).changed).toBe(false);
  });

  it('version 1, broken and version-3-on-1.x files are refused with one actionable sentence', () => {
    expect(ensureConfigPath(read('version1.toml'), CERTS, { containerdMajor: 1 })).toEqual({
      ok: false,
      error: VERSION_1_REFUSAL,
    });
    const broken = ensureConfigPath(read('broken.toml'), CERTS, { containerdMajor: 1 });
    expect(!broken.ok && broken.error).toMatch(/^config\.toml is not valid TOML at line 4:\d+: .*fix it by hand/);
    const v3on1 = ensureConfigPath(read('v2.x-default.toml'), CERTS, { containerdMajor: 1 });
    expect(!v3on1.ok && v3on1.error).toMatch(/version = 3, which containerd 1\.x cannot load/);
  });
});
