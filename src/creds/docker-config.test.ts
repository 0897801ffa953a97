import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { registryKeyMatches } from '../containerd/registry-host.js';
import { allHelpers, detectIndent, helpersFor, removeRegistryCredentials, stringifyLike } from './docker-config.js';

const FIXTURES = new URL('../../test/fixtures/image-modules/creds/', import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');
const cases = (JSON.parse(fixture('cases.json')) as { cases: { name: string; registry: string; removed: string[] }[] })
  .cases;

describe('removeRegistryCredentials on recorded config.json styles', () => {
  for (const c of cases) {
    it(`${c.name}: removes only ${c.registry}'s entries and writes the rest in the file's own style`, () => {
      const r = removeRegistryCredentials(fixture(`${c.name}.in.json`), c.registry);
      if (!r.ok) throw new Error(r.error);
      expect(r.removed).toEqual(c.removed);
      expect(r.changed).toBe(true);
      expect(r.text).toBe(fixture(`${c.name}.out.json`));
    });
  }

  it('is idempotent: the edited file has nothing left to remove', () => {
    for (const c of cases) {
      const r = removeRegistryCredentials(fixture(`${c.name}.out.json`), c.registry);
      expect(r).toEqual({ ok: true, text: fixture(`${c.name}.out.json`), changed: false, removed: [] });
    }
  });

  it('leaves a file without `auths` (or without a match) byte for byte, even when its style is odd', () => {
    const odd = '{ "credsStore" : "pass",\n   "auths": {"quay.io": {"auth":"eDp5"}} }';
    expect(removeRegistryCredentials(odd, 'registry.test:5000')).toEqual({
      ok: true,
      text: odd,
      changed: false,
      removed: [],
    });
    expect(removeRegistryCredentials('{}\n', 'registry.test')).toEqual({
      ok: true,
      text: '{}\n',
      changed: false,
      removed: [],
    });
    expect(removeRegistryCredentials('{"auths": null}', 'registry.test')).toEqual({
      ok: true,
      text: '{"auths": null}',
      changed: false,
      removed: [],
    });
  });

  it('keeps CRLF line ends and the absence of a final newline', () => {
    const crlf = '{\r\n  "auths": {\r\n    "a.test": {},\r\n    "b.test": {}\r\n  }\r\n}\r\n';
    const r = removeRegistryCredentials(crlf, 'a.test');
    if (!r.ok) throw new Error(r.error);
    expect(r.text).toBe('{\r\n  "auths": {\r\n    "b.test": {}\r\n  }\r\n}\r\n');
    const bare = removeRegistryCredentials('{\n    "auths": {"a.test": {}, "b.test": {}}\n}', 'a.test');
    if (!bare.ok) throw new Error(bare.error);
    expect(bare.text).toBe('{\n    "auths": {\n        "b.test": {}\n    }\n}');
  });

  it('refuses a file that is not a JSON object, naming it and saying what to do, without quoting its content', () => {
    const broken = removeRegistryCredentials(
      '{"auths": {"registry.test": {"auth": "c2VjcmV0"}',
      'registry.test',
      '/root/.docker/config.json',
    );
    expect(broken.ok).toBe(false);
    const msg = !broken.ok && broken.error;
    expect(msg).toMatch(
      /^\/root\/\.docker\/config\.json is not valid JSON \(.+\), so trustplay will not edit it: fix or remove it by hand/,
    );
    expect(msg).not.toContain('c2VjcmV0');
    const arr = removeRegistryCredentials('[1, 2]', 'registry.test', 'f.json');
    expect(!arr.ok && arr.error).toMatch(/^f\.json holds JSON but not an object/);
  });

  it('property: matching keys go, every other key keeps its value and order, other top-level keys are untouched', () => {
    const hostArb = fc.constantFrom(
      'registry.test',
      'registry.test:5000',
      'registry.test:443',
      'other.example',
      'other.example:5000',
      'registry.test.evil',
    );
    const keyArb = fc
      .tuple(fc.constantFrom('', 'https://', 'http://'), hostArb, fc.constantFrom('', '/', '/v1/'))
      .map(([s, h, p]) => `${s}${h}${p}`);
    const entryArb = fc.record({ auth: fc.base64String({ minLength: 4, maxLength: 16 }) });
    fc.assert(
      fc.property(
        fc.dictionary(keyArb, entryArb, { maxKeys: 8 }),
        hostArb,
        fc.constantFrom<string | number>('\t', 2, 4, 0),
        fc.option(fc.string(), { nil: undefined }),
        (auths, registry, indent, credsStore) => {
          const doc = { ...(credsStore !== undefined ? { credsStore } : {}), auths, HttpHeaders: { 'X-Meta': 'keep' } };
          const text = `${JSON.stringify(doc, null, indent)}\n`;
          const r = removeRegistryCredentials(text, registry);
          if (!r.ok) throw new Error(r.error);
          const out = JSON.parse(r.text) as typeof doc;
          const kept = Object.keys(auths).filter((k) => !registryKeyMatches(k, registry));
          expect(Object.keys(out.auths)).toEqual(kept);
          for (const k of kept) expect(out.auths[k]).toEqual(auths[k]);
          expect(r.removed).toEqual(Object.keys(auths).filter((k) => registryKeyMatches(k, registry)));
          expect(out.credsStore).toEqual(credsStore);
          expect(out.HttpHeaders).toEqual(doc.HttpHeaders);
          // Same style: a file written with this indent comes back exactly as it would be written.
          expect(r.text).toBe(`${JSON.stringify({ ...doc, auths: out.auths }, null, indent)}\n`);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('style detection', () => {
  it('finds tabs, the number of spaces, or compact', () => {
    expect(detectIndent('{\n\t"a": 1\n}')).toBe('\t');
    expect(detectIndent('{\n  "a": {\n    "b": 1\n  }\n}')).toBe(2);
    expect(detectIndent('{\n    "a": 1\n}')).toBe(4);
    expect(detectIndent('{"a":1}')).toBe(0);
    expect(stringifyLike('{"a":1}\n', { b: 2 })).toBe('{"b":2}\n');
  });
});

describe('credential helpers a file names (helpersFor, allHelpers)', () => {
  const docker = { credsStore: true };
  const containers = { credsStore: false };

  it("credHelpers naming the registry win over credsStore, matched like auths keys; the others' helpers are not this registry's", () => {
    const text = fixture('helpers-credhelpers.in.json');
    expect(helpersFor(text, 'registry.test:5000', docker)).toEqual([
      { helper: 'pass', via: 'credHelpers', key: 'registry.test:5000' },
    ]);
    // A registry credHelpers does not name goes to credsStore (Docker asks the store for it).
    expect(helpersFor(text, 'other.example:5000', docker)).toEqual([
      { helper: 'secretservice', via: 'credsStore', key: null },
    ]);
    expect(helpersFor(text, 'europe-docker.pkg.dev', docker)).toEqual([
      { helper: 'gcloud', via: 'credHelpers', key: 'europe-docker.pkg.dev' },
    ]);
    // `https://host` and `host:443` keys name the same registry, as for auths.
    const forms = '{"credHelpers": {"https://r.test": "pass", "r.test:443": "osxkeychain", "r.test:5000": "x"}}';
    expect(helpersFor(forms, 'r.test', docker).map((h) => h.helper)).toEqual(['pass', 'osxkeychain']);
  });

  it('credsStore alone (the docker CLI leaves `{}` auths entries for what it put in the store)', () => {
    const text = fixture('helpers-credsstore.in.json');
    expect(helpersFor(text, 'registry.test:5000', docker)).toEqual([
      { helper: 'secretservice', via: 'credsStore', key: null },
    ]);
    // The store is asked whether or not an auths entry is left: after the wipe it still may hold it.
    expect(helpersFor(fixture('helpers-credsstore.out.json'), 'registry.test:5000', docker)).toHaveLength(1);
  });

  it("containers/image's auth.json: credHelpers count, credsStore does not (containers/image has none)", () => {
    const text = fixture('helpers-containers-auth.in.json');
    expect(helpersFor(text, 'registry.test:5000', containers)).toEqual([
      { helper: 'secretservice', via: 'credHelpers', key: 'registry.test:5000' },
    ]);
    expect(helpersFor('{"auths": {}, "credsStore": "desktop"}', 'registry.test:5000', containers)).toEqual([]);
  });

  it('nothing for files without helpers, empty or non-string helper names, or unreadable files', () => {
    expect(helpersFor(fixture('tabs.in.json'), 'registry.test:5000', docker)).toEqual([]);
    expect(
      helpersFor('{"credsStore": "", "credHelpers": {"registry.test:5000": ""}}', 'registry.test:5000', docker),
    ).toEqual([]);
    expect(
      helpersFor('{"credsStore": 1, "credHelpers": ["registry.test:5000"]}', 'registry.test:5000', docker),
    ).toEqual([]);
    expect(helpersFor('{"auths": ', 'registry.test:5000', docker)).toEqual([]);
    expect(allHelpers('[]', docker)).toEqual([]);
  });

  it('allHelpers: every credHelpers entry, then credsStore (docker format only)', () => {
    const text = fixture('helpers-credhelpers.in.json');
    expect(allHelpers(text, docker)).toEqual([
      { helper: 'ecr-login', via: 'credHelpers', key: '123456789012.dkr.ecr.eu-west-1.amazonaws.com' },
      { helper: 'gcloud', via: 'credHelpers', key: 'europe-docker.pkg.dev' },
      { helper: 'pass', via: 'credHelpers', key: 'registry.test:5000' },
      { helper: 'secretservice', via: 'credsStore', key: null },
    ]);
    expect(allHelpers(text, containers)).toHaveLength(3);
  });

  it('the edit never touches credHelpers or credsStore, even for the registry a helper is named for', () => {
    for (const name of ['helpers-credhelpers', 'helpers-credsstore', 'helpers-containers-auth']) {
      const r = removeRegistryCredentials(fixture(`${name}.in.json`), 'registry.test:5000');
      if (!r.ok) throw new Error(r.error);
      const before = JSON.parse(fixture(`${name}.in.json`)) as Record<string, unknown>;
      const after = JSON.parse(r.text) as Record<string, unknown>;
      expect(after['credHelpers'], name).toEqual(before['credHelpers']);
      expect(after['credsStore'], name).toEqual(before['credsStore']);
      const lines = (t: string) =>
        t.split('\n').filter((l) => /credsStore|": "(pass|secretservice|gcloud|ecr-login)"/.test(l));
      expect(lines(r.text), name).toEqual(lines(fixture(`${name}.in.json`)));
    }
  });
});
