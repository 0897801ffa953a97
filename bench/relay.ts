/**
 * Issue 17's figure: what reaching containerd's socket through a relay run by sudo costs per CRI
 * call, against the direct SSH stream-local forward a root login uses. On a 2-node lab (real
 * containerd 1.6, real sshd and sudo): node1's `ops` has NOPASSWD, node2's asks a password every
 * time (no credential cache). A "call" is what a module step does: open a client, one `Version`,
 * close; "reused" is one more call on an open client (the stream already relayed).
 */
import { createConnection } from '../src/connection/index.js';
import type { Connection } from '../src/connection/connection.js';
import { SshConnection } from '../src/connection/ssh.js';
import { createCriClientFor } from '../src/cri/client.js';
import { connectionSpec } from '../src/engine/connect.js';
import { loadInventory } from '../src/playbook/inventory.js';
import { labDown, labUp, LAB_SUDO_PASSWORD_ENV, type Lab, type LabNode } from '../test/lab/lab.js';
import { hidePrograms } from '../test/support/lab-node.js';
import { median } from './util.js';

const SOCKET = '/run/containerd/containerd.sock';
const RELAYS = ['socat', 'nc', 'python3', 'perl'];

async function perCall(conn: Connection, reps: number): Promise<{ fresh: number; reused: number }> {
  await conn.connect();
  const fresh: number[] = [];
  const reused: number[] = [];
  // One warm-up: grpc-js loads its modules on the first client.
  for (let i = 0; i <= reps; i++) {
    const t0 = process.hrtime.bigint();
    const cri = await createCriClientFor(conn, SOCKET);
    await cri.version(10_000);
    const t1 = process.hrtime.bigint();
    await cri.version(10_000);
    const t2 = process.hrtime.bigint();
    await cri.close();
    const t3 = process.hrtime.bigint();
    if (i === 0) continue;
    fresh.push(Number(t1 - t0 + (t3 - t2)) / 1e6);
    reused.push(Number(t2 - t1) / 1e6);
  }
  return { fresh: median(fresh), reused: median(reused) };
}

function rootConnection(lab: Lab, node: LabNode): Connection {
  return new SshConnection({
    host: node.name,
    address: node.address,
    port: node.sshPort,
    user: 'root',
    identityFile: lab.ssh.identityFile,
    knownHostsFiles: [lab.ssh.knownHosts],
  });
}

export async function benchRelay(reps = 20): Promise<Array<Record<string, string | number>>> {
  const lab = await labUp({ nodes: 2, login: ['nopasswd', 'password'] });
  process.env[LAB_SUDO_PASSWORD_ENV] = lab.loginUser!.password;
  const rows: Array<Record<string, string | number>> = [];
  try {
    const { inventory } = await loadInventory(lab.inventoryPath);
    for (const node of lab.nodes) {
      const direct = rootConnection(lab, node);
      const base = await perCall(direct, reps).finally(() => direct.close());
      const sudo = node.login.sudo === 'password' ? 'sudo with a password' : 'sudo NOPASSWD';
      rows.push({
        bench: `CRI call, direct stream-local forward (root login), ${node.name}`,
        'ms/call (open+Version+close)': base.fresh.toFixed(1),
        'ms/call on an open client': base.reused.toFixed(1),
        'extra ms/call vs direct': '-',
      });
      for (const [i, relay] of RELAYS.entries()) {
        const undo = await hidePrograms(node, RELAYS.slice(0, i));
        try {
          const conn = createConnection(connectionSpec(inventory!, inventory!.hosts.get(node.name)!));
          const r = await perCall(conn, reps).finally(() => conn.close());
          if (conn.socketRelay?.() !== relay)
            throw new Error(`${node.name}: expected relay ${relay}, got ${conn.socketRelay?.()}`);
          rows.push({
            bench: `CRI call, ${relay} relay (ops, ${sudo}), ${node.name}`,
            'ms/call (open+Version+close)': r.fresh.toFixed(1),
            'ms/call on an open client': r.reused.toFixed(1),
            'extra ms/call vs direct': (r.fresh - base.fresh).toFixed(1),
          });
        } finally {
          await undo();
        }
      }
    }
  } finally {
    delete process.env[LAB_SUDO_PASSWORD_ENV];
    await labDown(lab);
  }
  return rows;
}
