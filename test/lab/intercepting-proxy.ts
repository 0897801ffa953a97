/**
 * The lab's TLS-intercepting HTTP proxy, as corporate proxies do it: a CONNECT to the intercepted
 * name is answered with a certificate of the proxy's own CA, and the traffic is re-encrypted to the
 * real registry; every other CONNECT is a plain tunnel. Only lab names (`*.test`) are served, and
 * only on 127.0.0.1. Run detached by the lab: `node --import tsx intercepting-proxy.ts CONFIG.json`.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';

/** What the proxy is told at start. */
export interface InterceptingProxyConfig {
  port: number;
  /** The name it intercepts, and the certificate (proxy CA) it answers with. */
  intercept: string;
  cert: string;
  key: string;
  /** The CA the proxy trusts upstream (the lab CA). */
  upstreamCa: string;
}

function serve(cfg: InterceptingProxyConfig): http.Server {
  const context = createSecureContext({ cert: readFileSync(cfg.cert), key: readFileSync(cfg.key) });
  const upstreamCa = readFileSync(cfg.upstreamCa);
  const server = http.createServer((_req, res) => {
    res.writeHead(405).end('CONNECT only\n');
  });
  server.on('connect', (req: http.IncomingMessage, client: Duplex, head: Buffer) => {
    const m = /^([a-z0-9.-]+\.test):(\d+)$/.exec(req.url ?? '');
    if (!m) {
      client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    const [, host, port] = m;
    const pair = (a: Duplex, b: Duplex) => {
      a.on('error', () => b.destroy());
      b.on('error', () => a.destroy());
      a.pipe(b).pipe(a);
    };
    if (host !== cfg.intercept) {
      const up: Socket = netConnect(Number(port), '127.0.0.1', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length) up.write(head);
        pair(client, up);
      });
      up.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'));
      return;
    }
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    const front = new TLSSocket(client as Socket, { isServer: true, secureContext: context });
    const up = tlsConnect({ host: '127.0.0.1', port: Number(port), servername: host, ca: upstreamCa });
    pair(front, up);
  });
  server.listen(cfg.port, '127.0.0.1');
  return server;
}

if (process.argv[2]) serve(JSON.parse(readFileSync(process.argv[2], 'utf8')) as InterceptingProxyConfig);
