import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { buildImage, tarOneFile } from './oci-image.js';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('the lab test image', () => {
  it('is a valid OCI image whose config, layer and digest agree', () => {
    const image = buildImage();
    const manifest = JSON.parse(image.manifest.toString()) as {
      mediaType: string;
      config: { digest: string; size: number };
      layers: { digest: string; size: number; mediaType: string }[];
    };
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(image.digest).toBe(sha(image.manifest));
    const blobs = new Map(image.blobs.map((b) => [b.digest, b.data]));
    for (const d of [manifest.config, ...manifest.layers]) {
      expect(sha(blobs.get(d.digest)!)).toBe(d.digest);
      expect(blobs.get(d.digest)!.length).toBe(d.size);
    }
    const config = JSON.parse(blobs.get(manifest.config.digest)!.toString()) as {
      os: string;
      rootfs: { diff_ids: string[] };
    };
    expect(config.os).toBe('linux');
    const tar = gunzipSync(blobs.get(manifest.layers[0]!.digest)!);
    expect(config.rootfs.diff_ids).toEqual([sha(tar)]);
  });

  it('has the same digest every time (tests may pin it)', () => {
    expect(buildImage().digest).toBe(buildImage().digest);
  });

  it('writes a tar that GNU tar lists and extracts byte for byte', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-tar-'));
    try {
      const content = Buffer.from('x'.repeat(700));
      writeFileSync(path.join(dir, 'a.tar'), tarOneFile('hello.txt', content));
      const listing = execFileSync('tar', ['-tvf', path.join(dir, 'a.tar')]).toString();
      expect(listing).toMatch(/^-rw-r--r-- root\/root\s+700 .* hello\.txt\n$/);
      execFileSync('tar', ['-xf', path.join(dir, 'a.tar'), '-C', dir]);
      expect(readFileSync(path.join(dir, 'hello.txt'))).toEqual(content);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
