import type { Json, JsonObject } from './json-patch.js';

/**
 * Decoding of the Kubernetes protobuf wire format for the few bodies kubectl sends that way:
 * typed commands such as `kubectl create serviceaccount` post `application/vnd.kubernetes.protobuf`
 * (a `k8s\0` magic, then a runtime.Unknown envelope whose `raw` is the object's message).
 * Field numbers come from k8s.io/api/core/v1/generated.proto and apimachinery's meta/v1.
 */

/** The content type typed clients use. */
export const PROTOBUF = 'application/vnd.kubernetes.protobuf';

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

interface Field {
  no: number;
  wire: number;
  varint?: bigint;
  bytes?: Buffer;
}

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const b = buf[pos];
    if (b === undefined) throw new Error('truncated varint');
    pos += 1;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [tag, p] = readVarint(buf, pos);
    pos = p;
    const no = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (wire === 0) {
      const [v, q] = readVarint(buf, pos);
      out.push({ no, wire, varint: v });
      pos = q;
    } else if (wire === 2) {
      const [len, q] = readVarint(buf, pos);
      const end = q + Number(len);
      if (end > buf.length) throw new Error('truncated length-delimited field');
      out.push({ no, wire, bytes: buf.subarray(q, end) });
      pos = end;
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
  }
  return out;
}

type Shape = Record<
  number,
  [string, 'string' | 'int' | 'bool' | 'time' | 'map' | 'strings' | { list: Shape } | { msg: Shape }]
>;

const objectReference: Shape = {
  1: ['kind', 'string'],
  2: ['namespace', 'string'],
  3: ['name', 'string'],
  4: ['uid', 'string'],
  5: ['apiVersion', 'string'],
  6: ['resourceVersion', 'string'],
  7: ['fieldPath', 'string'],
};
const ownerReference: Shape = {
  1: ['kind', 'string'],
  3: ['name', 'string'],
  4: ['uid', 'string'],
  5: ['apiVersion', 'string'],
  6: ['controller', 'bool'],
  7: ['blockOwnerDeletion', 'bool'],
};
const objectMeta: Shape = {
  1: ['name', 'string'],
  2: ['generateName', 'string'],
  3: ['namespace', 'string'],
  4: ['selfLink', 'string'],
  5: ['uid', 'string'],
  6: ['resourceVersion', 'string'],
  7: ['generation', 'int'],
  8: ['creationTimestamp', 'time'],
  9: ['deletionTimestamp', 'time'],
  10: ['deletionGracePeriodSeconds', 'int'],
  11: ['labels', 'map'],
  12: ['annotations', 'map'],
  13: ['ownerReferences', { list: ownerReference }],
  14: ['finalizers', 'strings'],
};
const serviceAccount: Shape = {
  1: ['metadata', { msg: objectMeta }],
  2: ['secrets', { list: objectReference }],
  3: ['imagePullSecrets', { list: { 1: ['name', 'string'] } }],
  4: ['automountServiceAccountToken', 'bool'],
};

// k8s.io/api/core/v1 ConfigMap: data = 2, binaryData = 3 (bytes, not decoded here), immutable = 4.
const configMap: Shape = {
  1: ['metadata', { msg: objectMeta }],
  2: ['data', 'map'],
  4: ['immutable', 'bool'],
};

const SHAPES: Record<string, Shape> = { ServiceAccount: serviceAccount, ConfigMap: configMap };

function decodeMessage(buf: Buffer, shape: Shape): JsonObject {
  const out: JsonObject = {};
  for (const f of fields(buf)) {
    const spec = shape[f.no];
    if (spec === undefined) continue;
    const [name, type] = spec;
    const text = f.bytes?.toString('utf8') ?? '';
    if (type === 'string') out[name] = text;
    else if (type === 'int') out[name] = Number(f.varint ?? 0n);
    else if (type === 'bool') out[name] = (f.varint ?? 0n) !== 0n;
    else if (type === 'strings') out[name] = [...((out[name] as Json[] | undefined) ?? []), text];
    else if (type === 'time') {
      const t = decodeMessage(f.bytes ?? Buffer.alloc(0), { 1: ['seconds', 'int'] });
      const seconds = typeof t.seconds === 'number' ? t.seconds : 0;
      // A zero Time is written as an empty message; it means "unset".
      if (seconds !== 0) out[name] = `${new Date(seconds * 1000).toISOString().slice(0, 19)}Z`;
    } else if (type === 'map') {
      const entry = decodeMessage(f.bytes ?? Buffer.alloc(0), { 1: ['k', 'string'], 2: ['v', 'string'] });
      const map = (out[name] as JsonObject | undefined) ?? {};
      map[String(entry.k ?? '')] = String(entry.v ?? '');
      out[name] = map;
    } else if ('list' in type) {
      out[name] = [...((out[name] as Json[] | undefined) ?? []), decodeMessage(f.bytes ?? Buffer.alloc(0), type.list)];
    } else {
      out[name] = decodeMessage(f.bytes ?? Buffer.alloc(0), type.msg);
    }
  }
  return out;
}

/** Decodes a protobuf-encoded core/v1 ServiceAccount or ConfigMap body into its JSON form. */
export function decodeProtobufObject(body: Buffer): JsonObject {
  if (!body.subarray(0, 4).equals(MAGIC)) throw new Error('protobuf body without the k8s magic prefix');
  const envelope = decodeMessage(body.subarray(4), {
    1: ['typeMeta', { msg: { 1: ['apiVersion', 'string'], 2: ['kind', 'string'] } }],
  });
  const raw = fields(body.subarray(4)).find((f) => f.no === 2)?.bytes;
  const typeMeta = (envelope.typeMeta as JsonObject | undefined) ?? {};
  const kind = String(typeMeta.kind ?? 'no kind');
  const shape = SHAPES[kind];
  if (shape === undefined) {
    throw new Error(`protobuf bodies are only understood for ${Object.keys(SHAPES).join(' and ')}, got ${kind}`);
  }
  return { kind, apiVersion: String(typeMeta.apiVersion ?? 'v1'), ...decodeMessage(raw ?? Buffer.alloc(0), shape) };
}
