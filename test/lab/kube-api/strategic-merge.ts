import { clone, isObject, PatchDecodeError, type Json, type JsonObject } from './json-patch.js';

/**
 * The patch strategy of a field, as the Go struct tags of k8s.io/api declare it
 * (`patchStrategy:"merge" patchMergeKey:"name"`). A list without one is atomic: the patch replaces it.
 */
export interface SmpSchema {
  fields?: Record<string, SmpSchema>;
  /** Merge this list instead of replacing it; `key` names the field that identifies an element (none = list of primitives). */
  mergeList?: { key?: string };
}

const objectMeta: SmpSchema = {
  fields: {
    finalizers: { mergeList: {} },
    ownerReferences: { mergeList: { key: 'uid' } },
  },
};

/**
 * core/v1 ServiceAccount: `secrets` merges by name; `imagePullSecrets` carries no patch strategy
 * (unlike PodSpec's), so a strategic merge patch replaces it whole, and `[]` empties it.
 */
export const serviceAccountSmp: SmpSchema = {
  fields: { metadata: objectMeta, secrets: { mergeList: { key: 'name' } } },
};

/** core/v1 Namespace. */
export const namespaceSmp: SmpSchema = { fields: { metadata: objectMeta } };

const SET_ORDER = '$setElementOrder/';
const DELETE_FROM = '$deleteFromPrimitiveList/';

function stripDirectives(v: Json): Json {
  if (Array.isArray(v))
    return v.filter((e) => !(isObject(e) && '$patch' in e && Object.keys(e).length === 1)).map(stripDirectives);
  if (!isObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectives(x);
  return out;
}

function mergeList(original: Json | undefined, patch: Json[], schema: SmpSchema | undefined): Json {
  const strategy = schema?.mergeList;
  if (strategy === undefined) return stripDirectives(patch);
  if (patch.some((e) => isObject(e) && e.$patch === 'replace')) return stripDirectives(patch);
  const base: Json[] = Array.isArray(original) ? clone(original) : [];
  if (strategy.key === undefined) {
    for (const v of patch) if (!base.some((b) => b === v)) base.push(v);
    return base;
  }
  const key = strategy.key;
  for (const el of patch) {
    if (!isObject(el))
      throw new PatchDecodeError(`expected a map in a list merged by "${key}", got ${JSON.stringify(el)}`);
    const id = el[key];
    if (id === undefined)
      throw new PatchDecodeError(`map: ${JSON.stringify(el)} does not contain declared merge key: ${key}`);
    const at = base.findIndex((b) => isObject(b) && b[key] === id);
    if (el.$patch === 'delete') {
      if (at >= 0) base.splice(at, 1);
    } else if (at >= 0) {
      base[at] = mergeMap(base[at] as JsonObject, el, schema) ?? {};
    } else {
      base.push(stripDirectives(el));
    }
  }
  return base;
}

/**
 * Applies a strategic merge patch to `original` with the patch strategies of `schema`.
 * Returns undefined when the patch deletes the map itself (`$patch: delete`).
 */
export function mergeMap(
  original: JsonObject,
  patch: JsonObject,
  schema: SmpSchema | undefined,
): JsonObject | undefined {
  const directive = patch.$patch;
  if (directive === 'delete') return undefined;
  if (directive === 'replace') return stripDirectives(patch) as JsonObject;
  if (directive !== undefined)
    throw new PatchDecodeError(`Unknown patch type: ${JSON.stringify(directive)} in map: ${JSON.stringify(patch)}`);
  const out = clone(original);
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith(DELETE_FROM)) {
      const field = k.slice(DELETE_FROM.length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v)) out[field] = cur.filter((x) => !v.some((d) => d === x));
      continue;
    }
    if (k.startsWith(SET_ORDER) || k === '$retainKeys' || k.startsWith('$')) continue;
    const sub = schema?.fields?.[k];
    if (v === null) delete out[k];
    else if (isObject(v)) {
      const merged = mergeMap(isObject(out[k]) ? (out[k] as JsonObject) : {}, v, sub);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else if (Array.isArray(v)) out[k] = mergeList(out[k], v, sub);
    else out[k] = v;
  }
  const retain = patch.$retainKeys;
  if (Array.isArray(retain)) {
    for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  }
  return out;
}

/** Strategic merge patch of a whole object; the patch must be a JSON object. */
export function strategicMergePatch(original: JsonObject, patch: unknown, schema: SmpSchema): JsonObject {
  if (!isObject(patch))
    throw new PatchDecodeError('json: cannot unmarshal array into Go value of type map[string]interface {}');
  return mergeMap(original, patch, schema) ?? {};
}
