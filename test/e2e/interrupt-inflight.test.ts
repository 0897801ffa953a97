/**
 * What an interruption does to work in flight, end to end with the real CLI on the lab (a 2.1
 * worker, the CRI of the transfer-service era):
 *
 * - the first Ctrl-C cancels a CRI call in flight: a pull from a registry that holds its answers
 *   (a proxy in front of the lab's plain-HTTP registry) ends at once with exit 130 and a recap,
 *   containerd drops the pull (its connections to the registry close), and nothing the registry
 *   held back was waited for;
 * - a handler skipped because the run was interrupted stays owed: check reports it as drift, the next
 *   run runs it (and it takes effect: the cached image is gone), and the run after that owes nothing.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTrustplay, trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, inNode, untilEveryNodeHas } from '../support/lab-node.js';

const SLOW = 240_000;

/**
 * A TCP proxy to `port` that passes requests through at once and holds every answer for `holdMs`:
 * a registry that is slow to answer. It counts connections, those the client closed, and the bytes
 * of answers it delivered.
 */
function slowProxy(port: number, holdMs: number) {
  const sockets = new Set<Socket>();
  const stats = { connections: 0, closedByClient: 0, delivered: 0, open: 0 };
  const server: Server = createServer((client) => {
    stats.connections++;
    stats.open++;
    sockets.add(client);
    const upstream = createConnection({ host: '127.0.0.1', port });
    sockets.add(upstream);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      setTimeout(() => {
        if (client.destroyed) return;
        stats.delivered += chunk.length;
        client.write(chunk);
      }, holdMs).unref();
    });
    client.on('close', () => {
      stats.open--;
      stats.closedByClient++;
      upstream.destroy();
    });
    client.on('error', () => undefined);
    upstream.on('error', () => client.destroy());
  });
  return {
    stats,
    listen: () =>
      new Promise<number>((resolve) =>
        server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
      ),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describeLab('interrupting work in flight: a long CRI pull, a notified handler', () => {
  const env = useLab({ nodes: 2, containerd: ['1.6', '2.1'] });
  let state: string;
  const node2 = () => env.lab.nodes[1]!;
  const args = (...extra: string[]) => [
    ...extra,
    '-i',
    env.lab.inventoryPath,
    '--state-dir',
    state,
    '--limit',
    node2().name,
  ];

  beforeAll(async () => {
    state = await mkdtemp(join(tmpdir(), 'trustplay-inflight-'));
  });
  afterAll(async () => {
    if (state) await rm(state, { recursive: true, force: true });
  });

  it(
    'a handler skipped by Ctrl-C stays owed: check reports it, the next run runs it, the one after owes nothing',
    async () => {
      const pb = join(state, 'slow-restart.yaml');
      await writeFile(
        pb,
        [
          '- name: Trust the registry',
          '  hosts: workers',
          '  tasks:',
          "    - name: Trust the registry's CA",
          '      containerd.tls:',
          '        registry: "{{ registry }}"',
          '        ca: "{{ registry_ca }}"',
          // The restart the config change needs takes a while: Ctrl-C lands while it runs, after
          // the task changed the node and before the play's handlers.
          '        restart_command: sleep 3 && systemctl restart containerd',
          '      notify: Drop the cached image',
          '  handlers:',
          '    - name: Drop the cached image',
          '      image.rmi:',
          '        image: "{{ image }}"',
          '',
        ].join('\n'),
      );
      const run = startTrustplay(['run', pb, ...args()]);
      await run.line(/^node2 \| changed \| Trust the registry's CA$/);
      run.child.kill('SIGINT');
      const r = await run.done;
      expect(r.code, r.stdout + r.stderr).toBe(130);
      expect(r.stdout).toMatch(
        /^node2 \| skipped \| handler: Drop the cached image \(not run: interrupted by SIGINT; it stays owed, and the next run of this play runs it\)$/m,
      );
      // The restart ran (a change in flight finishes): the node trusts the registry, so it can cache
      // the image the handler is there to drop.
      expect(await criPull(node2().hostSocket, env.lab.image.ref, { timeoutMs: 60_000 })).toBe('');

      const check = await trustplay(['check', pb, ...args()]);
      expect(check.code, check.stdout).toBe(2);
      expect(check.stdout).toMatch(
        /^node2 \| would change \| handler: Drop the cached image\n +\| +would run \(notified by: run \S+, which ended before its handlers\)$/m,
      );

      const again = await trustplay(['run', pb, ...args()]);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toMatch(/^node2 \| ok \| Trust the registry's CA$/m);
      expect(again.stdout).toMatch(/^node2 \| changed \| handler: Drop the cached image$/m);
      const { createCriClient } = await import('../../src/cri/client.js');
      const cri = createCriClient(node2().hostSocket);
      try {
        expect(await cri.imageStatus(env.lab.image.ref)).toBeNull();
      } finally {
        await cri.close();
      }

      const third = await trustplay(['run', pb, ...args()]);
      expect(third.code, third.stdout + third.stderr).toBe(0);
      expect(third.stdout).not.toMatch(/handler: Drop the cached image/);
    },
    SLOW,
  );

  it(
    'the first Ctrl-C cancels a pull in flight: exit 130 with a recap, containerd drops the pull, nothing held back is waited for',
    async () => {
      const proxy = slowProxy(env.lab.registries.plain.port, 120_000);
      const port = await proxy.listen();
      try {
        const registry = `plain.test:${port}`;
        const pb = join(state, 'slow-pull.yaml');
        await writeFile(
          pb,
          [
            '- name: Pull from a slow registry',
            '  hosts: workers',
            '  tasks:',
            '    - containerd.tls:',
            `        registry: "${registry}"`,
            '        plain_http: true',
            '    - name: Pull through the slow registry',
            '      image.pull.verify:',
            `        image: "${registry}/${env.lab.image.repo}:${env.lab.image.tag}"`,
            '        pull_timeout: 600',
            '        retries: 0',
            '',
          ].join('\n'),
        );
        const run = startTrustplay(['run', pb, ...args()]);
        // The pull is under way once containerd has opened a connection to the registry.
        for (let i = 0; i < 600 && proxy.stats.connections === 0; i++) await new Promise((r) => setTimeout(r, 100));
        expect(proxy.stats.connections, 'containerd never reached the slow registry').toBeGreaterThan(0);
        run.child.kill('SIGINT');
        const r = await run.done;
        expect(r.code, r.stdout + r.stderr).toBe(130);
        expect(r.stdout).toMatch(
          /^node2 \| skipped \| Pull through the slow registry \(not run: interrupted by SIGINT \(its CRI call in flight was cancelled\)\)$/m,
        );
        expect(r.stdout).toMatch(/^RECAP$/m);
        expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^interrupted by SIGINT: 1 task not run on node2/);
        // The run did not wait for the pull: none of what the registry held back reached containerd.
        expect(proxy.stats.delivered).toBe(0);
        // containerd dropped the pull: every connection it had opened to the registry is closed.
        for (let i = 0; i < 300 && proxy.stats.open > 0; i++) await new Promise((r) => setTimeout(r, 100));
        expect(proxy.stats.open, 'containerd still holds connections to the registry').toBe(0);
      } finally {
        await proxy.close();
      }
    },
    SLOW,
  );

  it(
    'the owed-handler note lives in /run and goes with it (as at a reboot), and that never hides a needed restart: with the note and the pending marker gone, the next run still sees containerd lags config.toml and restarts it',
    async () => {
      // A config_path change whose restart never comes: the run is killed while it would run,
      // after the task noted the handler it notified.
      const pb = (restart: string) =>
        [
          '- name: Trust the registry',
          '  hosts: workers',
          '  tasks:',
          "    - name: Trust the registry's CA",
          '      containerd.tls:',
          '        registry: "{{ registry }}"',
          '        ca: "{{ registry_ca }}"',
          ...(restart ? [`        restart_command: ${restart}`] : []),
          '      notify: Drop the cached image',
          '  handlers:',
          '    - name: Drop the cached image',
          '      image.rmi:',
          '        image: "{{ image }}"',
          '',
        ].join('\n');
      const hang = join(state, 'hang.yaml');
      const plain = join(state, 'trust.yaml');
      const settle = join(state, 'settle.yaml');
      // The killed run's restart is still running on the node, and its host lock with it (the host
      // is busy until it ends): 15 s outlasts the kill and keeps the next run's wait short.
      await writeFile(hang, pb('"touch /run/lab/tp-restarting; sleep 15"'));
      await writeFile(plain, pb(''));
      await writeFile(settle, '- hosts: workers\n  tasks:\n    - node.creds.wipe: { registry: "{{ registry }}" }\n');
      // containerd last restarted by trustplay with no config_path (on 2.1 its record is the signal):
      // the file without it, marked as an interrupted change, which the next run finishes.
      const reset = await inNode(
        node2(),
        `set -e; cd /etc/containerd; sed -i "s|config_path = .*/etc/containerd/certs.d.*|config_path = ''|" config.toml; ! grep -q 'containerd/certs.d' config.toml; printf '{"trustplay":"pending-restart","previous":"%s"}\\n' "$(base64 -w0 < config.toml)" > config.toml.trustplay-pending`,
      );
      expect(reset.code, reset.stderr).toBe(0);
      const first = await trustplay(['run', settle, ...args()]);
      expect(first.code, first.stdout + first.stderr).toBe(0);
      expect(first.stdout).toMatch(/finish the change an interrupted trustplay run left/);
      const run = startTrustplay(['run', hang, ...args()]);
      await untilEveryNodeHas([node2()], '/run/lab/tp-restarting', run);
      run.child.kill('SIGKILL');
      await run.done;
      const left = await inNode(
        node2(),
        'cat /run/trustplay.handlers && ls /etc/containerd/config.toml.trustplay-pending && grep -c containerd/certs.d /etc/containerd/config.toml',
      );
      expect(left.code, left.stderr).toBe(0);
      expect(left.stdout).toContain('"handler":"Drop the cached image"');
      const pid = Number((await inNode(node2(), 'cat /run/lab/containerd.pid')).stdout.trim());
      // /run cleared (what a reboot does to the note) and the pending marker lost with it.
      const lost = await inNode(
        node2(),
        'rm /run/trustplay.handlers /run/lab/tp-restarting /etc/containerd/config.toml.trustplay-pending',
      );
      expect(lost.code, lost.stderr).toBe(0);

      const check = await trustplay(['check', plain, ...args()]);
      expect(check.code, check.stdout).toBe(2);
      expect(check.stdout).toContain(
        'would restart containerd: /etc/containerd/config.toml changed since trustplay last restarted containerd (config_path was "", the file says "/etc/containerd/certs.d")',
      );
      // The lost note no longer names the handler; the task that finds the lag notifies it again.
      expect(check.stdout).toMatch(
        /^node2 \| would change \| handler: Drop the cached image\n +\| +would run \(notified by: Trust the registry's CA\)$/m,
      );
      const again = await trustplay(['run', plain, ...args()]);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toMatch(/^node2 \| changed \| handler: Restart containerd \(verified\)$/m);
      expect(Number((await inNode(node2(), 'cat /run/lab/containerd.pid')).stdout.trim())).not.toBe(pid);
      const settled = await trustplay(['run', plain, ...args()]);
      expect(settled.code, settled.stdout + settled.stderr).toBe(0);
      expect(settled.stdout).toMatch(/^node2 +ok=\d+ +changed=0 /m);
    },
    SLOW,
  );
});
