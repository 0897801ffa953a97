/**
 * A fleet logged into as a sudo user (the lab's `ops`), on the lab: containerd's socket is root's
 * (0660 root:root), so CRI traffic goes through a relay program run by sudo. The node's programs
 * are hidden one by one to prove the probe order (socat, OpenBSD nc, python3, perl), each relay
 * carries real CRI calls and a real `check`, and with none left the run fails before changing
 * anything, with the sentence that says what to install. The managed files are closed to `ops`
 * (config.toml 0600 in a 0700 /etc/containerd, /root 0700, /var/lib/kubelet 0700), so the
 * fix-registry and restore suites passing in their sudo-user variant proves every read and write
 * went through become; the first test here proves the files really are closed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnection } from '../../src/connection/index.js';
import { createCriClientFor } from '../../src/cri/client.js';
import { connectionSpec } from '../../src/engine/connect.js';
import { loadInventory } from '../../src/playbook/inventory.js';
import { processesInNamespace, type LabNode } from '../lab/lab.js';
import { processName } from '../lab/procs.js';
import { trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { hidePrograms, inNode, managedState, sshArgs } from '../support/lab-node.js';

describeLab('become on a sudo user’s fleet: the CRI relay, its probe order, and none found', () => {
  // node1: NOPASSWD (the master), node2: sudo with a password, containerd 2.1.
  const env = useLab({ nodes: 2, containerd: ['1.6', '2.1'], login: ['nopasswd', 'password'] });
  let state: string;
  const pb = 'playbooks/fix-registry.yaml';
  const node2 = (): LabNode => env.lab.nodes[1]!;
  const cli = (...args: string[]) =>
    trustplay([...args, '-i', env.lab.inventoryPath, '--state-dir', state, '--limit', 'node2']);

  beforeAll(async () => {
    state = await mkdtemp(join(tmpdir(), 'trustplay-e2e-relay-'));
  });
  afterAll(async () => {
    if (state) await rm(state, { recursive: true, force: true });
  });

  /** Relay and CRI version seen through a library connection made from the lab's inventory. */
  const throughInventory = async (): Promise<{ relay: string | undefined; version: string }> => {
    const { inventory } = await loadInventory(env.lab.inventoryPath);
    const conn = createConnection(connectionSpec(inventory!, inventory!.hosts.get('node2')!));
    try {
      await conn.connect();
      const cri = await createCriClientFor(conn, '/run/containerd/containerd.sock');
      try {
        return { relay: conn.socketRelay?.(), version: (await cri.version(10_000)).runtimeVersion };
      } finally {
        await cri.close();
      }
    } finally {
      await conn.close();
    }
  };

  it('the login user really is ops, not root, and cannot read or list what trustplay manages', async () => {
    for (const n of env.lab.nodes) {
      const r = await sshAs(
        n,
        'id -un; for f in /etc/containerd/config.toml /root/.docker/config.json /var/lib/kubelet/config.json; do cat "$f" >/dev/null 2>&1 && echo "readable $f"; done; ls /etc/containerd >/dev/null 2>&1 && echo listable; true',
      );
      expect(r, n.name).toBe('ops\n');
    }
    // The socket itself is root's: ops alone cannot open it.
    const sock = await inNode(node2(), 'stat -c "%a %U:%G" /run/containerd/containerd.sock');
    expect(sock.stdout).toBe('660 root:root\n');
  }, 240_000);

  it('the probe takes socat first, then OpenBSD nc, python3, perl; each carries real CRI calls and a check', async () => {
    const order = ['socat', 'nc', 'python3', 'perl'];
    const first = await cli('run', pb);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    for (const [i, relay] of order.entries()) {
      const undo = await hidePrograms(node2(), order.slice(0, i));
      try {
        const seen = await throughInventory();
        expect(seen.relay, `with ${order.slice(0, i).join(', ') || 'nothing'} hidden`).toBe(relay);
        expect(seen.version).toMatch(/^2\.1\./);
        const check = await cli('check', pb);
        expect(check.code, `${relay}: ${check.stdout}${check.stderr}`).toBe(0);
      } finally {
        await undo();
      }
    }
    // No relay outlives its client: every stream's relay has exited on the node.
    const relays = (): string[] =>
      processesInNamespace(node2().nsPid)
        .map((pid) => processName(pid) ?? '')
        .filter((comm) => /^(socat|nc|python3|perl)$/.test(comm));
    for (let i = 0; i < 50 && relays().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(relays()).toEqual([]);
  }, 240_000);

  it('with no relay program the run fails before changing anything, naming what was tried and the fixes', async () => {
    await inNode(node2(), `rm -rf /etc/containerd/certs.d`);
    const before = await managedState(node2());
    const undo = await hidePrograms(node2(), ['socat', 'nc', 'python3', 'perl']);
    try {
      const r = await cli('run', pb);
      expect(r.code, r.stdout + r.stderr).toBe(4);
      expect(r.stdout + r.stderr).toContain(
        "ops logs in with become, and containerd's socket (owned by root) can only be reached through a relay run by sudo, but none of socat, nc -U (OpenBSD netcat), python3, perl with IO::Socket::UNIX is on the sudo PATH — install one (e.g. the socat package), or give ops access through the socket's group (containerd's [grpc] gid) and log in without become; nothing was changed",
      );
      expect(await managedState(node2())).toBe(before);
      // The socket was left as it was.
      expect((await inNode(node2(), 'stat -c "%a %U:%G" /run/containerd/containerd.sock')).stdout).toBe(
        '660 root:root\n',
      );
    } finally {
      await undo();
    }
  }, 240_000);

  it('sudo with requiretty (older Amazon Linux, RHEL) fails at connect with the sudoers line to add', async () => {
    await inNode(
      node2(),
      'echo "Defaults requiretty" > /etc/sudoers.d/requiretty && chmod 0440 /etc/sudoers.d/requiretty',
    );
    try {
      const before = await managedState(node2());
      const r = await cli('run', pb);
      expect(r.code, r.stdout + r.stderr).toBe(4);
      expect(r.stdout + r.stderr).toContain(
        "sudo requires a terminal for user ops (Defaults requiretty in sudoers), and trustplay runs commands without one — add `Defaults:ops !requiretty` to the host's sudoers with visudo",
      );
      expect(await managedState(node2())).toBe(before);
    } finally {
      await inNode(node2(), 'rm -f /etc/sudoers.d/requiretty');
    }
  }, 240_000);

  it('a wrong sudo password fails at connect, naming the variable, and never shows the value', async () => {
    const wrong = await trustplay(
      ['check', pb, '-i', env.lab.inventoryPath, '--state-dir', state, '--limit', 'node2'],
      {
        env: { TRUSTPLAY_LAB_SUDO_PASSWORD: 'not-the-lab-password' },
      },
    );
    expect(wrong.code).toBe(4);
    expect(wrong.stdout + wrong.stderr).toContain(
      'sudo refused the password from TRUSTPLAY_LAB_SUDO_PASSWORD for user ops — check the value of that variable',
    );
    expect(wrong.stdout + wrong.stderr).not.toContain('not-the-lab-password');
  }, 240_000);

  /** A command over SSH as the inventory's login user (ops), its stdout. */
  async function sshAs(n: LabNode, command: string): Promise<string> {
    const { execFile } = await import('node:child_process');
    const args = sshArgs(env.lab, n).map((a) => (a === `root@${n.address}` ? `ops@${n.address}` : a));
    return new Promise((resolve, reject) =>
      execFile('ssh', [...args, command], (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))),
    );
  }
});
