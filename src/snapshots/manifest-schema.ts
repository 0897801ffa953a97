/**
 * The strict shape of a snapshot manifest, checked before anything reads a field of it: unknown
 * fields, wrong types, relative or non-normalised paths, `..`, NUL, a digest that is not a sha256,
 * a module that does not manage that kind of resource are refused with one sentence, never a stack
 * trace. A manifest records data only (DECISIONS.md): no command, no binary.
 *
 * Format 2 (current) records the module that saved each resource and is authenticated (HMAC, see
 * key.ts). Format 1 (before signing) is read too, so a new trustplay restores old snapshots, but only
 * with `restore --allow-unsigned`: anyone can write an "old format" file.
 */
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { newAjv } from '../playbook/schema/ajv.js';
import { fileRestoreProblem, pathProblem, saRestoreProblem, SNAPSHOT_MODULES } from './managed-paths.js';

/** The format written today. */
export const MANIFEST_VERSION = 2;
/** Formats this trustplay reads. */
export const READABLE_VERSIONS = [1, 2] as const;

const RUN_ID = '^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$';
const HEX64 = '^[0-9a-f]{64}$';
const K8S_NAME = '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$';
// No control characters in any string a person may see in a listing.
const PRINTABLE = '^[^\\u0000-\\u001f\\u007f]*$';
const id = { type: 'integer', minimum: 0, maximum: 4294967294 } as const;
const text = (max: number) => ({ type: 'string', maxLength: max, pattern: PRINTABLE }) as const;
const absPath = { type: 'string', minLength: 1, maxLength: 4096, pattern: '^/[^\\u0000\\n\\r]*$' } as const;

function fileSchema(v: 1 | 2) {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['kind', 'path', 'exists', ...(v === 2 ? ['module'] : [])],
    properties: {
      kind: { const: 'file' },
      ...(v === 2 ? { module: { enum: SNAPSHOT_MODULES } } : {}),
      path: absPath,
      exists: { type: 'boolean' },
      mode: { type: 'integer', minimum: 0, maximum: 0o7777 },
      uid: id,
      gid: id,
      blob: { type: 'string', pattern: HEX64 },
      size: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      ...(v === 2
        ? {
            // A config.toml whose restore needs containerd restarted: which one, and where its CRI answers.
            restart: {
              type: 'object',
              additionalProperties: false,
              required: ['configFile'],
              properties: {
                configFile: absPath,
                socket: absPath,
                unit: { type: 'string', maxLength: 256, pattern: '^[A-Za-z0-9@._:-]+$' },
              },
            },
          }
        : {}),
    },
  };
}

function saSchema(v: 1 | 2) {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['kind', 'namespace', 'name', 'imagePullSecrets', ...(v === 2 ? ['module'] : [])],
    properties: {
      kind: { const: 'serviceaccount' },
      ...(v === 2 ? { module: { enum: SNAPSHOT_MODULES } } : {}),
      namespace: { type: 'string', maxLength: 253, pattern: K8S_NAME },
      name: { type: 'string', maxLength: 253, pattern: K8S_NAME },
      kubeconfig: absPath,
      context: text(1024),
      // Format 1 recorded the kubectl binary; it is read so old manifests load, and never used.
      ...(v === 1 ? { kubectl: text(4096) } : {}),
      imagePullSecrets: {
        oneOf: [
          { type: 'null' },
          {
            type: 'array',
            maxItems: 10000,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['name'],
              properties: { name: { type: 'string', maxLength: 253, pattern: K8S_NAME } },
            },
          },
        ],
      },
    },
  };
}

