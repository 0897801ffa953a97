import type { Connection } from './connection.js';
import { LocalConnection } from './local.js';
import { SshConnection, type SshConnectionOptions } from './ssh.js';
import { defined } from '../defined.js';

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

/**
 * Everything the engine knows about reaching one inventory host: an SSH connection's options,
 * named by inventory name, with the address defaulting to the name.
 */
export type HostConnectionSpec = Omit<SshConnectionOptions, 'host' | 'address' | 'knownHostsFiles'> & {
  /** Inventory name. */
  name: string;
  connection: 'local' | 'ssh';
  /** Default: the name. */
  address?: string;
  /** known_hosts files (default ~/.ssh/known_hosts); new keys go to the first. */
  knownHosts?: string[];
};

/** A connection for an inventory host: local child processes or one SSH connection. */
export function createConnection(spec: HostConnectionSpec): Connection {
  if (spec.connection === 'local') {
    return new LocalConnection({
      host: spec.name,
      ...defined({
        become: spec.become,
        becomeUser: spec.becomeUser,
        becomePassword: spec.becomePassword,
        becomePasswordEnv: spec.becomePasswordEnv,
      }),
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
