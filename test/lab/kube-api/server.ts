/**
 * The lab's Kubernetes API emulator (test code only; there is no API server package on this machine).
 * Faithful to kube-apiserver 1.32 for what kubectl does on ServiceAccounts:
 *   GET  /version, /api, /apis (aggregated discovery v2, or legacy when plain JSON is asked), /api/v1,
 *        /openapi/v3 and /openapi/v3/api/v1 (enough for kubectl to use server-side field validation)
 *   GET  /api/v1/namespaces[/NAME]
 *   GET  /api/v1/serviceaccounts (all namespaces), /api/v1/namespaces/NS/serviceaccounts[/NAME]
 *        (JSON or a meta.k8s.io Table; fieldSelector metadata.name|namespace, labelSelector)
 *   POST /api/v1/namespaces/NS/serviceaccounts (JSON or protobuf), PUT, PATCH (merge, JSON, strategic), DELETE .../NAME
 * and, for the node agent (resources.ts; stored as written, not decoded into typed fields):
 *   /api/v1 configmaps, events (namespaced), nodes and nodes/status (cluster-scoped), and
 *   /apis/coordination.k8s.io/v1 leases: get, list (JSON or Table), create, PUT, PATCH, DELETE,
 *   a resourceVersion in the body a precondition (409 when stale), every committed write logged
 *   (writes(), /_lab/writes?resource=leases) so a test can replay how agents took Leases;
 * and, for `kubectl apply --dry-run=server -f deploy/kubernetes/agent/`: POST /api/v1/namespaces, and
 *   apps/v1 daemonsets, rbac.authorization.k8s.io/v1 clusterroles, clusterrolebindings, roles and
 *   rolebindings, stored like the agent's kinds but decoded (as ConfigMaps and Namespaces are) against
 *   the typed schemas of schemas.ts, which /openapi/v3 serves too: a wrong type is 400, an unknown
 *   field 400 under fieldValidation=Strict (a Warning otherwise), a missing required field 422;
 *   list with ?watch=1[&resourceVersion=RV][&timeoutSeconds=S] streams watch events (watch.ts);
 * with bearer tokens (401 Status when missing or unknown), RBAC-worded 403 for read-only tokens on
 * writes, one resourceVersion counter, 409 on a stale resourceVersion, no-op writes that keep the
 * resourceVersion, ?dryRun=All, ?fieldValidation=Strict|Warn|Ignore. Anonymous access is off.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  AGGREGATED_V2,
  aggregatedCore,
  aggregatedGroups,
  apiGroup,
  coreResourceList,
  groupResourceList,
  legacyApiGroupList,
  legacyApiVersions,
  versionInfo,
  wantsAggregated,
  wantsTable,
} from './discovery.js';
import {
  clone,
  deepEqual,
  isObject,
  jsonPatch,
  mergePatch,
  PatchApplyError,
  PatchDecodeError,
  type Json,
  type JsonObject,
} from './json-patch.js';
import { decodeServiceAccount, DecodeError, meta, namespaceObject, table } from './objects.js';
import { openApiCoreV1, openApiGroup, openApiIndex } from './openapi.js';
import { kindOf, ResourceStore, resourceTable, type ResourceKind, type WriteRecord } from './resources.js';
import { decodeProtobufObject, PROTOBUF } from './protobuf.js';
import { decodeTyped, TypeMismatch } from './schemas.js';
import { serveWatch } from './watch.js';
import {
  alreadyExists,
  ApiError,
  badRequest,
  conflict,
  forbidden,
  invalid,
  methodNotAllowed,
  notFound,
  pathNotFound,
  patchNotApplicable,
  unauthorized,
  unsupportedMediaType,
} from './status.js';
import { canonical, KubeStore, timestamp, type SeedNamespaces } from './store.js';
import { serviceAccountSmp, strategicMergePatch, type SmpSchema } from './strategic-merge.js';

/** What a bearer token may do: `admin` everything, `readonly` get and list. */
export type Role = 'admin' | 'readonly';

/** Options of {@link startKubeApi}. */
export interface KubeApiOptions {
  /** Address to listen on; default 127.0.0.1 (never anything outside 127.0.0.0/8 in the lab). */
  host?: string;
  /** Port; 0 (default) picks a free one. */
  port?: number;
  /** PEM files of the serving certificate and its key. */
  certFile: string;
  keyFile: string;
  /** Bearer tokens and their roles. */
  tokens: Record<string, Role>;
  /** Initial namespaces and ServiceAccounts. */
  namespaces?: SeedNamespaces;
  /**
   * Serve the lab's control paths under /_lab/ (admin token only), so a test driving an emulator in
   * another process can read the state and stage concurrent edits. Not part of any real API.
   */
  control?: boolean;
}

