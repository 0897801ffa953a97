/**
 * The lab reproduces the seed's failure for real and cleans up after itself: every node's CRI
 * pull fails with x509 until the node trusts the lab CA through hosts.toml + config_path and a
 * restart through the node's systemctl; each broken registry fails its own way; sshd accepts the
 * lab key only; `labDown` leaves no process, mount or file, and this machine's files never change.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCriClient, type CriImageClient } from '../../src/cri/client.js';
import { type Lab, labDown, labRssKb, labState, labUp, mountsUnder, processesInNamespace } from '../lab/lab.js';
import { isAlive, run } from '../lab/procs.js';
import { describeLab } from '../support/lab-fixture.js';
import { criPull, hashPaths, inNode, overSsh } from '../support/lab-node.js';

// What the lab must never change on this machine (hashes before up and after down).
const MACHINE_PATHS = [
  '/etc/hosts',
  '/etc/passwd',
  '/etc/containerd',
  '/root/.docker/config.json',
  '/root/.ssh/authorized_keys',
  '/root/.kube/config',
  '/run/containerd',
  '/run/sshd',
  '/var/lib/containerd',
  '/var/lib/kubelet',
  '/usr/local/sbin',
];

const pullError = (socket: string, ref: string): Promise<string> => criPull(socket, ref);

describeLab('lab smoke (real containerd, registry and sshd on loopback)', () => {
  let lab: Lab;
  let before: Record<string, string>;
  const clients: CriImageClient[] = [];
  const cri = (socket: string): CriImageClient => {
    const c = createCriClient(socket);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    before = hashPaths(MACHINE_PATHS);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-lab-smoke-'));
    lab = await labUp({ nodes: 3, dir, containerd: ['1.6', '1.7', '2.1'] });
    const rss = labRssKb(lab);
    console.log(
      `lab up with 3 nodes (containerd 1.6, 1.7, 2.1) in ${lab.upMs} ms, holding ${Math.round(rss.totalKb / 1024)} MB RSS`,
    );
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    if (lab && existsSync(lab.dir)) await labDown(lab);
  });

  it('lab.json describes the running lab and the inventory names every node', () => {
    const state = labState(lab.dir);
    expect(state.nodes.map((n) => n.name)).toEqual(['node1', 'node2', 'node3']);
    expect(state.image.ref).toBe(`${lab.registries.registry.host}/aegis/aegis-hc-install:latest`);
    expect(state.image.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const inventory = readFileSync(lab.inventoryPath, 'utf8');
    for (const n of lab.nodes) expect(inventory).toContain(`address: ${n.address}\n    port: ${n.sshPort}`);
    expect(inventory).toContain(`registry: ${lab.registries.registry.host}`);
  });

  it("each node runs its own containerd version, with that version's own `config default` file", async () => {
    const expected = [
      ['1.6', /^1\.6\./, 'version = 2'],
      ['1.7', /^1\.7\.24/, 'version = 2'],
      ['2.1', /^(v)?2\.1\.9/, 'version = 3'],
    ] as const;
    for (const [i, [version, runtime, line]] of expected.entries()) {
      const node = lab.nodes[i]!;
      expect(node.containerd.version).toBe(version);
      const v = await cri(node.hostSocket).version(10_000);
      expect(v.runtimeVersion, node.name).toMatch(runtime);
      const onNode = await inNode(node, 'containerd --version; grep -m1 "^version" /etc/containerd/config.toml');
      // `containerd --version`: "containerd <module> <version> <revision>"; PATH finds the node's own binary.
      expect(onNode.stdout.split(/\s+/)[2], node.name).toMatch(runtime);
      expect(onNode.stdout, node.name).toContain(line);
      // The config is that binary's own default: the daemon's `config dump` carries the same registry table.
      const dump = await inNode(node, `${node.containerd.binary} --config /etc/containerd/config.toml config dump`);
      expect(dump.code, `${node.name}: ${dump.stderr}`).toBe(0);
      expect(dump.stdout).toContain(
        version === '2.1' ? "io.containerd.cri.v1.images'.registry]" : 'io.containerd.grpc.v1.cri".registry]',
      );
    }
  });

  it('each node answers SSH with the lab key, as root with /bin/sh and the node systemctl on PATH', async () => {
    for (const node of lab.nodes) {
      const r = await overSsh(
        lab,
        node,
        'echo "$0|$HOME|$(id -u)|$(command -v systemctl)"; grep -c registry.test /etc/hosts',
      );
      expect(r.stderr).toBe('');
      expect(r.stdout.trim().split('\n')).toEqual(['sh|/root|0|/usr/local/sbin/systemctl', '1']);
    }
    const other = path.join(lab.dir, 'other_key');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const refused = await overSsh(lab, lab.nodes[0]!, 'true', other);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('Permission denied');
  });

  it('each node sees its own files: a realistic config.toml, stale credentials, its own /etc/containerd', async () => {
    const [n1, n2] = [lab.nodes[0]!, lab.nodes[1]!];
    const r = await inNode(
      n1,
      'head -n 1 /etc/containerd/config.toml; grep -E "^version|config_path" /etc/containerd/config.toml; cat /root/.docker/config.json /var/lib/kubelet/config.json',
    );
    expect(r.stdout).toContain('# /etc/containerd/config.toml');
    expect(r.stdout).toContain('version = 2');
    expect(r.stdout).toContain('config_path = ""');
    expect(r.stdout).toContain(`"${lab.registries.registry.host}"`);
    expect(r.stdout).toContain(`"https://${lab.registries.registry.host}"`);
    expect(r.stdout.match(/"other\.example:5000"/g)).toHaveLength(2);
    await inNode(n1, 'echo mine > /etc/containerd/only-node1');
    expect((await inNode(n2, 'test -e /etc/containerd/only-node1')).code).toBe(1);
    expect(existsSync('/etc/containerd/only-node1')).toBe(false);
    await inNode(n1, 'rm /etc/containerd/only-node1');
  });

  it('each broken registry fails the CRI pull its own way', async () => {
    const sock = lab.nodes[2]!.hostSocket;
    const ref = (name: keyof Lab['registries']): string => `${lab.registries[name].host}/aegis/aegis-hc-install:latest`;
    const cases: [keyof Lab['registries'], RegExp][] = [
      ['selfsigned', /x509: certificate signed by unknown authority/],
      ['expired', /x509: certificate has expired or is not yet valid/],
      ['wrongname', /x509: certificate is valid for other\.test, not wrongname\.test/],
      ['plain', /server gave HTTP response to HTTPS client/],
      ['closed', /connection refused/],
      ['auth', /x509: certificate signed by unknown authority/],
    ];
    for (const [name, pattern] of cases) expect(await pullError(sock, ref(name)), name).toMatch(pattern);
  });

  it('the pull fails with x509 on every node, and succeeds after trusting the CA by hand and restarting through systemctl', async () => {
    const reg = lab.registries.registry.host;
    for (const node of lab.nodes) {
      expect(await pullError(node.hostSocket, lab.image.ref), node.name).toMatch(
        /x509: certificate signed by unknown authority/,
      );
    }
    const ca = readFileSync(lab.ca, 'utf8');
    for (const node of lab.nodes) {
      const pidBefore = labState(lab.dir).nodes.find((n) => n.name === node.name)!.containerdPid;
      const fix = await inNode(
        node,
        [
          'set -e',
          `d=/etc/containerd/certs.d/${reg}`,
          'mkdir -p "$d"',
          'cat > "$d/ca.crt"',
          `printf 'server = "https://${reg}"\\n\\n[host."https://${reg}"]\\n  capabilities = ["pull", "resolve"]\\n  ca = "%s/ca.crt"\\n' "$d" > "$d/hosts.toml"`,
          // 1.x writes config_path = "" and 2.x config_path = '' (version 3 files use literal strings).
          `sed -i -E "s#^      config_path = (''|\\"\\")\\$#      config_path = '/etc/containerd/certs.d'#" /etc/containerd/config.toml`,
          `grep -q "config_path = '/etc/containerd/certs.d'" /etc/containerd/config.toml`,
          'systemctl restart containerd',
        ].join('\n'),
        ca,
      );
      expect(fix.stderr, node.name).toBe('');
      expect(fix.code, node.name).toBe(0);
      const pidAfter = labState(lab.dir).nodes.find((n) => n.name === node.name)!.containerdPid;
      expect(pidAfter).toBeGreaterThan(0);
      expect(pidAfter).not.toBe(pidBefore);

      const client = cri(node.hostSocket);
      const pulled = await client.pullImage(lab.image.ref, { timeoutMs: 30_000 });
      expect(pulled.imageRef).toMatch(/^sha256:/);
      const status = await client.imageStatus(lab.image.ref);
      expect(status?.repoDigests).toContain(`${reg}/aegis/aegis-hc-install@${lab.image.digest}`);
    }
  });

  const emulator = existsSync(new URL('../lab/kube-api/main.ts', import.meta.url));
  it.skipIf(!emulator)(
    `node1 (the master) reaches the Kubernetes API emulator with kubectl and its own kubeconfig${emulator ? '' : ' (not run: test/lab/kube-api/main.ts missing)'}`,
    async () => {
      expect(lab.kube?.nodeKubeconfig).toBe('/root/.kube/config');
      const r = await overSsh(
        lab,
        lab.nodes[0]!,
        "kubectl get sa default -n default -o jsonpath='{.imagePullSecrets[*].name}'",
      );
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('registry-test-pull other-registry-pull');
      const inventory = readFileSync(lab.inventoryPath, 'utf8');
      expect(inventory).toContain('kubeconfig: /root/.kube/config');
      // Workers have no kubeconfig, as on a real cluster.
      expect((await overSsh(lab, lab.nodes[1]!, 'test -e /root/.kube/config')).code).toBe(1);
    },
  );

  it("the node's systemctl stops, starts and restarts containerd, and fails like systemd on a bad config", async () => {
    const node = lab.nodes[1]!;
    const pid0 = labState(lab.dir).nodes[1]!.containerdPid;
    expect(pid0).toBeGreaterThan(0);

    expect((await overSsh(lab, node, 'systemctl stop containerd')).code).toBe(0);
    expect(isAlive(pid0)).toBe(false);
    const inactive = await overSsh(lab, node, 'systemctl is-active containerd');
    expect([inactive.code, inactive.stdout.trim()]).toEqual([3, 'inactive']);
    expect(await pullError(node.hostSocket, lab.image.ref)).toMatch(/cannot reach containerd's CRI socket/);

    expect((await overSsh(lab, node, 'systemctl start containerd')).code).toBe(0);
    const pid1 = labState(lab.dir).nodes[1]!.containerdPid;
    expect(pid1).not.toBe(pid0);
    expect((await cri(node.hostSocket).version(10_000)).runtimeName).toBe('containerd');

    expect(
      (await overSsh(lab, node, 'systemctl restart containerd && systemctl is-active containerd')).stdout.trim(),
    ).toBe('active');
    const pid2 = labState(lab.dir).nodes[1]!.containerdPid;
    expect(pid2).not.toBe(pid1);
    expect((await cri(node.hostSocket).version(10_000)).runtimeName).toBe('containerd');

    const broken = await overSsh(
      lab,
      node,
      'cp /etc/containerd/config.toml /root/config.good && echo "this is = not [toml" >> /etc/containerd/config.toml && systemctl restart containerd',
    );
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain('Job for containerd.service failed');
    expect((await overSsh(lab, node, 'systemctl is-active containerd')).code).toBe(3);
    const back = await overSsh(
      lab,
      node,
      'cp /root/config.good /etc/containerd/config.toml && systemctl start containerd',
    );
    expect(back.code).toBe(0);
    expect((await cri(node.hostSocket).version(10_000)).runtimeName).toBe('containerd');
  });

  it('labDown stops every lab process, leaves no mount or file, and this machine is unchanged', async () => {
    const current = labState(lab.dir);
    const pids = new Set<number>(current.processes.map((p) => p.pid));
    for (const n of current.nodes) {
      pids.add(n.containerdPid);
      for (const pid of processesInNamespace(n.nsPid)) pids.add(pid);
    }
    expect(pids.size).toBeGreaterThanOrEqual(current.nodes.length * 3 + 6);
    for (const pid of pids) expect(isAlive(pid), `pid ${pid} before down`).toBe(true);

    await labDown(lab.dir);

    for (const pid of pids) expect(isAlive(pid), `pid ${pid} after down`).toBe(false);
    expect(mountsUnder(lab.dir)).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(lab.dir);
    expect(existsSync(lab.dir)).toBe(false);
    expect(hashPaths(MACHINE_PATHS)).toEqual(before);
  });
});
