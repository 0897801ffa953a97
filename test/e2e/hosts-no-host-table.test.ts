/**
 * containerd#10027 on the real binaries: a hosts.toml with only top-level `server` and `ca` (what
 * k3s rendered before k3s#9839's fix, or a hand-written file) is rejected by containerd 1.7 ("failed
 * to decode hosts.toml": invalid `host` tree), which pulls with the system roots, and used by
 * containerd 2.1. `trustplay facts` and `trustplay diagnose` say the same as a CRI pull on each node;
 * the fix diagnose proposes (containerd.tls, which writes a [host."https://<registry>"] table) makes
 * the 1.7 node pull.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { classifyPullError } from '../../src/cri/classify.js';
import { waitForCri } from '../../src/cri/client.js';
import type { Diagnosis } from '../../src/diagnose/diagnose.js';
import { NO_HOST_TABLE } from '../../src/containerd/hosts-toml.js';
import type { LabNode } from '../lab/lab.js';
import { trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, inNode, writeTrustCaPlaybook } from '../support/lab-node.js';

interface FactsJson {
  hosts: Record<
    string,
    { facts: { trust: Record<string, string>; certs_d: Array<{ registry: string; ca?: string[]; rejected?: string }> } }
  >;
}

describeLab('a hosts.toml without a [host] table (containerd#10027) on containerd 1.7 and 2.1', () => {
  const env = useLab({ nodes: 2, containerd: ['1.7', '2.1'] });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tp-e2e-hostsreject-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const reg = (): string => env.lab.registries.registry.host;
  const node = (v: string): LabNode => env.lab.nodes.find((n) => n.containerd.version === v)!;
  const dir = (): string => `/etc/containerd/certs.d/${reg()}`;
  const pull = async (n: LabNode): Promise<string> => {
    const msg = await criPull(n.hostSocket, env.lab.image.ref, { fresh: true, timeoutMs: 60_000 });
    return msg ? classifyPullError(msg).class : 'ok';
  };
  const decodeErrors = async (n: LabNode): Promise<number> =>
    Number((await inNode(n, "grep -c 'failed to decode hosts.toml' /run/lab/containerd.log || true")).stdout.trim());
  const facts = async (n: LabNode) => {
    const r = await trustplay(['facts', '-i', env.lab.inventoryPath, '--limit', n.name, '--format', 'json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as FactsJson).hosts[n.name]!.facts;
  };
  const diagnose = async (): Promise<Record<string, Diagnosis>> => {
    const r = await trustplay(['diagnose', reg(), '-i', env.lab.inventoryPath, '--format', 'json']);
    const hosts = (JSON.parse(r.stdout) as { hosts: Diagnosis[] }).hosts;
    return Object.fromEntries(hosts.map((h) => [h.host, h]));
  };
  const defaults = new Map<string, string>();

  beforeAll(async () => {
    // config_path on, and the registry's directory with the lab CA and a hosts.toml of top-level keys only.
    const hostsToml = `server = "https://${reg()}"\nca = "${dir()}/ca.pem"\n`;
    for (const n of env.lab.nodes) {
      const text = (await inNode(n, 'cat /etc/containerd/config.toml')).stdout;
      defaults.set(n.name, text);
      const withPath = text.replace(/(registry\]\n\s*config_path = )(""|'')/, '$1"/etc/containerd/certs.d"');
      expect(withPath, n.name).not.toBe(text);
      const r = await inNode(
        n,
        `cat > /etc/containerd/config.toml && mkdir -p '${dir()}' && cp '${env.lab.ca}' '${dir()}/ca.pem' && printf '%s' '${hostsToml}' > '${dir()}/hosts.toml' && systemctl restart containerd`,
        withPath,
      );
      expect(r.code, `${n.name}: ${r.stderr}`).toBe(0);
      await waitForCri(n.hostSocket, 20_000);
    }
  });
  afterAll(async () => {
    for (const n of env.lab.nodes) {
      await inNode(
        n,
        `rm -rf /etc/containerd/certs.d && cat > /etc/containerd/config.toml && systemctl restart containerd`,
        defaults.get(n.name),
      );
    }
  });

  it('1.7 rejects the file and pulls with the system roots; facts and diagnose say so, with the cause', async () => {
    const n = node('1.7');
    const before = await decodeErrors(n);
    expect(await pull(n)).toBe('unknown-authority');
    expect(await decodeErrors(n)).toBeGreaterThan(before);

    const f = await facts(n);
    expect(f.trust[reg()]).toBe(
      `${dir()}/hosts.toml: rejected by containerd 1.7: ${NO_HOST_TABLE}; its settings are not used: falls back to the system roots`,
    );
    const entry = f.certs_d.find((c) => c.registry === reg())!;
    expect(entry.rejected).toBe(`rejected by containerd 1.7: ${NO_HOST_TABLE}`);
    expect(entry.ca).toBeUndefined();

    const d = (await diagnose())[n.name]!;
    expect(d.cause).toBe('unknown-authority');
    expect(d.evidence.trust?.hosts_toml_ignored).toBe(`containerd 1.7 ignores ${dir()}/hosts.toml: ${NO_HOST_TABLE}`);
    expect(d.evidence.trust?.ca_files).toEqual([]);
    expect(d.evidence.trust?.ignored_ca).toEqual([`${dir()}/ca.pem`]);
    expect(d.summary).toContain(`containerd 1.7 ignores ${dir()}/hosts.toml`);
    expect(d.fix?.action).toContain(`give it a [host."https://${reg()}"] table with the CA`);
    expect(d.fix?.task?.['containerd.tls']).toMatchObject({ registry: reg() });
  });

  it('2.1 reads the same file and pulls; facts and diagnose count its ca', async () => {
    const n = node('2.1');
    expect(await pull(n)).toBe('ok');
    const f = await facts(n);
    expect(f.trust[reg()]).toBe(`${dir()}/hosts.toml: ca ${dir()}/ca.pem`);
    expect(f.certs_d.find((c) => c.registry === reg())?.rejected).toBeUndefined();
    const d = (await diagnose())[n.name]!;
    expect(d.cause).toBe('healthy');
    expect(d.evidence.trust?.hosts_toml_ignored).toBeUndefined();
    expect(d.evidence.trusted_by).toContain(`hosts.toml ca ${dir()}/ca.pem`);
  });

  it('the proposed fix (containerd.tls) gives the 1.7 node a [host] table: it pulls, facts and diagnose agree', async () => {
    const n = node('1.7');
    const pb = writeTrustCaPlaybook(path.join(tmp, 'trust.yaml'));
    const r = await trustplay([
      'run',
      pb,
      '-i',
      env.lab.inventoryPath,
      '--state-dir',
      path.join(tmp, 'state'),
      '--limit',
      n.name,
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await inNode(n, `cat '${dir()}/hosts.toml'`)).stdout).toContain(`[host."https://${reg()}"]`);
    const before = await decodeErrors(n);
    expect(await pull(n)).toBe('ok');
    expect(await decodeErrors(n)).toBe(before);
    const f = await facts(n);
    expect(f.trust[reg()]).toMatch(new RegExp(`^${dir().replace(/[.]/g, '\\.')}/hosts\\.toml: ca `));
    expect((await diagnose())[n.name]?.cause).toBe('healthy');
  });
});
