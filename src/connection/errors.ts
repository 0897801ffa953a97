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