function manifestSchema(v: 1 | 2) {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['version', 'runId', 'time', 'command', 'complete', 'hosts', ...(v === 2 ? ['mac'] : [])],
    properties: {
      version: { const: v },
      runId: { type: 'string', pattern: RUN_ID },
      time: { type: 'string', pattern: '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?Z$' },
      command: text(8192),
      playbook: {
        type: 'object',
        additionalProperties: false,
        required: ['path', 'digest'],
        properties: { path: text(4096), digest: { type: 'string', pattern: HEX64 } },
      },
      inventory: text(4096),
      complete: { type: 'boolean' },
      // Set by a later run that found this one interrupted and finished or rolled it back.
      interrupted: { type: 'object', maxProperties: 64 },
      hosts: {
        type: 'object',
        maxProperties: 100000,
        propertyNames: { maxLength: 1024, pattern: '^[^\\u0000-\\u001f\\u007f]+$' },
        additionalProperties: {
          type: 'object',
          additionalProperties: false,
          required: ['facts', 'resources'],
          properties: {
            facts: { type: 'object' },
            resources: {
              type: 'array',
              maxItems: 100000,
              items: { oneOf: [fileSchema(v), saSchema(v)] },
            },
          },
        },
      },
      ...(v === 2
        ? {
            mac: {
              type: 'object',
              additionalProperties: false,
              required: ['alg', 'keyId', 'value'],
              properties: {
                alg: { const: 'hmac-sha256' },
                keyId: { type: 'string', pattern: '^[0-9a-f]{16}$' },
                value: { type: 'string', pattern: HEX64 },
              },
            },
          }
        : {}),
    },
  };
}

let validators: Record<1 | 2, ValidateFunction> | undefined;

function validatorFor(v: 1 | 2): ValidateFunction {
  // Compiled on first use: only restore and `snapshots` read manifests, never a run's hot path.
  validators ??= (() => {
    const ajv = newAjv('loader', { allErrors: false });
    return { 1: ajv.compile(manifestSchema(1)), 2: ajv.compile(manifestSchema(2)) };
  })();
  return validators[v];
}

/** The first shape problem of a document claiming format `v`, as "at <where>: <what>", or null. */
export function schemaProblem(doc: unknown, v: 1 | 2): string | null {
  const validate = validatorFor(v);
  if (validate(doc)) return null;
  const e = validate.errors?.[0];
  if (!e) return 'it does not have the shape of a manifest';
  const where = e.instancePath || '(top level)';
  const detail =
    e.keyword === 'additionalProperties'
      ? `unknown field \`${String((e.params as { additionalProperty: string }).additionalProperty).slice(0, 80)}\``
      : e.keyword === 'oneOf'
        ? 'it is neither a saved file nor a saved ServiceAccount of this format'
        : (e.message ?? 'invalid');
  return `at ${where}: ${detail}`;
}

interface ResourceLike {
  kind: string;
  module?: string;
  path?: string;
  exists?: boolean;
  blob?: string;
  restart?: { configFile: string; socket?: string };
  kubeconfig?: string;
}

/** Checks the schema cannot express: paths normalised, blob iff content, module manages that kind. */
export function semanticProblem(doc: {
  hosts: Record<string, { resources: ResourceLike[] }>;
  playbook?: unknown;
}): string | null {
  for (const [host, h] of Object.entries(doc.hosts)) {
    for (const [i, r] of h.resources.entries()) {
      const where = `${host}, resource ${i + 1}`;
      if (r.kind === 'file') {
        const p = fileRestoreProblem(r.module, r.path!);
        if (p) return `${where}: ${p}`;
        if (r.exists && !r.blob) return `${where}: ${r.path} existed but has no content digest`;
        if (!r.exists && r.blob) return `${where}: ${r.path} did not exist but has a content digest`;
        for (const q of [r.restart?.configFile, r.restart?.socket]) {
          const bad = q === undefined ? null : pathProblem(q);
          if (bad) return `${where}: a restart path is refused: ${bad}`;
        }
      } else {
        const p = saRestoreProblem(r.module);
        if (p) return `${where}: ${p}`;
        const bad = r.kubeconfig === undefined ? null : pathProblem(r.kubeconfig);
        if (bad) return `${where}: its kubeconfig path is refused: ${bad}`;
      }
    }
  }
  return null;
}
