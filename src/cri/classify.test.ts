import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyPullError, registryFromMessage, type PullFailureClass } from './classify.js';

interface Recorded {
  class: PullFailureClass;
  image: string;
  message: string;
}

const fixtures = JSON.parse(readFileSync(new URL('./fixtures/pull-errors.json', import.meta.url), 'utf8')) as {
  errors: Recorded[];
};

describe('classifyPullError on messages recorded from containerd 1.6.20', () => {
  it('has a recording for every class but "other"', () => {
    const classes = new Set(fixtures.errors.map((e) => e.class));
    for (const c of [
      'unknown-authority',
      'name-mismatch',
      'expired',
      'plain-http',
      'unauthorized',
      'not-found',
      'unreachable',
      'dns',
      'timeout',
    ]) {
      expect(classes, c).toContain(c);
    }
  });

  for (const rec of fixtures.errors) {
    it(`${rec.class}: ${rec.message.slice(rec.message.lastIndexOf(': ') + 2, rec.message.lastIndexOf(': ') + 60)}`, () => {
      const got = classifyPullError(rec.message);
      expect(got.class).toBe(rec.class);
      // The summary names the registry the node talked to, so a fleet report says which one is broken.
      const host = rec.image.split('/')[0] ?? '';
      expect(got.summary).toContain(host);
    });
  }
});

// Not reproducible with this machine's containerd (Go 1.19), but what newer builds and other
// registries say; shaped from Go's and containerd's error strings.
const VARIANTS: [string, PullFailureClass][] = [
  [
    'failed to pull and unpack image "registry.test:5000/app:1": failed to resolve reference "registry.test:5000/app:1": failed to do request: Head "https://registry.test:5000/v2/app/manifests/1": tls: failed to verify certificate: x509: certificate signed by unknown authority',
    'unknown-authority',
  ],
  [
    'failed to do request: Head "https://10.0.0.5:5000/v2/app/manifests/1": tls: failed to verify certificate: x509: cannot validate certificate for 10.0.0.5 because it doesn\'t contain any IP SANs',
    'name-mismatch',
  ],
  [
    'failed to do request: Head "https://r.example/v2/a/manifests/1": x509: certificate relies on legacy Common Name field, use SANs instead',
    'cn-only',
  ],
  [
    'failed to do request: Head "https://r.example/v2/a/manifests/1": tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2024-01-01T00:00:00Z is before 2024-02-01T00:00:00Z',
    'not-yet-valid',
  ],
  [
    'failed to pull and unpack image "docker.io/library/privateimg:1": failed to resolve reference "docker.io/library/privateimg:1": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed',
    'unauthorized',
  ],
  [
    'failed to do request: Head "https://r.example/v2/a/manifests/1": dial tcp: lookup r.example on 127.0.0.53:53: read udp 127.0.0.1:40000->127.0.0.53:53: i/o timeout',
    'dns',
  ],
  ['failed to do request: Head "https://r.example/v2/a/manifests/1": dial tcp 10.1.2.3:443: i/o timeout', 'timeout'],
  [
    'failed to copy: httpReadSeeker: failed open: failed to do request: Get "https://r.example/v2/a/blobs/sha256:ab": context deadline exceeded',
    'timeout',
  ],
  [
    'failed to pull and unpack image "r.example/a:1": failed to unpack image on snapshotter overlayfs: no match for platform in manifest: not found',
    'not-found',
  ],
  [
    // Go's HTTP transport names the read loop when the server's alert arrives before the request
    // is written (a race: containerd 1.6 printed both forms for the same lab case).
    'failed to do request: Head "https://r.example/v2/a/manifests/1": readLoopPeekFailLocked: remote error: tls: bad certificate',
    'client-cert-required',
  ],
  [
    'failed to pull and unpack image "r.example/a:1": failed to extract layer sha256:ab: write /var/lib/x: no space left on device',
    'other',
  ],
];

describe('classifyPullError on newer-Go and other-registry variants', () => {
  for (const [message, cls] of VARIANTS) {
    it(`${cls}: ${message.slice(-70)}`, () => {
      expect(classifyPullError(message).class).toBe(cls);
    });
  }

  it('puts the names from the certificate in the name-mismatch summary', () => {
    const f = fixtures.errors.find((e) => e.class === 'name-mismatch');
    expect(classifyPullError(f?.message ?? '').summary).toMatch(/valid for registry\.test, not for wrongname\.test$/);
  });

  it('points each class at the trustplay knob that fixes it', () => {
    const hint = (c: PullFailureClass) =>
      classifyPullError(fixtures.errors.find((e) => e.class === c)?.message ?? '').hint;
    expect(hint('unknown-authority')).toContain('containerd.tls with `ca:');
    expect(hint('plain-http')).toContain('plain_http: true');
    expect(hint('unauthorized')).toContain('image.pull.verify `auth`');
    expect(hint('name-mismatch')).toContain('skip_verify only as a last resort');
  });
});

describe('registryFromMessage', () => {
  it('prefers the request URL, falls back to the image reference, and knows docker.io', () => {
    expect(registryFromMessage('failed to do request: Head "https://r.test:5000/v2/a/manifests/1": EOF')).toBe(
      'r.test:5000',
    );
    expect(
      registryFromMessage(
        'failed to pull and unpack image "r.test:5000/a:1": failed to resolve reference "r.test:5000/a:1": r.test:5000/a:1: not found',
      ),
    ).toBe('r.test:5000');
    expect(registryFromMessage('failed to pull and unpack image "docker.io/library/nginx:1": boom')).toBe('docker.io');
    expect(registryFromMessage('failed to pull and unpack image "library/nginx:1": boom')).toBe('docker.io');
    expect(registryFromMessage('something else entirely')).toBeUndefined();
  });

  it('never throws and always answers with a known class and non-empty lines', () => {
    const classes = new Set([
      'unknown-authority',
      'name-mismatch',
      'cn-only',
      'sha1-signature',
      'not-yet-valid',
      'client-cert-required',
      'not-tls',
      'expired',
      'plain-http',
      'unauthorized',
      'not-found',
      'unreachable',
      'dns',
      'timeout',
      'other',
    ]);
    fc.assert(
      fc.property(fc.string(), (s) => {
        const r = classifyPullError(s);
        return classes.has(r.class) && r.summary.length > 0 && r.hint.length > 0 && !r.summary.includes('\n');
      }),
    );
  });
});
