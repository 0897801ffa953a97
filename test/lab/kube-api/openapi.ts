import { createHash } from 'node:crypto';
import type { JsonObject } from './json-patch.js';
import { RESOURCE_KINDS, type ResourceKind } from './resources.js';
import { DEFINITIONS } from './schemas.js';

/**
 * A minimal OpenAPI v3 document for the core group. kubectl 1.32 reads it before `replace` (and
 * `create`, `apply`) to learn whether the server validates fields itself: it looks for a PATCH
 * operation tagged with the object's group-version-kind that declares the `fieldValidation` query
 * parameter. When found, kubectl sends `?fieldValidation=Strict` and skips client-side validation,
 * which would otherwise need the full schema of every type.
 */
function queryParam(name: string, description: string): JsonObject {
  return { name, in: 'query', description, schema: { type: 'string', uniqueItems: true } };
}

const commonWriteParams = [
  queryParam(
    'dryRun',
    'When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed',
  ),
  queryParam(
    'fieldManager',
    'fieldManager is a name associated with the actor or entity that is making these changes.',
  ),
  queryParam(
    'fieldValidation',
    'fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: - Ignore - Warn (default) - Strict',
  ),
];

const pathParams = (namespaced: boolean): JsonObject[] => [
  {
    name: 'name',
    in: 'path',
    required: true,
    description: 'name of the object',
    schema: { type: 'string', uniqueItems: true },
  },
  ...(namespaced
    ? [
        {
          name: 'namespace',
          in: 'path',
          required: true,
          description: 'object name and auth scope, such as for teams and projects',
          schema: { type: 'string', uniqueItems: true },
        },
      ]
    : []),
];

function ref(kind: string, group = 'core'): JsonObject {
  return { $ref: `#/components/schemas/io.k8s.api.${group}.v1.${kind}` };
}

function itemOperations(kind: string, namespaced: boolean, group = ''): JsonObject {
  const gvk = { group, version: 'v1', kind };
  const scope = namespaced ? 'Namespaced' : '';
  const short = group === '' ? 'core' : (group.split('.')[0] ?? group);
  const tag = `${short}_v1`;
  const op = `${short.charAt(0).toUpperCase()}${short.slice(1)}V1${scope}${kind}`;
  const ok = { '200': { description: 'OK', content: { 'application/json': { schema: ref(kind, short) } } } };
  return {
    get: {
      tags: [tag],
      operationId: `read${op}`,
      responses: ok,
      'x-kubernetes-action': 'get',
      'x-kubernetes-group-version-kind': gvk,
    },
    put: {
      tags: [tag],
      operationId: `replace${op}`,
      parameters: commonWriteParams,
      requestBody: { content: { '*/*': { schema: ref(kind, short) } }, required: true },
      responses: ok,
      'x-kubernetes-action': 'put',
      'x-kubernetes-group-version-kind': gvk,
    },
    patch: {
      tags: [tag],
      operationId: `patch${op}`,
      parameters: [...commonWriteParams, queryParam('force', 'Force is going to "force" Apply requests.')],
      requestBody: {
        content: Object.fromEntries(
          [
            'application/apply-patch+yaml',
            'application/json-patch+json',
            'application/merge-patch+json',
            'application/strategic-merge-patch+json',
          ].map((t) => [t, { schema: { $ref: '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch' } }]),
        ),
        required: true,
      },
      responses: ok,
      'x-kubernetes-action': 'patch',
      'x-kubernetes-group-version-kind': gvk,
    },
    parameters: pathParams(namespaced),
  };
}

const gvkOf = (kind: string, group = ''): JsonObject[] => [{ group, kind, version: 'v1' }];

const metadataProperty = {
  default: {},
  allOf: [{ $ref: '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' }],
};

/** The path of a kind's item operations. */
function itemPath(k: ResourceKind): string {
  const base = k.group === '' ? '/api/v1' : `/apis/${k.group}/v1`;
  return k.namespaced ? `${base}/namespaces/{namespace}/${k.resource}/{name}` : `${base}/${k.resource}/{name}`;
}

/** A loose schema for a kind the emulator stores as written (ConfigMap, Node, Event, Lease). */
function looseSchema(k: ResourceKind): JsonObject {
  return {
    type: 'object',
    properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: metadataProperty },
    'x-kubernetes-preserve-unknown-fields': true,
    'x-kubernetes-group-version-kind': gvkOf(k.kind, k.group),
  };
}

