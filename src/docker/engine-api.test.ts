import { describe, expect, it } from 'vitest';
import { splitReference } from '../images/reference.js';
import { pullError, registryAuthHeader } from './engine-api.js';

describe('Docker Engine API helpers', () => {
  it('splits references as POST /images/create takes them, never leaving the tag empty (that pulls every tag)', () => {
    expect(splitReference('reg.test:5000/a/b:v1')).toEqual({ repo: 'reg.test:5000/a/b', tag: 'v1' });
    expect(splitReference('reg.test:5000/a/b')).toEqual({ repo: 'reg.test:5000/a/b', tag: 'latest' });
    expect(splitReference(`reg.test/a@sha256:${'a'.repeat(64)}`)).toEqual({
      repo: 'reg.test/a',
      tag: `sha256:${'a'.repeat(64)}`,
    });
    expect(splitReference('busybox')).toEqual({ repo: 'busybox', tag: 'latest' });
  });

  it("reads dockerd's error from a refusal and from the progress stream (dockerd 20.10's shapes)", () => {
    const refused = {
      status: 500,
      body: '{"message":"Get \\"https://r.test:5000/v2/\\": x509: certificate signed by unknown authority"}\n',
    };
    expect(pullError(refused)).toBe('Get "https://r.test:5000/v2/": x509: certificate signed by unknown authority');
    const stream = {
      status: 200,
      body: [
        '{"status":"Pulling from aegis/app","id":"latest"}',
        '{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}',
        '',
      ].join('\n'),
    };
    expect(pullError(stream)).toBe('manifest unknown');
    expect(pullError({ status: 200, body: '{"status":"Status: Downloaded newer image for r.test/a:1"}\n' })).toBe('');
    expect(pullError({ status: 404, body: 'not json' })).toBe('not json');
  });

  it('carries credentials as base64url JSON in X-Registry-Auth', () => {
    const h = registryAuthHeader({ username: 'u', password: 'p?>' });
    expect(JSON.parse(Buffer.from(h, 'base64url').toString('utf8'))).toEqual({ username: 'u', password: 'p?>' });
    expect(h).not.toMatch(/[+/=]/);
  });
});
