/**
 * The node's view of a registry's trust, read through a local connection (this machine's
 * containerd 1.6 on PATH, as the lab's prerequisites have it): a hosts.toml containerd 1.x
 * rejects for want of a [host] table gives no anchors (containerd#10027).
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalConnection } from '../connection/local.js';
import { NO_HOST_TABLE } from '../containerd/hosts-toml.js';
import type { Diagnosis } from './diagnose.js';
import { fixFor } from './fixes.js';
import { gatherNodeView } from './node-view.js';

const CA = path.join(path.dirname(new URL(import.meta.url).pathname), '../../test/fixtures/containerd-tls/test-ca.pem');
const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-node-view-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('node view: hosts.toml as the node’s containerd reads it', () => {
  const certsD = path.join(dir, 'certs.d');
  const regDir = path.join(certsD, 'r.test');
  const configFile = path.join(dir, 'config.toml');
  writeFileSync(
    configFile,
    `version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = ${JSON.stringify(certsD)}\n`,
  );
  mkdirSync(regDir, { recursive: true });
  copyFileSync(CA, path.join(regDir, 'ca.pem'));
  const view = () =>
    gatherNodeView(new LocalConnection({ host: 'localhost' }), 'r.test', {
      configFile,
      configPath: certsD,
      credentialFiles: [],
    });

  it('containerd 1.x: a file without a [host] table gives no anchors and says why', async () => {
    writeFileSync(path.join(regDir, 'hosts.toml'), 'server = "https://r.test"\nca = "ca.pem"\n');
    const v = await view();
    expect(v.trust.hosts_toml).toBe(path.join(regDir, 'hosts.toml'));
    expect(v.trust.hosts_toml_ignored).toMatch(/^containerd 1\.\d+ ignores /);
    expect(v.trust.hosts_toml_ignored).toContain(NO_HOST_TABLE);
    expect(v.trust.ignored_ca).toEqual([path.join(regDir, 'ca.pem')]);
    expect(v.trust.ca_files).toEqual([]);
    expect(v.registryAnchors).toEqual([]);
  });

  it('containerd 1.x falls back to the directory’s *.crt files; with a [host] table the file’s ca counts', async () => {
    copyFileSync(CA, path.join(regDir, 'ca.crt'));
    try {
      const fallback = await view();
      expect(fallback.trust.ca_files).toEqual([path.join(regDir, 'ca.crt')]);
      expect(fallback.registryAnchors.map((a) => a.source)).toEqual([`certs.d *.crt ${path.join(regDir, 'ca.crt')}`]);
    } finally {
      rmSync(path.join(regDir, 'ca.crt'));
    }
    writeFileSync(path.join(regDir, 'hosts.toml'), 'server = "https://r.test"\nca = "ca.pem"\n[host]\n');
    const ok = await view();
    expect(ok.trust.hosts_toml_ignored).toBeUndefined();
    expect(ok.trust.ca_files).toEqual([path.join(regDir, 'ca.pem')]);
    expect(ok.registryAnchors.map((a) => a.source)).toEqual([`hosts.toml ca ${path.join(regDir, 'ca.pem')}`]);
  });
});

describe('fix for an ignored hosts.toml', () => {
  it('names the cause and proposes the [host] table containerd.tls writes, not another CA hunt', () => {
    const ignored = `containerd 1.7 ignores /etc/containerd/certs.d/r.test/hosts.toml: ${NO_HOST_TABLE}`;
    const d: Diagnosis = {
      host: 'n1',
      registry: 'r.test',
      cause: 'unknown-authority',
      summary: '',
      findings: [],
      evidence: {
        trust: {
          hosts_toml: '/etc/containerd/certs.d/r.test/hosts.toml',
          hosts_toml_ignored: ignored,
          ignored_ca: ['/etc/containerd/certs.d/r.test/ca.pem'],
          ca_files: [],
          skip_verify: false,
        },
      },
      fix: null,
    };
    const fix = fixFor(d, { registry: 'r.test' });
    expect(fix?.by).toBe('you (trustplay)');
    expect(fix?.action).toContain(`${ignored}: give it a [host."https://r.test"] table with the CA`);
    expect(fix?.action).toContain('/etc/containerd/certs.d/r.test/ca.pem');
    expect(fix?.task?.['containerd.tls']).toMatchObject({ registry: 'r.test' });
    const k3s = structuredClone(d);
    k3s.evidence.trust!.hosts_toml = '/var/lib/rancher/k3s/agent/etc/containerd/certs.d/r.test/hosts.toml';
    expect(fixFor(k3s, { registry: 'r.test' })?.action).toContain(
      'through registries.yaml: a mirror entry the agent renders as [host."https://r.test/v2/"]',
    );
    expect(fix?.action).not.toContain('registries.yaml');
    // Other causes keep their own fix: a table does not mend an expired certificate.
    expect(fixFor({ ...d, cause: 'expired' }, { registry: 'r.test' })?.by).toBe('registry owner');
  });
});
