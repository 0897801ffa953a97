import { randomUUID } from 'node:crypto';
import { clone, deepEqual, isObject, type Json, type JsonObject } from './json-patch.js';
import { age, meta } from './objects.js';
import { alreadyExists, badRequest, conflict, invalid, notFound } from './status.js';
import type { SmpSchema } from './strategic-merge.js';

/**
 * The kinds besides ServiceAccounts and Namespaces that the node agent (`trustplay agent`) uses:
 * stored as the JSON they were written with (no typed decoding: the agent writes them, and a test
 * reads them back), with the API server's system fields, one resourceVersion counter shared with
 * the rest of the store, 409 on a stale resourceVersion, and no-op writes that keep it.
 */
export interface ResourceKind {
  kind: string;
  /** Plural resource name in URLs. */
  resource: string;
  singular: string;
  group: '' | 'coordination.k8s.io' | 'apps' | 'rbac.authorization.k8s.io';
  version: 'v1';
  namespaced: boolean;
  shortNames: string[];
  verbs: string[];
  /** Has a `status` subresource: writes to the object keep its status, writes to /status change only it. */
  status: boolean;
  /** Patch strategies for strategic merge patches (Go struct tags of k8s.io/api). */
  smp: SmpSchema;
  /**
   * The OpenAPI definition (schemas.ts) writes are decoded against: unknown fields per the request's
   * fieldValidation, wrong types refused. Without one the kind is stored as written (the agent's own
   * writes: Node, Event, Lease).
   */
  schema?: string;
  /** The kind's own validation beyond types (field paths and messages as the real server's), if any. */
  validate?: (o: JsonObject) => { field: string; message: string }[];
  /** Extra columns of the server-side Table between Name and Age, as the real table convertor prints them. */
  columns: { name: string; cell: (o: JsonObject) => Json }[];
}

const objectMetaSmp: SmpSchema = {
  fields: { finalizers: { mergeList: {} }, ownerReferences: { mergeList: { key: 'uid' } } },
};
const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

const str = (v: Json | undefined): string => (typeof v === 'string' ? v : '');
const spec = (o: JsonObject): JsonObject => (isObject(o.spec) ? o.spec : {});

/** What the emulator serves besides ServiceAccounts and Namespaces. */
export const RESOURCE_KINDS: ResourceKind[] = [
  {
    kind: 'ConfigMap',
    resource: 'configmaps',
    singular: 'configmap',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['cm'],
    verbs: ALL_VERBS,
    status: false,
    smp: { fields: { metadata: objectMetaSmp } },
    schema: 'io.k8s.api.core.v1.ConfigMap',
    columns: [{ name: 'Data', cell: (o) => (isObject(o.data) ? Object.keys(o.data).length : 0) }],
  },
  {
    kind: 'Node',
    resource: 'nodes',
    singular: 'node',
    group: '',
    version: 'v1',
    namespaced: false,
    shortNames: ['no'],
    verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
    status: true,
    // core/v1 NodeStatus: conditions and addresses merge by type (patchMergeKey:"type").
    smp: {
      fields: {
        metadata: objectMetaSmp,
        status: { fields: { conditions: { mergeList: { key: 'type' } }, addresses: { mergeList: { key: 'type' } } } },
      },
    },
    columns: [
      {
        name: 'Status',
        cell: (o) => {
          const conditions = isObject(o.status) && Array.isArray(o.status.conditions) ? o.status.conditions : [];
          const ready = conditions.find((c) => isObject(c) && c.type === 'Ready');
          return isObject(ready) && ready.status === 'True' ? 'Ready' : 'NotReady';
        },
      },
    ],
  },
  {
    kind: 'Event',
    resource: 'events',
    singular: 'event',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['ev'],
    verbs: ALL_VERBS,
    status: false,
    smp: { fields: { metadata: objectMetaSmp } },
    columns: [
      { name: 'Type', cell: (o) => str(o.type) },
      { name: 'Reason', cell: (o) => str(o.reason) },
      { name: 'Message', cell: (o) => str(o.message) },
    ],
  },
  {
    kind: 'Lease',
    resource: 'leases',
    singular: 'lease',
    group: 'coordination.k8s.io',
    version: 'v1',
    namespaced: true,
    shortNames: [],
    verbs: ALL_VERBS,
    status: false,
    smp: { fields: { metadata: objectMetaSmp } },
    columns: [{ name: 'Holder', cell: (o) => str(spec(o).holderIdentity) }],
  },
  // What deploy/kubernetes/agent/ is made of, for `kubectl apply --dry-run=server` (typed, see schemas.ts).
  {
    kind: 'DaemonSet',
    resource: 'daemonsets',
    singular: 'daemonset',
    group: 'apps',
    version: 'v1',
    namespaced: true,
    shortNames: ['ds'],
    verbs: ALL_VERBS,
    status: true,
    // PodSpec's containers and volumes merge by name (patchMergeKey:"name").
    smp: {
      fields: {
        metadata: objectMetaSmp,
        spec: {
          fields: {
            template: {
              fields: {
                metadata: objectMetaSmp,
                spec: {
                  fields: {
                    containers: { mergeList: { key: 'name' } },
                    volumes: { mergeList: { key: 'name' } },
                  },
                },
              },
            },
          },
        },
      },
    },
    schema: 'io.k8s.api.apps.v1.DaemonSet',
    // apps/v1 validation: the selector must select the template's labels, or the DaemonSet owns no pod.
    validate: (o) => {
      const selector = isObject(spec(o).selector) ? (spec(o).selector as JsonObject) : {};
      const template = isObject(spec(o).template) ? (spec(o).template as JsonObject) : {};
      const labels = isObject(template.metadata) && isObject(template.metadata.labels) ? template.metadata.labels : {};
      const want = isObject(selector.matchLabels) ? selector.matchLabels : {};
      return Object.entries(want).every(([k, v]) => labels[k] === v)
        ? []
        : [
            {
              field: 'spec.template.metadata.labels',
              message: `Invalid value: ${JSON.stringify(labels)}: \`selector\` does not match template \`labels\``,
            },
          ];
    },
    columns: [],
  },
  ...(['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'] as const).map((kind): ResourceKind => ({
    kind,
    resource: `${kind.toLowerCase()}s`,
    singular: kind.toLowerCase(),
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    namespaced: !kind.startsWith('Cluster'),
    shortNames: [],
    verbs: ALL_VERBS,
    status: false,
    smp: { fields: { metadata: objectMetaSmp } },
    schema: `io.k8s.api.rbac.v1.${kind}`,
    columns: [],
  })),
];

