/**
 * The lab's test image, written from scratch (one gzip'ed tar layer holding /hello.txt, an OCI
 * config and manifest) and pushed with the registry HTTP API. Every byte is fixed, so the digest
 * is the same in every lab.
 */
import https from 'node:https';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { MANIFEST_TYPE, type OciImage, buildOciImage, tarOneFile } from '../../scripts/oci-image.js';
import type { LabRegistry } from './registry.js';

export { tarOneFile, type OciImage } from '../../scripts/oci-image.js';

/** Repository path of the test image, like the seed's. */
export const IMAGE_REPO = 'aegis/aegis-hc-install';
export const IMAGE_TAG = 'latest';

/** Builds the test image for this machine's architecture. */
export function buildImage(): OciImage {
  return buildOciImage({
    layers: [
      {
        tar: tarOneFile('hello.txt', Buffer.from('hello from the trustplay lab\n')),
        createdBy: 'trustplay lab: ADD hello.txt /',
      },
    ],
    created: '2024-01-01T00:00:00Z',
    config: { Cmd: ['/bin/true'], Labels: { 'org.opencontainers.image.title': 'trustplay lab test image' } },
  });
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

/** Pushes the image to `reg` as `repo:tag` (the test image's by default) and returns the digest the registry reports. */
export async function pushImage(
  reg: LabRegistry,
  image: OciImage,
  repo = IMAGE_REPO,
  tag = IMAGE_TAG,
): Promise<string> {
  for (const blob of image.blobs) {
    const head = await request(reg, 'HEAD', `/v2/${repo}/blobs/${blob.digest}`);
    if (head.status === 200) continue;
    const start = await request(reg, 'POST', `/v2/${repo}/blobs/uploads/`);
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
  const put = await request(reg, 'PUT', `/v2/${repo}/manifests/${tag}`, image.manifest, {
    'Content-Type': MANIFEST_TYPE,
  });
  expect(put, [201], `putting the manifest on ${reg.host}`);
  const digest = put.headers['docker-content-digest'];
  const got = Array.isArray(digest) ? digest[0] : digest;
  if (got !== image.digest)
    throw new Error(`${reg.host} stored the manifest as ${String(got)}, expected ${image.digest}`);
  return got;
}
