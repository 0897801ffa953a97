import type { Connection } from './connection.js';
import { LocalConnection } from './local.js';
import { SshConnection, type ProxyJumpHop } from './ssh.js';

export type { Command, Connection, ExecOptions, ExecResult, FileStat, WriteOptions } from './connection.js';
export {
  ConnectionError,
  FileOperationError,
  TcpOpenError,
  type ConnectionErrorKind,
  type TcpOpenFailure,
} from './errors.js';
export { describeExit } from './exit-codes.js';
export { quote, quoteArgv } from './shell-quote.js';
export { LocalConnection, type LocalConnectionOptions } from './local.js';
export { SshConnection, type ProxyJumpHop, type SshConnectionOptions, type SshStats } from './ssh.js';
export { RELAYS, type RelayName } from './relay.js';

/** Everything the engine knows about reaching one inventory host. */
export interface HostConnectionSpec {
  /** Inventory name. */
  name: string;
  connection: 'local' | 'ssh';
  /** Default: the name. */
  address?: string;
  port?: number;
  user?: string;
  identityFile?: string;
  /** Name of an environment variable holding the identity file's passphrase. */
  passphraseEnv?: string;
  /** ssh-agent socket (default $SSH_AUTH_SOCK). */
  agent?: string;
  /** OpenSSH's IdentitiesOnly: log in with the identity files only, never with other agent keys. */
  identitiesOnly?: boolean;
  become?: boolean;
  /** The user commands run as through sudo (default root). */
  becomeUser?: string;
  becomePassword?: string;
  /** Where the password came from (a variable's name), for messages. */
  becomePasswordEnv?: string;
  proxyJump?: ProxyJumpHop[];
  /** known_hosts files (default ~/.ssh/known_hosts); new keys go to the first. */
  knownHosts?: string[];
  acceptNewHostKeys?: boolean;
  connectTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  maxSessions?: number;
}

/** A connection for an inventory host: local child processes or one SSH connection. */
export function createConnection(spec: HostConnectionSpec): Connection {
  if (spec.connection === 'local') {
    return new LocalConnection({
      host: spec.name,
      ...(spec.become !== undefined ? { become: spec.become } : {}),
      ...(spec.becomeUser !== undefined ? { becomeUser: spec.becomeUser } : {}),
      ...(spec.becomePassword !== undefined ? { becomePassword: spec.becomePassword } : {}),
      ...(spec.becomePasswordEnv !== undefined ? { becomePasswordEnv: spec.becomePasswordEnv } : {}),
    });
  }
  const { name, knownHosts, address, connection: _kind, ...rest } = spec;
  return new SshConnection({
    ...rest,
    host: name,
    address: address ?? name,
    ...(knownHosts ? { knownHostsFiles: knownHosts } : {}),
  });
}
