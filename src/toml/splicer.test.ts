import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lineDiff } from '../containerd/line-diff.js';
import { formatValue, getIn, parsePlain, type PlainTable, type TomlValue } from './model.js';
import { ensureTable, locateKey, removeKey, removeTable, setKey } from './splicer.js';

// Real-world inputs: containerd's own default configs.
const FIX = join(dirname(fileURLToPath(import.meta.url)), '../containerd/fixtures');
const read = (name: string): string => readFileSync(join(FIX, name), 'utf8');
const CRI = ['plugins', 'io.containerd.grpc.v1.cri'];

function text(r: ReturnType<typeof setKey>): string {
  if (!r.ok) throw new Error(r.error);
  return r.text;
}

describe('toml-edit', () => {
  it('matches headers written in any legal form', () => {
    const src = '[ plugins . \'io.containerd.grpc.v1.cri\' . "registry" ]\n  config_path = "" # keep me\n';
    const out = text(setKey(src, [...CRI, 'registry'], 'config_path', '/x'));
    expect(out).toBe('[ plugins . \'io.containerd.grpc.v1.cri\' . "registry" ]\n  config_path = "/x" # keep me\n');
  });

  it('adds a key to a dotted-key table with a dotted key (a [header] would be invalid TOML)', () => {
    const src = '[a]\nb.c.d = 1\n# tail\n';
    expect(text(setKey(src, ['a', 'b', 'c'], 'e', 'x'))).toBe('[a]\nb.c.d = 1\nb.c.e = "x"\n# tail\n');
  });

  it('creates a parent table before its first sub-table', () => {
    const src = 'version = 2\n\n[p.r.mirrors."x"]\n  endpoint = []\n';
    expect(text(setKey(src, ['p', 'r'], 'config_path', '/c'))).toBe(
      'version = 2\n\n[p.r]\n  config_path = "/c"\n\n[p.r.mirrors."x"]\n  endpoint = []\n',
    );
  });

  it('keeps CRLF line endings and files without a final newline', () => {
    const crlf = 'version = 2\r\n[a]\r\n  k = 1\r\n';
    expect(text(setKey(crlf, ['a'], 'j', true))).toBe('version = 2\r\n[a]\r\n  k = 1\r\n  j = true\r\n');
    expect(text(setKey('[a]\nk = 1', ['a'], 'j', 2))).toBe('[a]\nk = 1\nj = 2\n');
  });

  it('serialises strings with escapes and arrays', () => {
    expect(formatValue('a"b\\c\n\u0001é')).toBe('"a\\"b\\\\c\\n\\u0001é"');
    expect(formatValue([['c', 'k']])).toBe('[["c", "k"]]');
    const out = text(setKey('', ['t'], 'v', 'say "hi"\t'));
    expect(getIn(parsePlain(out), ['t', 'v'])).toBe('say "hi"\t');
  });

  it('refuses edits inside inline tables and arrays of tables', () => {
    const inline = setKey('[a]\nb = { c = 1 }\n', ['a', 'b'], 'd', 1);
    expect(!inline.ok && inline.error).toMatch(/inline value of "b" at line 2/);
    const arr = setKey('[[a]]\nb = 1\n', ['a'], 'c', 1);
    expect(!arr.ok && arr.error).toMatch(/array of tables/);
    // Removing a whole inline value is fine: the statement goes as a unit.
    expect(text(removeKey('[a]\nb = { c = 1 }\nd = 2\n', ['a'], 'b'))).toBe('[a]\nd = 2\n');
  });

  it('removes a table with its sub-tables and keeps the comment of the next table', () => {
    const src = 'x = 1\n\n[t]\nk = 1\n\n[t.sub]\nq = 2\n\n# about u\n[u]\nz = 3\n';
    expect(text(removeTable(src, ['t']))).toBe('x = 1\n\n# about u\n[u]\nz = 3\n');
    expect(text(removeTable(src, ['u']))).toBe('x = 1\n\n[t]\nk = 1\n\n[t.sub]\nq = 2\n\n# about u\n');
  });

  it('ensureTable is a no-op for existing (also implicit) tables', () => {
    const src = '[a.b.c]\nk = 1\n';
    const r = ensureTable(src, ['a', 'b']);
    expect(r.ok && r.changed).toBe(false);
    expect(text(ensureTable(src, ['a', 'z']))).toBe('[a.b.c]\nk = 1\n\n[a.z]\n');
  });

  it('locates a key and reports its raw value and position', () => {
    const loc = locateKey(read('v1.6-default.toml'), [...CRI, 'registry'], 'config_path');
    expect(loc).toMatchObject({ raw: '""', rawKey: 'config_path', line: 145 });
    expect(
      locateKey(
        read('dotted-keys.toml'),
        [...CRI, 'registry', 'configs', 'registry.test:5000', 'tls'],
        'insecure_skip_verify',
      ),
    ).toMatchObject({
      rawKey: 'configs."registry.test:5000".tls.insecure_skip_verify',
      raw: 'true',
    });
  });

  it('reports invalid input as a refusal, not an exception', () => {
    const r = setKey('a = "unterminated\n', [], 'b', 1);
    expect(!r.ok && r.error).toMatch(/not valid TOML/);
  });
});

