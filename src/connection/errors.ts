import type { Connection } from './connection.js';

/** Why a host could not be used at all (as opposed to a command failing on it). */
export type ConnectionErrorKind = 'unreachable' | 'auth' | 'host-key';

/** A host is unreachable, refused our credentials, or presented an untrusted host key. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(
    readonly kind: ConnectionErrorKind,
    /** Inventory name of the host. */
    readonly host: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A file operation on a host failed (permission denied, not a directory, disk full...). */
export class FileOperationError extends Error {
  override readonly name = 'FileOperationError';
  constructor(
    readonly host: string,
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** A compare-and-swap write refused: the file is no longer what the caller expected. */
export class FileChangedError extends FileOperationError {
  /** Always true: tells this refusal from other failed writes. */
  readonly changed = true;
}

/** Why a host could not open a TCP connection, in the words of its resolver or its sshd. */
export type TcpOpenFailure = 'dns' | 'refused' | 'timeout' | 'forbidden' | 'other';

/** `Connection.openTcp` failed: `failure` says why, the message what the host reported. */
export class TcpOpenError extends Error {
  constructor(
    readonly failure: TcpOpenFailure,
    message: string,
  ) {
    super(message);
    this.name = 'TcpOpenError';
  }
}

/** The failure class of a resolver / connect / sshd channel-open message. */
export function tcpFailureOf(text: string): TcpOpenFailure {
  if (/administratively prohibited|open failed$|forwarding.*(disabled|denied)/i.test(text)) return 'forbidden';
  if (
    /ENOTFOUND|EAI_AGAIN|name or service not known|nodename nor servname|no address associated|name resolution|getaddrinfo/i.test(
      text,
    )
  )
    return 'dns';
  if (/ECONNREFUSED|connection refused/i.test(text)) return 'refused';
  if (/ETIMEDOUT|timed out|timeout/i.test(text)) return 'timeout';
  return 'other';
}

/**
 * The connection's own error when it no longer carries a command, else undefined: tells a failure
 * that is really the host going away (a CRI call over a dead SSH connection reads as "cannot reach
 * the socket") from a real one.
 */
export async function connectionLost(conn: Connection): Promise<ConnectionError | undefined> {
  if (conn.kind !== 'ssh') return undefined;
  try {
    await conn.exec({ argv: ['true'] }, { timeoutMs: 10_000 });
    return undefined;
  } catch (e) {
    return e instanceof ConnectionError ? e : undefined;
  }
}
