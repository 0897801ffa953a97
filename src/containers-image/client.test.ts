import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalConnection } from '../connection/local.js';
import { registryOf } from '../images/reference.js';
import { authFile, containersError, containersPull, pullProgram, withAuthFile } from './client.js';

describe('containers/image client helpers', () => {
  it('keys auth.json by the registry host as containers/image does', () => {
    expect(registryOf('reg.test:5000/a/b:1')).toBe('reg.test:5000');
    expect(registryOf('library/busybox')).toBe('docker.io');
    expect(registryOf('busybox')).toBe('docker.io');
    expect(JSON.parse(authFile('reg.test/a', { username: 'u', password: 'p' }))).toEqual({
      auths: { 'reg.test': { auth: Buffer.from('u:p').toString('base64') } },
    });
    expect(JSON.parse(authFile('reg.test/a', { identitytoken: 't' }))).toEqual({
      auths: { 'reg.test': { identitytoken: 't' } },
    });
  });

  it("takes the message out of skopeo's fatal line (skopeo 1.9's shape)", () => {
    const stderr =
      'time="2026-12-02T07:00:00Z" level=fatal msg="Error parsing image name \\"docker://r.test:5000/a:1\\": pinging container registry r.test:5000: Get \\"https://r.test:5000/v2/\\": x509: certificate signed by unknown authority"\n';
    expect(containersError(stderr, 1)).toBe(
      'Error parsing image name "docker://r.test:5000/a:1": pinging container registry r.test:5000: Get "https://r.test:5000/v2/": x509: certificate signed by unknown authority',
    );
    expect(containersError('Error: initializing source: manifest unknown\n', 125)).toBe(
      'initializing source: manifest unknown',
    );
    expect(containersError('', 2)).toBe('exited with 2');
  });

  it('prefers skopeo (no image stored) to podman', () => {
    expect(pullProgram(['podman', 'skopeo'])).toBe('skopeo');
    expect(pullProgram(['podman'])).toBe('podman');
    expect(pullProgram(['buildah', 'crio'])).toBeNull();
  });

  it('puts credentials in a private temp file read from stdin, removed after the command, never on the command line', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-authfile-'));
    try {
      const seen = path.join(dir, 'seen');
      // A stand-in program that records the --authfile's content and mode, run by the real script with sh.
      const prog = path.join(dir, 'skopeo');
      writeFileSync(
        prog,
        `#!/bin/sh\n[ "$2" = --authfile ] || exit 9\n{ stat -c %a "$3"; cat "$3"; echo; echo "$1 $4 $5"; } > ${seen}\n`,
        { mode: 0o755 },
      );
      const script = withAuthFile([prog, 'inspect', '--raw', 'docker://r.test/a:1'], 2);
      expect(script).not.toContain('secret');
      execFileSync('sh', ['-c', script], {
        input: '{"auths":{"r.test":{"auth":"secret"}}}',
        env: { ...process.env, TMPDIR: dir },
      });
      const [mode, content, argv] = execFileSync('cat', [seen]).toString().split('\n');
      expect(mode).toBe('600');
      expect(content).toBe('{"auths":{"r.test":{"auth":"secret"}}}');
      expect(argv).toBe('inspect --raw docker://r.test/a:1');
      expect(readdirSync(dir).sort()).toEqual(['seen', 'skopeo']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports podman's repo digest of the repository pulled, Docker Hub short names normalised as podman records them", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-podman-'));
    const saved = process.env['PATH'];
    try {
      // A podman stand-in: the pull succeeds, and the image carries two repo digests, another
      // repository's first (an image pulled under two names).
      const inspect = JSON.stringify([
        {
          Id: 'abc',
          RepoTags: ['docker.io/library/busybox:1', 'mirror.test/busybox:1'],
          RepoDigests: ['mirror.test/busybox@sha256:aaa', 'docker.io/library/busybox@sha256:bbb'],
          Size: 1,
        },
      ]);
      writeFileSync(
        path.join(dir, 'podman'),
        `#!/bin/sh\ncase "$1" in pull) echo abc ;; image) printf '%s' '${inspect}' ;; esac\n`,
        { mode: 0o755 },
      );
      process.env['PATH'] = `${dir}:${saved ?? ''}`;
      const conn = new LocalConnection({ host: 'localhost' });
      expect(await containersPull(conn, 'podman', 'busybox:1')).toMatchObject({ ok: true, repoDigest: 'sha256:bbb' });
      expect(await containersPull(conn, 'podman', 'mirror.test/busybox:1')).toMatchObject({
        ok: true,
        repoDigest: 'sha256:aaa',
      });
    } finally {
      process.env['PATH'] = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
