/**
 * The handshake from the node when its sshd forbids TCP forwarding (`AllowTcpForwarding no`): the
 * node's own `openssl s_client` connects (through containerd's proxy when it uses one), sends the
 * `GET /v2/` containerd's resolver starts with, and prints the chain exactly as served. Its output
 * is parsed here into the same probe the direct channel gives; it is never printed whole.
 */
import { isIP } from 'node:net';
import type { Connection } from '../connection/connection.js';
import { certsFromPem } from './certificate.js';
import { parseV2Head, v2Request, type TlsProbe } from './probe.js';

export type SClientResult =
  | { kind: 'probe'; probe: TlsProbe }
  | { kind: 'error'; failure: 'dns' | 'unreachable' | 'timeout' | 'other'; message: string };

const CLIENT_CERT_ALERTS = /alert certificate required|alert bad certificate|alert handshake failure.*\n.*certificate/i;
const NOT_TLS = /wrong version number|packet length too long|http request|record layer failure|unknown protocol/i;

// $1 -connect address, $2 SNI name (empty: none, as Go sends none for an IP), $3 proxy host:port
// (empty: none), $4 $5 client cert and key paths on the node (empty: none); the request on stdin.
// 12 s: the 10 s handshake bound containerd has, and the connect before it.
const SCRIPT = `a=$1; sni=$2; px=$3; cert=$4; key=$5; shift 5
set -- s_client -connect "$a" -showcerts -ign_eof
[ -n "$sni" ] && set -- "$@" -servername "$sni"
[ -n "$px" ] && set -- "$@" -proxy "$px"
[ -n "$cert" ] && set -- "$@" -cert "$cert" -key "$key"
timeout 12 openssl "$@" 2>&1
echo "@@rc $?"
`;

/** `hostname`'s handshake from the node with its openssl; `proxy` is the proxy URL containerd uses. */
export async function sClientProbe(
  conn: Connection,
  i: { hostname: string; port: number; proxy?: string | undefined; clientCert?: string[] | undefined },
): Promise<SClientResult> {
  let px = '';
  if (i.proxy) {
    const u = new URL(i.proxy);
    // Credentials on a command line are visible to every user of the node: not passed.
    if (u.username || u.password)
      return {
        kind: 'error',
        failure: 'other',
        message: `containerd's proxy needs credentials, which openssl s_client would have to take on its command line`,
      };
    px = `${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
  }
  const ip = isIP(i.hostname) !== 0;
  const address = isIP(i.hostname) === 6 ? `[${i.hostname}]:${i.port}` : `${i.hostname}:${i.port}`;
  const pair = i.clientCert?.length === 2 ? i.clientCert : ['', ''];
  const r = await conn.exec(
    { argv: ['sh', '-c', SCRIPT, 'sh', address, ip ? '' : i.hostname, px, pair[0]!, pair[1]!] },
    { stdin: v2Request(`${i.hostname}:${i.port}`), timeoutMs: 20_000 },
  );
  return parseSClient(r.stdout.toString('utf8'), `${i.hostname}:${i.port}`);
}

/** Parses `openssl s_client -showcerts` output (with the answer to GET /v2/ after it). */
export function parseSClient(out: string, hostPort: string): SClientResult {
  const rc = Number(/@@rc (\d+)/.exec(out)?.[1] ?? '1');
  const pems = out.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length > 0) {
    const served = certsFromPem(pems.join('\n'));
    const protocol = /^\s*Protocol\s*:\s*(\S+)/m.exec(out)?.[1] ?? /New, (TLSv[\d.]+)/.exec(out)?.[1] ?? '';
    const httpAt = out.search(/^HTTP\/\d(?:\.\d)? \d{3}/m);
    const v2 =
      httpAt >= 0
        ? parseV2Head(
            out
              .slice(httpAt)
              .split(/\r?\n\r?\n/)[0]!
              .replace(/\r?\n/g, '\r\n'),
          )
        : undefined;
    const clientCertRequired = CLIENT_CERT_ALERTS.test(out);
    return {
      kind: 'probe',
      probe: {
        kind: 'tls',
        served,
        protocol,
        ...(v2 ? { v2 } : {}),
        ...(clientCertRequired ? { clientCertRequired } : {}),
      },
    };
  }
  if (rc === 124)
    return { kind: 'error', failure: 'timeout', message: `the connection from the node to ${hostPort} timed out` };
  if (/connection refused/i.test(out))
    return { kind: 'error', failure: 'unreachable', message: `the node's connection to ${hostPort} was refused` };
  if (
    /name or service not known|nodename nor servname|temporary failure in name resolution|no address associated/i.test(
      out,
    )
  )
    return { kind: 'error', failure: 'dns', message: `the node cannot resolve ${hostPort.replace(/:\d+$/, '')}` };
  if (/no route to host|network is unreachable/i.test(out))
    return { kind: 'error', failure: 'unreachable', message: `the node has no route to ${hostPort}` };
  const line =
    out
      .split('\n')
      .map((l) => l.trim())
      .find((l) => /:error:|alert|wrong version/i.test(l)) ?? `openssl s_client exited ${rc}`;
  if (/connect:|BIO_connect|s_client: /i.test(line) && !NOT_TLS.test(out))
    return { kind: 'error', failure: 'other', message: line };
  return {
    kind: 'probe',
    probe: {
      kind: 'handshake-failed',
      code: 'openssl',
      message: line,
      clientCertRequired: CLIENT_CERT_ALERTS.test(out),
      notTls: NOT_TLS.test(out),
    },
  };
}
