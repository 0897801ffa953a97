import { isObject, type Json, type JsonObject } from './json-patch.js';

/**
 * Typed schemas for the kinds `deploy/kubernetes/agent/` is made of (Namespace, ConfigMap,
 * DaemonSet, ClusterRole, ClusterRoleBinding, Role, RoleBinding), as OpenAPI v3 component schemas
 * named as kube-apiserver names them. One definition serves both sides: /openapi/v3 documents
 * (openapi.ts) and the decoding of a write ({@link decodeTyped}), so what kubectl reads and what
 * the server enforces cannot differ.
 *
 * Decoding follows the API server's JSON decoder: a value of the wrong JSON type is a 400 in
 * encoding/json's words (`cannot unmarshal string into Go struct field PodSpec.spec.template.spec.hostPID
 * of type bool`), a field the type does not declare is reported by its path (strict decoding: 400,
 * otherwise a warning), and a missing required field is a 422 `Required value`. The types carry the
 * fields the agent's manifests use and their common neighbours, not the whole of k8s.io/api: a
 * field missing here is refused as unknown, never silently accepted.
 */

export type Schema = JsonObject;

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const CORE = 'io.k8s.api.core.v1';
const APPS = 'io.k8s.api.apps.v1';
const RBAC = 'io.k8s.api.rbac.v1';

const string: Schema = { type: 'string' };
const bool: Schema = { type: 'boolean' };
const int32: Schema = { type: 'integer', format: 'int32' };
const int64: Schema = { type: 'integer', format: 'int64' };
const strings: Schema = { type: 'array', items: string };
const stringMap: Schema = { type: 'object', additionalProperties: string };
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const list = (name: string): Schema => ({ type: 'array', items: ref(name) });
const struct = (properties: Record<string, Schema>, required?: string[]): Schema => ({
  type: 'object',
  properties,
  ...(required !== undefined ? { required } : {}),
});
/** Where the real type says `metadata` (ObjectMeta, with its default, as the real documents write it). */
const metadata: Schema = { default: {}, allOf: [ref(`${META}.ObjectMeta`)] };
const typeMeta = { apiVersion: string, kind: string };
/** Quantity and IntOrString: a JSON string or number. */
const intOrString: Schema = { 'x-kubernetes-int-or-string': true };
const gvk = (group: string, kind: string): Json => [{ group, kind, version: 'v1' }];

