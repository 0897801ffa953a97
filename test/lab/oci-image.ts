/**
 * The lab's test image, written from scratch (one gzip'ed tar layer holding /hello.txt, an OCI
 * config and manifest) and pushed with the registry HTTP API. Every byte is fixed, so the digest
 * is the same in every lab.
 */
import { createHash } from 'node:crypto';
import https from 'node:https';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import type { LabRegistry } from './registry.js';

/** Repository path of the test image, like the seed's. */
export const IMAGE_REPO = 'aegis/aegis-hc-install';
export const IMAGE_TAG = 'latest';

const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const CONFIG_TYPE = 'application/vnd.oci.image.config.v1+json';
const LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** A built image: blobs by digest plus the manifest bytes. */
export interface OciImage {
  manifest: Buffer;
  /** `sha256:...` of the manifest: what a pull by tag resolves to. */
  digest: string;
  /** Config and layer blobs. */
  blobs: { digest: string; data: Buffer }[];
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A one-file POSIX ustar archive (the format every layer unpacker reads). */
export function tarOneFile(name: string, content: Buffer, mtime = 1_700_000_000): Buffer {
  const header = Buffer.alloc(512, 0);
  const put = (offset: number, len: number, value: string): void => {
    header.write(value.slice(0, len), offset, 'ascii');
  };
  const octal = (n: number, len: number): string => n.toString(8).padStart(len - 1, '0');
  put(0, 100, name);
  put(100, 8, octal(0o644, 8));
  put(108, 8, octal(0, 8));
  put(116, 8, octal(0, 8));
  put(124, 12, octal(content.length, 12));
  put(136, 12, octal(mtime, 12));
  put(148, 8, '        ');
  put(156, 1, '0');
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  put(265, 32, 'root');
  put(297, 32, 'root');
  let sum = 0;
  for (const byte of header) sum += byte;
  put(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  const padded = Buffer.alloc(Math.ceil(content.length / 512) * 512, 0);
  content.copy(padded);
  return Buffer.concat([header, padded, Buffer.alloc(1024, 0)]);
}

/** Builds the test image for this machine's architecture. */
export function buildImage(): OciImage {
  const tar = tarOneFile('hello.txt', Buffer.from('hello from the trustplay lab\n'));
  const layer = gzipSync(tar, { level: 9 });
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      created: '2024-01-01T00:00:00Z',
      config: { Cmd: ['/bin/true'], Labels: { 'org.opencontainers.image.title': 'trustplay lab test image' } },
      rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      history: [{ created: '2024-01-01T00:00:00Z', created_by: 'trustplay lab: ADD hello.txt /' }],
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: CONFIG_TYPE, digest: sha256(config), size: config.length },
      layers: [{ mediaType: LAYER_TYPE, digest: sha256(layer), size: layer.length }],
    }),
  );
  return {
    manifest,
    digest: sha256(manifest),
    blobs: [
      { digest: sha256(config), data: config },
      { digest: sha256(layer), data: layer },
    ],
  };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request to a lab registry, connecting to 127.0.0.1 but verifying TLS for its real name. */
function request(
  reg: LabRegistry,
  method: string,
  urlPath: string,
  body?: Buffer,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const mod = reg.scheme === 'https' ? https : http;
    const auth = reg.auth
      ? { Authorization: `Basic ${Buffer.from(`${reg.auth.username}:${reg.auth.password}`).toString('base64')}` }
      : {};
    const req = mod.request(
      {
        host: '127.0.0.1',
        port: reg.port,
        method,
        path: urlPath,
        servername: reg.hostname,
        ...(reg.caFile ? { ca: readFileSync(reg.caFile) } : {}),
        headers: { Host: reg.host, ...auth, ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${reg.url}${urlPath} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

function expect(reply: Reply, ok: number[], what: string): void {
  if (!ok.includes(reply.status)) throw new Error(`${what} answered HTTP ${reply.status}: ${reply.body.slice(0, 300)}`);
}

/** Pushes the image to `reg` as `IMAGE_REPO:IMAGE_TAG` and returns the digest the registry reports. */
export async function pushImage(reg: LabRegistry, image: OciImage): Promise<string> {
  for (const blob of image.blobs) {
    const head = await request(reg, 'HEAD', `/v2/${IMAGE_REPO}/blobs/${blob.digest}`);
    if (head.status === 200) continue;
    const start = await request(reg, 'POST', `/v2/${IMAGE_REPO}/blobs/uploads/`);
    expect(start, [202], `starting a blob upload on ${reg.host}`);
    const location = start.headers.location;
    if (!location) throw new Error(`${reg.host} gave no Location for a blob upload`);
    // The Location is absolute (https://registry.test:port/...); keep only its path and query.
    const url = new URL(location, reg.url);
    url.searchParams.set('digest', blob.digest);
    const put = await request(reg, 'PUT', `${url.pathname}${url.search}`, blob.data, {
      'Content-Type': 'application/octet-stream',
    });
    expect(put, [201], `uploading blob ${blob.digest} to ${reg.host}`);
  }
  const put = await request(reg, 'PUT', `/v2/${IMAGE_REPO}/manifests/${IMAGE_TAG}`, image.manifest, {
    'Content-Type': MANIFEST_TYPE,
  });
  expect(put, [201], `putting the manifest on ${reg.host}`);
  const digest = put.headers['docker-content-digest'];
  const got = Array.isArray(digest) ? digest[0] : digest;
  if (got !== image.digest)
    throw new Error(`${reg.host} stored the manifest as ${String(got)}, expected ${image.digest}`);
  return got;
}
