/**
 * Version-specific behaviour on the real binaries, one lab node per version (node1 containerd
 * 1.6.20, node2 1.7.24, node3 2.1.9, each with its own `config default` file):
 *   - the version trustplay acts on is the RUNNING daemon's (CRI Version), not PATH's `containerd`;
 *   - what containerd 2.1 really does with the settings trustplay refuses or rewrites, a k3s-style
 *     config_path of its own, and credentials in AKS's 2.x config, proven with the binary's own
 *     `config dump`. (Published production configs, AKS on 2.x, EKS AL2023 and Docker's containerd.io
 *     among them, run in published-configs.test.ts.)
 * Each test that changes a node's config.toml puts that version's default back afterwards.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { classifyPullError } from '../../src/cri/classify.js';
import type { LabNode } from '../lab/lab.js';
import { trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { createCriClient, waitForCri } from '../../src/cri/client.js';
import { criPull, inNode, writeTrustCaPlaybook } from '../support/lab-node.js';

describeLab('containerd versions on the real binaries (1.6, 1.7, 2.1 in one lab)', () => {
  const env = useLab({ nodes: 3, containerd: ['1.6', '1.7', '2.1'] });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tp-e2e-versions-'));
  const state = path.join(tmp, 'state');
  let trustCa: string;
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const node = (version: string): LabNode => env.lab.nodes.find((n) => n.containerd.version === version)!;
  const cli = (cmd: string, playbook: string, host: string, ...extra: string[]) =>
    trustplay([cmd, playbook, '-i', env.lab.inventoryPath, '--state-dir', state, '--limit', host, ...extra]);
  const pull = async (n: LabNode): Promise<string> => {
    const msg = await criPull(n.hostSocket, env.lab.image.ref, { fresh: true, timeoutMs: 60_000 });
    return msg ? classifyPullError(msg).class : 'ok';
  };

  const defaults = new Map<string, string>();
  /** Writes config.toml on the node and restarts containerd through its systemctl. */
  const setConfig = async (n: LabNode, text: string): Promise<void> => {
    const r = await inNode(n, 'cat > /etc/containerd/config.toml && systemctl restart containerd', text);
    expect(r.code, `${n.name}: ${r.stderr}`).toBe(0);
  };
  const resetNode = async (n: LabNode): Promise<void> => {
    await inNode(n, 'rm -rf /etc/containerd/certs.d /var/lib/rancher');
    await setConfig(n, defaults.get(n.name)!);
    await waitForCri(n.hostSocket, 20_000);
  };
  /** `containerd config dump` of the node's own binary: the config as that daemon reads it. */
  const dump = async (n: LabNode): Promise<string> => {
    const r = await inNode(n, `${n.containerd.binary} --config /etc/containerd/config.toml config dump`);
    expect(r.code, `${n.name}: ${r.stderr}`).toBe(0);
    return r.stdout;
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
  const reg = (): string => env.lab.registries.registry.host;

  beforeAll(async () => {
    for (const n of env.lab.nodes) defaults.set(n.name, (await inNode(n, 'cat /etc/containerd/config.toml')).stdout);
    trustCa = writeTrustCaPlaybook(path.join(tmp, 'trust-ca.yaml'));
  });

  it('2.1: with containerd 1.6 on PATH, trustplay takes the running daemon’s version (CRI), says so, fixes the node', async () => {
    const n = node('2.1');
    // An upgrade in progress (or k3s/RKE2): PATH's containerd is another binary than the daemon.
    const swap = await inNode(n, 'ln -sf /usr/bin/containerd /usr/local/sbin/containerd && containerd --version');
    expect(swap.stdout).toMatch(/ 1\.6\./);
    try {
      expect(await pull(n)).toBe('unknown-authority');
      const facts = await trustplay(['facts', '-i', env.lab.inventoryPath, '--limit', n.name, '--format', 'json']);
      expect(facts.code, facts.stdout + facts.stderr).toBe(0);
      const f = (
        JSON.parse(facts.stdout) as { hosts: Record<string, { facts: { containerd: Record<string, unknown> } }> }
      ).hosts[n.name]!.facts.containerd;
      expect(f.version).toMatch(/2\.1\.9/);
      expect(f.major).toBe(2);
      expect(f.source).toBe('the running daemon (CRI Version on /run/containerd/containerd.sock)');

      const r = await cli('run', trustCa, n.name);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).not.toContain('containerd 1.x cannot load');
      expect(r.stdout).toContain(
        `${n.name}: the running containerd is 2.1 (the running daemon (CRI Version on /run/containerd/containerd.sock)) but \`containerd\` on PATH is 1.6`,
      );
      expect(await pull(n)).toBe('ok');
    } finally {
      await inNode(n, `ln -sf ${n.containerd.binary} /usr/local/sbin/containerd`);
    }
  });

  it('1.6 and 1.7: containerd on PATH is the running one, and no mismatch is reported', async () => {
    for (const v of ['1.6', '1.7']) {
      const n = node(v);
      const r = await cli('run', trustCa, n.name);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).not.toContain('on PATH is');
      expect(await pull(n), v).toBe('ok');
    }
  });

  it('2.1 really ignores a legacy registry.configs tls CA (x509 stays), which is why trustplay refuses style: legacy there', async () => {
    const n = node('2.1');
    await resetNode(n);
    const legacy = `${defaults.get(n.name)!}\n[plugins.'io.containerd.cri.v1.images'.registry.configs.'${reg()}'.tls]\n  ca_file = '/etc/containerd/legacy-ca.crt'\n`;
    await inNode(n, 'cat > /etc/containerd/legacy-ca.crt', readFileSync(env.lab.ca, 'utf8'));
    await setConfig(n, legacy);
    await waitForCri(n.hostSocket, 20_000);
    // The file carries the table, but the config 2.1 runs with has no trace of it, and the CA is not trusted.
    expect((await inNode(n, 'grep -c legacy-ca.crt /etc/containerd/config.toml')).stdout).toBe('1\n');
    expect(await dump(n)).not.toContain('legacy-ca.crt');
    expect(await pull(n)).toBe('unknown-authority');
    await inNode(n, 'rm -f /etc/containerd/legacy-ca.crt');
    await resetNode(n);
  });

  it('2.1 really stops serving CRI with legacy mirrors next to config_path; trustplay refuses such a file before touching it', async () => {
    const n = node('2.1');
    await resetNode(n);
    const base = defaults.get(n.name)!;
    const mirrors = `${base.replace("config_path = ''", "config_path = '/etc/containerd/certs.d'")}\n[plugins.'io.containerd.cri.v1.images'.registry.mirrors.'docker.io']\n  endpoint = ['https://mirror.test']\n`;
    await setConfig(n, mirrors);
    // containerd itself runs (its systemctl start succeeded) but the CRI does not answer.
    expect(await criServes(n)).toBe(false);
    const log = await inNode(n, 'tail -n 200 /run/lab/containerd.log');
    expect(log.stdout).toMatch(/mirrors.*cannot be set when .*config_path.* is provided/);
    // trustplay refuses the same combination on a file without config_path instead of writing it.
    await setConfig(n, mirrors.replace("config_path = '/etc/containerd/certs.d'", "config_path = ''"));
    await waitForCri(n.hostSocket, 20_000);
    const before = (await inNode(n, 'sha256sum /etc/containerd/config.toml')).stdout;
    const r = await cli('run', trustCa, n.name);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain('config.toml has legacy registry.mirrors for docker.io');
    expect((await inNode(n, 'sha256sum /etc/containerd/config.toml')).stdout).toBe(before);
    expect(await criServes(n)).toBe(true);
    await resetNode(n);
  });

  // The verified restart also requires RuntimeReady (containerd-restart.ts), for a CRI "loaded but
  // not ready". No real containerd reaches that state through its config, which this test keeps
  // proving: containerd's CRI Status hard-codes RuntimeReady=true ("if CRI plugin is serving
  // request, containerd must be ready": pkg/cri/server/status.go in 1.6/1.7,
  // internal/cri/server/status.go in 2.1). Tried here on each binary: a runc BinaryName that does not
  // exist and an unknown runtime_type (the CRI serves, RuntimeReady=true: the failure only shows
  // when a pod starts); an undefined default_runtime_name and an unknown snapshotter (the CRI plugin
  // does not load at all, so Version fails and the health check's wait catches it). The CRI also
  // refuses every call, Version included, until it is initialised. The RuntimeReady=false path is
  // proven with a stand-in CRI server in src/modules/containerd-restart.test.ts.
  it('RuntimeReady=false cannot be reached through config on 1.6, 1.7 or 2.1: a missing runtime binary or shim still reports ready, an undefined default runtime or unknown snapshotter stops the CRI', async () => {
    const q = `['"]`;
    const variants: { name: string; edit: (t: string) => string; serves: boolean }[] = [
      {
        name: 'runc BinaryName missing',
        edit: (t) => t.replace(new RegExp(`BinaryName = ${q}${q}`), "BinaryName = '/nonexistent/runc'"),
        serves: true,
      },
      {
        name: 'unknown runtime_type',
        edit: (t) =>
          t.replace(
            new RegExp(`runtime_type = ${q}io\\.containerd\\.runc\\.v2${q}`),
            "runtime_type = 'io.containerd.missing.v9'",
          ),
        serves: true,
      },
      {
        name: 'undefined default_runtime_name',
        edit: (t) => t.replace(new RegExp(`default_runtime_name = ${q}runc${q}`), "default_runtime_name = 'nope'"),
        serves: false,
      },
      {
        name: 'unknown snapshotter',
        edit: (t) => t.replace(new RegExp(`snapshotter = ${q}overlayfs${q}`), "snapshotter = 'nope'"),
        serves: false,
      },
    ];
    for (const n of env.lab.nodes) {
      for (const v of variants) {
        const text = v.edit(defaults.get(n.name)!);
        expect(text, `${n.containerd.version}: ${v.name} applies to its default config`).not.toBe(defaults.get(n.name));
        await setConfig(n, text);
        if (!v.serves) {
          // Started (systemctl succeeded), but the CRI never answers.
          await new Promise((r) => setTimeout(r, 1500));
          expect(await criServes(n), `${n.containerd.version}: ${v.name}`).toBe(false);
          continue;
        }
        await waitForCri(n.hostSocket, 20_000);
        const c = createCriClient(n.hostSocket);
        try {
          const ready = (await c.status(false, 5000)).conditions.find((x) => x.type === 'RuntimeReady');
          expect(ready?.status, `${n.containerd.version}: ${v.name}`).toBe(true);
        } finally {
          await c.close();
        }
      }
      await resetNode(n);
    }
  });

  it('a config_path of its own (k3s, microk8s style) is never repointed: refused with the way out, and passing that directory writes the registry there', async () => {
    for (const v of ['1.6', '2.1']) {
      const n = node(v);
      await resetNode(n);
      // k3s's own directory, under the node's /var/lib (every path a test writes is the node's own).
      const own = '/var/lib/rancher/k3s/agent/etc/containerd/certs.d';
      const text = defaults.get(n.name)!.replace(/config_path = (''|"")/, `config_path = '${own}'`);
      await inNode(
        n,
        `mkdir -p ${own}/docker.io && printf 'server = "https://registry-1.docker.io"\\n' > ${own}/docker.io/hosts.toml`,
      );
      await setConfig(n, text);
      await waitForCri(n.hostSocket, 20_000);
      const r = await cli('run', trustCa, n.name);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toContain(
        `config_path already names ${own}, and registries configured under it would stop working`,
      );
      expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout).toBe(text);
      const trustOwn = path.join(tmp, 'trust-own.yaml');
      writeFileSync(
        trustOwn,
        readFileSync(trustCa, 'utf8').replace(
          'ca: "{{ registry_ca }}"',
          `ca: "{{ registry_ca }}"\n        config_path: ${own}`,
        ),
      );
      const there = await cli('run', trustOwn, n.name);
      expect(there.code, there.stdout + there.stderr).toBe(0);
      expect((await inNode(n, `ls ${own}`)).stdout, v).toBe(`docker.io\n${reg()}\n`);
      expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout).toBe(text);
      expect(await pull(n), v).toBe('ok');
      await resetNode(n);
    }
  });

  it('the CRI pre-flight: a CRI that was not serving before the run (missing base runtime spec, as on kind/EKS/kubespray nodes) is refused with the node’s state on every version, nothing written, no restart', async () => {
    for (const v of ['1.6', '1.7', '2.1']) {
      const n = node(v);
      await resetNode(n);
      const broken = defaults
        .get(n.name)!
        .replace(/base_runtime_spec = (''|"")/g, "base_runtime_spec = '/etc/containerd/cri-base.json'");
      expect(broken, v).toContain('cri-base.json');
      await setConfig(n, broken);
      expect(await criServes(n), v).toBe(false);
      const pidBefore = (await inNode(n, 'cat /run/lab/containerd.pid')).stdout;
      const r = await cli('run', trustCa, n.name);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toContain(
        `${n.name}: containerd's CRI does not serve (/run/containerd/containerd.sock: containerd answers without the CRI (plugin not loaded); containerd ${v}.`,
      );
      expect(r.stdout).toContain('nothing was changed: fix containerd first');
      expect(r.stdout).not.toContain('ROLLBACK');
      expect((await inNode(n, 'cat /etc/containerd/config.toml')).stdout, v).toBe(broken);
      expect((await inNode(n, 'test -e /etc/containerd/certs.d || echo none')).stdout, v).toBe('none\n');
      expect((await inNode(n, 'cat /run/lab/containerd.pid')).stdout, `${v}: containerd was not restarted`).toBe(
        pidBefore,
      );
      await resetNode(n);
    }
  });

  it('the process fallback finds the daemon that holds the CRI socket, not the first containerd process (a 1.6 decoy started earlier on another socket)', async () => {
    const n = node('2.1');
    await resetNode(n);
    // A second daemon in the same namespace (a packaged containerd next to an embedded one): the
    // 1.6 binary on its own socket, started before the node's 2.1 is restarted, so it comes first in /proc.
    const decoy = await inNode(
      n,
      `mkdir -p /run/decoy && printf 'version = 2\\nroot = "/var/lib/decoy"\\nstate = "/run/decoy/state"\\n[grpc]\\n  address = "/run/decoy/containerd.sock"\\n' > /run/decoy/config.toml
       setsid /usr/bin/containerd --config /run/decoy/config.toml </dev/null >/run/decoy/log 2>&1 &
       echo $!`,
    );
    const decoyPid = Number(decoy.stdout.trim());
    try {
      for (let i = 0; i < 50 && (await inNode(n, 'test -S /run/decoy/containerd.sock')).code !== 0; i++)
        await new Promise((r) => setTimeout(r, 100));
      // The node's CRI does not answer (plugin disabled), so the version comes from a process.
      await setConfig(n, 'disabled_plugins = ["cri"]\n');
      const daemonPid = Number((await inNode(n, 'cat /run/lab/containerd.pid')).stdout.trim());
      expect(daemonPid).toBeGreaterThan(decoyPid);
      const facts = await trustplay(['facts', '-i', env.lab.inventoryPath, '--limit', n.name]);
      expect(facts.stdout).toContain(
        `2.1.9+unknown (from the running daemon's executable (pid ${daemonPid}, ${n.containerd.binary}, listening on /run/containerd/containerd.sock))`,
      );
    } finally {
      await inNode(n, `kill ${decoyPid}; sleep 0.3; rm -rf /run/decoy /var/lib/decoy`);
      await resetNode(n);
    }
  });

  it('node.creds.wipe on 2.1 reads the registry table the running daemon uses: AKS’s published version 2 file with 2.x table names loses its auth (config dump proves it), the headers stay', async () => {
    const n = node('2.1');
    await resetNode(n);
    // AKS's containerd 2.x config (test/fixtures/published-configs/aks-2x.toml) with a stale login added.
    const aks = readFileSync(path.resolve('test/fixtures/published-configs/aks-2x.toml'), 'utf8');
    const aksAuth = [
      `${aks}[plugins."io.containerd.cri.v1.images".registry.configs."${reg()}".auth]`,
      '  username = "ci-bot"',
      '  password = "expired-token-2023"',
      '',
    ].join('\n');
    await setConfig(n, aksAuth);
    await waitForCri(n.hostSocket, 20_000);
    expect(await dump(n)).toContain('expired-token-2023');
    const wipe = path.join(tmp, 'wipe.yaml');
    writeFileSync(
      wipe,
      [
        '- hosts: nodes',
        '  tasks:',
        '    - name: Wipe stale credentials',
        '      node.creds.wipe:',
        '        registry: "{{ registry }}"',
        '        paths: []',
        '',
      ].join('\n'),
    );
    const r = await cli('run', wipe, n.name);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`remove registry.configs."${reg()}".auth from /etc/containerd/config.toml`);
    expect(r.stdout).not.toContain('expired-token-2023');
    const after = await dump(n);
    expect(after).not.toContain('expired-token-2023');
    expect(after).toMatch(/X-Meta-Source-Client = \['azure\/aks'\]/);
    expect(await criServes(n)).toBe(true);
    await resetNode(n);
  }, 120_000);
});