/** Every definition, by OpenAPI name. */
export const DEFINITIONS: Record<string, Schema> = {
  [`${META}.ObjectMeta`]: struct({
    annotations: stringMap,
    creationTimestamp: ref(`${META}.Time`),
    deletionGracePeriodSeconds: int64,
    deletionTimestamp: ref(`${META}.Time`),
    finalizers: { ...strings, 'x-kubernetes-patch-strategy': 'merge' },
    generateName: string,
    generation: int64,
    labels: stringMap,
    managedFields: { type: 'array', items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
    name: string,
    namespace: string,
    ownerReferences: {
      ...list(`${META}.OwnerReference`),
      'x-kubernetes-patch-merge-key': 'uid',
      'x-kubernetes-patch-strategy': 'merge',
    },
    resourceVersion: string,
    selfLink: string,
    uid: string,
  }),
  [`${META}.OwnerReference`]: struct(
    { apiVersion: string, blockOwnerDeletion: bool, controller: bool, kind: string, name: string, uid: string },
    ['apiVersion', 'kind', 'name', 'uid'],
  ),
  [`${META}.Time`]: { type: 'string', format: 'date-time' },
  [`${META}.LabelSelector`]: struct({
    matchExpressions: list(`${META}.LabelSelectorRequirement`),
    matchLabels: stringMap,
  }),
  [`${META}.LabelSelectorRequirement`]: struct({ key: string, operator: string, values: strings }, ['key', 'operator']),
  [`${META}.Patch`]: {
    description: 'Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.',
    type: 'object',
  },
  'io.k8s.apimachinery.pkg.api.resource.Quantity': intOrString,
  'io.k8s.apimachinery.pkg.util.intstr.IntOrString': intOrString,

  [`${CORE}.Namespace`]: {
    ...struct({
      ...typeMeta,
      metadata,
      spec: ref(`${CORE}.NamespaceSpec`),
      status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    }),
    'x-kubernetes-group-version-kind': gvk('', 'Namespace'),
  },
  [`${CORE}.NamespaceSpec`]: struct({ finalizers: strings }),
  [`${CORE}.ConfigMap`]: {
    ...struct({ ...typeMeta, metadata, data: stringMap, binaryData: stringMap, immutable: bool }),
    'x-kubernetes-group-version-kind': gvk('', 'ConfigMap'),
  },
  [`${CORE}.PodTemplateSpec`]: struct({ metadata, spec: ref(`${CORE}.PodSpec`) }),
  [`${CORE}.PodSpec`]: struct(
    {
      affinity: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
      automountServiceAccountToken: bool,
      containers: { ...list(`${CORE}.Container`), 'x-kubernetes-patch-merge-key': 'name' },
      dnsPolicy: string,
      hostIPC: bool,
      hostNetwork: bool,
      hostPID: bool,
      initContainers: list(`${CORE}.Container`),
      nodeSelector: stringMap,
      priorityClassName: string,
      restartPolicy: string,
      securityContext: ref(`${CORE}.PodSecurityContext`),
      serviceAccount: string,
      serviceAccountName: string,
      terminationGracePeriodSeconds: int64,
      tolerations: list(`${CORE}.Toleration`),
      volumes: { ...list(`${CORE}.Volume`), 'x-kubernetes-patch-merge-key': 'name' },
    },
    ['containers'],
  ),
  [`${CORE}.Container`]: struct(
    {
      args: strings,
      command: strings,
      env: list(`${CORE}.EnvVar`),
      image: string,
      imagePullPolicy: string,
      name: string,
      resources: ref(`${CORE}.ResourceRequirements`),
      securityContext: ref(`${CORE}.SecurityContext`),
      terminationMessagePolicy: string,
      volumeMounts: list(`${CORE}.VolumeMount`),
      workingDir: string,
    },
    ['name'],
  ),
  [`${CORE}.EnvVar`]: struct({ name: string, value: string, valueFrom: ref(`${CORE}.EnvVarSource`) }, ['name']),
  [`${CORE}.EnvVarSource`]: struct({
    configMapKeyRef: ref(`${CORE}.ConfigMapKeySelector`),
    fieldRef: ref(`${CORE}.ObjectFieldSelector`),
    secretKeyRef: ref(`${CORE}.SecretKeySelector`),
  }),
  [`${CORE}.ObjectFieldSelector`]: struct({ apiVersion: string, fieldPath: string }, ['fieldPath']),
  [`${CORE}.ConfigMapKeySelector`]: struct({ key: string, name: string, optional: bool }, ['key']),
  [`${CORE}.SecretKeySelector`]: struct({ key: string, name: string, optional: bool }, ['key']),
  [`${CORE}.ResourceRequirements`]: struct({
    limits: { type: 'object', additionalProperties: ref('io.k8s.apimachinery.pkg.api.resource.Quantity') },
    requests: { type: 'object', additionalProperties: ref('io.k8s.apimachinery.pkg.api.resource.Quantity') },
  }),
  [`${CORE}.VolumeMount`]: struct(
    { mountPath: string, mountPropagation: string, name: string, readOnly: bool, subPath: string },
    ['name', 'mountPath'],
  ),
  [`${CORE}.Volume`]: struct(
    {
      configMap: ref(`${CORE}.ConfigMapVolumeSource`),
      emptyDir: ref(`${CORE}.EmptyDirVolumeSource`),
      hostPath: ref(`${CORE}.HostPathVolumeSource`),
      name: string,
      secret: ref(`${CORE}.SecretVolumeSource`),
    },
    ['name'],
  ),
  [`${CORE}.HostPathVolumeSource`]: struct({ path: string, type: string }, ['path']),
  [`${CORE}.EmptyDirVolumeSource`]: struct({
    medium: string,
    sizeLimit: ref('io.k8s.apimachinery.pkg.api.resource.Quantity'),
  }),
  [`${CORE}.KeyToPath`]: struct({ key: string, mode: int32, path: string }, ['key', 'path']),
  [`${CORE}.ConfigMapVolumeSource`]: struct({
    defaultMode: int32,
    items: list(`${CORE}.KeyToPath`),
    name: string,
    optional: bool,
  }),
  [`${CORE}.SecretVolumeSource`]: struct({
    defaultMode: int32,
    items: list(`${CORE}.KeyToPath`),
    optional: bool,
    secretName: string,
  }),
  [`${CORE}.Toleration`]: struct({
    effect: string,
    key: string,
    operator: string,
    tolerationSeconds: int64,
    value: string,
  }),
  [`${CORE}.Capabilities`]: struct({ add: strings, drop: strings }),
  [`${CORE}.SeccompProfile`]: struct({ localhostProfile: string, type: string }, ['type']),
  [`${CORE}.AppArmorProfile`]: struct({ localhostProfile: string, type: string }, ['type']),
  [`${CORE}.SELinuxOptions`]: struct({ level: string, role: string, type: string, user: string }),
  [`${CORE}.SecurityContext`]: struct({
    allowPrivilegeEscalation: bool,
    appArmorProfile: ref(`${CORE}.AppArmorProfile`),
    capabilities: ref(`${CORE}.Capabilities`),
    privileged: bool,
    procMount: string,
    readOnlyRootFilesystem: bool,
    runAsGroup: int64,
    runAsNonRoot: bool,
    runAsUser: int64,
    seLinuxOptions: ref(`${CORE}.SELinuxOptions`),
    seccompProfile: ref(`${CORE}.SeccompProfile`),
  }),
  [`${CORE}.PodSecurityContext`]: struct({
    appArmorProfile: ref(`${CORE}.AppArmorProfile`),
    fsGroup: int64,
    runAsGroup: int64,
    runAsNonRoot: bool,
    runAsUser: int64,
    seLinuxOptions: ref(`${CORE}.SELinuxOptions`),
    seccompProfile: ref(`${CORE}.SeccompProfile`),
    supplementalGroups: { type: 'array', items: int64 },
  }),

  [`${APPS}.DaemonSet`]: {
    ...struct({
      ...typeMeta,
      metadata,
      spec: ref(`${APPS}.DaemonSetSpec`),
      status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    }),
    'x-kubernetes-group-version-kind': gvk('apps', 'DaemonSet'),
  },
  [`${APPS}.DaemonSetSpec`]: struct(
    {
      minReadySeconds: int32,
      revisionHistoryLimit: int32,
      selector: ref(`${META}.LabelSelector`),
      template: ref(`${CORE}.PodTemplateSpec`),
      updateStrategy: ref(`${APPS}.DaemonSetUpdateStrategy`),
    },
    ['selector', 'template'],
  ),
  [`${APPS}.DaemonSetUpdateStrategy`]: struct({
    rollingUpdate: ref(`${APPS}.RollingUpdateDaemonSet`),
    type: string,
  }),
  [`${APPS}.RollingUpdateDaemonSet`]: struct({
    maxSurge: ref('io.k8s.apimachinery.pkg.util.intstr.IntOrString'),
    maxUnavailable: ref('io.k8s.apimachinery.pkg.util.intstr.IntOrString'),
  }),

  [`${RBAC}.PolicyRule`]: struct(
    { apiGroups: strings, nonResourceURLs: strings, resourceNames: strings, resources: strings, verbs: strings },
    ['verbs'],
  ),
  [`${RBAC}.AggregationRule`]: struct({ clusterRoleSelectors: list(`${META}.LabelSelector`) }),
  [`${RBAC}.ClusterRole`]: {
    ...struct({
      ...typeMeta,
      metadata,
      aggregationRule: ref(`${RBAC}.AggregationRule`),
      rules: list(`${RBAC}.PolicyRule`),
    }),
    'x-kubernetes-group-version-kind': gvk('rbac.authorization.k8s.io', 'ClusterRole'),
  },
  [`${RBAC}.Role`]: {
    ...struct({ ...typeMeta, metadata, rules: list(`${RBAC}.PolicyRule`) }),
    'x-kubernetes-group-version-kind': gvk('rbac.authorization.k8s.io', 'Role'),
  },
  [`${RBAC}.Subject`]: struct({ apiGroup: string, kind: string, name: string, namespace: string }, ['kind', 'name']),
  [`${RBAC}.RoleRef`]: struct({ apiGroup: string, kind: string, name: string }, ['apiGroup', 'kind', 'name']),
  [`${RBAC}.ClusterRoleBinding`]: {
    ...struct({ ...typeMeta, metadata, roleRef: ref(`${RBAC}.RoleRef`), subjects: list(`${RBAC}.Subject`) }, [
      'roleRef',
    ]),
    'x-kubernetes-group-version-kind': gvk('rbac.authorization.k8s.io', 'ClusterRoleBinding'),
  },
  [`${RBAC}.RoleBinding`]: {
    ...struct({ ...typeMeta, metadata, roleRef: ref(`${RBAC}.RoleRef`), subjects: list(`${RBAC}.Subject`) }, [
      'roleRef',
    ]),
    'x-kubernetes-group-version-kind': gvk('rbac.authorization.k8s.io', 'RoleBinding'),
  },
};

/** A write that does not decode (400, in encoding/json's words). */
export class TypeMismatch extends Error {}

/** What decoding found besides type errors: unknown fields (dotted paths) and missing required ones. */
export interface TypedCheck {
  unknownFields: string[];
  missing: string[];
}

const refName = (s: Schema): string | undefined => {
  const first = Array.isArray(s.allOf) ? s.allOf[0] : undefined;
  const r =
    typeof s.$ref === 'string' ? s.$ref : isObject(first) && typeof first.$ref === 'string' ? first.$ref : undefined;
  return r?.replace('#/components/schemas/', '');
};

function resolve(s: Schema): { schema: Schema; name?: string } {
  const name = refName(s);
  if (name === undefined) return { schema: s };
  const schema = DEFINITIONS[name];
  if (schema === undefined) throw new Error(`schema ${name} is not defined`);
  return { schema, name };
}

const short = (name: string): string => name.split('.').at(-1) ?? name;

/** The Go type encoding/json names in its message. */
function goType(s: Schema): string {
  const { schema, name } = resolve(s);
  if (schema['x-kubernetes-int-or-string'] === true)
    return name?.endsWith('Quantity') ? 'resource.Quantity' : 'intstr.IntOrString';
  if (name !== undefined && schema.type === 'object') return `v1.${short(name)}`;
  switch (schema.type) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'bool';
    case 'integer':
      return schema.format === 'int32' ? 'int32' : 'int64';
    case 'array':
      return `[]${goType(isObject(schema.items) ? schema.items : {})}`;
    case 'object':
      return isObject(schema.additionalProperties)
        ? `map[string]${goType(schema.additionalProperties)}`
        : 'map[string]interface {}';
    default:
      return 'interface {}';
  }
}

