import type { JsonObject } from './json-patch.js';
import { RESOURCE_KINDS, type ResourceKind } from './resources.js';

/** The content type of aggregated discovery (KEP-3352), which kubectl 1.32 asks for first. */
export const AGGREGATED_V2 = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

interface ResourceInfo {
  name: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  verbs: string[];
  shortNames: string[];
}

/** What this server serves in the core group; verbs are the real server's, even where a verb is not emulated. */
const coreResources: ResourceInfo[] = [
  {
    name: 'namespaces',
    singular: 'namespace',
    kind: 'Namespace',
    namespaced: false,
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
    shortNames: ['ns'],
  },
  {
    name: 'serviceaccounts',
    singular: 'serviceaccount',
    kind: 'ServiceAccount',
    namespaced: true,
    verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
    shortNames: ['sa'],
  },
  ...RESOURCE_KINDS.filter((k) => k.group === '').map(info),
];

function info(k: ResourceKind): ResourceInfo {
  return {
    name: k.resource,
    singular: k.singular,
    kind: k.kind,
    namespaced: k.namespaced,
    verbs: k.verbs,
    shortNames: k.shortNames,
  };
}

/** Named groups served (one version each): coordination.k8s.io/v1 for Leases. */
const groups = [...new Set(RESOURCE_KINDS.filter((k) => k.group !== '').map((k) => k.group))].map((group) => ({
  group,
  version: 'v1',
  resources: RESOURCE_KINDS.filter((k) => k.group === group).map(info),
}));

/** Subresources listed in discovery (Node's status). */
const statusOf = (r: ResourceInfo): boolean => RESOURCE_KINDS.some((k) => k.resource === r.name && k.status);

/** GET /version. */
export function versionInfo(): JsonObject {
  return {
    major: '1',
    minor: '32',
    gitVersion: 'v1.32.4',
    gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean',
    buildDate: '2025-04-22T16:00:00Z',
    goVersion: 'go1.23.6',
    compiler: 'gc',
    platform: 'linux/amd64',
  };
}

/** Legacy GET /api. */
export function legacyApiVersions(serverAddress: string): JsonObject {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

/** Legacy GET /apis. */
export function legacyApiGroupList(): JsonObject {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: groups.map((g) => ({
      name: g.group,
      versions: [{ groupVersion: `${g.group}/${g.version}`, version: g.version }],
      preferredVersion: { groupVersion: `${g.group}/${g.version}`, version: g.version },
    })),
  };
}

/** GET /apis/GROUP (APIGroup), or undefined for a group not served. */
export function apiGroup(group: string): JsonObject | undefined {
  const g = groups.find((x) => x.group === group);
  if (g === undefined) return undefined;
  const gv = { groupVersion: `${g.group}/${g.version}`, version: g.version };
  return { kind: 'APIGroup', apiVersion: 'v1', name: g.group, versions: [gv], preferredVersion: gv };
}

/** GET /apis/GROUP/VERSION (APIResourceList), or undefined for one not served. */
export function groupResourceList(group: string, version: string): JsonObject | undefined {
  const g = groups.find((x) => x.group === group && x.version === version);
  if (g === undefined) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: `${group}/${version}`,
    resources: resourceList(g.resources),
  };
}

function resourceList(resources: ResourceInfo[]): JsonObject[] {
  return resources.flatMap((r) => [
    {
      name: r.name,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: r.verbs,
      ...(r.shortNames.length > 0 ? { shortNames: r.shortNames } : {}),
      storageVersionHash: '',
    },
    ...(statusOf(r)
      ? [
          {
            name: `${r.name}/status`,
            singularName: '',
            namespaced: r.namespaced,
            kind: r.kind,
            verbs: ['get', 'patch', 'update'],
          },
        ]
      : []),
  ]);
}

function aggregatedResources(resources: ResourceInfo[], group: string): JsonObject[] {
  return resources.map((r) => ({
    resource: r.name,
    responseKind: { group, version: 'v1', kind: r.kind },
    scope: r.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: r.singular,
    verbs: r.verbs,
    ...(r.shortNames.length > 0 ? { shortNames: r.shortNames } : {}),
    ...(statusOf(r)
      ? {
          subresources: [
            {
              subresource: 'status',
              responseKind: { group, version: 'v1', kind: r.kind },
              verbs: ['get', 'patch', 'update'],
            },
          ],
        }
      : {}),
  }));
}

/** GET /api/v1 (APIResourceList). */
export function coreResourceList(): JsonObject {
  return {
    kind: 'APIResourceList',
    groupVersion: 'v1',
    resources: resourceList(coreResources),
  };
}

/** Aggregated GET /api: one item, the core group's v1 with its resources. */
export function aggregatedCore(): JsonObject {
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: 'apidiscovery.k8s.io/v2',
    metadata: {},
    items: [
      {
        metadata: { creationTimestamp: null },
        versions: [
          {
            version: 'v1',
            resources: aggregatedResources(coreResources, ''),
            freshness: 'Current',
          },
        ],
      },
    ],
  };
}

/** Aggregated GET /apis: the named groups. */
export function aggregatedGroups(): JsonObject {
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: 'apidiscovery.k8s.io/v2',
    metadata: {},
    items: groups.map((g) => ({
      metadata: { name: g.group, creationTimestamp: null },
      versions: [{ version: g.version, resources: aggregatedResources(g.resources, g.group), freshness: 'Current' }],
    })),
  };
}

/** True when the Accept header asks for aggregated discovery v2 (kubectl lists it first, then plain JSON). */
export function wantsAggregated(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept.split(',').some((part) => {
    const params = part.split(';').map((p) => p.trim());
    return (
      params.includes('g=apidiscovery.k8s.io') && params.includes('v=v2') && params.includes('as=APIGroupDiscoveryList')
    );
  });
}

/** True when the Accept header asks for a server-side Table (kubectl get without -o). */
export function wantsTable(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept.split(',').some((part) => {
    const params = part.split(';').map((p) => p.trim());
    return params.includes('as=Table') && params.includes('g=meta.k8s.io');
  });
}
