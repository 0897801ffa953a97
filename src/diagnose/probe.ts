/**
 * The handshake a registry client makes, over a byte stream the node opened: Node's TLS client
 * (`tls.connect` on that stream: no TLS of our own) with the registry's name as SNI, then
 * `GET /v2/` as containerd's resolver starts. Nothing is verified here (the served chain is read
 * as it is and evaluated in evaluate.ts against the node's trust, not Node's).
 *
 * ALPN: containerd's registry transport is a Go `http.Transport` with its own TLS config or dialer
 * and without ForceAttemptHTTP2, which Go runs as HTTP/1.1 only and which therefore offers no ALPN;
 * so none is offered here either.
 */
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import { parseCert, type Cert } from './certificate.js';

/** containerd's TLSHandshakeTimeout. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** The answer to `GET /v2/`. */
export interface V2Answer {
  status: number;
  /** The WWW-Authenticate header's scheme and realm (no token). */
  authenticate?: string;
}

/** What the handshake showed. */
export type TlsProbe =
  | { kind: 'tls'; served: Cert[]; protocol: string; v2?: V2Answer; clientCertRequired?: boolean; error?: string }
  | { kind: 'handshake-failed'; code: string; message: string; clientCertRequired: boolean; notTls: boolean }
  | { kind: 'timeout' };

const CLIENT_CERT_ALERTS =
  /ALERT_CERTIFICATE_REQUIRED|ALERT_BAD_CERTIFICATE|certificate required|bad certificate|PEER_DID_NOT_RETURN_A_CERTIFICATE/i;
const NOT_TLS = /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST|record layer failure|unknown protocol/i;

/** Reads the first response head (status line and headers) of an HTTP/1.1 answer. */
function readHead(sock: Duplex, onHead: (head: string) => void): void {
  let buf = '';
  const onData = (d: Buffer) => {
    buf += d.toString('latin1');
    const end = buf.indexOf('\r\n\r\n');
    if (end >= 0 || buf.length > 16_384) {
      sock.off('data', onData);
      // Nothing after the head is for us (a CONNECT tunnel's TLS starts with our own ClientHello).
      sock.pause();
      onHead(end >= 0 ? buf.slice(0, end) : buf);
    }
  };
  sock.on('data', onData);
  // A stream paused after a proxy's CONNECT answer stays paused when a listener is added.
  sock.resume();
}

/** Parses an HTTP response head into the /v2/ answer (only the auth scheme and realm are kept). */
export function parseV2Head(head: string): V2Answer | undefined {
  const m = /^HTTP\/\d(?:\.\d)? (\d{3})/.exec(head);
  if (!m) return undefined;
  const auth = /^www-authenticate:\s*(\w+)(?:.*?realm="([^"]*)")?/im.exec(head);
  return {
    status: Number(m[1]),
    ...(auth ? { authenticate: `${auth[1]}${auth[2] ? ` realm="${auth[2]}"` : ''}` } : {}),
  };
}

/** The request containerd's resolver starts with. */
export function v2Request(hostPort: string): string {
  return `GET /v2/ HTTP/1.1\r\nHost: ${hostPort}\r\nUser-Agent: trustplay-diagnose\r\nAccept: */*\r\nConnection: close\r\n\r\n`;
}

/** TLS handshake + GET /v2/ on `stream` (which is consumed and closed). */
export function probeTls(
  stream: Duplex,
  hostname: string,
  hostPort: string,
  client?: { cert: string; key: string },
): Promise<TlsProbe> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (p: TlsProbe) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      stream.destroy();
      resolve(p);
    };
    const timer = setTimeout(() => finish({ kind: 'timeout' }), HANDSHAKE_TIMEOUT_MS);
    let served: Cert[] | undefined;
    let protocol = '';
    const sock: TLSSocket = tlsConnect({
      socket: stream,
      ...(isIP(hostname) === 0 ? { servername: hostname } : {}),
      rejectUnauthorized: false,
      // An empty store: Node then reports the chain exactly as served (it completes a chain only
      // from its own store, which would hide whether the server sends its root).
      ca: [],
      // Go's client default since 1.18.
      minVersion: 'TLSv1.2',
      // The client pair containerd has for this registry, presented as containerd presents it.
      ...(client ? { cert: client.cert, key: client.key } : {}),
    });
    sock.once('secureConnect', () => {
      const s = sock;
      protocol = s.getProtocol() ?? '';
      served = [];
      let c = s.getPeerCertificate(true);
      const seen = new Set<string>();
      while (c && c.raw && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256);
        served.push(parseCert(c.raw));
        c = c.issuerCertificate;
      }
      readHead(s, (head) => {
        const v2 = parseV2Head(head);
        finish({ kind: 'tls', served: served ?? [], protocol, ...(v2 ? { v2 } : {}) });
      });
      s.on('end', () => finish({ kind: 'tls', served: served ?? [], protocol }));
      s.write(v2Request(hostPort));
    });
    sock.on('error', (e: NodeJS.ErrnoException & { reason?: string }) => {
      // OpenSSL's errors carry a short reason ("wrong version number") next to a long stack text.
      const err = { code: e.code, message: e.reason ?? e.message.split('\n')[0] ?? e.message };
      const text = `${err.code ?? ''} ${err.message}`;
      const clientCert = CLIENT_CERT_ALERTS.test(text);
      if (served)
        finish({
          kind: 'tls',
          served,
          protocol,
          ...(clientCert ? { clientCertRequired: true } : {}),
          error: err.message,
        });
      else
        finish({
          kind: 'handshake-failed',
          code: err.code ?? '',
          message: err.message,
          clientCertRequired: clientCert,
          notTls: NOT_TLS.test(text) || err.code === 'ECONNRESET' || /socket disconnected/i.test(err.message),
        });
    });
  });
}

/** What a port answers to a plain HTTP request: an HTTP status line, or the first bytes of whatever else. */
export function probePlain(stream: Duplex, hostPort: string): Promise<{ http?: V2Answer; first: string }> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: { http?: V2Answer; first: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ first: '' }), HANDSHAKE_TIMEOUT_MS);
    readHead(stream, (head) => {
      const http = parseV2Head(head);
      finish({ ...(http ? { http } : {}), first: head.slice(0, 40) });
    });
    stream.on('error', () => finish({ first: '' }));
    stream.on('end', () => finish({ first: '' }));
    stream.write(v2Request(hostPort));
  });
}

/** Asks an HTTP proxy for a tunnel (CONNECT), as Go's transport does for an https URL; resolves once the proxy said 200. */
export function connectThroughProxy(
  stream: Duplex,
  hostPort: string,
): Promise<{ ok: true } | { ok: false; status: string }> {
  return new Promise((resolve) => {
    let done = false;
    const timer = setTimeout(() => finish({ ok: false, status: 'no answer from the proxy' }), HANDSHAKE_TIMEOUT_MS);
    const finish = (r: { ok: true } | { ok: false; status: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    readHead(stream, (head) => {
      const status = head.split('\r\n')[0] ?? '';
      finish(/^HTTP\/\d(?:\.\d)? 2\d\d/.test(status) ? { ok: true } : { ok: false, status });
    });
    stream.on('error', (e) => finish({ ok: false, status: e.message }));
    stream.write(`CONNECT ${hostPort} HTTP/1.1\r\nHost: ${hostPort}\r\nUser-Agent: trustplay-diagnose\r\n\r\n`);
  });
}
