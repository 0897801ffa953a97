/** The recorder's `stabilise`: what moves from lab to lab (or from race to race) is replaced. */
import { describe, expect, it } from 'vitest';
import { stabilise } from './pull-errors.js';

describe('stabilise', () => {
  it('replaces the lab directory, ports, timestamps and the ephemeral local port', () => {
    const raw =
      'open /tmp/lab-x/n1/certs/ca.crt at 2026-12-03T13:02:05.123Z: dial tcp 127.0.0.1:5443: read udp 127.0.0.1:40000->127.0.0.53:53';
    expect(stabilise(raw, [5443], '/tmp/lab-x')).toBe(
      'open <lab>/n1/certs/ca.crt at <time>: dial tcp 127.0.0.1:<port>: read udp 127.0.0.1:<port>->127.0.0.53:53',
    );
  });

  it("gives one text for both sides of Go's read-loop race on a TLS alert", () => {
    const head = 'failed to do request: Head "https://mtls.test:5443/v2/a/manifests/latest": ';
    const plain = stabilise(`${head}remote error: tls: bad certificate`, [5443], '/tmp/lab-x');
    const raced = stabilise(`${head}readLoopPeekFailLocked: remote error: tls: bad certificate`, [5443], '/tmp/lab-x');
    expect(raced).toBe(plain);
    expect(plain).toBe(
      'failed to do request: Head "https://mtls.test:<port>/v2/a/manifests/latest": remote error: tls: bad certificate',
    );
  });
});
