import type { Duplex } from 'node:stream';
import type { KubeClient } from '../k8s/api.js';
import type { HostSession } from './session.js';

/** What to run on a host: an argv (quoted safely by the connection) or a POSIX sh script. */
export type Command = { argv: string[] } | { script: string };

/** Options for one command. */
export interface ExecOptions {
  /** Bytes fed to the command's stdin. */
  stdin?: string | Buffer;
  /** Kill the command after this many milliseconds (exit code reported as 124). */
  timeoutMs?: number;
  /** Environment for the command; passed inside the command line since sshd drops most variables. */
  env?: Record<string, string>;
  /** Run through sudo (overrides the host's `become` setting). */
  become?: boolean;
  /**
   * The command starts no process that outlives it (a read, a file write): on a host whose
   * commands ride the lock holder's session, its output comes straight back instead of through
   * files on the node (two processes fewer). Never set it for a command that may start a daemon.
   */
  contained?: boolean;
}

/** Outcome of one command; a non-zero code is a value, not an exception. */
export interface ExecResult {
  code: number;
  stdout: Buffer;
  stderr: Buffer;
  signal?: string;
  /** True when the command was killed by `timeoutMs`. */
  timedOut?: boolean;
}

/** A file's metadata, or `exists: false`. */
export interface FileStat {
  exists: boolean;
  isFile?: boolean;
  isDirectory?: boolean;
  /** Permission bits only (e.g. 0o644). */
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
}

/** How to write a file: an existing file keeps its mode and owner unless given here. */
export interface WriteOptions {
  mode?: number;
  uid?: number;
  gid?: number;
  /** Create missing parent directories (mode 0755). */
  mkdirs?: boolean;
  /**
   * Compare-and-swap: write only if the file is still absent, or still has this sha256 (hex), when
   * the write starts; otherwise a `FileChangedError` and nothing is written. A node without
   * `sha256sum` checks only that the file is there.
   */
  expect?: FileExpectation;
}

/** What a file must still be for a compare-and-swap write or removal: absent, or these bytes (sha256, hex). */
export type FileExpectation = { absent: true } | { sha256: string };

/** How to start a long-lived session. */
export interface SessionOptions extends Pick<ExecOptions, 'become'> {
  /**
   * The session's script runs the command driver (driver.ts): once it says it works, the
   * connection's commands of the same `become` go through it instead of sessions of their own.
   */
  carry?: boolean;
}

/** One host reached either locally or over SSH; every module talks to a host only through this. */
export interface Connection {
  /** Inventory name of the host. */
  readonly host: string;
  /** Kind, for messages and facts. */
  readonly kind: 'local' | 'ssh';
  /** Opens the connection (SSH handshake, host key check); idempotent. */
  connect(): Promise<void>;
  exec(command: Command, options?: ExecOptions): Promise<ExecResult>;
  /** File content, or null when the file does not exist. */
  readFile(path: string): Promise<Buffer | null>;
  /** Atomic write: temp file in the same directory, fsync, rename. */
  writeFile(path: string, data: string | Buffer, options?: WriteOptions): Promise<void>;
  stat(path: string): Promise<FileStat>;
  /** Removes a file; absent is not an error. */
  /** With `expect`, a compare-and-swap: refused (`FileChangedError`) when the file is no longer that. */
  remove(path: string, options?: { expect?: FileExpectation }): Promise<void>;
  /**
   * A byte stream to a unix socket on the host: OpenSSH stream-local forwarding (or a direct
   * connect, locally), or with become as another user, a relay program run through sudo.
   */
  openUnixSocket(path: string): Promise<Duplex>;
  /**
   * A TCP connection opened BY THE HOST to `address:port` (SSH: a `direct-tcpip` channel), so the
   * host's own name resolution, /etc/hosts and routes apply. Rejects with a TcpOpenError.
   */
  openTcp(address: string, port: number): Promise<Duplex>;
  /**
   * Where a host's unix socket can be dialled from this process (a local connection without a
   * relay: the path itself, or under the node's root), or undefined when only `openUnixSocket` reaches it.
   */
  directSocketPath?(path: string): Promise<string | undefined>;
  /** The relay program `openUnixSocket` runs (known after connect), or undefined when it connects directly. */
  socketRelay?(): string | undefined;
  /** A long-lived command fed line by line on stdin (the host lock's holder); it ends with the connection. */
  session(command: Command, options?: SessionOptions): Promise<HostSession>;
  /** True when a session started with `carry` can carry this connection's commands (SSH). */
  readonly carriesCommands?: boolean;
  /**
   * The cluster's API as this connection reaches it without kubectl on the host: `trustplay
   * agent`'s own client (the pod's service account). When set, ServiceAccount reads and writes
   * (k8s.sa.clear, its snapshot, its restore) go through it instead of kubectl on the host.
   */
  readonly kube?: KubeClient;
  close(): Promise<void>;
}
