import type { TrustCause } from '../cri/classify.js';

/** The causes `trustplay diagnose` names for one node and registry: the one vocabulary of src/cri/classify.ts. */
export type DiagnoseCause = TrustCause;

/** The first words of each cause's summary. */
export const CAUSE_SUMMARY: Record<DiagnoseCause, string> = {
  healthy: 'TLS trust is healthy: the chain validates for this name from this node',
  'unknown-authority': 'x509: certificate signed by unknown authority',
  'missing-intermediate': 'x509: unknown authority because the server does not send its intermediate certificate',
  'self-signed': 'x509: unknown authority: the registry serves a self-signed certificate the node does not trust',
  'name-mismatch': 'x509: the certificate does not name the registry host',
  'cn-only': 'x509: certificate relies on legacy Common Name field (no subjectAltName)',
  'sha1-signature': 'x509: SHA-1 signature, refused by containerd',
  expired: 'x509: certificate has expired',
  'not-yet-valid': 'x509: certificate is not yet valid',
  'clock-skew': "x509: the node's clock is wrong",
  'plain-http': 'the registry speaks plain HTTP on this port (server gave HTTP response to HTTPS client)',
  'not-tls': 'the port does not speak TLS',
  'client-cert-required': 'the registry requires a client certificate (mutual TLS)',
  'tls-interception': 'a proxy intercepts TLS between the node and the registry',
  dns: 'the node cannot resolve the registry name',
  unreachable: 'the node cannot connect to the registry',
  timeout: 'the connection from the node timed out',
  unauthorized: 'TLS is fine: look at credentials',
  'not-found': 'the registry does not have this image',
  'host-unreachable': 'trustplay could not reach the node',
  other: 'diagnose could not finish',
};

/** Exit code per cause: 0 healthy, 4 when the node or the registry could not be reached, else 2. */
export function causeSeverity(c: DiagnoseCause): 'healthy' | 'unreachable' | 'problem' {
  if (c === 'healthy') return 'healthy';
  if (c === 'host-unreachable') return 'unreachable';
  return 'problem';
}
