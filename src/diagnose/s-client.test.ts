/**
 * Parsing `openssl s_client` output (the handshake from a node whose sshd forbids TCP forwarding).
 * The error lines are what OpenSSL 3 prints on this machine; the served chain is the lab PKI's,
 * made by openssl at test time. The whole path, on a lab node with AllowTcpForwarding no, is in
 * test/e2e/diagnose.test.ts.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type LabPki } from '../../test/lab/certs.js';
import { parseSClient } from './s-client.js';

let dir: string;
let pki: LabPki;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tp-sclient-'));
  pki = await makePki(dir);
}, 60_000);
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('parseSClient', () => {
  it('the served chain in order, the protocol and the answer to GET /v2/', async () => {
    const leaf = await readFile(pki.registry.cert, 'utf8');
    const ca = await readFile(pki.ca.cert, 'utf8');
    const out = [
      'CONNECTED(00000003)',
      '---',
      'Certificate chain',
      ' 0 s:CN = registry.test',
      '   i:CN = trustplay lab CA',
      leaf.trim(),
      ' 1 s:CN = trustplay lab CA',
      '   i:CN = trustplay lab CA',
      ca.trim(),
      '---',
      'New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384',
      '    Protocol  : TLSv1.3',
      '---',
      'HTTP/1.1 401 Unauthorized\r',
      'Www-Authenticate: Basic realm="trustplay lab"\r',
      'Content-Length: 0\r',
      '\r',
      '@@rc 0',
    ].join('\n');
    const r = parseSClient(out, 'registry.test:5000');
    expect(r.kind).toBe('probe');
    if (r.kind !== 'probe' || r.probe.kind !== 'tls') throw new Error('not a TLS probe');
    expect(r.probe.served.map((c) => c.x509.subject)).toEqual(['CN=registry.test', 'CN=trustplay lab CA']);
    expect(r.probe.protocol).toBe('TLSv1.3');
    expect(r.probe.v2).toEqual({ status: 401, authenticate: 'Basic realm="trustplay lab"' });
  });

  it('refused, timed out, not TLS', () => {
    const refused = [
      '805B239DE87F0000:error:8000006F:system library:BIO_connect:Connection refused:../crypto/bio/bio_sock2.c:117:calling connect()',
      '805B239DE87F0000:error:10000067:BIO routines:BIO_connect:connect error:../crypto/bio/bio_sock2.c:119:',
      'connect:errno=111',
      '@@rc 1',
    ].join('\n');
    expect(parseSClient(refused, 'closed.test:5000')).toEqual({
      kind: 'error',
      failure: 'unreachable',
      message: "the node's connection to closed.test:5000 was refused",
    });
    expect(parseSClient('CONNECTED(00000003)\n@@rc 124', 'slow.test:5000')).toMatchObject({
      kind: 'error',
      failure: 'timeout',
    });
    const plain = [
      'CONNECTED(00000003)',
      '40A7B1E3A87F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../ssl/record/ssl3_record.c:354:',
      '---',
      'no peer certificate available',
      '@@rc 1',
    ].join('\n');
    expect(parseSClient(plain, 'plain.test:5000')).toMatchObject({
      kind: 'probe',
      probe: { kind: 'handshake-failed', notTls: true, clientCertRequired: false },
    });
  });
});
