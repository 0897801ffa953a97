import { describe, expect, it } from 'vitest';
import { jsonPatch, mergePatch, PatchApplyError, PatchDecodeError, type Json, type JsonObject } from './json-patch.js';
import { decodeServiceAccount, DecodeError } from './objects.js';
import { serviceAccountSmp, strategicMergePatch } from './strategic-merge.js';

describe('JSON merge patch (RFC 7386)', () => {
  // The test vectors of RFC 7386 appendix A.
  const cases: [Json, Json, Json][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [
      ['a', 'b'],
      ['c', 'd'],
      ['c', 'd'],
    ],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  it.each(cases)('%j patched with %j gives %j', (target, patch, expected) => {
    expect(mergePatch(target, patch)).toEqual(expected);
  });
});

describe('JSON patch (RFC 6902)', () => {
  const doc: JsonObject = { metadata: { resourceVersion: '7' }, imagePullSecrets: [{ name: 'a' }, { name: 'b' }] };

  it('applies add, remove, replace, move, copy and test in order, leaving the input untouched', () => {
    const out = jsonPatch(doc, [
      { op: 'test', path: '/metadata/resourceVersion', value: '7' },
      { op: 'add', path: '/imagePullSecrets/1', value: { name: 'x' } },
      { op: 'add', path: '/imagePullSecrets/-', value: { name: 'z' } },
      { op: 'remove', path: '/imagePullSecrets/0' },
      { op: 'replace', path: '/metadata/resourceVersion', value: '8' },
      { op: 'copy', from: '/imagePullSecrets/0', path: '/first' },
      { op: 'move', from: '/first', path: '/metadata/annotations' },
    ]);
    expect(out).toEqual({
      metadata: { resourceVersion: '8', annotations: { name: 'x' } },
      imagePullSecrets: [{ name: 'x' }, { name: 'b' }, { name: 'z' }],
    });
    expect(doc.imagePullSecrets).toEqual([{ name: 'a' }, { name: 'b' }]);
  });

  it('unescapes ~1 and ~0 in pointers', () => {
    expect(
      jsonPatch({ m: { 'a/b': 1, 'c~d': 2 } }, [
        { op: 'remove', path: '/m/a~1b' },
        { op: 'replace', path: '/m/c~0d', value: 3 },
      ]),
    ).toEqual({ m: { 'c~d': 3 } });
  });

  it('fails a test on a stale or missing value, and a remove of a missing path, as not applicable', () => {
    expect(() => jsonPatch(doc, [{ op: 'test', path: '/metadata/resourceVersion', value: '6' }])).toThrow(
      PatchApplyError,
    );
    expect(() => jsonPatch(doc, [{ op: 'test', path: '/metadata/uid', value: 'x' }])).toThrow(PatchApplyError);
    expect(() => jsonPatch(doc, [{ op: 'remove', path: '/secrets' }])).toThrow(PatchApplyError);
    expect(() => jsonPatch(doc, [{ op: 'remove', path: '/imagePullSecrets/2' }])).toThrow(PatchApplyError);
    expect(() => jsonPatch(doc, [{ op: 'replace', path: '/nope', value: 1 }])).toThrow(PatchApplyError);
  });

  it('rejects documents that are not a list of operations as malformed', () => {
    expect(() => jsonPatch(doc, { op: 'remove', path: '/a' })).toThrow(PatchDecodeError);
    expect(() => jsonPatch(doc, [{ path: '/a' }])).toThrow(PatchDecodeError);
    expect(() => jsonPatch(doc, [{ op: 'frobnicate', path: '/a' }])).toThrow(PatchDecodeError);
  });
});

describe('strategic merge patch of a ServiceAccount', () => {
  const sa: JsonObject = {
    metadata: { name: 'default', labels: { a: '1', b: '2' }, finalizers: ['f1'] },
    secrets: [{ name: 's1' }, { name: 's2' }],
    imagePullSecrets: [{ name: 'regcred' }, { name: 'other' }],
  };
  const smp = (patch: unknown): JsonObject => strategicMergePatch(sa, patch, serviceAccountSmp);

  it('replaces imagePullSecrets whole: the field has no patch strategy in core/v1', () => {
    expect(smp({ imagePullSecrets: [] }).imagePullSecrets).toEqual([]);
    expect(smp({ imagePullSecrets: [{ name: 'other' }] }).imagePullSecrets).toEqual([{ name: 'other' }]);
    expect(smp({ imagePullSecrets: null })).not.toHaveProperty('imagePullSecrets');
  });

  it('merges secrets by name, deletes with $patch: delete, and replaces with $patch: replace', () => {
    expect(smp({ secrets: [] }).secrets).toEqual([{ name: 's1' }, { name: 's2' }]);
    expect(smp({ secrets: [{ name: 's3' }, { name: 's1', namespace: 'x' }] }).secrets).toEqual([
      { name: 's1', namespace: 'x' },
      { name: 's2' },
      { name: 's3' },
    ]);
    expect(smp({ secrets: [{ name: 's1', $patch: 'delete' }] }).secrets).toEqual([{ name: 's2' }]);
    expect(smp({ secrets: [{ name: 's9' }, { $patch: 'replace' }] }).secrets).toEqual([{ name: 's9' }]);
  });

  it('merges maps key by key, null deleting, and honours map and primitive-list directives', () => {
    const out = smp({ metadata: { labels: { a: null, c: '3' } } });
    expect((out.metadata as JsonObject).labels).toEqual({ b: '2', c: '3' });
    expect((smp({ metadata: { labels: { $patch: 'replace', z: '9' } } }).metadata as JsonObject).labels).toEqual({
      z: '9',
    });
    expect((smp({ metadata: { finalizers: ['f2', 'f1'] } }).metadata as JsonObject).finalizers).toEqual(['f1', 'f2']);
    expect(
      (smp({ metadata: { '$deleteFromPrimitiveList/finalizers': ['f1'] } }).metadata as JsonObject).finalizers,
    ).toEqual([]);
    expect(smp({ '$setElementOrder/secrets': [{ name: 's2' }], secrets: [{ name: 's2' }] }).secrets).toEqual([
      { name: 's1' },
      { name: 's2' },
    ]);
  });

  it('refuses a merge-keyed element without its key, and a patch that is not an object', () => {
    expect(() => smp({ secrets: [{ namespace: 'x' }] })).toThrow(PatchDecodeError);
    expect(() => smp([{ op: 'remove' }])).toThrow(PatchDecodeError);
  });
});

describe('decoding a ServiceAccount like the typed server', () => {
  it('drops empty fields (omitempty), keeps an explicit false, and reports unknown fields with their path', () => {
    const { object, unknownFields } = decodeServiceAccount({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'x', labels: {}, color: 'blue' },
      imagePullSecrets: [],
      secrets: [{ name: 's', colour: 1 }],
      automountServiceAccountToken: false,
      imagePullSecret: [],
    });
    expect(object).toEqual({
      kind: 'ServiceAccount',
      apiVersion: 'v1',
      metadata: { name: 'x' },
      secrets: [{ name: 's' }],
      automountServiceAccountToken: false,
    });
    expect(Object.keys(object)).toEqual(['kind', 'apiVersion', 'metadata', 'secrets', 'automountServiceAccountToken']);
    expect(unknownFields).toEqual(['imagePullSecret', 'metadata.color', 'secrets[0].colour']);
  });

  it("refuses a wrongly typed field with the Go decoder's message", () => {
    expect(() => decodeServiceAccount({ metadata: { name: 'x' }, imagePullSecrets: 'regcred' })).toThrow(
      new DecodeError(
        'json: cannot unmarshal string into Go struct field ServiceAccount.imagePullSecrets of type []v1.LocalObjectReference',
      ),
    );
    expect(() => decodeServiceAccount({ metadata: { name: 'x' }, imagePullSecrets: [{ name: 3 }] })).toThrow(
      DecodeError,
    );
  });
});