/** The kind served at group/version/resource, if any. */
export function kindOf(group: string, resource: string): ResourceKind | undefined {
  return RESOURCE_KINDS.find((k) => k.group === group && k.resource === resource);
}

/** The apiVersion written in objects of a kind ("v1", "coordination.k8s.io/v1"). */
export const apiVersionOf = (k: ResourceKind): string => (k.group === '' ? k.version : `${k.group}/${k.version}`);

/** One committed write, in order: what the tests read to prove how the agents coordinated. */
export interface WriteRecord {
  /** Milliseconds since the epoch when the write was committed. */
  at: number;
  verb: 'create' | 'update' | 'patch' | 'delete';
  resource: string;
  namespace: string;
  name: string;
  /** The object as stored after the write (before, for a delete). */
  object: JsonObject;
}

const key = (namespace: string, name: string): string => `${namespace}/${name}`;

/** ObjectMeta as Go's omitempty writes it: protobuf bodies carry empty strings for unset fields. */
function omitEmpty(m: JsonObject): JsonObject {
  return Object.fromEntries(
    Object.entries(m).filter(
      ([, v]) => !(v === '' || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0)),
    ),
  );
}

/** Objects of the kinds in {@link RESOURCE_KINDS}, by resource then `namespace/name` ('' for cluster-scoped). */
export class ResourceStore {
  readonly objects = new Map<string, Map<string, JsonObject>>();
  readonly writes: WriteRecord[] = [];
  /** Told of each committed write (open watches, watch.ts). */
  readonly listeners = new Set<(w: WriteRecord) => void>();

  constructor(private readonly nextResourceVersion: () => string) {
    for (const k of RESOURCE_KINDS) this.objects.set(k.resource, new Map());
  }

  /** Forgets every object and write (tests start each case from an empty store). */
  clear(): void {
    for (const m of this.objects.values()) m.clear();
    this.writes.length = 0;
  }

  get(k: ResourceKind, namespace: string, name: string): JsonObject | undefined {
    return this.objects.get(k.resource)?.get(key(namespace, name));
  }

  list(k: ResourceKind, namespace: string | undefined): JsonObject[] {
    const all = [...(this.objects.get(k.resource)?.values() ?? [])];
    return all
      .filter((o) => namespace === undefined || meta(o).namespace === namespace)
      .sort(
        (a, b) =>
          str(meta(a).namespace).localeCompare(str(meta(b).namespace)) ||
          str(meta(a).name).localeCompare(str(meta(b).name)),
      );
  }

  private commit(k: ResourceKind, verb: WriteRecord['verb'], namespace: string, object: JsonObject): JsonObject {
    const name = str(meta(object).name);
    if (verb === 'delete') this.objects.get(k.resource)?.delete(key(namespace, name));
    else this.objects.get(k.resource)?.set(key(namespace, name), object);
    const record: WriteRecord = { at: Date.now(), verb, resource: k.resource, namespace, name, object: clone(object) };
    this.writes.push(record);
    for (const l of this.listeners) l(record);
    return object;
  }