function jsonKind(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return 'number';
  return typeof v === 'object' ? 'object' : typeof v;
}

/**
 * Checks `value` against `s`. `owner` is the Go struct holding the field, `goPath` the field's path
 * as encoding/json prints it (no list indices), `path` as the strict decoder prints unknown fields.
 */
function check(value: Json, s: Schema, owner: string, goPath: string, path: string, found: TypedCheck): void {
  if (value === null) return; // null is "unset" for every field the decoder fills
  const { schema, name } = resolve(s);
  const fail = (): never => {
    throw new TypeMismatch(
      `json: cannot unmarshal ${jsonKind(value)} into Go struct field ${owner}.${goPath} of type ${goType(s)}`,
    );
  };
  if (schema['x-kubernetes-int-or-string'] === true) {
    if (typeof value !== 'string' && typeof value !== 'number') fail();
    return;
  }
  if (schema['x-kubernetes-preserve-unknown-fields'] === true && schema.properties === undefined) return;
  switch (schema.type) {
    case 'string':
      if (typeof value !== 'string') fail();
      return;
    case 'boolean':
      if (typeof value !== 'boolean') fail();
      return;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) fail();
      return;
    case 'array': {
      if (!Array.isArray(value)) fail();
      const items = isObject(schema.items) ? schema.items : {};
      (value as Json[]).forEach((el, i) => check(el, items, owner, goPath, `${path}[${i}]`, found));
      return;
    }
    case 'object': {
      if (!isObject(value)) fail();
      const v = value as JsonObject;
      if (isObject(schema.additionalProperties)) {
        for (const [k, x] of Object.entries(v))
          check(x, schema.additionalProperties, owner, goPath, `${path}.${k}`, found);
        return;
      }
      if (!isObject(schema.properties)) return;
      const props = schema.properties;
      const here = name !== undefined ? short(name) : owner;
      for (const [k, x] of Object.entries(v)) {
        const sub = props[k];
        const childPath = path === '' ? k : `${path}.${k}`;
        if (!isObject(sub)) {
          if (schema['x-kubernetes-preserve-unknown-fields'] !== true) found.unknownFields.push(childPath);
          continue;
        }
        check(x, sub, here, goPath === '' ? k : `${goPath}.${k}`, childPath, found);
      }
      const required = Array.isArray(schema.required) ? schema.required : [];
      for (const r of required)
        if (typeof r === 'string' && (v[r] === undefined || v[r] === null))
          found.missing.push(path === '' ? r : `${path}.${r}`);
      return;
    }
  }
}

/**
 * Decodes a body against the definition `schema` (an OpenAPI name): throws {@link TypeMismatch}
 * for a wrong JSON type, and returns the unknown and missing required fields.
 */
export function decodeTyped(body: Json, schema: string): TypedCheck {
  const found: TypedCheck = { unknownFields: [], missing: [] };
  if (!isObject(body))
    throw new TypeMismatch(`json: cannot unmarshal ${jsonKind(body)} into Go value of type v1.${short(schema)}`);
  check(body, ref(schema), short(schema), '', '', found);
  return found;
}
