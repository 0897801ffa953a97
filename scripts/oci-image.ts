/**
 * OCI images written from scratch, byte for byte reproducible: POSIX tar layers (entries sorted,
 * owner root, one fixed mtime, pax headers for long names), gzip'ed with zlib (no timestamp in its
 * header), an image config and manifest, and an OCI image layout directory (`oci-layout`,
 * `index.json`, `blobs/sha256/…`) that skopeo, crane or `ctr import` read. Same inputs, same digest.
 * Used by the lab's test image (test/lab/oci-image.ts) and the agent's image
 * (scripts/build-agent-image.ts).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

export const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const CONFIG_TYPE = 'application/vnd.oci.image.config.v1+json';
export const LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** The mtime every entry of the lab's and the agent's layers carries (2023-11-14). */
export const FIXED_MTIME = 1_700_000_000;

/** A built image: blobs by digest plus the manifest bytes. */
export interface OciImage {
  manifest: Buffer;
  /** `sha256:...` of the manifest: what a pull by tag resolves to. */
  digest: string;
  /** Config and layer blobs. */
  blobs: { digest: string; data: Buffer }[];
}

/** One entry of a layer: a regular file, a directory or a symbolic link, owned by root. */
export type TarEntry =
  | { type: 'file'; name: string; mode: number; content: Buffer }
  | { type: 'dir'; name: string; mode: number }
  | { type: 'symlink'; name: string; target: string };

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function header(fields: {
  name: string;
  mode: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname?: string;
}): Buffer {
  const h = Buffer.alloc(512, 0);
  const put = (offset: number, len: number, value: string): void => {
    h.write(value.slice(0, len), offset, 'ascii');
  };
  const octal = (n: number, len: number): string => n.toString(8).padStart(len - 1, '0');
  put(0, 100, fields.name);
  put(100, 8, octal(fields.mode, 8));
  put(108, 8, octal(0, 8));
  put(116, 8, octal(0, 8));
  put(124, 12, octal(fields.size, 12));
  put(136, 12, octal(fields.mtime, 12));
  put(148, 8, '        ');
  put(156, 1, fields.typeflag);
  if (fields.linkname) put(157, 100, fields.linkname);
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  put(265, 32, 'root');
  put(297, 32, 'root');
  let sum = 0;
  for (const byte of h) sum += byte;
  put(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512, 0)]);

/** A pax extended header (`x`) carrying what ustar cannot hold: names over 100 bytes, non-ASCII. */
function paxHeader(name: string, records: Record<string, string>, mtime: number): Buffer {
  const lines = Object.entries(records).map(([k, v]) => {
    const body = ` ${k}=${v}\n`;
    // The length prefix counts itself: grow it until it is stable.
    let len = Buffer.byteLength(body) + 1;
    while (`${len}${body}`.length !== len) len = Buffer.byteLength(`${len}${body}`);
    return `${len}${body}`;
  });
  const data = Buffer.from(lines.join(''), 'utf8');
  const base = `PaxHeaders/${path.posix.basename(name)}`.slice(0, 99);
  return Buffer.concat([header({ name: base, mode: 0o644, size: data.length, mtime, typeflag: 'x' }), pad(data)]);
}

const fitsUstar = (s: string): boolean => Buffer.byteLength(s) === s.length && s.length <= 100;

/**
 * A POSIX tar archive of `entries`, sorted by name (parents before children), every entry owned
 * by root with `mtime`: the same entries give the same bytes.
 */
export function tarArchive(entries: TarEntry[], mtime = FIXED_MTIME): Buffer {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const parts: Buffer[] = [];
  for (const e of sorted) {
    const name = e.type === 'dir' && !e.name.endsWith('/') ? `${e.name}/` : e.name;
    const linkname = e.type === 'symlink' ? e.target : undefined;
    const pax: Record<string, string> = {};
    if (!fitsUstar(name)) pax.path = name;
    if (linkname !== undefined && !fitsUstar(linkname)) pax.linkpath = linkname;
    if (Object.keys(pax).length > 0) parts.push(paxHeader(name, pax, mtime));
    const ascii = (s: string): string => (fitsUstar(s) ? s : s.replace(/[^\x20-\x7e]/g, '_').slice(0, 100));
    if (e.type === 'file') {
      parts.push(header({ name: ascii(name), mode: e.mode, size: e.content.length, mtime, typeflag: '0' }));
      parts.push(pad(e.content));
    } else if (e.type === 'dir') {
      parts.push(header({ name: ascii(name), mode: e.mode, size: 0, mtime, typeflag: '5' }));
    } else {
      parts.push(header({ name: ascii(name), mode: 0o777, size: 0, mtime, typeflag: '2', linkname: ascii(e.target) }));
    }
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}

/** A one-file POSIX ustar archive (the format every layer unpacker reads). */
export function tarOneFile(name: string, content: Buffer, mtime = FIXED_MTIME): Buffer {
  return tarArchive([{ type: 'file', name, mode: 0o644, content }], mtime);
}

/** The OCI architecture name of this machine (amd64, arm64). */
export const ociArch = (): string => (process.arch === 'x64' ? 'amd64' : process.arch);

/**
 * An image of `layers` (uncompressed tars, bottom first) with `config` (the runtime part:
 * Entrypoint, Cmd, Env, Labels…) and one history line per layer.
 */
export function buildOciImage(opts: {
  layers: { tar: Buffer; createdBy: string }[];
  config: Record<string, unknown>;
  created: string;
  architecture?: string;
  gzipLevel?: number;
}): OciImage {
  const layers = opts.layers.map((l) => ({ ...l, gz: gzipSync(l.tar, { level: opts.gzipLevel ?? 9 }) }));
  const config = Buffer.from(
    JSON.stringify({
      architecture: opts.architecture ?? ociArch(),
      os: 'linux',
      created: opts.created,
      config: opts.config,
      rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l.tar)) },
      history: layers.map((l) => ({ created: opts.created, created_by: l.createdBy })),
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: CONFIG_TYPE, digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: LAYER_TYPE, digest: sha256(l.gz), size: l.gz.length })),
    }),
  );
  return {
    manifest,
    digest: sha256(manifest),
    blobs: [{ digest: sha256(config), data: config }, ...layers.map((l) => ({ digest: sha256(l.gz), data: l.gz }))],
  };
}

/**
 * Writes `image` as an OCI image layout in `dir` (emptied first), its manifest named `refName`
 * (the tag: `skopeo copy oci:DIR:TAG docker://…`).
 */
export function writeOciLayout(dir: string, image: OciImage, refName: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const blob of [...image.blobs, { digest: image.digest, data: image.manifest }]) {
    writeFileSync(path.join(dir, 'blobs', 'sha256', blob.digest.replace(/^sha256:/, '')), blob.data);
  }
  writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: MANIFEST_TYPE,
          digest: image.digest,
          size: image.manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': refName },
        },
      ],
    }),
  );
}

/** The size of `image` in a registry: the sum of its compressed blobs and manifest. */
export const imageSize = (image: OciImage): number =>
  image.blobs.reduce((n, b) => n + b.data.length, image.manifest.length);