/** One request as the emulator saw it (never the token). */
export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  accept?: string;
  user?: string;
  /** Request body for writes, parsed when it was JSON. */
  body?: Json;
  code: number;
}

/** A write about to be applied, shown to a hook armed with {@link KubeApi.onNextWrite}. */
export interface WriteInfo {
  verb: 'create' | 'update' | 'patch' | 'delete';
  namespace: string;
  name: string;
}

/** A running emulator. */
export interface KubeApi {
  /** https://host:port */
  url: string;
  port: number;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
  /** The live store (namespaces, ServiceAccounts, revision counter). */
  state(): KubeStore;
  /** Edits a ServiceAccount as a concurrent writer would, bumping its resourceVersion. */
  mutate: KubeStore['mutate'];
  /** Runs `fn` once, just before the next write to a ServiceAccount is applied (to stage a race between read and write). */
  onNextWrite(fn: (w: WriteInfo, store: KubeStore) => void): void;
  /** Requests seen so far, oldest first. */
  requests(): RequestRecord[];
  /** ConfigMaps, Nodes, Events and Leases. */
  resources(): ResourceStore;
  /** Committed writes to those kinds, oldest first (optionally only one resource, e.g. 'leases'). */
  writes(resource?: string): WriteRecord[];
}

const USER_OF_ROLE: Record<Role, string> = { admin: 'lab-admin', readonly: 'lab-readonly' };
const READ_VERBS = new Set(['get', 'list', 'watch']);
const MAX_BODY = 3 * 1024 * 1024;

const PATCH_TYPES = {
  'application/json-patch+json': 'json',
  'application/merge-patch+json': 'merge',
  'application/strategic-merge-patch+json': 'strategic',
} as const;

interface Ctx {
  req: IncomingMessage;
  url: URL;
  user: string;
  role: Role;
  record: RequestRecord;
  /** Warning headers to send (unknown fields under fieldValidation=Warn). */
  warnings: string[];
}

interface Reply {
  code: number;
  body: Json;
  contentType?: string;
  /** A watch: streams its own response instead of `body` (watch.ts). */
  stream?: (res: ServerResponse) => void;
}

