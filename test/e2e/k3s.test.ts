/**
 * k3s and RKE2 nodes end to end, with the CLI as a user types it: the fix-registry procedure, drift
 * and restore on the lab's k3s stand-in (node2) and RKE2 stand-in (node3), both running the real
 * containerd 2.1 binary; node1 is a packaged containerd 1.6 master.
 *
 * There is no k3s package on this machine: the stand-in (test/lab/k3s-standin.ts) emulates the k3s
 * agent's containerd setup from k3s's own source, k3s-io/k3s at commit
 * 06ea261ce3f10517abfdc3532f5a1c56db06adc2 (`pkg/agent/containerd/config.go` and the v3 config
 * template), i.e. k3s after the k3s#9839 fix, where a `configs` entry's TLS applies to the registry's
 * default endpoint and not only to mirror endpoints. At every start of its unit it renders
 * /etc/rancher/<flavour>/registries.yaml into certs.d/<host>/hosts.toml (deleting the directories it
 * generated before) and config.toml, then runs containerd with k3s's paths and socket.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { classifyPullError } from '../../src/cri/classify.js';
import type { JsonReport } from '../../src/report/json.js';
import type { Lab, LabNode } from '../lab/lab.js';
import { K3S_SOURCE_COMMIT } from '../lab/k3s-standin.js';
import { initialRegistriesYaml } from '../lab/node.js';
import type { NodeFacts } from '../../src/containerd/node-facts.js';
import { trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, inNode } from '../support/lab-node.js';

async function pull(lab: Lab, node: LabNode): Promise<'ok' | string> {
  const msg = await criPull(node.hostSocket, lab.image.ref, { fresh: true, timeoutMs: 60_000 });
  return msg ? classifyPullError(msg).class : 'ok';
}

describeLab(`k3s and RKE2 nodes (lab stand-in of k3s ${K3S_SOURCE_COMMIT.slice(0, 12)}, containerd 2.1)`, () => {
  const env = useLab({ nodes: 3, containerd: ['1.6', '2.1', '2.1'], flavour: ['containerd', 'k3s', 'rke2'] });
  let state: string;
  let tmp: string;
  let rancher: LabNode[];
  const pb = 'playbooks/fix-registry.yaml';
  const args = (...extra: string[]) => [...extra, '-i', env.lab.inventoryPath, '--state-dir', state];
  const reg = (): string => env.lab.registries.registry.host;
  const fl = (n: LabNode): 'k3s' | 'rke2' => (n.flavour === 'rke2' ? 'rke2' : 'k3s');
  const registriesYaml = (n: LabNode): string => `/etc/rancher/${fl(n)}/registries.yaml`;
  const certsD = (n: LabNode): string => `/var/lib/rancher/${fl(n)}/agent/etc/containerd/certs.d`;
  const read = async (n: LabNode, file: string): Promise<string> => (await inNode(n, `cat '${file}'`)).stdout;
  const pid = async (n: LabNode): Promise<string> => (await inNode(n, 'cat /run/lab/containerd.pid')).stdout.trim();
  // A stale credential for the lab registry in registries.yaml, as a person would have added it.
  const withAuth = (n: LabNode): string =>
    `${initialRegistriesYaml(fl(n))}  "${reg()}":\n    auth:\n      username: ci-bot\n      password: expired-token-2023\n`;

  beforeAll(async () => {
    state = await mkdtemp(join(tmpdir(), 'trustplay-e2e-k3s-state-'));
    tmp = await mkdtemp(join(tmpdir(), 'trustplay-e2e-k3s-'));
    rancher = env.lab.nodes.filter((n) => n.flavour !== 'containerd');
    for (const n of rancher) {
      const r = await inNode(
        n,
        `cat > ${registriesYaml(n)} && systemctl restart ${n.flavour === 'rke2' ? 'rke2-server' : 'k3s'}`,
        withAuth(n),
      );
      expect(r.code, r.stderr).toBe(0);
    }
  });
  afterAll(async () => {
    for (const d of [state, tmp]) if (d) await rm(d, { recursive: true, force: true });
  });

  it('facts name the flavour with its evidence, the version from the running daemon, and the effective config_path', async () => {
    const r = await trustplay(['facts', ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const hosts = (JSON.parse(r.stdout) as { hosts: Record<string, { facts: NodeFacts }> }).hosts;
    for (const n of rancher) {
      const f = hosts[n.name]!.facts;
      expect(f.flavour.kind).toBe(fl(n));
      expect(f.flavour.evidence).toContain(
        `/var/lib/rancher/${fl(n)}/agent/etc/containerd/config.toml carries ${fl(n)}'s generated-file header`,
      );
      expect(f.containerd.source).toBe('the running daemon (CRI Version on /run/k3s/containerd/containerd.sock)');
      expect(f.containerd.version).toMatch(/2\.1\.9/);
      expect(f.config.effective_config_path).toEqual([certsD(n)]);
      expect(f.registries_yaml?.registries[reg()]).toEqual({ auth_present: true });
      expect(JSON.stringify(f)).not.toContain('expired-token-2023');
    }
    expect(hosts['node1']!.facts.flavour.kind).toBe('containerd');
    expect(hosts['node1']!.facts.config.effective_config_path).toEqual([]);
  });

  it('before: the pulls fail with x509; editing /etc/containerd or the generated hosts.toml changes nothing (k3s rules its own config)', async () => {
    const n = rancher[0]!;
    expect(await pull(env.lab, n)).toBe('unknown-authority');
    // What a packaged-containerd procedure would write: ignored by k3s's containerd.
    const dir = `/etc/containerd/certs.d/${reg()}`;
    await inNode(n, `mkdir -p ${dir} && cat > ${dir}/ca.crt`, await readLabCa(env.lab));
    await inNode(
      n,
      `printf 'server = "https://${reg()}"\\n[host."https://${reg()}"]\\n  ca = "${dir}/ca.crt"\\n' > ${dir}/hosts.toml`,
    );
    // And a CA added to the generated file: lost at the next start, as k3s rewrites what it generated.
    const gen = `${certsD(n)}/${reg()}`;
    await inNode(
      n,
      `mkdir -p ${gen} && printf '# File generated by k3s. DO NOT EDIT.\\nserver = "https://${reg()}"\\nca = ["${dir}/ca.crt"]\\n' > ${gen}/hosts.toml`,
    );
    expect(await pull(env.lab, n), 'the hand-edited generated file works until k3s restarts').toBe('ok');
    expect((await inNode(n, 'systemctl restart k3s')).code).toBe(0);
    // The registry has an entry in registries.yaml (its stale auth), so k3s deleted the directory and
    // wrote it anew from that entry: the hand-added CA is gone.
    const regenerated = await read(n, `${gen}/hosts.toml`);
    expect(regenerated).toMatch(/^# File generated by k3s\. DO NOT EDIT\.\n/);
    expect(regenerated).not.toContain('ca = ');
    expect(await pull(env.lab, n)).toBe('unknown-authority');
    await inNode(n, 'rm -rf /etc/containerd/certs.d');
    expect(await pull(env.lab, rancher[1]!)).toBe('unknown-authority');
  });

  let firstRun = '';
  const before = new Map<string, string>();
  it('run fixes every node (exit 0): registries.yaml gets the CA entry in place (comments and the docker.io mirror kept, the stale auth removed), the unit restarts, the pulls succeed', async () => {
    for (const n of rancher) {
      before.set(n.name, await read(n, registriesYaml(n)));
      before.set(`${n.name}:docker.io`, await read(n, `${certsD(n)}/docker.io/hosts.toml`));
      before.set(`${n.name}:pid`, await pid(n));
    }
    const r = await trustplay(['run', pb, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toContain('expired-token-2023');
    firstRun = (await readdir(join(state, 'runs')))[0]!.replace(/\.json$/, '');
    for (const n of rancher) {
      const unit = n.flavour === 'rke2' ? 'rke2-server' : 'k3s';
      expect(r.stdout).toContain(
        `set configs."${reg()}".tls and mirrors."${reg()}" (https://${reg()}/v2/) in ${registriesYaml(n)} (restarts ${fl(n)}`,
      );
      expect(r.stdout).toContain(`restart ${unit} (\`systemctl restart ${unit}\`)`);
      const yaml = await read(n, registriesYaml(n));
      const ca = `/etc/rancher/${fl(n)}/tls/${reg()}/ca.crt`;
      // Every line of the person's file is still there, in order; the registry's entry gained tls
      // and lost its auth, and the registry's own mirror entry was added (for k3s releases before
      // the k3s#9839 fix: test/e2e/k3s-pre-fix.test.ts); nothing else changed.
      expect(yaml).toBe(
        `${initialRegistriesYaml(fl(n)).replace('configs:\n', `  ${reg()}:\n    endpoint:\n      - https://${reg()}/v2/\nconfigs:\n`)}  "${reg()}":\n    tls:\n      ca_file: ${ca}\n`,
      );
      expect(await read(n, ca)).toBe(await readLabCa(env.lab));
      expect(await read(n, `${certsD(n)}/docker.io/hosts.toml`), 'the docker.io mirror still generated the same').toBe(
        before.get(`${n.name}:docker.io`),
      );
      expect(await read(n, `${certsD(n)}/${reg()}/hosts.toml`)).toContain(`ca = ["${ca}"]`);
      expect(await read(n, `/var/lib/rancher/${fl(n)}/agent/etc/containerd/config.toml`)).not.toContain('ci-bot');
      expect(await pid(n), `${n.name}: ${unit} restarted`).not.toBe(before.get(`${n.name}:pid`));
      expect(await pull(env.lab, n), n.name).toBe('ok');
    }
  });

  it('facts say where the registry’s trust now comes from: the hosts.toml k3s generated from registries.yaml, with trustplay’s CA', async () => {
    const r = await trustplay(['facts', ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const hosts = (JSON.parse(r.stdout) as { hosts: Record<string, { facts: NodeFacts }> }).hosts;
    for (const n of rancher)
      expect(hosts[n.name]!.facts.trust[reg()]).toBe(
        `${certsD(n)}/${reg()}/hosts.toml (generated by ${fl(n)} from ${registriesYaml(n)}): ca /etc/rancher/${fl(n)}/tls/${reg()}/ca.crt`,
      );
  });

  it('check on the converged nodes exits 0, and a second run changes nothing and restarts nothing', async () => {
    const c = await trustplay(['check', pb, ...args('--format', 'json')]);
    expect(c.code, c.stdout + c.stderr).toBe(0);
    const pids = await Promise.all(rancher.map(pid));
    const r = await trustplay(['run', pb, ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as JsonReport;
    for (const n of rancher) expect(report.hosts[n.name]!.recap.changed, n.name).toBe(0);
    expect(await Promise.all(rancher.map(pid))).toEqual(pids);
  });

  it('drift: a registries.yaml edited by hand (the tls entry gone) is reported by check (exit 2) and fixed by run', async () => {
    const n = rancher[0]!;
    await inNode(n, `cat > ${registriesYaml(n)}`, initialRegistriesYaml('k3s'));
    const c = await trustplay(['check', pb, ...args()]);
    expect(c.code, c.stdout + c.stderr).toBe(2);
    expect(c.stdout).toMatch(new RegExp(`^${n.name} \\| would change \\| Trust the registry's CA$`, 'm'));
    expect(c.stdout).not.toMatch(new RegExp(`^${rancher[1]!.name} \\| would change`, 'm'));
    const r = await trustplay(['run', pb, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await pull(env.lab, n)).toBe('ok');
  });

  it('restore of the first run puts registries.yaml back byte for byte (auth included), removes the CA, restarts the unit: x509 again', async () => {
    const r = await trustplay(['restore', firstRun, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const n of rancher) {
      expect(await read(n, registriesYaml(n)), n.name).toBe(before.get(n.name));
      expect((await inNode(n, `test -e /etc/rancher/${fl(n)}/tls/${reg()}/ca.crt || echo gone`)).stdout).toBe('gone\n');
      expect(await pull(env.lab, n), n.name).toBe('unknown-authority');
    }
  });

  it('what registries.yaml cannot say is refused naming the flavour and the file: plain_http and style: legacy', async () => {
    const n = rancher[0]!;
    const file = join(tmp, 'plain.yaml');
    await writeFile(
      file,
      [
        '- hosts: nodes',
        '  tasks:',
        '    - name: Plain HTTP',
        '      containerd.tls:',
        '        registry: "{{ registry }}"',
        '        plain_http: true',
        '',
      ].join('\n'),
    );
    const r = await trustplay(['run', file, ...args('--limit', n.name)]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain(
      `${n.name} runs k3s: plain HTTP is not a \`configs\` setting of /etc/rancher/k3s/registries.yaml`,
    );
    await writeFile(
      file,
      (await import('node:fs'))
        .readFileSync(file, 'utf8')
        .replace('plain_http: true', 'skip_verify: true\n        style: legacy'),
    );
    const l = await trustplay(['run', file, ...args('--limit', n.name)]);
    expect(l.code, l.stdout + l.stderr).toBe(1);
    expect(l.stdout).toContain(
      `${n.name} runs k3s, whose agent writes containerd's config from /etc/rancher/k3s/registries.yaml; style: legacy`,
    );
    expect(await read(n, registriesYaml(n))).toBe(before.get(n.name));
  });

  it('a Bottlerocket node (its /etc/os-release) is refused by every file-editing module with the settings API command to use, and nothing is written', async () => {
    const n = rancher[0]!;
    // Only a k3s/RKE2 lab node's /etc is its own overlay: replace the link there (never write
    // through it, it points into this machine's /usr) and put it back.
    expect(n.flavour).toBe('k3s');
    const link = (await inNode(n, 'readlink /etc/os-release')).stdout.trim();
    await inNode(n, `rm -f /etc/os-release && printf 'NAME=Bottlerocket\\nID=bottlerocket\\n' > /etc/os-release`);
    try {
      const r = await trustplay(['run', pb, ...args('--limit', n.name)]);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toContain(
        `${n.name} runs Bottlerocket (/etc/os-release ID=bottlerocket), whose containerd is configured only through its settings API, not files: trust the registry's CA with \`apiclient set settings.pki.`,
      );
      expect(await read(n, registriesYaml(n))).toBe(before.get(n.name));
    } finally {
      await inNode(n, link ? `rm -f /etc/os-release && ln -s '${link}' /etc/os-release` : 'rm -f /etc/os-release');
    }
  });

  it('rollback: a registries.yaml change k3s cannot start with (the restart leaves it unparseable once) is rolled back with the CA file, k3s restarted, the host failed with both messages', async () => {
    const n = rancher[0]!;
    const yamlBefore = await read(n, registriesYaml(n));
    const ca = `/etc/rancher/k3s/tls/${reg()}/ca.crt`;
    expect((await inNode(n, `test -e ${ca} || echo absent`)).stdout).toBe('absent\n');
    const oldPid = await pid(n);
    const file = join(tmp, 'broken-k3s.yaml');
    // As a bad change would: the first restart finds registries.yaml broken (k3s refuses to start on
    // a file it cannot parse); the marker makes the rollback's restart a clean one.
    await writeFile(
      file,
      [
        '- hosts: nodes',
        '  tasks:',
        "    - name: Trust the registry's CA",
        '      containerd.tls:',
        '        registry: "{{ registry }}"',
        '        ca: "{{ registry_ca }}"',
        '        restart_timeout: 15',
        '        restart_command: >-',
        '          if [ ! -e /run/lab/tp-k3s-broke-once ]; then touch /run/lab/tp-k3s-broke-once;',
        "          echo 'configs: [not yaml' >> /etc/rancher/k3s/registries.yaml; fi;",
        '          systemctl restart k3s',
        '',
      ].join('\n'),
    );
    try {
      const r = await trustplay(['run', file, ...args('--limit', n.name, '--format', 'json')]);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      const report = JSON.parse(r.stdout) as JsonReport;
      const restart = report.hosts[n.name]!.tasks.find((t) => t.task === 'Restart k3s (verified)');
      expect(restart?.status, r.stdout).toBe('failed');
      expect(restart!.error?.message).toMatch(
        /^k3s did not come back after the config change \(`.*systemctl restart k3s` failed \(exit 1[^)]*\): /,
      );
      expect(restart!.error?.message).toContain(
        `the previous /etc/rancher/k3s/registries.yaml was restored (and ${ca} put back as before this run) and k3s restarted (it answers on /run/k3s/containerd/containerd.sock)`,
      );
      expect(await read(n, registriesYaml(n))).toBe(yamlBefore);
      expect((await inNode(n, `test -e ${ca} || echo absent`)).stdout).toBe('absent\n');
      expect(await pid(n), 'k3s was restarted with the old file').not.toBe(oldPid);
      expect(await pull(env.lab, n)).toBe('unknown-authority');
      expect((await inNode(n, `ls /etc/rancher/k3s/ | grep trustplay-pending || true`)).stdout).toBe('');
    } finally {
      await inNode(n, 'rm -f /run/lab/tp-k3s-broke-once');
    }
  });

  it('verify_ca auto on k3s: a registry the node cannot reach is written with a warning; once converged the pre-flight is skipped (no handshake, no warning), as on containerd', async () => {
    const n = rancher[0]!;
    const closed = env.lab.registries.closed.host;
    const file = join(tmp, 'closed-k3s.yaml');
    const task = async (state: 'present' | 'absent') => {
      await writeFile(
        file,
        [
          '- hosts: nodes',
          '  tasks:',
          '    - name: trust',
          '      containerd.tls:',
          `        registry: "${closed}"`,
          '        ca: "{{ registry_ca }}"',
          `        state: ${state}`,
          '',
        ].join('\n'),
      );
      const r = await trustplay(['run', file, ...args('--limit', n.name, '--format', 'json')]);
      const t = (JSON.parse(r.stdout) as JsonReport).hosts[n.name]!.tasks.find((x) => x.task === 'trust');
      return { code: r.code, out: r.stdout + r.stderr, status: t?.status, warnings: (t?.warnings ?? []).join('\n') };
    };
    try {
      const first = await task('present');
      expect(first.code, first.out).toBe(0);
      expect(first.status).toBe('changed');
      expect(first.warnings).toMatch(
        /verify_ca: the CA could not be checked against what closed\.test:\d+ serves .*written unchecked/,
      );
      expect(await read(n, registriesYaml(n))).toContain(closed);
      const again = await task('present');
      expect(again.code, again.out).toBe(0);
      expect(again.status).toBe('ok');
      expect(again.warnings).not.toMatch(/verify_ca/);
    } finally {
      const gone = await task('absent');
      expect(gone.code, gone.out).toBe(0);
      expect(await read(n, registriesYaml(n))).not.toContain(closed);
    }
  });
});

async function readLabCa(lab: Lab): Promise<string> {
  return (await import('node:fs')).readFileSync(lab.ca, 'utf8');
}
