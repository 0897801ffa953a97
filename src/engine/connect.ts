/** Inventory hosts to connection specs: paths expanded, bastions resolved, host-key options applied. */
import { homedir } from 'node:os';
import { createConnection, type HostConnectionSpec } from '../connection/index.js';
import type { Connection } from '../connection/connection.js';
import type { Inventory, InventoryHost } from '../playbook/inventory.js';

export function expandHome(p: string): string {
  return p === '~' ? homedir() : p.startsWith('~/') ? homedir() + p.slice(1) : p;
}

function parseJump(inv: Inventory, spec: string) {
  const host = inv.hosts.get(spec);
  if (host) {
    const user = host.user ?? inv.ssh.user;
    const id = host.identityFile ?? inv.ssh.identityFile;
    return { address: host.address, ...(host.port ? { port: host.port } : {}), ...(user ? { user } : {}), ...(id ? { identityFile: expandHome(id) } : {}) };
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
}

export function connectionSpec(inv: Inventory, host: InventoryHost, opts: ConnectOptions = {}): HostConnectionSpec {
  const user = host.user ?? inv.ssh.user;
  const id = host.identityFile ?? inv.ssh.identityFile;
  return {
    name: host.name,
    connection: host.connection,
    address: host.address,
    ...(host.port ? { port: host.port } : {}),
    ...(user ? { user } : {}),
    ...(id ? { identityFile: expandHome(id) } : {}),
    ...(host.identityPassphraseEnv ? { passphraseEnv: host.identityPassphraseEnv } : {}),
    ...(host.become !== undefined ? { become: host.become } : {}),
    ...(host.proxyJump?.length ? { proxyJump: host.proxyJump.map((j) => parseJump(inv, j)) } : {}),
    ...(inv.ssh.knownHosts ? { knownHosts: inv.ssh.knownHosts.map(expandHome) } : {}),
    acceptNewHostKeys: opts.acceptNewHostKeys ?? inv.ssh.acceptNewHostKeys ?? false,
    ...(inv.ssh.connectTimeout ? { connectTimeoutMs: inv.ssh.connectTimeout * 1000 } : {}),
  };
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
      c = this.factory(connectionSpec(this.inv, h, this.opts));
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
