/** Inventory hosts to connection specs: paths expanded, bastions resolved, host-key options applied. */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { ConnectionError, createConnection, type HostConnectionSpec } from '../connection/index.js';
import type { Connection } from '../connection/connection.js';
import type { Inventory, InventoryHost } from '../playbook/inventory.js';
import { resolveSshConfig, type SshConfigValues } from '../connection/ssh-config.js';
import { defined } from '../defined.js';

export function expandHome(p: string): string {
  return p === '~' ? homedir() : p.startsWith('~/') ? homedir() + p.slice(1) : p;
}

function parseJump(inv: Inventory, spec: string) {
  const host = inv.hosts.get(spec);
  if (host) {
    const user = host.user ?? inv.ssh.user;
    const id = host.identityFile ?? inv.ssh.identityFile;
    return {
      address: host.address,
      ...(host.port ? { port: host.port } : {}),
      ...(user ? { user } : {}),
      ...(id ? { identityFile: expandHome(id) } : {}),
    };
  }
  const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(spec);
  if (!m) throw new Error(`proxy_jump \`${spec}\` is neither an inventory host nor user@host:port`);
  const id = inv.ssh.identityFile;
  return {
    address: m[2]!.replace(/^\[|\]$/g, ''),
    ...(m[3] ? { port: Number(m[3]) } : {}),
    ...(m[1] ? { user: m[1] } : inv.ssh.user ? { user: inv.ssh.user } : {}),
    ...(id ? { identityFile: expandHome(id) } : {}),
  };
}

export interface ConnectOptions {
  acceptNewHostKeys?: boolean;
  /** Told every secret a connection is made with (a sudo password, a key's passphrase), so output masks it. */
  onSecret?: (value: string) => void;
}

/**
 * The variable the sudo password comes from: the host's own, else none when the host's inventory
 * gave a vault-encrypted password, else the inventory-wide default.
 */
function passwordEnvName(inv: Inventory, host: InventoryHost): string | undefined {
  if (host.becomePasswordEnv === undefined && host.becomePassword !== undefined) return undefined;
  return host.becomePasswordEnv ?? inv.ssh.becomePasswordEnv;
}

/** The sudo password named by become_password_env; a missing variable is an error, not "no password". */
function becomePassword(inv: Inventory, host: InventoryHost): string | undefined {
  if (host.become !== true) return undefined;
  const name = passwordEnvName(inv, host);
  // From a vault, decrypted in memory when the inventory was loaded.
  if (name === undefined) return host.becomePassword;
  const value = process.env[name];
  if (value === undefined) {
    throw new ConnectionError(
      'auth',
      host.name,
      `${host.name}: become_password_env names ${name}, which is not set — export it with the sudo password for user ${host.user ?? inv.ssh.user ?? 'root'}`,
    );
  }
  return value;
}

/**
 * How to reach an inventory host; throws a ConnectionError when its become password variable is
 * not set. Inventory values win over the OpenSSH client config, which fills what they leave unset
 * (as Ansible's `-o` options win over ~/.ssh/config); the config is looked up by the address ssh
 * would be given (`ansible_host`, else the name), so its HostName can redirect it.
 */