// -------------------------------------------------------------------------------------------------
// Property: random edits on the real fixtures always re-parse, change only the edited path, and
// keep every other line in order.

const FIXTURES = [
  'v1.6-default.toml',
  'v1.7-default.toml',
  'v2.x-default.toml',
  'v2.1-default.toml',
  'commented.toml',
  'two-registries.toml',
  'dotted-keys.toml',
  'mirrors.toml',
];

const segment = fc.oneof(
  fc.constantFrom(
    'registry',
    'configs',
    'tls',
    'auth',
    'io.containerd.grpc.v1.cri',
    'io.containerd.cri.v1.images',
    'registry.test:5000',
    'other.example',
    'mirrors',
  ),
  fc.string({ minLength: 1, maxLength: 8 }),
);
const value: fc.Arbitrary<TomlValue> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.boolean(),
  fc.integer({ min: -1000, max: 1_000_000 }),
  fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }),
);
const edit = fc.record({
  kind: fc.constantFrom('set', 'set', 'remove'),
  base: fc.constantFrom(
    ['plugins', 'io.containerd.grpc.v1.cri', 'registry'],
    ['plugins', 'io.containerd.cri.v1.images', 'registry'],
    ['plugins'],
    ['grpc'],
    [],
  ),
  extra: fc.array(segment, { maxLength: 3 }),
  key: segment,
  value,
});

function without(t: PlainTable, path: string[]): PlainTable {
  const copy = structuredClone(t);
  const parent = getIn(copy, path.slice(0, -1));
  if (typeof parent === 'object' && parent !== null && !Array.isArray(parent))
    delete parent[path[path.length - 1] as string];
  return copy;
}

function pruneEmpty(v: PlainTable): PlainTable {
  // Removing a key can drop tables that only existed implicitly around it; they are not "other values".
  for (const [k, x] of Object.entries(v)) {
    if (typeof x === 'object' && x !== null && !Array.isArray(x)) {
      pruneEmpty(x);
      if (Object.keys(x).length === 0) delete v[k];
    }
  }
  return v;
}

describe('toml-edit property', () => {
  it('random edits re-parse and leave every other value and line alone', () => {
    fc.assert(
      fc.property(fc.constantFrom(...FIXTURES), fc.array(edit, { minLength: 1, maxLength: 4 }), (fixture, edits) => {
        let cur = read(fixture);
        for (const e of edits) {
          const table = [...e.base, ...e.extra];
          const path = [...table, e.key];
          const before = parsePlain(cur);
          const r = e.kind === 'set' ? setKey(cur, table, e.key, e.value) : removeKey(cur, table, e.key);
          if (!r.ok) {
            // Refusals are allowed only for real conflicts (a value in the way, inline/array tables).
            expect(r.error).toMatch(/is a value, not a table|is a table, not a value|inline value|array of tables/);
            continue;
          }
          const after = parsePlain(r.text);
          expect(pruneEmpty(without(after, path))).toEqual(pruneEmpty(without(before, path)));
          if (e.kind === 'set') expect(getIn(after, path)).toEqual(e.value);
          else expect(getIn(after, path)).toBeUndefined();
          const d = lineDiff(cur, r.text);
          expect(d.kept).toBe(cur.split('\n').length - d.removed.length);
          if (e.kind === 'set') expect(d.removed.length).toBeLessThanOrEqual(1);
          cur = r.text;
        }
      }),
      { numRuns: 300 },
    );
  });
});