/** Starts the Kubernetes API emulator over HTTPS. */
export async function startKubeApi(opts: KubeApiOptions): Promise<KubeApi> {
  const [cert, key] = await Promise.all([readFile(opts.certFile), readFile(opts.keyFile)]);
  const store = new KubeStore(opts.namespaces ?? {});
  const resources = new ResourceStore(() => store.nextResourceVersion());
  const tokens = new Map(Object.entries(opts.tokens));
  const log: RequestRecord[] = [];
  let nextWriteHook: ((w: WriteInfo, store: KubeStore) => void) | undefined;
  const host = opts.host ?? '127.0.0.1';
  let serverAddress = '';

  const runWriteHook = (w: WriteInfo): void => {
    const hook = nextWriteHook;
    nextWriteHook = undefined;
    hook?.(w, store);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'https://emulator');
    const record: RequestRecord = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      code: 0,
    };
    if (req.headers['content-type'] !== undefined) record.contentType = req.headers['content-type'];
    if (req.headers.accept !== undefined) record.accept = req.headers.accept;
    log.push(record);
    const warnings: string[] = [];
    let reply: Reply;
    try {
      const auth = req.headers.authorization ?? '';
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      const role = m?.[1] !== undefined ? tokens.get(m[1]) : undefined;
      if (role === undefined) throw unauthorized();
      const user = USER_OF_ROLE[role];
      record.user = user;
      const ctx: Ctx = { req, url, user, role, record, warnings };
      reply = await route(ctx);
    } catch (err) {
      if (err instanceof ApiError) reply = { code: err.status.code, body: err.status as unknown as Json };
      else {
        const message = err instanceof Error ? err.message : String(err);
        reply = {
          code: 500,
          body: {
            kind: 'Status',
            apiVersion: 'v1',
            metadata: {},
            status: 'Failure',
            message: `Internal error occurred: ${message}`,
            reason: 'InternalError',
            code: 500,
          },
        };
      }
    }
    record.code = reply.code;
    if (reply.stream !== undefined) return reply.stream(res);
    const payload = `${JSON.stringify(reply.body)}\n`;
    const headers: Record<string, string | string[]> = {
      'Content-Type': reply.contentType ?? 'application/json',
      'Cache-Control': 'no-cache, private',
      'Content-Length': String(Buffer.byteLength(payload)),
    };
    if (warnings.length > 0) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
    res.writeHead(reply.code, headers);
    res.end(payload);
  };

  const route = async (ctx: Ctx): Promise<Reply> => {
    const method = ctx.req.method ?? 'GET';
    const path = ctx.url.pathname.replace(/\/+$/, '') || '/';
    const accept = ctx.req.headers.accept;
    if (method === 'GET') {
      switch (path) {
        case '/version':
          return { code: 200, body: versionInfo() };
        case '/api':
          return wantsAggregated(accept)
            ? { code: 200, body: aggregatedCore(), contentType: AGGREGATED_V2 }
            : { code: 200, body: legacyApiVersions(serverAddress) };
        case '/apis':
          return wantsAggregated(accept)
            ? { code: 200, body: aggregatedGroups(), contentType: AGGREGATED_V2 }
            : { code: 200, body: legacyApiGroupList() };
        case '/api/v1':
          return { code: 200, body: coreResourceList() };
        case '/openapi/v3':
          return { code: 200, body: openApiIndex() };
        case '/openapi/v3/api/v1':
          return { code: 200, body: openApiCoreV1() };
      }
      const group = /^\/(?:openapi\/v3\/)?apis\/([^/]+)(?:\/(v1))?$/.exec(path);
      if (group?.[1] !== undefined) {
        const doc = path.startsWith('/openapi/')
          ? group[2] !== undefined
            ? openApiGroup(group[1])
            : undefined
          : group[2] !== undefined
            ? groupResourceList(group[1], group[2])
            : apiGroup(group[1]);
        if (doc === undefined) throw pathNotFound();
        return { code: 200, body: doc };
      }
      switch (path) {
        case '/healthz':
        case '/livez':
        case '/readyz':
          return { code: 200, body: 'ok' };
      }
    }
    const parts = path
      .split('/')
      .filter((p) => p !== '')
      .map(decodeURIComponent);
    if (parts[0] === '_lab' && opts.control === true) return labControl(ctx, method, parts.slice(1));
    if (parts[0] === 'apis' && parts[2] === 'v1' && parts[1] !== undefined) {
      return routeResource(ctx, method, parts[1], parts.slice(3)) ?? Promise.reject(pathNotFound());
    }
    if (parts[0] !== 'api' || parts[1] !== 'v1') throw pathNotFound();
    const rest = parts.slice(2);
    const other = routeResource(ctx, method, '', rest);
    if (other !== undefined) return other;
    // /api/v1/namespaces[/NS]
    if (rest[0] === 'namespaces' && rest.length <= 2) return namespaces(ctx, method, rest[1]);
    // /api/v1/serviceaccounts (all namespaces)
    if (rest[0] === 'serviceaccounts' && rest.length === 1) {
      authorize(ctx, method === 'GET' ? 'list' : verbOf(method), undefined, undefined);
      if (method !== 'GET') throw methodNotAllowed();
      return listServiceAccounts(ctx, undefined);
    }
    // /api/v1/namespaces/NS/serviceaccounts[/NAME]
    if (rest[0] === 'namespaces' && rest[2] === 'serviceaccounts' && rest.length <= 4 && rest[1] !== undefined) {
      return serviceAccounts(ctx, method, rest[1], rest[3]);
    }
    throw pathNotFound();
  };

  /** The lab's control paths: state, request log, an edit now, or an edit staged before the next write. */
  const labControl = async (ctx: Ctx, method: string, parts: string[]): Promise<Reply> => {
    if (ctx.role !== 'admin') throw forbidden(ctx.user, method.toLowerCase(), { resource: '_lab' }, undefined);
    const route = `${method} ${parts.join('/')}`;
    if (route === 'GET state') return { code: 200, body: store.snapshot() as unknown as Json };
    if (route === 'GET requests') return { code: 200, body: log as unknown as Json };
    if (route === 'GET objects') return { code: 200, body: resources.snapshot() as unknown as Json };
    if (route === 'GET writes') {
      const only = ctx.url.searchParams.get('resource');
      return {
        code: 200,
        body: resources.writes.filter((w) => only === null || w.resource === only) as unknown as Json,
      };
    }
    const body = await readJson(ctx);
    const edit = isObject(body) ? body : {};
    const names = edit.imagePullSecrets;
    const ns = typeof edit.namespace === 'string' ? edit.namespace : '';
    const name = typeof edit.name === 'string' ? edit.name : '';
    if (!Array.isArray(names) || !names.every((n): n is string => typeof n === 'string')) {
      throw badRequest('expected {"namespace": "...", "name": "...", "imagePullSecrets": ["secret", ...]}');
    }
    const apply = (): JsonObject =>
      store.mutate(ns, name, (sa) => {
        sa.imagePullSecrets = names.map((n) => ({ name: n }));
      });
    if (store.getServiceAccount(ns, name) === undefined) throw notFound({ resource: 'serviceaccounts', name });
    if (route === 'POST mutate') return { code: 200, body: apply() };
    if (route === 'POST on-next-write') {
      nextWriteHook = () => void apply();
      return { code: 202, body: { armed: true } };
    }
    throw pathNotFound();
  };

  /** Routes a path under /api/v1 or /apis/GROUP/v1 to a kind of {@link ResourceStore}; undefined when none matches. */
  const routeResource = (ctx: Ctx, method: string, group: string, rest: string[]): Promise<Reply> | undefined => {
    if (rest[0] === 'namespaces' && rest[1] !== undefined && rest[2] !== undefined && rest.length <= 5) {
      const k = kindOf(group, rest[2]);
      if (k === undefined || !k.namespaced) return undefined;
      const sub = rest[4];
      if (sub !== undefined && !(sub === 'status' && k.status)) return undefined;
      return resourceRequest(ctx, method, k, rest[1], rest[3], sub);
    }
    if (rest[0] === undefined) return undefined;
    const k = kindOf(group, rest[0]);
    if (k === undefined) return undefined;
    // /api/v1/configmaps lists across namespaces; a cluster-scoped kind has its objects right there.
    if (k.namespaced)
      return rest.length === 1 ? resourceRequest(ctx, method, k, undefined, undefined, undefined) : undefined;
    const sub = rest[2];
    if (rest.length > 3 || (sub !== undefined && !(sub === 'status' && k.status))) return undefined;
    return resourceRequest(ctx, method, k, '', rest[1], sub);
  };

  const resourceRequest = async (
    ctx: Ctx,
    method: string,
    k: ResourceKind,
    namespace: string | undefined,
    name: string | undefined,
    sub: string | undefined,
  ): Promise<Reply> => {
    const watching =
      method === 'GET' && name === undefined && ['1', 'true'].includes(ctx.url.searchParams.get('watch') ?? '');
    const verb = watching ? 'watch' : verbOf(method, name !== undefined);
    const target = { resource: k.resource, name: name ?? '' };
    authorize(ctx, verb, name !== undefined ? target : { resource: k.resource }, k.namespaced ? namespace : undefined);
    const dryRun = parseDryRun(ctx.url);
    const subresource = sub === 'status' ? ('status' as const) : undefined;
    if (name === undefined) {
      if (watching) {
        const since = ctx.url.searchParams.get('resourceVersion') ?? undefined;
        const timeout = Number(ctx.url.searchParams.get('timeoutSeconds') ?? '1800') || 1800;
        const ns = k.namespaced ? namespace : undefined;
        return {
          code: 200,
          body: null,
          stream: (res) => serveWatch(res, resources, k, ns, (o) => selects(ctx, o), since, timeout),
        };
      }
      if (method === 'GET') {
        const items = resources.list(k, k.namespaced ? namespace : undefined).filter((o) => selects(ctx, o));
        const rv = String(store.revision);
        if (wantsTable(ctx.req.headers.accept)) return { code: 200, body: resourceTable(k, items, rv) };
        return {
          code: 200,
          body: {
            kind: `${k.kind}List`,
            apiVersion: k.group === '' ? 'v1' : `${k.group}/v1`,
            metadata: { resourceVersion: rv },
            items,
          },
        };
      }
      if (method === 'POST' && namespace !== undefined) {
        const body = await readJson(ctx);
        ctx.record.body = body;
        if (!isObject(body)) throw badRequest(`${k.kind} in version "v1" cannot be handled as a ${k.kind}`);
        const m = isObject(body.metadata) ? body.metadata : {};
        if (k.namespaced && m.namespace !== undefined && m.namespace !== namespace)
          throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
        decodeWrite(ctx, k, typeof m.name === 'string' ? m.name : '', body, 'create');
        if (k.namespaced && !store.namespaces.has(namespace))
          throw notFound({ resource: 'namespaces', name: namespace });
        return { code: 201, body: resources.create(k, namespace, { ...body, metadata: m }, dryRun) };
      }
      throw methodNotAllowed();
    }
    const ns = namespace ?? '';
    switch (method) {
      case 'GET': {
        const o = resources.get(k, ns, name);
        if (o === undefined) throw notFound(target);
        if (wantsTable(ctx.req.headers.accept))
          return { code: 200, body: resourceTable(k, [o], String(meta(o).resourceVersion)) };
        return { code: 200, body: o };
      }
      case 'PUT': {
        const body = await readJson(ctx);
        ctx.record.body = body;
        if (!isObject(body)) throw badRequest(`${k.kind} in version "v1" cannot be handled as a ${k.kind}`);
        if (subresource === undefined) decodeWrite(ctx, k, name, body, 'put');
        return {
          code: 200,
          body: resources.update(k, ns, name, body, {
            dryRun,
            verb: 'update',
            ...(subresource ? { subresource } : {}),
          }),
        };
      }
      case 'PATCH': {
        const patch = await readPatch(ctx);
        const current = resources.get(k, ns, name);
        if (current === undefined) throw notFound(target);
        const patched = applyPatch(current, patch, k.smp);
        if (!isObject(patched)) throw badRequest('the patch did not produce an object');
        if (subresource === undefined) decodeWrite(ctx, k, name, patched, 'patch');
        return {
          code: 200,
          body: resources.update(k, ns, name, patched, {
            dryRun,
            verb: 'patch',
            ...(subresource ? { subresource } : {}),
          }),
        };
      }
      case 'DELETE':
        return { code: 200, body: resources.delete(k, ns, name, dryRun) };
      default:
        throw methodNotAllowed();
    }
  };

  /**
   * Decodes a write of a typed kind (schemas.ts) as the API server does: a wrong type is 400, unknown
   * fields follow the request's fieldValidation (Strict: 400; Warn, the default: Warning headers;
   * Ignore), a missing required field or a failed check of the kind is 422.
   */
  const decodeWrite = (
    ctx: Ctx,
    k: { kind: string; group: string; schema?: string; validate?: ResourceKind['validate'] },
    name: string,
    body: Json,
    mode: 'create' | 'put' | 'patch',
  ): void => {
    if (k.schema === undefined) return;
    const prefix = mode === 'patch' ? '' : `${k.kind} in version "v1" cannot be handled as a ${k.kind}: `;
    let found;
    try {
      found = decodeTyped(body, k.schema);
    } catch (err) {
      if (err instanceof TypeMismatch) throw badRequest(`${prefix}${err.message}`);
      throw err;
    }
    if (found.unknownFields.length > 0) {
      const validation = ctx.url.searchParams.get('fieldValidation') ?? 'Warn';
      const texts = found.unknownFields.map((f) => `unknown field "${f}"`);
      if (validation === 'Strict') throw badRequest(`${prefix}strict decoding error: ${texts.join(', ')}`);
      if (validation === 'Warn') ctx.warnings.push(...texts);
    }
    const causes = [
      ...found.missing.map((field) => ({ field, message: 'Required value' })),
      ...(k.validate !== undefined && isObject(body) ? k.validate(body) : []),
    ];
    if (causes.length > 0) throw invalid(k.group === '' ? k.kind : `${k.kind}.${k.group}`, name, causes);
  };

  const readPatch = async (ctx: Ctx): Promise<{ kind: 'json' | 'merge' | 'strategic'; patch: Json }> => {
    const raw = await readBody(ctx.req);
    const contentType = (ctx.req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    const kind = (PATCH_TYPES as Record<string, 'json' | 'merge' | 'strategic' | undefined>)[contentType];
    if (kind === undefined) throw unsupportedMediaType(contentType);
    const patch = parseJson(raw);
    ctx.record.body = patch;
    return { kind, patch };
  };

  const applyPatch = (
    current: JsonObject,
    p: { kind: 'json' | 'merge' | 'strategic'; patch: Json },
    smp: SmpSchema,
  ): Json => {
    try {
      if (p.kind === 'json') return jsonPatch(current, p.patch);
      if (p.kind === 'merge') return mergePatch(current, p.patch);
      return strategicMergePatch(current, p.patch, smp);
    } catch (err) {
      if (err instanceof PatchDecodeError) throw badRequest(err.message);
      if (err instanceof PatchApplyError) throw patchNotApplicable();
      throw err;
    }
  };

  const verbOf = (method: string, named = true): string => {
    switch (method) {
      case 'GET':
        return named ? 'get' : 'list';
      case 'POST':
        return 'create';
      case 'PUT':
        return 'update';
      case 'PATCH':
        return 'patch';
      case 'DELETE':
        return named ? 'delete' : 'deletecollection';
      default:
        return method.toLowerCase();
    }
  };

  const authorize = (
    ctx: Ctx,
    verb: string,
    resource: { resource: string; name?: string } | undefined,
    namespace: string | undefined,
  ): void => {
    if (ctx.role === 'admin' || READ_VERBS.has(verb)) return;
    throw forbidden(ctx.user, verb, resource ?? { resource: 'serviceaccounts' }, namespace);
  };

  const namespaces = async (ctx: Ctx, method: string, name: string | undefined): Promise<Reply> => {
    const verb = verbOf(method, name !== undefined);
    authorize(ctx, verb, name !== undefined ? { resource: 'namespaces', name } : { resource: 'namespaces' }, undefined);
    if (method === 'POST' && name === undefined) return createNamespace(ctx, await readJson(ctx), parseDryRun(ctx.url));
    if (method !== 'GET') throw methodNotAllowed();
    if (name === undefined) {
      const items = [...store.namespaces.values()].filter((o) => selects(ctx, o)).sort(byName);
      const rv = String(store.revision);
      if (wantsTable(ctx.req.headers.accept)) return { code: 200, body: table('Namespace', items, rv) };
      return { code: 200, body: { kind: 'NamespaceList', apiVersion: 'v1', metadata: { resourceVersion: rv }, items } };
    }
    const ns = store.namespaces.get(name);
    if (ns === undefined) throw notFound({ resource: 'namespaces', name });
    return single(ctx, 'Namespace', ns);
  };

  /** POST /api/v1/namespaces: typed like the kinds of schemas.ts; the user's labels and annotations are kept. */
  const createNamespace = (ctx: Ctx, body: Json, dryRun: boolean): Reply => {
    ctx.record.body = body;
    const m = isObject(body) && isObject(body.metadata) ? body.metadata : {};
    const name = typeof m.name === 'string' ? m.name : '';
    decodeWrite(ctx, { kind: 'Namespace', group: '', schema: 'io.k8s.api.core.v1.Namespace' }, name, body, 'create');
    if (name === '')
      throw invalid('Namespace', '', [
        { field: 'metadata.name', message: 'Required value: name or generateName is required' },
      ]);
    if (store.namespaces.has(name)) throw alreadyExists({ resource: 'namespaces', name });
    const created = dryRun ? namespaceObject(name, randomUUID(), '', timestamp()) : clone(store.addNamespace(name));
    const cm = meta(created);
    if (dryRun) delete cm.resourceVersion;
    if (isObject(m.labels)) cm.labels = { ...m.labels, ...(isObject(cm.labels) ? cm.labels : {}) };
    if (isObject(m.annotations)) cm.annotations = clone(m.annotations);
    if (!dryRun) store.namespaces.set(name, clone(created));
    return { code: 201, body: created };
  };

  const single = (ctx: Ctx, kind: 'Namespace' | 'ServiceAccount', o: JsonObject): Reply => {
    if (wantsTable(ctx.req.headers.accept))
      return { code: 200, body: table(kind, [o], String(meta(o).resourceVersion)) };
    return { code: 200, body: o };
  };

  const listServiceAccounts = (ctx: Ctx, namespace: string | undefined): Reply => {
    const maps =
      namespace !== undefined
        ? [store.serviceAccounts.get(namespace) ?? new Map<string, JsonObject>()]
        : [...store.serviceAccounts.values()];
    const items = maps
      .flatMap((m) => [...m.values()])
      .filter((o) => selects(ctx, o))
      .sort((a, b) => String(meta(a).namespace).localeCompare(String(meta(b).namespace)) || byName(a, b));
    const rv = String(store.revision);
    if (wantsTable(ctx.req.headers.accept)) return { code: 200, body: table('ServiceAccount', items, rv) };
    return {
      code: 200,
      body: { kind: 'ServiceAccountList', apiVersion: 'v1', metadata: { resourceVersion: rv }, items },
    };
  };

  const serviceAccounts = async (
    ctx: Ctx,
    method: string,
    namespace: string,
    name: string | undefined,
  ): Promise<Reply> => {
    const verb = verbOf(method, name !== undefined);
    authorize(
      ctx,
      verb,
      name !== undefined ? { resource: 'serviceaccounts', name } : { resource: 'serviceaccounts' },
      namespace,
    );
    const dryRun = parseDryRun(ctx.url);
    if (name === undefined) {
      if (method === 'GET') return listServiceAccounts(ctx, namespace);
      if (method === 'POST') return create(ctx, namespace, await readJson(ctx), dryRun);
      throw methodNotAllowed();
    }
    const target = { resource: 'serviceaccounts', name };
    switch (method) {
      case 'GET': {
        const sa = store.getServiceAccount(namespace, name);
        if (sa === undefined) throw notFound(target);
        return single(ctx, 'ServiceAccount', sa);
      }
      case 'PUT': {
        const body = await readJson(ctx);
        if (store.getServiceAccount(namespace, name) === undefined) throw notFound(target);
        runWriteHook({ verb: 'update', namespace, name });
        return update(ctx, namespace, name, body, dryRun, 'put');
      }
      case 'PATCH': {
        const raw = await readBody(ctx.req);
        const contentType = (ctx.req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
        const kind = (PATCH_TYPES as Record<string, 'json' | 'merge' | 'strategic' | undefined>)[contentType];
        if (kind === undefined) throw unsupportedMediaType(contentType);
        const patch = parseJson(raw);
        ctx.record.body = patch;
        if (store.getServiceAccount(namespace, name) === undefined) throw notFound(target);
        runWriteHook({ verb: 'patch', namespace, name });
        const current = store.getServiceAccount(namespace, name);
        if (current === undefined) throw notFound(target);
        let patched: Json;
        try {
          if (kind === 'json') patched = jsonPatch(current, patch);
          else if (kind === 'merge') patched = mergePatch(current, patch);
          else patched = strategicMergePatch(current, patch, serviceAccountSmp);
        } catch (err) {
          if (err instanceof PatchDecodeError) throw badRequest(err.message);
          if (err instanceof PatchApplyError) throw patchNotApplicable();
          throw err;
        }
        return update(ctx, namespace, name, patched, dryRun, 'patch');
      }
      case 'DELETE': {
        const sa = store.getServiceAccount(namespace, name);
        if (sa === undefined) throw notFound(target);
        runWriteHook({ verb: 'delete', namespace, name });
        if (!dryRun) store.serviceAccounts.get(namespace)?.delete(name);
        return { code: 200, body: sa };
      }
      default:
        throw methodNotAllowed();
    }
  };

  /** Decodes a body as a ServiceAccount, applying the request's fieldValidation to unknown fields. */
  const decode = (ctx: Ctx, body: Json, mode: 'put' | 'patch' | 'create'): JsonObject => {
    let decoded;
    try {
      decoded = decodeServiceAccount(body);
    } catch (err) {
      if (err instanceof DecodeError) {
        throw badRequest(
          mode === 'patch'
            ? err.message
            : `ServiceAccount in version "v1" cannot be handled as a ServiceAccount: ${err.message}`,
        );
      }
      throw err;
    }
    if (decoded.unknownFields.length > 0) {
      const validation = ctx.url.searchParams.get('fieldValidation') ?? 'Warn';
      const texts = decoded.unknownFields.map((f) => `unknown field "${f}"`);
      if (validation === 'Strict') {
        const prefix = mode === 'patch' ? '' : 'ServiceAccount in version "v1" cannot be handled as a ServiceAccount: ';
        throw badRequest(`${prefix}strict decoding error: ${texts.join(', ')}`);
      }
      if (validation === 'Warn') ctx.warnings.push(...texts);
    }
    const o = decoded.object;
    if (o.kind !== undefined && o.kind !== 'ServiceAccount') {
      throw badRequest(
        `ServiceAccount in version "v1" cannot be handled as a ServiceAccount: the kind "${String(o.kind)}" does not match`,
      );
    }
    return o;
  };

  const update = (
    ctx: Ctx,
    namespace: string,
    name: string,
    body: Json,
    dryRun: boolean,
    mode: 'put' | 'patch',
  ): Reply => {
    if (mode === 'put') ctx.record.body = body;
    const current = store.getServiceAccount(namespace, name);
    if (current === undefined) throw notFound({ resource: 'serviceaccounts', name });
    const next = decode(ctx, body, mode);
    const m = meta(next);
    const cm = meta(current);
    if (m.name !== undefined && m.name !== name) {
      throw badRequest(`the name of the object (${String(m.name)}) does not match the name on the URL (${name})`);
    }
    if (m.namespace !== undefined && m.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    if (m.uid !== undefined && m.uid !== cm.uid) {
      throw invalid('ServiceAccount', name, [
        { field: 'metadata.uid', message: `Invalid value: "${String(m.uid)}": field is immutable` },
      ]);
    }
    // A resourceVersion in the body (a PUT's, or one a patch wrote) is a precondition; none means last write wins.
    if (m.resourceVersion !== undefined && m.resourceVersion !== cm.resourceVersion)
      throw conflict({ resource: 'serviceaccounts', name });
    const candidate = canonical({
      ...next,
      metadata: {
        ...m,
        name,
        namespace,
        uid: cm.uid ?? null,
        resourceVersion: cm.resourceVersion ?? null,
        creationTimestamp: cm.creationTimestamp ?? null,
      },
    });
    // Like the real storage layer, a write that changes nothing is not a write: no new resourceVersion.
    if (deepEqual(candidate, current)) return { code: 200, body: current };
    if (dryRun) return { code: 200, body: candidate };
    return { code: 200, body: store.replaceServiceAccount(namespace, name, candidate) };
  };

  const create = (ctx: Ctx, namespace: string, body: Json, dryRun: boolean): Reply => {
    ctx.record.body = body;
    const next = decode(ctx, body, 'create');
    const m = meta(next);
    if (m.namespace !== undefined && m.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    if (typeof m.name !== 'string' || m.name === '') {
      throw invalid('ServiceAccount', '', [
        { field: 'metadata.name', message: 'Required value: name or generateName is required' },
      ]);
    }
    runWriteHook({ verb: 'create', namespace, name: m.name });
    if (!store.namespaces.has(namespace)) throw notFound({ resource: 'namespaces', name: namespace });
    if (store.getServiceAccount(namespace, m.name) !== undefined)
      throw alreadyExists({ resource: 'serviceaccounts', name: m.name });
    if (m.resourceVersion !== undefined) throw badRequest('resourceVersion should not be set on objects to be created');
    if (dryRun) {
      // Dry run fills the system fields but stores nothing, so no resourceVersion is consumed.
      return {
        code: 201,
        body: canonical({ ...next, metadata: { ...m, namespace, uid: randomUUID(), creationTimestamp: timestamp() } }),
      };
    }
    const { uid: _u, creationTimestamp: _c, ...userMeta } = m;
    return { code: 201, body: store.insertServiceAccount(namespace, { ...next, metadata: userMeta }) };
  };

  const server: Server = createServer({ cert, key }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
  const sockets = new Set<Socket>();
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  serverAddress = `${host}:${port}`;
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        for (const s of sockets) s.destroy();
      }),
    state: () => store,
    mutate: (namespace, name, fn) => store.mutate(namespace, name, fn),
    onNextWrite: (fn) => {
      nextWriteHook = fn;
    },
    requests: () => log.map((r) => clone(r as unknown as Json) as unknown as RequestRecord),
    resources: () => resources,
    writes: (resource) =>
      resources.writes
        .filter((w) => resource === undefined || w.resource === resource)
        .map((w) => ({ ...w, object: clone(w.object) })),
  };
}

function byName(a: JsonObject, b: JsonObject): number {
  return String(meta(a).name).localeCompare(String(meta(b).name));
}

function parseDryRun(url: URL): boolean {
  const values = url.searchParams.getAll('dryRun');
  for (const v of values) if (v !== 'All') throw badRequest(`Invalid dry run value: ${v}; supported values: [All]`);
  return values.length > 0;
}

/** Field and label selectors kubectl can send (`--field-selector metadata.name=x`, `-l k=v`). */
function selects(ctx: Ctx, o: JsonObject): boolean {
  const m = meta(o);
  const fields = ctx.url.searchParams.get('fieldSelector');
  if (fields) {
    for (const term of fields.split(',')) {
      const t = /^([^!=]+)(==|=|!=)(.*)$/.exec(term.trim());
      if (t === null) throw badRequest(`invalid selector: '${fields}'; can't understand '${term}'`);
      const [, field = '', op, value] = t;
      if (field !== 'metadata.name' && field !== 'metadata.namespace') {
        throw badRequest(`"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"`);
      }
      const actual = String(m[field.slice('metadata.'.length)] ?? '');
      if ((op === '!=') === (actual === value)) return false;
    }
  }
  const labels = ctx.url.searchParams.get('labelSelector');
  if (labels) {
    const have = isObject(m.labels) ? m.labels : {};
    for (const term of labels.split(',')) {
      const t = /^\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(term);
      if (t === null) {
        const key = term.trim().replace(/^!/, '');
        if (key in have === term.trim().startsWith('!')) return false;
        continue;
      }
      const [, key = '', op, value] = t;
      if ((op === '!=') === (have[key] === value)) return false;
    }
  }
  return true;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(
          new ApiError({
            kind: 'Status',
            apiVersion: 'v1',
            metadata: {},
            status: 'Failure',
            message: 'Request entity too large: limit is 3145728',
            reason: 'RequestEntityTooLarge',
            code: 413,
          }),
        );
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseJson(raw: Buffer): Json {
  try {
    return JSON.parse(raw.toString('utf8')) as Json;
  } catch (err) {
    throw badRequest(`error decoding patch: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Reads a write's body: JSON, or protobuf as typed kubectl commands (`create serviceaccount`) send it. */
async function readJson(ctx: Ctx): Promise<Json> {
  const raw = await readBody(ctx.req);
  const contentType = (ctx.req.headers['content-type'] ?? '').split(';')[0]?.trim();
  try {
    if (contentType === PROTOBUF) return decodeProtobufObject(raw);
    return JSON.parse(raw.toString('utf8')) as Json;
  } catch (err) {
    throw badRequest(
      `the body of the request was in an unknown format: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}