/** The typed definitions (schemas.ts) `roots` name, with every definition they refer to. */
function reachable(roots: string[]): Record<string, JsonObject> {
  const out: Record<string, JsonObject> = {};
  const visit = (name: string): void => {
    const def = DEFINITIONS[name];
    if (def === undefined || out[name] !== undefined) return;
    out[name] = def;
    for (const m of JSON.stringify(def).matchAll(/#\/components\/schemas\/([\w.]+)/g)) visit(m[1] ?? '');
  };
  roots.forEach(visit);
  return out;
}

const schemaName = (k: ResourceKind): string =>
  `io.k8s.api.${k.group === '' ? 'core' : (k.group.split('.')[0] ?? k.group)}.v1.${k.kind}`;

const objectMetaSchemas = (): JsonObject => ({
  'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta': {
    type: 'object',
    properties: {
      annotations: { type: 'object', additionalProperties: { ...str } },
      creationTimestamp: { type: 'string', format: 'date-time' },
      labels: { type: 'object', additionalProperties: { ...str } },
      name: { type: 'string' },
      namespace: { type: 'string' },
      resourceVersion: { type: 'string' },
      uid: { type: 'string' },
    },
  },
  'io.k8s.apimachinery.pkg.apis.meta.v1.Patch': {
    description: 'Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.',
    type: 'object',
  },
});

/** GET /openapi/v3/apis/GROUP/v1, or undefined for a group not served. */
export function openApiGroup(group: string): JsonObject | undefined {
  const kinds = RESOURCE_KINDS.filter((k) => k.group === group);
  if (group === '' || kinds.length === 0) return undefined;
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.32.4' },
    paths: Object.fromEntries(kinds.map((k) => [itemPath(k), itemOperations(k.kind, k.namespaced, k.group)])),
    components: {
      schemas: {
        ...Object.fromEntries(kinds.filter((k) => k.schema === undefined).map((k) => [schemaName(k), looseSchema(k)])),
        ...objectMetaSchemas(),
        ...reachable(kinds.flatMap((k) => (k.schema !== undefined ? [k.schema] : []))),
      },
    },
  };
}
const str = { type: 'string', default: '' };

/** GET /openapi/v3/api/v1. */
export function openApiCoreV1(): JsonObject {
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.32.4' },
    paths: {
      '/api/v1/namespaces/{name}': itemOperations('Namespace', false),
      '/api/v1/namespaces/{namespace}/serviceaccounts/{name}': itemOperations('ServiceAccount', true),
      ...Object.fromEntries(
        RESOURCE_KINDS.filter((k) => k.group === '').map((k) => [itemPath(k), itemOperations(k.kind, k.namespaced)]),
      ),
    },
    components: {
      schemas: {
        ...Object.fromEntries(
          RESOURCE_KINDS.filter((k) => k.group === '' && k.schema === undefined).map((k) => [
            schemaName(k),
            looseSchema(k),
          ]),
        ),
        'io.k8s.api.core.v1.LocalObjectReference': {
          description:
            'LocalObjectReference contains enough information to let you locate the referenced object inside the same namespace.',
          type: 'object',
          properties: { name: { ...str, description: 'Name of the referent.' } },
          'x-kubernetes-map-type': 'atomic',
        },
        'io.k8s.api.core.v1.ObjectReference': {
          type: 'object',
          properties: Object.fromEntries(
            ['apiVersion', 'fieldPath', 'kind', 'name', 'namespace', 'resourceVersion', 'uid'].map((k) => [
              k,
              { type: 'string' },
            ]),
          ),
          'x-kubernetes-map-type': 'atomic',
        },
        'io.k8s.api.core.v1.ServiceAccount': {
          description:
            'ServiceAccount binds together: * a name, understood by users, and perhaps by peripheral systems, for an identity * a principal that can be authenticated and authorized * a set of secrets',
          type: 'object',
          properties: {
            apiVersion: { type: 'string' },
            automountServiceAccountToken: { type: 'boolean' },
            imagePullSecrets: {
              type: 'array',
              items: { default: {}, allOf: [{ $ref: '#/components/schemas/io.k8s.api.core.v1.LocalObjectReference' }] },
              'x-kubernetes-list-type': 'atomic',
            },
            kind: { type: 'string' },
            metadata: {
              default: {},
              allOf: [{ $ref: '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' }],
            },
            secrets: {
              type: 'array',
              items: { default: {}, allOf: [{ $ref: '#/components/schemas/io.k8s.api.core.v1.ObjectReference' }] },
              'x-kubernetes-patch-merge-key': 'name',
              'x-kubernetes-patch-strategy': 'merge',
            },
          },
          'x-kubernetes-group-version-kind': gvkOf('ServiceAccount'),
        },
        ...reachable([
          'io.k8s.api.core.v1.Namespace',
          'io.k8s.apimachinery.pkg.apis.meta.v1.Patch',
          ...RESOURCE_KINDS.flatMap((k) => (k.group === '' && k.schema !== undefined ? [k.schema] : [])),
        ]),
      },
    },
  };
}

/** The document's content hash, which the index advertises so clients can cache it. */
export function openApiCoreV1Hash(): string {
  return createHash('sha512').update(JSON.stringify(openApiCoreV1())).digest('hex').toUpperCase();
}

const hashOf = (doc: JsonObject | undefined): string =>
  createHash('sha512').update(JSON.stringify(doc)).digest('hex').toUpperCase();

/** GET /openapi/v3: the index of group-version documents. */
export function openApiIndex(): JsonObject {
  const groups = [...new Set(RESOURCE_KINDS.filter((k) => k.group !== '').map((k) => k.group))];
  return {
    paths: {
      'api/v1': { serverRelativeURL: `/openapi/v3/api/v1?hash=${openApiCoreV1Hash()}` },
      ...Object.fromEntries(
        groups.map((g) => [
          `apis/${g}/v1`,
          { serverRelativeURL: `/openapi/v3/apis/${g}/v1?hash=${hashOf(openApiGroup(g))}` },
        ]),
      ),
    },
  };
}