  /** Creates an object (the caller checked the namespace exists); 409 AlreadyExists, 422 without a name. */
  create(k: ResourceKind, namespace: string, body: JsonObject, dryRun: boolean): JsonObject {
    const m = omitEmpty(meta(body));
    const name = str(m.name);
    if (name === '')
      throw invalid(k.kind, '', [
        { field: 'metadata.name', message: 'Required value: name or generateName is required' },
      ]);
    if (m.resourceVersion !== undefined) throw badRequest('resourceVersion should not be set on objects to be created');
    if (this.get(k, namespace, name) !== undefined) throw alreadyExists({ resource: k.resource, name });
    const { uid: _u, creationTimestamp: _c, ...userMeta } = m;
    const metadata: JsonObject = {
      ...userMeta,
      ...(k.namespaced ? { namespace } : {}),
      uid: randomUUID(),
      resourceVersion: dryRun ? null : this.nextResourceVersion(),
      creationTimestamp: `${new Date().toISOString().slice(0, 19)}Z`,
    };
    if (metadata.resourceVersion === null) delete metadata.resourceVersion;
    const object: JsonObject = { ...body, kind: k.kind, apiVersion: apiVersionOf(k), metadata };
    return dryRun ? object : this.commit(k, 'create', namespace, object);
  }

  /**
   * Replaces an object with `next` (a PUT, or the result of a patch). A resourceVersion in `next` is a
   * precondition (409 when stale); none means last write wins, as for these kinds' update strategies.
   * `subresource` 'status' keeps everything but the status; a main-resource write keeps the status.
   */
  update(
    k: ResourceKind,
    namespace: string,
    name: string,
    next: JsonObject,
    opts: { dryRun: boolean; verb: 'update' | 'patch'; subresource?: 'status' },
  ): JsonObject {
    const current = this.get(k, namespace, name);
    if (current === undefined) throw notFound({ resource: k.resource, name });
    const m = omitEmpty(isObject(next.metadata) ? next.metadata : {});
    const cm = meta(current);
    if (m.name !== undefined && m.name !== name)
      throw badRequest(`the name of the object (${str(m.name)}) does not match the name on the URL (${name})`);
    if (k.namespaced && m.namespace !== undefined && m.namespace !== namespace)
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    if (m.uid !== undefined && m.uid !== cm.uid)
      throw invalid(k.kind, name, [
        { field: 'metadata.uid', message: `Invalid value: "${str(m.uid)}": field is immutable` },
      ]);
    if (next.kind !== undefined && next.kind !== k.kind)
      throw badRequest(
        `${k.kind} in version "${k.version}" cannot be handled as a ${k.kind}: the kind "${str(next.kind)}" does not match`,
      );
    if (m.resourceVersion !== undefined && m.resourceVersion !== cm.resourceVersion)
      throw conflict({ resource: k.group === '' ? k.resource : `${k.resource}.${k.group}`, name });
    let candidate: JsonObject;
    if (opts.subresource === 'status') {
      candidate = { ...clone(current) };
      if (next.status !== undefined) candidate.status = clone(next.status);
      else delete candidate.status;
    } else {
      candidate = {
        ...clone(next),
        kind: k.kind,
        apiVersion: apiVersionOf(k),
        metadata: {
          ...m,
          name,
          ...(k.namespaced ? { namespace } : {}),
          uid: cm.uid ?? null,
          resourceVersion: cm.resourceVersion ?? null,
          creationTimestamp: cm.creationTimestamp ?? null,
        },
      };
      if (k.status) {
        if (current.status !== undefined) candidate.status = clone(current.status);
        else delete candidate.status;
      }
    }
    // As in the real storage layer, a write that changes nothing is not a write: no new resourceVersion.
    if (deepEqual(candidate, current)) return current;
    if (opts.dryRun) return candidate;
    meta(candidate).resourceVersion = this.nextResourceVersion();
    return this.commit(k, opts.verb, namespace, candidate);
  }

  /** Deletes an object, returning it. */
  delete(k: ResourceKind, namespace: string, name: string, dryRun: boolean): JsonObject {
    const current = this.get(k, namespace, name);
    if (current === undefined) throw notFound({ resource: k.resource, name });
    return dryRun ? current : this.commit(k, 'delete', namespace, current);
  }

  /** Plain JSON copy of every object, by resource. */
  snapshot(): Record<string, JsonObject[]> {
    return Object.fromEntries(RESOURCE_KINDS.map((k) => [k.resource, this.list(k, undefined).map((o) => clone(o))]));
  }
}

/** A meta.k8s.io/v1 Table for `kubectl get` without -o. */
export function resourceTable(k: ResourceKind, items: JsonObject[], resourceVersion: string): JsonObject {
  const column = (name: string, description: string): JsonObject => ({
    name,
    type: 'string',
    format: name === 'Name' ? 'name' : '',
    description,
    priority: 0,
  });
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: [
      column('Name', 'Name must be unique within a namespace.'),
      ...k.columns.map((c) => column(c.name, c.name)),
      column('Age', 'CreationTimestamp is a timestamp representing the server time when this object was created.'),
    ],
    rows: items.map((o) => {
      const m = meta(o);
      const created = typeof m.creationTimestamp === 'string' ? m.creationTimestamp : new Date().toISOString();
      return {
        cells: [str(m.name), ...k.columns.map((c) => c.cell(o)), age(created)],
        object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: m },
      };
    }),
  };
}
