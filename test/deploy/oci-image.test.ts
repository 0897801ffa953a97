/**
 * The OCI writer the agent's image and the lab's test image share (scripts/oci-image.ts): tars
 * that GNU tar reads back exactly (long names through pax headers, links, modes), the same bytes
 * whatever order entries come in, and an image layout whose index, manifest and blobs agree.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type TarEntry, buildOciImage, tarArchive, writeOciLayout } from '../../scripts/oci-image.js';

const long = `app/node_modules/${'a-rather-long-package-name/'.repeat(5)}index.js`;
const entries: TarEntry[] = [
  { type: 'dir', name: 'usr', mode: 0o755 },
  { type: 'dir', name: 'usr/bin', mode: 0o755 },
  { type: 'file', name: 'usr/bin/tool', mode: 0o755, content: Buffer.from('#!/bin/sh\necho hi\n') },
  { type: 'symlink', name: 'bin', target: 'usr/bin' },
  { type: 'symlink', name: 'usr/bin/far', target: `/${long}` },
  { type: 'dir', name: 'tmp', mode: 0o1777 },
  { type: 'file', name: long, mode: 0o644, content: Buffer.from('export {};\n') },
];

describe('the OCI image writer', () => {
  it('writes tars GNU tar extracts as given (pax long names, links, modes), in any input order', () => {
    const tar = tarArchive(entries);
    expect(tarArchive([...entries].reverse())).toEqual(tar);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-oci-tar-'));
    try {
      writeFileSync(path.join(dir, 'layer.tar'), tar);
      execFileSync('mkdir', [path.join(dir, 'x')]);
      execFileSync('tar', ['-xf', path.join(dir, 'layer.tar'), '-C', path.join(dir, 'x')]);
      const x = (p: string): string => path.join(dir, 'x', p);
      expect(readFileSync(x(long), 'utf8')).toBe('export {};\n');
      expect(readFileSync(x('bin/tool'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
      expect(lstatSync(x('usr/bin/tool')).mode & 0o7777).toBe(0o755);
      expect(lstatSync(x('tmp')).mode & 0o7777).toBe(0o1777);
      expect(readlinkSync(x('usr/bin/far'))).toBe(`/${long}`);
      const listing = execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', path.join(dir, 'layer.tar')], {
        encoding: 'utf8',
      });
      for (const line of listing.trim().split('\n')) expect(line).toMatch(/ 0\/0 .* 2023-11-14 /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes an OCI layout whose index, manifest and blobs agree', () => {
    const image = buildOciImage({
      layers: [{ tar: tarArchive(entries), createdBy: 'test' }],
      created: '2023-11-14T22:13:20Z',
      config: { Entrypoint: ['/usr/bin/tool'] },
    });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-oci-layout-'));
    try {
      writeOciLayout(dir, image, '1.2.3');
      const blob = (digest: string): Buffer => readFileSync(path.join(dir, 'blobs', 'sha256', digest.slice(7)));
      const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
      expect(JSON.parse(readFileSync(path.join(dir, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
      const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')) as {
        manifests: { digest: string; size: number; annotations: Record<string, string> }[];
      };
      const [m] = index.manifests;
      expect(m?.annotations['org.opencontainers.image.ref.name']).toBe('1.2.3');
      const manifest = blob(m!.digest);
      expect(sha(manifest)).toBe(image.digest);
      expect(manifest.length).toBe(m!.size);
      const parsed = JSON.parse(manifest.toString()) as { config: { digest: string }; layers: { digest: string }[] };
      for (const d of [parsed.config.digest, ...parsed.layers.map((l) => l.digest)]) expect(sha(blob(d))).toBe(d);
      const config = JSON.parse(blob(parsed.config.digest).toString()) as { config: { Entrypoint: string[] } };
      expect(config.config.Entrypoint).toEqual(['/usr/bin/tool']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
