import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyPullError, type PullFailureClass } from '../cri/classify.js';
import { TaskError } from '../engine/errors.js';
import { moduleArgSchemas } from '../playbook/schema/modules.js';
import { SecretSet } from '../secrets/index.js';
import {
  backoffMs,
  criAuthFor,
  isRetryable,
  basicAuthSecret,
  pullVerdict,
  pullVerdicts,
  type PullObserved,
} from './image-pull-verify.js';
import { pickRepoDigest, repositoryOf } from '../images/reference.js';

const imagePullVerifyArgs = moduleArgSchemas['image.pull.verify']!;

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const OTHER = `sha256:${'cd'.repeat(32)}`;
const recorded = (
  JSON.parse(readFileSync(new URL('../cri/fixtures/pull-errors.json', import.meta.url), 'utf8')) as {
    errors: { class: PullFailureClass; image: string; message: string }[];
  }
).errors;

function failed(image: string, raw: string, attempts = 1): PullObserved {
  return { ok: false, image, failure: classifyPullError(raw), raw, attempts };
}

function thrown(fn: () => unknown): TaskError {
  try {
    fn();
  } catch (e) {
    if (e instanceof TaskError) return e;
    throw e;
  }
  throw new Error('expected a TaskError');
}

describe('pullVerdict', () => {
  it('a pull that worked is ok and reports what it resolved to', () => {
    const ok: PullObserved = {
      ok: true,
      image: 'r.test/a:1',
      imageRef: OTHER,
      repoDigest: `r.test/a@${DIGEST}`,
      attempts: 1,
    };
    const data = { imageRef: OTHER, repoDigest: `r.test/a@${DIGEST}` };
    expect(pullVerdict({ image: 'r.test/a:1' }, ok)).toEqual(data);
    expect(pullVerdict({ image: 'r.test/a:1', expect_digest: DIGEST }, ok)).toEqual(data);
  });

  it('each recorded containerd failure becomes a one-line verification error with the fix, the raw message as detail', () => {
    const hints: Partial<Record<PullFailureClass, RegExp>> = {
      'unknown-authority': /containerd\.tls with `ca:/,
      'name-mismatch': /certificate is valid for/,
      expired: /renew the registry's certificate/,
      'plain-http': /plain_http: true/,
      unauthorized: /image\.pull\.verify `auth`/,
      'not-found': /check the image name and tag/,
      unreachable: /registry is running/,
      dns: /DNS/,
    };
    for (const rec of recorded) {
      const err = thrown(() => pullVerdict({ image: rec.image }, failed(rec.image, rec.message)));
      expect(err.kind, rec.class).toBe('verification');
      expect(err.detail, rec.class).toBe(rec.message);
      expect(err.message, rec.class).toMatch(new RegExp(`^pulling ${rec.image.replace(/[.]/g, '\\.')} failed: `));
      expect(err.message, rec.class).not.toContain('\n');
      const hint = hints[rec.class];
      if (hint) expect(err.message, rec.class).toMatch(hint);
    }
  });

  it('says how many attempts a failure took', () => {
    const err = thrown(() =>
      pullVerdict(
        { image: 'closed.test:1/a:1' },
        failed('closed.test:1/a:1', 'dial tcp 127.0.0.1:1: connect: connection refused', 3),
      ),
    );
    expect(err.message).toMatch(/^pulling closed\.test:1\/a:1 failed \(3 attempts\): the node cannot connect/);
  });

  it('a digest mismatch fails the verification and names both digests', () => {
    const ok: PullObserved = {
      ok: true,
      image: 'r.test/a:1',
      imageRef: OTHER,
      repoDigest: `r.test/a@${OTHER}`,
      attempts: 1,
    };
    const err = thrown(() => pullVerdict({ image: 'r.test/a:1', expect_digest: DIGEST }, ok));
    expect(err.kind).toBe('verification');
    expect(err.message).toBe(
      `r.test/a:1 resolved to ${OTHER}, not the expected ${DIGEST}: the tag now points at another image (or another registry answered); check what was pushed`,
    );
    const none = thrown(() => pullVerdict({ image: 'r.test/a:1', expect_digest: DIGEST }, { ...ok, repoDigest: null }));
    expect(none.message).toMatch(/reports no repo digest/);
  });
});

describe('helpers', () => {
  it('repositoryOf normalises references the way containerd records repo digests', () => {
    expect(repositoryOf('busybox')).toBe('docker.io/library/busybox');
    expect(repositoryOf('busybox:1.36')).toBe('docker.io/library/busybox');
    expect(repositoryOf('bitnami/redis:7')).toBe('docker.io/bitnami/redis');
    expect(repositoryOf('registry.test:5000/aegis/app:latest')).toBe('registry.test:5000/aegis/app');
    expect(repositoryOf('registry.test:5000/aegis/app')).toBe('registry.test:5000/aegis/app');
    expect(repositoryOf(`localhost/app@${DIGEST}`)).toBe('localhost/app');
    expect(repositoryOf(`r.test/app:1@${DIGEST}`)).toBe('r.test/app');
  });

  it('pickRepoDigest prefers the digest of the pulled repository', () => {
    const digests = [`mirror.test/app@${OTHER}`, `r.test/app@${DIGEST}`];
    expect(pickRepoDigest('r.test/app:1', digests)).toBe(`r.test/app@${DIGEST}`);
    expect(pickRepoDigest('elsewhere.test/app:1', digests)).toBe(`mirror.test/app@${OTHER}`);
    expect(pickRepoDigest('r.test/app:1', [])).toBeNull();
  });

  it('criAuthFor sends exactly one kind of credential', () => {
    expect(criAuthFor(undefined)).toBeUndefined();
    expect(criAuthFor({})).toBeUndefined();
    expect(criAuthFor({ username: 'u', password: 'p' })).toEqual({ username: 'u', password: 'p' });
    expect(criAuthFor({ username: 'u', token: 't' })).toEqual({ identityToken: 't' });
  });

  it('marks the base64 user:password form as a secret of the run (password and token are x-secret arguments)', () => {
    const auth = { username: 'labuser', password: 's3cret-pass' };
    const b64 = Buffer.from('labuser:s3cret-pass').toString('base64');
    expect(basicAuthSecret(auth)).toBe(b64);
    expect(basicAuthSecret({ token: 'tok-123' })).toBeUndefined();
    const set = new SecretSet();
    set.addArgs(imagePullVerifyArgs, { image: 'i', auth });
    set.add(basicAuthSecret(auth));
    expect(set.maskText(`bad s3cret-pass and ${b64} for labuser`)).toBe('bad ******** and ******** for labuser');
  });

  it('backs off exponentially up to a cap and retries only what a retry can fix', () => {
    expect([1, 2, 3, 4, 10].map(backoffMs)).toEqual([1000, 2000, 4000, 8000, 30_000]);
    for (const c of ['unknown-authority', 'name-mismatch', 'expired', 'plain-http', 'unauthorized'] as const)
      expect(isRetryable(c), c).toBe(false);
    for (const c of ['unreachable', 'dns', 'timeout', 'not-found', 'other'] as const)
      expect(isRetryable(c), c).toBe(true);
  });
});

describe('pullVerdicts (one pull per runtime)', () => {
  const image = 'r.test/a:1';
  const good = (runtime: 'containerd' | 'docker' | 'containers'): PullObserved => ({
    ok: true,
    runtime,
    image,
    imageRef: runtime === 'containers' ? '' : 'sha256:1',
    repoDigest: `r.test/a@${DIGEST}`,
    attempts: 1,
  });
  it('all worked: the containerd pull at the top (as before) and each runtime under pulls', () => {
    expect(pullVerdicts({ image }, [good('containerd'), good('docker')], ['containers left out: x'])).toEqual({
      imageRef: 'sha256:1',
      repoDigest: `r.test/a@${DIGEST}`,
      pulls: {
        containerd: { imageRef: 'sha256:1', repoDigest: `r.test/a@${DIGEST}` },
        docker: { imageRef: 'sha256:1', repoDigest: `r.test/a@${DIGEST}` },
      },
      notes: ['containers left out: x'],
    });
    // containerd alone: the result of a CRI-only node is what it always was.
    expect(pullVerdicts({ image }, [good('containerd')])).toEqual({
      imageRef: 'sha256:1',
      repoDigest: `r.test/a@${DIGEST}`,
    });
  });
  it('names every runtime that failed, each with its own cause and raw detail, and not the ones that worked', () => {
    const x509 = 'Get "https://r.test/v2/": x509: certificate signed by unknown authority';
    const e = thrown(() =>
      pullVerdicts({ image }, [
        good('containerd'),
        { ...failed(image, x509), runtime: 'docker' },
        { ...failed(image, 'manifest unknown'), runtime: 'containers' },
      ]),
    );
    expect(e.kind).toBe('verification');
    expect(e.message).toMatch(/^docker: pulling r\.test\/a:1 failed: .*; containers: pulling r\.test\/a:1 failed: /);
    expect(e.message).not.toContain('containerd:');
    expect(e.detail).toBe(`docker: ${x509}\ncontainers: manifest unknown`);
  });
  it('checks the expected digest on every runtime', () => {
    const e = thrown(() => pullVerdicts({ image, expect_digest: OTHER }, [good('containerd'), good('docker')]));
    expect(e.message).toMatch(/^containerd: .*not the expected.*; docker: .*not the expected/);
  });
});