export function connectionSpec(inv: Inventory, host: InventoryHost, opts: ConnectOptions = {}): HostConnectionSpec {
  const cfg: SshConfigValues =
    inv.sshConfig && host.connection === 'ssh'
      ? resolveSshConfig(inv.sshConfig, host.address, host.user ?? inv.ssh.user)
      : {};
  const user = host.user ?? inv.ssh.user ?? cfg.user;
  const id = host.identityFile ?? inv.ssh.identityFile ?? cfg.identityFiles?.find((f) => existsSync(f));
  const password = becomePassword(inv, host);
  const port = host.port ?? cfg.port;
  const jumps = host.proxyJump?.length ? host.proxyJump : cfg.proxyJump;
  const knownHosts = inv.ssh.knownHosts ?? cfg.userKnownHostsFiles;
  const timeout = inv.ssh.connectTimeout ?? cfg.connectTimeout;
  const cfgAccepts = cfg.strictHostKeyChecking === 'accept-new' || cfg.strictHostKeyChecking === 'no';
  return {
    name: host.name,
    connection: host.connection,
    address: cfg.hostName ?? host.address,
    ...(port ? { port } : {}),
    ...(user ? { user } : {}),
    ...(id ? { identityFile: expandHome(id) } : {}),
    ...(host.identityPassphraseEnv ? { passphraseEnv: host.identityPassphraseEnv } : {}),
    ...(cfg.identitiesOnly ? { identitiesOnly: true } : {}),
    ...defined({
      become: host.become,
      becomeUser: host.becomeUser,
      becomePassword: password,
      becomePasswordEnv: password === undefined ? undefined : passwordEnvName(inv, host),
    }),
    ...(jumps?.length ? { proxyJump: jumps.map((j) => parseJump(inv, j)) } : {}),
    ...(knownHosts ? { knownHosts: knownHosts.map(expandHome) } : {}),
    // A config's accept-new (or "no") trusts unknown keys on first use; a changed key is refused anyway.
    acceptNewHostKeys: (opts.acceptNewHostKeys ?? inv.ssh.acceptNewHostKeys ?? false) || cfgAccepts,
    ...(timeout ? { connectTimeoutMs: timeout * 1000 } : {}),
    // A peer that stops answering without closing (a frozen sshd, a link cut without a FIN) is lost
    // after interval × count: OpenSSH's ServerAlive settings, as `ssh` would use them.
    ...defined({
      keepaliveIntervalMs: cfg.serverAliveInterval === undefined ? undefined : cfg.serverAliveInterval * 1000,
      keepaliveCountMax: cfg.serverAliveCountMax,
    }),
  };
}

/** Stands in for a host whose settings cannot make a connection: every operation fails with why. */
class UnusableConnection implements Connection {
  constructor(
    readonly host: string,
    readonly kind: 'local' | 'ssh',
    private readonly error: Error,
  ) {}
  private fail(): Promise<never> {
    return Promise.reject(this.error);
  }
  connect(): Promise<void> {
    return this.fail();
  }
  exec(): Promise<never> {
    return this.fail();
  }
  readFile(): Promise<never> {
    return this.fail();
  }
  writeFile(): Promise<never> {
    return this.fail();
  }
  stat(): Promise<never> {
    return this.fail();
  }
  remove(): Promise<never> {
    return this.fail();
  }
  openUnixSocket(): Promise<never> {
    return this.fail();
  }
  openTcp(): Promise<never> {
    return this.fail();
  }
  session(): Promise<never> {
    return this.fail();
  }
  async close(): Promise<void> {}
}

/** One connection per host for the whole run, opened on first use. */
export class ConnectionPool {
  private readonly conns = new Map<string, Connection>();
  constructor(
    private readonly inv: Inventory,
    private readonly opts: ConnectOptions = {},
    private readonly factory: (spec: HostConnectionSpec) => Connection = createConnection,
  ) {}

  get(host: string): Connection {
    let c = this.conns.get(host);
    if (!c) {
      const h = this.inv.hosts.get(host);
      if (!h) throw new Error(`unknown host ${host}`);
      let spec: HostConnectionSpec;
      try {
        spec = connectionSpec(this.inv, h, this.opts);
      } catch (err) {
        // Reported where every caller already handles a host it cannot reach: at connect().
        c = new UnusableConnection(host, h.connection, err as Error);
        this.conns.set(host, c);
        return c;
      }
      if (spec.becomePassword !== undefined) this.opts.onSecret?.(spec.becomePassword);
      // The key's passphrase is read by the connection itself; the run still has to mask it.
      const passphrase = spec.passphraseEnv !== undefined ? process.env[spec.passphraseEnv] : undefined;
      if (passphrase !== undefined) this.opts.onSecret?.(passphrase);
      c = this.factory(spec);
      this.conns.set(host, c);
    }
    return c;
  }

  all(): Connection[] {
    return [...this.conns.values()];
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.conns.values()].map((c) => c.close()));
  }
}
