import { isObject, type Json, type JsonObject } from './json-patch.js';

/** A body that does not decode into the Go type (the server answers 400). */
export class DecodeError extends Error {}

/** Result of decoding a JSON body the way the API server's typed decoder does. */
export interface Decoded {
  object: JsonObject;
  /** Fields the type does not declare, dotted paths as the server names them in warnings. */
  unknownFields: string[];
}

type FieldType =
  | { t: 'string' }
  | { t: 'bool' }
  | { t: 'int' }
  | { t: 'stringMap' }
  | { t: 'stringList' }
  | { t: 'struct'; go: string; fields: [string, FieldType][] }
  | { t: 'list'; go: string; of: FieldType & { t: 'struct' } }
  | { t: 'any' };

const str: FieldType = { t: 'string' };

const objectReference: FieldType & { t: 'struct' } = {
  t: 'struct',
  go: 'v1.ObjectReference',
  fields: [
    ['kind', str],
    ['namespace', str],
    ['name', str],
    ['uid', str],
    ['apiVersion', str],
    ['resourceVersion', str],
    ['fieldPath', str],
  ],
};

const localObjectReference: FieldType & { t: 'struct' } = {
  t: 'struct',
  go: 'v1.LocalObjectReference',
  fields: [['name', str]],
};

const ownerReference: FieldType & { t: 'struct' } = {
  t: 'struct',
  go: 'v1.OwnerReference',
  fields: [
    ['apiVersion', str],
    ['kind', str],
    ['name', str],
    ['uid', str],
    ['controller', { t: 'bool' }],
    ['blockOwnerDeletion', { t: 'bool' }],
  ],
};

// Field order follows the Go structs, which is the order the real server writes them in.
const objectMeta: FieldType & { t: 'struct' } = {
  t: 'struct',
  go: 'v1.ObjectMeta',
  fields: [
    ['name', str],
    ['generateName', str],
    ['namespace', str],
    ['selfLink', str],
    ['uid', str],
    ['resourceVersion', str],
    ['generation', { t: 'int' }],
    ['creationTimestamp', str],
    ['deletionTimestamp', str],
    ['deletionGracePeriodSeconds', { t: 'int' }],
    ['labels', { t: 'stringMap' }],
    ['annotations', { t: 'stringMap' }],
    ['ownerReferences', { t: 'list', go: '[]v1.OwnerReference', of: ownerReference }],
    ['finalizers', { t: 'stringList' }],
    ['managedFields', { t: 'any' }],
  ],
};

const serviceAccountType: FieldType & { t: 'struct' } = {
  t: 'struct',
  go: 'ServiceAccount',
  fields: [
    ['kind', str],
    ['apiVersion', str],
    ['metadata', objectMeta],
    ['secrets', { t: 'list', go: '[]v1.ObjectReference', of: objectReference }],
    ['imagePullSecrets', { t: 'list', go: '[]v1.LocalObjectReference', of: localObjectReference }],
    ['automountServiceAccountToken', { t: 'bool' }],
  ],
};

function jsonKind(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'object' ? 'object' : typeof v;
}

function mismatch(v: Json, owner: string, field: string, goType: string): DecodeError {
  return new DecodeError(
    `json: cannot unmarshal ${jsonKind(v)} into Go struct field ${owner}.${field} of type ${goType}`,
  );
}

/** Go's omitempty: empty strings, lists and maps, zero numbers and false are not written. */
function isEmpty(v: Json): boolean {
  return (
    v === '' ||
    v === 0 ||
    v === false ||
    (Array.isArray(v) && v.length === 0) ||
    (isObject(v) && Object.keys(v).length === 0)
  );
}

function decodeStruct(v: JsonObject, type: FieldType & { t: 'struct' }, path: string, unknown: string[]): JsonObject {
  const out: JsonObject = {};
  const known = new Set(type.fields.map(([k]) => k));
  for (const k of Object.keys(v)) if (!known.has(k)) unknown.push(path === '' ? k : `${path}.${k}`);
  for (const [name, ft] of type.fields) {
    const raw = v[name];
    if (raw === undefined || raw === null) continue;
    const fieldPath = path === '' ? name : `${path}.${name}`;
    const value = decodeField(raw, ft, type.go, name, fieldPath, unknown);
    // Booleans that are pointers in Go (automountServiceAccountToken, controller) keep an explicit false.
    if (value !== undefined && (ft.t === 'bool' || !isEmpty(value))) out[name] = value;
  }
  return out;
}

