/**
 * A k3s node on a release before the k3s#9839 fix ("Registry TLS configuration from registries.yaml
 * is only honored for mirror endpoints", fixed in v1.29.4, v1.28.9, v1.27.13; rancher/rke2#5658),
 * end to end on the lab's k3s stand-in in its pre-fix mode (test/lab/k3s-standin.ts, emulating
 * k3s v1.29.3) running the real containerd 1.7 binary, as those releases ship containerd 1.7.
 *
 * There, a `configs.<registry>.tls` for a registry without a mirror endpoint of its own is rendered
 * only at the top level of the registry's hosts.toml, with no `[host]` table, and containerd 1.7
 * rejects such a file (containerd#10027): k3s restarts fine, the file says `ca = [...]`, and the
 * pull still fails with x509. The suite first proves the lab reproduces that (with the
 * `configs.tls` entry alone, and with the `mirrors.<registry>.endpoint: ["https://<registry>"]`
 * entry one would try next), then that trustplay's registries.yaml pulls, converges (a second run
 * changes nothing and restarts nothing) and restores byte for byte.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { classifyPullError } from '../../src/cri/classify.js';
import { NO_HOST_TABLE } from '../../src/containerd/hosts-toml.js';
import type { NodeFacts } from '../../src/containerd/node-facts.js';
import type { JsonReport } from '../../src/report/json.js';
import { PRE_FIX_RELEASE } from '../lab/k3s-standin.js';
import type { Lab, LabNode } from '../lab/lab.js';
import { initialRegistriesYaml } from '../lab/node.js';
import { trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, inNode } from '../support/lab-node.js';

async function pull(lab: Lab, node: LabNode): Promise<'ok' | string> {
  const msg = await criPull(node.hostSocket, lab.image.ref, { fresh: true, timeoutMs: 60_000 });
  return msg ? classifyPullError(msg).class : 'ok';
}

describeLab(`k3s before the k3s#9839 fix (lab stand-in of k3s ${PRE_FIX_RELEASE}, containerd 1.7)`, () => {
  const env = useLab({ nodes: 2, containerd: ['1.6', '1.7'], flavour: ['containerd', 'k3s'] });
  let state: string;
  let node: LabNode;
  const pb = 'playbooks/fix-registry.yaml';
  const args = (...extra: string[]) => [
    ...extra,
    '-i',
    env.lab.inventoryPath,
    '--state-dir',
    state,
    '--limit',
    'node2',
  ];
  const reg = (): string => env.lab.registries.registry.host;
  const yamlFile = '/etc/rancher/k3s/registries.yaml';
  const generated = (): string => `/var/lib/rancher/k3s/agent/etc/containerd/certs.d/${reg()}/hosts.toml`;
  const ca = (): string => `/etc/rancher/k3s/tls/${reg()}/ca.crt`;
  const read = async (file: string): Promise<string> => (await inNode(node, `cat '${file}'`)).stdout;
  const pid = async (): Promise<string> => (await inNode(node, 'cat /run/lab/containerd.pid')).stdout.trim();
  const restartWith = async (yaml: string): Promise<void> => {
    const r = await inNode(node, `cat > ${yamlFile} && systemctl restart k3s`, yaml);
    expect(r.code, r.stderr).toBe(0);
  };

  beforeAll(async () => {
    state = await mkdtemp(join(tmpdir(), 'trustplay-e2e-k3s-pre-fix-'));
    node = env.lab.nodes[1]!;
  });
  afterAll(async () => {
    if (state) await rm(state, { recursive: true, force: true });
  });

  it('the node runs the pre-fix release: `k3s --version` names it, facts find k3s with the running containerd 1.7', async () => {
    expect((await inNode(node, 'k3s --version')).stdout).toContain(`k3s version ${PRE_FIX_RELEASE}+k3s1`);
    const r = await trustplay(['facts', ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const f = (JSON.parse(r.stdout) as { hosts: Record<string, { facts: NodeFacts }> }).hosts['node2']!.facts;
    expect(f.flavour.kind).toBe('k3s');
    expect(f.containerd.version).toMatch(/1\.7\.24/);
  });

  it('before: configs.tls alone, and with a mirror endpoint of https://<registry>, k3s restarts, its hosts.toml names the CA, and the pull still fails with x509 (the k3s#9839 bug, from the real containerd 1.7)', async () => {
    const initial = initialRegistriesYaml('k3s');
    const labCa = await readFile(env.lab.ca, 'utf8');
    await inNode(node, `mkdir -p /etc/rancher/k3s/tls/${reg()} && cat > ${ca()}`, labCa);
    try {
      const tls = `  ${reg()}:\n    tls:\n      ca_file: ${ca()}\n`;
      await restartWith(`${initial}${tls}`);
      const hosts = await read(generated());
      expect(hosts).toContain(`ca = ["${ca()}"]`);
      expect(hosts, 'pre-fix k3s writes no [host] table').not.toContain('[host');
      expect(await pull(env.lab, node)).toBe('unknown-authority');
      // Why: containerd 1.7 rejected the generated file and pulled without it.
      expect((await inNode(node, 'cat /run/lab/containerd.log')).stdout).toMatch(
        /failed to decode hosts\.toml.*invalid `host` tree/,
      );
      // facts say the same: the file is rejected by this containerd, the registry gets the system roots.
      const facts = await trustplay(['facts', ...args('--format', 'json')]);
      const f = (JSON.parse(facts.stdout) as { hosts: Record<string, { facts: NodeFacts }> }).hosts['node2']!.facts;
      expect(f.trust[reg()]).toBe(
        `${generated()} (generated by k3s from /etc/rancher/k3s/registries.yaml): rejected by containerd 1.7: ${NO_HOST_TABLE}; its settings are not used: falls back to the system roots`,
      );
      // The obvious workaround: k3s normalises the endpoint to the registry's default one, and
      // renders the file exactly as before.
      await restartWith(
        `${initial.replace('configs:\n', `  ${reg()}:\n    endpoint:\n      - https://${reg()}\nconfigs:\n`)}${tls}`,
      );
      expect(await read(generated())).toBe(hosts);
      expect(await pull(env.lab, node)).toBe('unknown-authority');
    } finally {
      await inNode(node, `rm -rf /etc/rancher/k3s/tls`);
      await restartWith(initial);
    }
    expect(await pull(env.lab, node)).toBe('unknown-authority');
  });

  let firstRun = '';
  let before = '';
  it('run fixes it (exit 0): registries.yaml gets the tls entry and the registry’s own mirror entry in place, k3s renders a host table with the CA, the pull succeeds', async () => {
    before = await read(yamlFile);
    const oldPid = await pid();
    const r = await trustplay(['run', pb, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    firstRun = (await readdir(join(state, 'runs')))[0]!.replace(/\.json$/, '');
    expect(r.stdout).toContain(
      `set configs."${reg()}".tls and mirrors."${reg()}" (https://${reg()}/v2/) in ${yamlFile} (restarts k3s`,
    );
    // Every line of the person's file is still there, in order.
    expect(await read(yamlFile)).toBe(
      `${before.replace('configs:\n', `  ${reg()}:\n    endpoint:\n      - https://${reg()}/v2/\nconfigs:\n`)}  ${reg()}:\n    tls:\n      ca_file: ${ca()}\n`,
    );
    const hosts = await read(generated());
    expect(hosts).toContain(
      `[host."https://${reg()}/v2/"]\n  capabilities = ["pull", "resolve"]\n  override_path = true\n  ca = ["${ca()}"]`,
    );
    expect(await pid(), 'k3s restarted').not.toBe(oldPid);
    expect(await pull(env.lab, node)).toBe('ok');
  });

  it('a second run is ok on every task: nothing changes, k3s is not restarted; check exits 0', async () => {
    const p = await pid();
    const r = await trustplay(['run', pb, ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as JsonReport;
    expect(report.hosts['node2']!.recap.changed).toBe(0);
    expect(report.hosts['node2']!.tasks.find((t) => t.task === "Trust the registry's CA")?.status).toBe('ok');
    expect(await pid()).toBe(p);
    const c = await trustplay(['check', pb, ...args()]);
    expect(c.code, c.stdout + c.stderr).toBe(0);
  });

  it('restore of the first run puts registries.yaml back byte for byte and removes the CA: x509 again', async () => {
    const r = await trustplay(['restore', firstRun, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await read(yamlFile)).toBe(before);
    expect((await inNode(node, `test -e ${ca()} || echo gone`)).stdout).toBe('gone\n');
    expect(await pull(env.lab, node)).toBe('unknown-authority');
  });
});
