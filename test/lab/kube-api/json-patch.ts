/** A JSON value as the API works on it. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
/** A JSON object. */
export type JsonObject = { [k: string]: Json };

/** Thrown when a patch document is malformed (the server answers 400). */
export class PatchDecodeError extends Error {}
/** Thrown when a well-formed patch cannot be applied to the object (the server answers 422). */
export class PatchApplyError extends Error {}

/** True for a plain JSON object (not an array, not null). */
export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep copy through JSON, which is what every stored object is. */
export function clone<T extends Json>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** Structural equality of two JSON values, key order ignored. */
export function deepEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}

/** RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

interface Op {
  op: string;
  path: string;
  from?: string;
  value?: Json;
  hasValue: boolean;
}

function decodePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new PatchApplyError(`JSON pointer "${pointer}" does not start with "/"`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function decodeOps(patch: unknown): Op[] {
  if (!Array.isArray(patch)) {
    throw new PatchDecodeError('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  }
  return patch.map((raw): Op => {
    if (!isObject(raw))
      throw new PatchDecodeError('json: cannot unmarshal non-object into Go value of type jsonpatch.Operation');
    const { op, path, from } = raw;
    if (typeof op !== 'string') throw new PatchDecodeError('operation missing "op" field');
    if (typeof path !== 'string') throw new PatchDecodeError(`operation "${op}" missing "path" field`);
    const o: Op = { op, path, hasValue: 'value' in raw };
    if (o.hasValue) o.value = raw.value as Json;
    if (typeof from === 'string') o.from = from;
    return o;
  });
}

type Parent = { container: JsonObject | Json[]; key: string };

function locateParent(doc: Json, tokens: string[], opName: string, path: string): Parent {
  let cur: Json = doc;
  for (const t of tokens.slice(0, -1)) {
    let next: Json | undefined;
    if (Array.isArray(cur)) next = /^\d+$/.test(t) ? cur[Number(t)] : undefined;
    else if (isObject(cur)) next = cur[t];
    if (next === undefined || next === null || typeof next !== 'object') {
      throw new PatchApplyError(`${opName} operation does not apply: doc is missing path: "${path}": missing value`);
    }
    cur = next;
  }
  if (cur === null || typeof cur !== 'object') {
    throw new PatchApplyError(`${opName} operation does not apply: doc is missing path: "${path}": missing value`);
  }
  return { container: cur, key: tokens[tokens.length - 1] ?? '' };
}

function arrayIndex(arr: Json[], key: string, allowEnd: boolean, opName: string, path: string): number {
  if (allowEnd && key === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(key))
    throw new PatchApplyError(`${opName} operation does not apply: invalid array index "${key}" in "${path}"`);
  const i = Number(key);
  if (i > arr.length || (!allowEnd && i === arr.length)) {
    throw new PatchApplyError(`${opName} operation does not apply: index ${i} out of bounds for "${path}"`);
  }
  return i;
}

function get(doc: Json, path: string, opName: string): Json {
  const tokens = decodePointer(path);
  if (tokens.length === 0) return doc;
  const { container, key } = locateParent(doc, tokens, opName, path);
  const v = Array.isArray(container) ? container[arrayIndex(container, key, false, opName, path)] : container[key];
  if (v === undefined)
    throw new PatchApplyError(`${opName} operation does not apply: doc is missing path: "${path}": missing value`);
  return v;
}

function add(doc: Json, path: string, value: Json): Json {
  const tokens = decodePointer(path);
  if (tokens.length === 0) return value;
  const { container, key } = locateParent(doc, tokens, 'add', path);
  if (Array.isArray(container)) container.splice(arrayIndex(container, key, true, 'add', path), 0, value);
  else container[key] = value;
  return doc;
}

function remove(doc: Json, path: string, opName = 'remove'): Json {
  const tokens = decodePointer(path);
  if (tokens.length === 0)
    throw new PatchApplyError(`${opName} operation does not apply: cannot remove the whole document`);
  const { container, key } = locateParent(doc, tokens, opName, path);
  if (Array.isArray(container)) {
    container.splice(arrayIndex(container, key, false, opName, path), 1);
  } else {
    if (!(key in container))
      throw new PatchApplyError(`${opName} operation does not apply: doc is missing key: ${path}: missing value`);
    delete container[key];
  }
  return doc;
}

/** RFC 6902 JSON patch (add, remove, replace, move, copy, test), applied to a copy of `target`. */
export function jsonPatch(target: Json, patch: unknown): Json {
  const ops = decodeOps(patch);
  let doc = clone(target);
  for (const o of ops) {
    const needValue = (): Json => {
      if (!o.hasValue) throw new PatchApplyError(`${o.op} operation does not apply: missing value`);
      return clone(o.value as Json);
    };
    const needFrom = (): string => {
      if (o.from === undefined) throw new PatchApplyError(`${o.op} operation does not apply: missing from`);
      return o.from;
    };
    switch (o.op) {
      case 'add':
        doc = add(doc, o.path, needValue());
        break;
      case 'remove':
        doc = remove(doc, o.path);
        break;
      case 'replace': {
        const value = needValue();
        get(doc, o.path, 'replace');
        doc = decodePointer(o.path).length === 0 ? value : add(remove(doc, o.path, 'replace'), o.path, value);
        break;
      }
      case 'move': {
        const from = needFrom();
        const value = get(doc, from, 'move');
        doc = add(remove(doc, from, 'move'), o.path, value);
        break;
      }
      case 'copy':
        doc = add(doc, o.path, clone(get(doc, needFrom(), 'copy')));
        break;
      case 'test': {
        const expected = needValue();
        let actual: Json | undefined;
        try {
          actual = get(doc, o.path, 'test');
        } catch {
          actual = undefined;
        }
        if (!deepEqual(actual, expected)) throw new PatchApplyError(`testing value ${o.path} failed: test failed`);
        break;
      }
      default:
        throw new PatchDecodeError(`Unexpected kind: ${o.op}`);
    }
  }
  return doc;
}
