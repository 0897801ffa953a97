/**
 * certsFromPem: a bundle's blocks parsed as Go's AppendCertsFromPEM takes them, each block once per
 * process (a run parses the same CA and OS store for every host).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { certsFromPem } from './certificate.js';

const CA = readFileSync(new URL('../../test/fixtures/containerd-tls/test-ca.pem', import.meta.url), 'utf8');
const BROKEN = '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n';

describe('certsFromPem', () => {
  it('skips a block OpenSSL refuses and text between blocks, keeping the order', () => {
    const certs = certsFromPem(`leading text\n${CA}${BROKEN}between\n${CA}`);
    expect(certs).toHaveLength(2);
    expect(certs[0]!.x509.fingerprint256).toBe(certs[1]!.x509.fingerprint256);
    expect(certsFromPem(BROKEN)).toEqual([]);
  });

  it('gives the same certificate for the same block again, without parsing it anew', () => {
    const [first] = certsFromPem(CA);
    const [again] = certsFromPem(`# another bundle holding it\n${CA}`);
    expect(again).toBe(first);
    expect(again!.x509.subject).toMatch(/CN=/);
  });
});
