/**
 * KubeClient.stream against an HTTPS server on loopback that ends every watch after one event (as
 * the API server does at a watch's timeout), with the lab's test CA.
 */
import { getEventListeners } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from '../../src/k8s/api.js';
import { makePki } from '../lab/certs.js';

describe('KubeClient.stream', () => {
  let server: Server;
  let url: string;
  let caPem: string;
  const dir = mkdtempSync(join(tmpdir(), 'trustplay-kube-stream-'));
  beforeAll(async () => {
    const pki = await makePki(join(dir, 'pki'));
    caPem = readFileSync(pki.ca.cert, 'utf8');
    const tls = { cert: readFileSync(pki.kube.cert), key: readFileSync(pki.kube.key) };
    server = createServer(tls, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"type":"ADDED"}\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves no abort listener on the signal once a watch ended, however many reconnect on it', async () => {
    const client = new KubeClient({ server: url, caPem, token: 't' });
    const stop = new AbortController();
    const lines: string[] = [];
    for (let i = 0; i < 15; i++) expect(await client.stream('/w', (l) => lines.push(l), stop.signal)).toBe(200);
    expect(lines).toHaveLength(15);
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0);
  });
});
