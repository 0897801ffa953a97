/**
 * Production containerd configs published by well-known projects (test/fixtures/published-configs,
 * each file's header names its source, commit and substitutions), each on the real containerd
 * version it targets: the file loads and the CRI serves, the pull fails with x509, trustplay fixes
 * it (or refuses with the right cause before touching anything), the fix converges, every other
 * registry setting keeps working, and `containerd config dump` of the node's own binary shows only
 * registry changes. (k3s/RKE2 nodes are in k3s.test.ts; a k3s-style config_path of its own on a
 * plain containerd node in containerd-versions.test.ts.)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { classifyPullError } from '../../src/cri/classify.js';
import { createCriClient, waitForCri } from '../../src/cri/client.js';
import type { LabNode } from '../lab/lab.js';
import { trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, inNode, writeTrustCaPlaybook } from '../support/lab-node.js';

const FIXTURES = path.resolve('test/fixtures/published-configs');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');

describeLab('published production configs on the containerd version each targets', () => {
  const env = useLab({ nodes: 3, containerd: ['1.6', '1.7', '2.1'] });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tp-e2e-published-'));
  const state = path.join(tmp, 'state');
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const node = (v: string): LabNode => env.lab.nodes.find((n) => n.containerd.version === v)!;
  const reg = (): string => env.lab.registries.registry.host;
  const defaults = new Map<string, string>();
  let playbooks = 0;
  const playbook = (extra = ''): string =>
    writeTrustCaPlaybook(path.join(tmp, `trust-${++playbooks}.yaml`), extra ? [extra] : []);
  const run = (pb: string, n: LabNode, cmd = 'run') =>
    trustplay([cmd, pb, '-i', env.lab.inventoryPath, '--state-dir', state, '--limit', n.name]);
  const pull = async (n: LabNode): Promise<string> => {
    const msg = await criPull(n.hostSocket, env.lab.image.ref, { fresh: true, timeoutMs: 60_000 });
    return msg ? classifyPullError(msg).class : 'ok';
  };
  /**
   * Writes config.toml and restarts containerd. The base runtime spec kind and kubespray generate
   * (cri-base.json), or nodeadm writes (base-runtime-spec.json), comes from the node's own `ctr oci spec`.
   */
  const setConfig = async (n: LabNode, text: string, opts: { spec?: string; serves?: boolean } = {}) => {
    const r = await inNode(
      n,
      `ctr oci spec > /etc/containerd/${opts.spec ?? 'cri-base.json'} && cat > /etc/containerd/config.toml && systemctl restart containerd`,
      text,
    );
    expect(r.code, `${n.name}: ${r.stderr}`).toBe(0);
    if (opts.serves !== false) await waitForCri(n.hostSocket, 20_000);
  };
  const criServes = async (n: LabNode): Promise<boolean> => {
    const c = createCriClient(n.hostSocket);
    try {
      await c.version(5000);
      return true;
    } catch {
      return false;
    } finally {
      await c.close();
    }
  };
  const dump = async (n: LabNode): Promise<string> => {
    const r = await inNode(n, `${n.containerd.binary} --config /etc/containerd/config.toml config dump`);
    expect(r.code, `${n.name}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const pid = async (n: LabNode): Promise<string> => (await inNode(n, 'cat /run/lab/containerd.pid')).stdout;
  const reset = async (n: LabNode): Promise<void> => {
    await inNode(
      n,
      'rm -rf /etc/containerd/certs.d /etc/containerd/cri-base.json /etc/containerd/base-runtime-spec.json /var/lib/snap-microk8s',
    );
    await setConfig(n, defaults.get(n.name)!);
  };
  /** The dump without the registry table's lines: what must not change. */
  const withoutRegistry = (d: string): string => {
    let inRegistry = false;
    return d
      .split('\n')
      .filter((line) => {
        const t = line.trim();
        if (t.startsWith('['))
          inRegistry = /^\[plugins\.["']io\.containerd\.(?:grpc\.v1\.cri|cri\.v1\.images)["']\.registry/.test(t);
        return !inRegistry;
      })
      .join('\n');
  };

  beforeAll(async () => {
    for (const n of env.lab.nodes) defaults.set(n.name, (await inNode(n, 'cat /etc/containerd/config.toml')).stdout);
  });

  it('EKS AL2 on 1.7: the two-directory config_path is kept (1.x searches each), only hosts.toml + CA written, no restart; converged runs say nothing about imports', async () => {
    const n = node('1.7');
    const eks = fixture('eks-al2.toml');
    await setConfig(n, eks);
    expect(await pull(n)).toBe('unknown-authority');
    const before = await pid(n);
    const r = await run(playbook(), n);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout).toBe(eks);
    expect(await pid(n)).toBe(before);
    expect((await inNode(n, `ls /etc/containerd/certs.d/${reg()}`)).stdout).toBe('ca.crt\nhosts.toml\n');
    expect(await pull(n)).toBe('ok');
    const again = await run(playbook(), n);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).not.toContain('imports');
    expect(again.stdout).toMatch(new RegExp(`^${n.name} \\| ok \\| Trust the lab CA$`, 'm'));
    await reset(n);
  }, 180_000);

  it('kind’s node config on 1.7: its legacy k8s.gcr.io mirror is refused with config_path (file untouched); with migrate_legacy it moves to hosts.toml, config dump changes only in the registry table, and the pull works', async () => {
    const n = node('1.7');
    const kind = fixture('kind.toml');
    await setConfig(n, kind);
    const dumpBefore = await dump(n);
    expect(await pull(n)).toBe('unknown-authority');
    const refused = await run(playbook(), n);
    expect(refused.code, refused.stdout + refused.stderr).toBe(1);
    expect(refused.stdout).toContain('config.toml has legacy registry.mirrors for k8s.gcr.io');
    expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout).toBe(kind);
    const r = await run(playbook('migrate_legacy: true'), n);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const hosts = (await inNode(n, 'cat /etc/containerd/certs.d/k8s.gcr.io/hosts.toml')).stdout;
    // The mirror first, the registry's own endpoint last as the server: the order containerd tried them in.
    expect(hosts).toContain('server = "https://k8s.gcr.io"\n\n[host."https://registry.k8s.io"]\n');
    const dumpAfter = await dump(n);
    expect(dumpAfter).toMatch(/config_path = ['"]\/etc\/containerd\/certs\.d['"]/);
    expect(withoutRegistry(dumpAfter)).toBe(withoutRegistry(dumpBefore));
    expect(await pull(n)).toBe('ok');
    const again = await run(playbook('migrate_legacy: true'), n);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^${n.name} \\| ok \\| Trust the lab CA$`, 'm'));
    await reset(n);
  }, 180_000);

  it('kubespray’s template (config_path mode) on 2.1 and 1.7: config_path already there, so only hosts.toml + CA, config dump identical, pull works', async () => {
    for (const v of ['2.1', '1.7']) {
      const n = node(v);
      const ks = fixture('kubespray.toml');
      await setConfig(n, ks);
      const dumpBefore = await dump(n);
      expect(await pull(n), v).toBe('unknown-authority');
      const r = await run(playbook(), n);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout, v).toBe(ks);
      expect(await dump(n), v).toBe(dumpBefore);
      expect(await pull(n), v).toBe('ok');
      await reset(n);
    }
  }, 180_000);

  it('microk8s’s template, rendered as the snap renders it, on 1.6: its own certs.d under args is never repointed (refused without config_path, nothing written) and is where trustplay writes with it (config untouched, no restart), and the pull works', async () => {
    const n = node('1.6');
    // The snap renders ${SNAP_DATA} as /var/snap/microk8s/current; the lab node has no /var/snap, so
    // the rendered copy uses a directory of the node's own /var/lib. (The template itself, with
    // ${SNAP_DATA} as written, is kept by the plan: see containerd-tls.test.ts.)
    const snapData = '/var/lib/snap-microk8s';
    const rendered = fixture('microk8s.toml').replaceAll('${SNAP_DATA}', snapData);
    await inNode(n, `mkdir -p ${snapData}/args/certs.d`);
    await setConfig(n, rendered);
    expect(await pull(n)).toBe('unknown-authority');
    const before = await pid(n);
    // Without config_path, its own directory is never repointed to /etc/containerd/certs.d.
    const refused = await run(playbook(), n);
    expect(refused.code, refused.stdout + refused.stderr).toBe(1);
    expect(refused.stdout).toContain(
      `config.toml's config_path already names ${snapData}/args/certs.d, and registries configured under it would stop working`,
    );
    expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout).toBe(rendered);
    expect((await inNode(n, 'test -e /etc/containerd/certs.d || echo none')).stdout).toBe('none\n');
    const r = await run(playbook(`config_path: ${snapData}/args/certs.d`), n);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout).toBe(rendered);
    expect(await pid(n)).toBe(before);
    expect((await inNode(n, `ls ${snapData}/args/certs.d/${reg()}`)).stdout).toBe('ca.crt\nhosts.toml\n');
    expect(await pull(n)).toBe('ok');
    await reset(n);
  }, 180_000);

  it('AKS on containerd 1.x (AgentBaker’s template) on 1.7: config_path and the registry headers kept, only hosts.toml + CA written, no restart, config dump identical, converges', async () => {
    const n = node('1.7');
    const aks = fixture('aks-1x.toml');
    await setConfig(n, aks);
    const dumpBefore = await dump(n);
    expect(dumpBefore).toMatch(/X-Meta-Source-Client = \[["']azure\/aks["']\]/);
    expect(await pull(n)).toBe('unknown-authority');
    const before = await pid(n);
    const r = await run(playbook(), n);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout).toBe(aks);
    expect(await pid(n)).toBe(before);
    expect(await dump(n)).toBe(dumpBefore);
    expect(await pull(n)).toBe('ok');
    const again = await run(playbook(), n);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^${n.name} \\| ok \\| Trust the lab CA$`, 'm'));
    await reset(n);
  }, 180_000);

  it('AKS on containerd 1.x for Kubernetes < 1.22 (the template without config_path) on 1.7: config_path added to the table with the headers, one restart, config dump changes only in the registry table (headers kept), converges', async () => {
    const n = node('1.7');
    const table = '  [plugins."io.containerd.grpc.v1.cri".registry]\n    config_path = "/etc/containerd/certs.d"\n';
    expect(fixture('aks-1x.toml')).toContain(table);
    const aks = fixture('aks-1x.toml').replace(table, '');
    await setConfig(n, aks);
    const dumpBefore = await dump(n);
    expect(await pull(n)).toBe('unknown-authority');
    const before = await pid(n);
    const r = await run(playbook(), n);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await pid(n), 'config.toml changed: containerd restarted').not.toBe(before);
    const dumpAfter = await dump(n);
    expect(dumpAfter).toMatch(/config_path = ['"]\/etc\/containerd\/certs\.d['"]/);
    expect(dumpAfter).toMatch(/X-Meta-Source-Client = \[["']azure\/aks["']\]/);
    expect(withoutRegistry(dumpAfter)).toBe(withoutRegistry(dumpBefore));
    expect(await pull(n)).toBe('ok');
    const again = await run(playbook(), n);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^${n.name} \\| ok \\| Trust the lab CA$`, 'm'));
    await reset(n);
  }, 180_000);

  it('AKS on containerd 2.x (AgentBaker’s containerd_v2 template: version 2 with the 2.x table names) on 2.1: the images registry table in force is read, its config_path and headers kept, only hosts.toml + CA written, no restart, config dump identical, converges', async () => {
    const n = node('2.1');
    onTestFinished(() => reset(n));
    const aks = fixture('aks-2x.toml');
    await setConfig(n, aks);
    const dumpBefore = await dump(n);
    expect(dumpBefore).toMatch(/X-Meta-Source-Client = \[["']azure\/aks["']\]/);
    expect(await pull(n)).toBe('unknown-authority');
    const before = await pid(n);
    const r = await run(playbook(), n);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout).toBe(aks);
    expect(await pid(n)).toBe(before);
    expect((await inNode(n, `ls /etc/containerd/certs.d/${reg()}`)).stdout).toBe('ca.crt\nhosts.toml\n');
    expect(await dump(n)).toBe(dumpBefore);
    expect(await pull(n)).toBe('ok');
    const again = await run(playbook(), n);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^${n.name} \\| ok \\| Trust the lab CA$`, 'm'));
  }, 240_000);

  it('AKS on containerd 2.x for Kubernetes < 1.22 (the containerd_v2 template without config_path) on 2.1: config_path added to the 2.x images registry table next to the headers (no legacy table that 2.1’s migration would let replace it), one restart, config dump changes only in the registry table (headers kept), converges', async () => {
    const n = node('2.1');
    onTestFinished(() => reset(n));
    const table = '  [plugins."io.containerd.cri.v1.images".registry]\n    config_path = "/etc/containerd/certs.d"\n';
    expect(fixture('aks-2x.toml')).toContain(table);
    const aks = fixture('aks-2x.toml').replace(table, '');
    await setConfig(n, aks);
    const dumpBefore = await dump(n);
    expect(await pull(n)).toBe('unknown-authority');
    const before = await pid(n);
    const r = await run(playbook(), n);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await pid(n), 'config.toml changed: containerd restarted').not.toBe(before);
    const file = (await inNode(n, 'cat /etc/containerd/config.toml')).stdout;
    expect(file).toMatch(/^version = 2$/m);
    expect(file).not.toContain('io.containerd.grpc.v1.cri');
    const dumpAfter = await dump(n);
    expect(dumpAfter).toMatch(/config_path = ['"]\/etc\/containerd\/certs\.d['"]/);
    expect(dumpAfter).toMatch(/X-Meta-Source-Client = \[["']azure\/aks["']\]/);
    expect(withoutRegistry(dumpAfter)).toBe(withoutRegistry(dumpBefore));
    expect(await pull(n)).toBe('ok');
    const again = await run(playbook(), n);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^${n.name} \\| ok \\| Trust the lab CA$`, 'm'));
  }, 240_000);

  it('EKS AL2023 (nodeadm’s version 3 template) on 2.1: discard_unpacked_layers = true pulls locally, which reads both config_path directories, so the two-directory path is kept, only hosts.toml + CA written, no restart, config dump identical, converges', async () => {
    const n = node('2.1');
    onTestFinished(() => reset(n));
    const eks = fixture('eks-al2023.toml');
    await setConfig(n, eks, { spec: 'base-runtime-spec.json' });
    const dumpBefore = await dump(n);
    expect(dumpBefore).toMatch(/config_path = ['"]\/etc\/containerd\/certs\.d:\/etc\/docker\/certs\.d['"]/);
    expect(await pull(n)).toBe('unknown-authority');
    const before = await pid(n);
    const r = await run(playbook(), n);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toContain('is no longer read');
    expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout).toBe(eks);
    expect(await pid(n)).toBe(before);
    expect((await inNode(n, `ls /etc/containerd/certs.d/${reg()}`)).stdout).toBe('ca.crt\nhosts.toml\n');
    expect(await dump(n)).toBe(dumpBefore);
    expect(await pull(n)).toBe('ok');
    const again = await run(playbook(), n);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^${n.name} \\| ok \\| Trust the lab CA$`, 'm'));
  }, 240_000);

  it('EKS AL2023’s template with discard_unpacked_layers = false on 2.1: the transfer service reads no two-directory config_path (x509 with the registry’s hosts.toml in place), so it is narrowed to /etc/containerd/certs.d with a warning, config dump changes only in the registry table, and the pull works', async () => {
    const n = node('2.1');
    onTestFinished(() => reset(n));
    // The one substitution: a node that keeps unpacked layers (nodeadm's NodeConfig can merge this in).
    const eks = fixture('eks-al2023.toml').replace('discard_unpacked_layers = true', 'discard_unpacked_layers = false');
    expect(eks).not.toBe(fixture('eks-al2023.toml'));
    await setConfig(n, eks, { spec: 'base-runtime-spec.json' });
    const dumpBefore = await dump(n);
    expect(await pull(n)).toBe('unknown-authority');
    const before = await pid(n);
    const r = await run(playbook(), n);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('/etc/docker/certs.d is no longer read');
    expect(await pid(n), 'config.toml changed: containerd restarted').not.toBe(before);
    const after = (await inNode(n, 'cat /etc/containerd/config.toml')).stdout;
    expect(after).toBe(
      eks.replace(
        'config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"',
        'config_path = "/etc/containerd/certs.d"',
      ),
    );
    const dumpAfter = await dump(n);
    expect(withoutRegistry(dumpAfter)).toBe(withoutRegistry(dumpBefore));
    expect(await pull(n)).toBe('ok');
    // Before trustplay narrowed it, the same hosts.toml under the two-directory path was not read.
    await setConfig(n, eks, { spec: 'base-runtime-spec.json' });
    expect(await pull(n), 'transfer service, two directories').toBe('unknown-authority');
    await setConfig(n, after, { spec: 'base-runtime-spec.json' });
    expect(await pull(n)).toBe('ok');
    const again = await run(playbook(), n);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^${n.name} \\| ok \\| Trust the lab CA$`, 'm'));
  }, 240_000);

  it('Docker’s containerd.io package config (disabled_plugins = ["cri"], no version line) on 1.7 and 2.1: refused for that cause (not as a version 1 file), version from the daemon process, nothing written, no restart', async () => {
    const docker = fixture('containerd-io.toml');
    for (const v of ['1.7', '2.1']) {
      const n = node(v);
      await setConfig(n, docker, { serves: false });
      try {
        expect(await criServes(n), v).toBe(false);
        const before = await pid(n);
        const r = await run(playbook(), n);
        expect(r.code, r.stdout + r.stderr).toBe(1);
        expect(r.stdout).toContain(
          `${n.name}: config.toml disables containerd's CRI plugin (disabled_plugins = ["cri"]): this containerd serves Docker, not Kubernetes`,
        );
        expect(r.stdout).not.toContain('version 1');
        expect(r.stdout).not.toContain('ROLLBACK');
        expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout, v).toBe(docker);
        expect((await inNode(n, 'test -e /etc/containerd/certs.d || echo none')).stdout, v).toBe('none\n');
        expect(await pid(n), `${v}: containerd was not restarted`).toBe(before);
        const facts = await trustplay(['facts', '-i', env.lab.inventoryPath, '--limit', n.name]);
        expect(facts.stdout).toMatch(
          new RegExp(
            `containerd: containerd github\\.com/containerd/containerd(?:/v2)? ${v.replace('.', '\\.')}\\.\\d+\\S*(?: \\S+)? \\(from the running daemon's executable \\(pid \\d+, `,
          ),
        );
      } finally {
        await reset(n);
      }
    }
  }, 300_000);

  it('Bottlerocket’s containerd 2.x template (Kubernetes variant, no registry settings) on 2.1: the file loads and shows x509, and trustplay refuses for the right cause (Bottlerocket is configured through its settings API), nothing written, no restart', async () => {
    const n = node('2.1');
    const br = fixture('bottlerocket-k8s-2x.toml');
    // The lab node is Debian: its /etc/os-release is replaced, in the node's own mount namespace
    // only, by a Bottlerocket one (the file trustplay detects the OS from).
    const osRelease = 'NAME=Bottlerocket\nID=bottlerocket\nVERSION_ID=1.30.0\nPRETTY_NAME="Bottlerocket OS 1.30.0"\n';
    await inNode(
      n,
      'cat > /run/lab/bottlerocket-os-release && mount --bind /run/lab/bottlerocket-os-release /etc/os-release',
      osRelease,
    );
    onTestFinished(async () => {
      await inNode(n, 'umount /etc/os-release; rm -f /run/lab/bottlerocket-os-release');
      await reset(n);
    });
    expect((await inNode(n, '. /etc/os-release && echo $ID')).stdout).toBe('bottlerocket\n');
    await setConfig(n, br);
    const dumpBefore = await dump(n);
    expect(await pull(n)).toBe('unknown-authority');
    const before = await pid(n);
    const r = await run(playbook(), n);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain(
      `${n.name} runs Bottlerocket (/etc/os-release ID=bottlerocket), whose containerd is configured only through its settings API, not files`,
    );
    expect(r.stdout).not.toContain('ROLLBACK');
    expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout).toBe(br);
    expect((await inNode(n, 'test -e /etc/containerd/certs.d || echo none')).stdout).toBe('none\n');
    expect(await pid(n), 'containerd was not restarted').toBe(before);
    expect(await dump(n)).toBe(dumpBefore);
  }, 240_000);
});