function decodeField(
  raw: Json,
  ft: FieldType,
  owner: string,
  name: string,
  path: string,
  unknown: string[],
): Json | undefined {
  switch (ft.t) {
    case 'string':
      if (typeof raw !== 'string') throw mismatch(raw, owner, name, 'string');
      return raw;
    case 'bool':
      if (typeof raw !== 'boolean') throw mismatch(raw, owner, name, 'bool');
      return raw;
    case 'int':
      if (typeof raw !== 'number' || !Number.isInteger(raw)) throw mismatch(raw, owner, name, 'int64');
      return raw;
    case 'any':
      return raw;
    case 'stringMap': {
      if (!isObject(raw)) throw mismatch(raw, owner, name, 'map[string]string');
      for (const x of Object.values(raw))
        if (typeof x !== 'string') throw mismatch(x, owner, name, 'map[string]string');
      return raw;
    }
    case 'stringList': {
      if (!Array.isArray(raw)) throw mismatch(raw, owner, name, '[]string');
      for (const x of raw) if (typeof x !== 'string') throw mismatch(x, owner, name, '[]string');
      return raw;
    }
    case 'struct':
      if (!isObject(raw)) throw mismatch(raw, owner, name, ft.go);
      return decodeStruct(raw, ft, path, unknown);
    case 'list': {
      if (!Array.isArray(raw)) throw mismatch(raw, owner, name, ft.go);
      return raw.map((el, i) => {
        if (!isObject(el)) throw mismatch(el, owner, name, ft.of.go);
        return decodeStruct(el, ft.of, `${path}[${i}]`, unknown);
      });
    }
  }
}

/** Decodes a ServiceAccount as core/v1 types do: typed fields checked, unknown ones reported, empty ones dropped. */
export function decodeServiceAccount(body: Json): Decoded {
  if (!isObject(body))
    throw new DecodeError(`json: cannot unmarshal ${jsonKind(body)} into Go value of type v1.ServiceAccount`);
  const unknownFields: string[] = [];
  const object = decodeStruct(body, serviceAccountType, '', unknownFields);
  if (!isObject(object.metadata)) object.metadata = {};
  return { object, unknownFields };
}

/** Reads `metadata` of a stored object (always present). */
export function meta(o: JsonObject): JsonObject {
  const m = o.metadata;
  if (!isObject(m)) throw new Error('stored object without metadata');
  return m;
}

/** A Namespace object as the real server returns it. */
export function namespaceObject(
  name: string,
  uid: string,
  resourceVersion: string,
  creationTimestamp: string,
): JsonObject {
  return {
    kind: 'Namespace',
    apiVersion: 'v1',
    metadata: { name, uid, resourceVersion, creationTimestamp, labels: { 'kubernetes.io/metadata.name': name } },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  };
}

/** kubectl's short age format ("45s", "3m", "2d"), as the server's table convertor renders it. */
export function age(creationTimestamp: string, now = Date.now()): string {
  const s = Math.max(0, Math.floor((now - Date.parse(creationTimestamp)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60 > 0 ? `${s % 60}s` : ''}`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return `${h}h${m % 60 > 0 ? `${m % 60}m` : ''}`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return `${d}d${h % 24 > 0 ? `${h % 24}h` : ''}`;
  return `${d}d`;
}

const nameColumn = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description:
    'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names',
  priority: 0,
};
const ageColumn = {
  name: 'Age',
  type: 'string',
  format: '',
  description:
    'CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata',
  priority: 0,
};

/** A meta.k8s.io/v1 Table for `kubectl get` without -o, for ServiceAccounts or Namespaces. */
export function table(kind: 'ServiceAccount' | 'Namespace', items: JsonObject[], resourceVersion: string): JsonObject {
  const columns =
    kind === 'ServiceAccount'
      ? [
          nameColumn,
          {
            name: 'Secrets',
            type: 'string',
            format: '',
            description:
              'Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.',
            priority: 0,
          },
          ageColumn,
        ]
      : [
          nameColumn,
          { name: 'Status', type: 'string', format: '', description: 'The status of the namespace', priority: 0 },
          ageColumn,
        ];
  const rows = items.map((o) => {
    const m = meta(o);
    const created = typeof m.creationTimestamp === 'string' ? m.creationTimestamp : new Date().toISOString();
    const middle: Json = kind === 'ServiceAccount' ? (Array.isArray(o.secrets) ? o.secrets.length : 0) : 'Active';
    return {
      cells: [String(m.name), middle, age(created)],
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: m },
    };
  });
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: columns,
    rows,
  };
}
