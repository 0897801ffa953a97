import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import {
  credentialKeys,
  effectiveConfigPath,
  formatNodeFacts,
  hostsTomlFacts,
  trustSources,
  type NodeFacts,
} from './node-facts.js';

function node(over: Partial<Omit<NodeFacts, 'trust'>> & { major?: number; configPath?: string | null }) {
  const configPath = over.configPath === undefined ? '/etc/containerd/certs.d' : over.configPath;
  const version = { major: over.major ?? 1, minor: over.major === 2 ? 1 : 7 };
  return {
    flavour: { kind: 'containerd' as const, evidence: [] },
    containerd: { version: `${version.major}.${version.minor}.0`, major: version.major, source: null },
    config: {
      path: '/etc/containerd/config.toml',
      exists: true,
      version: 2,
      config_path: configPath,
      effective_config_path: effectiveConfigPath(configPath, version),
      registries: {},
      imports: [],
    },
    certs_d: [],
    credential_files: [],
    runtimes: [],
    kubelet: { kubelet: 'none' as const, endpoint: null, source: null, runtime: null, cri: null, evidence: [] },
    ...over,
  };
}

describe('facts: where each registry’s trust comes from', () => {
  it('the first config_path directory holding the registry’s hosts.toml wins, with what it trusts', () => {
    const f = node({
      configPath: '/etc/containerd/certs.d:/etc/docker/certs.d',
      certs_d: [
        {
          dir: '/etc/docker/certs.d',
          registry: 'r.test',
          hosts_toml: true,
          managed_by_trustplay: false,
          skip_verify: true,
          files: ['hosts.toml'],
        },
        {
          dir: '/etc/containerd/certs.d',
          registry: 'r.test',
          hosts_toml: true,
          managed_by_trustplay: true,
          ca: ['/etc/containerd/certs.d/r.test/ca.crt'],
          files: ['ca.crt', 'hosts.toml'],
        },
      ],
    });
    expect(trustSources(f)).toEqual({
      'r.test': '/etc/containerd/certs.d/r.test/hosts.toml: ca /etc/containerd/certs.d/r.test/ca.crt',
    });
  });

  it('a legacy tls table counts only where that version and config still read it', () => {
    const legacy = { 'r.test': { tls: { ca_file: '/ca.pem' }, auth_present: false } };
    const v1 = node({ configPath: null, config: { ...node({ configPath: null }).config, registries: legacy } });
    expect(trustSources(v1)['r.test']).toBe('/etc/containerd/config.toml registry.configs."r.test".tls (legacy)');
    const v2 = node({ major: 2, configPath: null });
    v2.config.registries = legacy;
    expect(trustSources(v2)['r.test']).toBe(
      'system roots only: /etc/containerd/config.toml\'s legacy registry.configs."r.test".tls is ignored by containerd 2.x',
    );
    // containerd 2.1 with config_path unset reads no directory at all (2.2 made certs.d the default).
    const unread = node({
      major: 2,
      configPath: null,
      certs_d: [
        {
          dir: '/etc/containerd/certs.d',
          registry: 'x.test',
          hosts_toml: true,
          managed_by_trustplay: true,
          files: ['hosts.toml'],
        },
      ],
    });
    expect(trustSources(unread)['x.test']).toBe(
      'system roots only: its hosts.toml is not under a directory containerd reads (effective config_path: none)',
    );
    expect(effectiveConfigPath(null, { major: 2, minor: 2 })).toEqual([
      '/etc/containerd/certs.d',
      '/etc/docker/certs.d',
    ]);
    expect(effectiveConfigPath('${SNAP_DATA}/args/certs.d', { major: 1, minor: 6 })).toEqual([
      '/var/snap/microk8s/current/args/certs.d',
    ]);
  });

  // containerd#10027, seen in the lab: 1.6.20/1.7.24 log "failed to decode hosts.toml" for a file
  // with only top-level server and ca, and pull with the system roots (x509); 2.1.9 uses its ca.
  it('a hosts.toml without a [host] table gives no ca on containerd 1.x, and says why', () => {
    const text = 'server = "https://r.test"\nca = "/etc/containerd/certs.d/r.test/ca.pem"\n';
    const on17 = hostsTomlFacts(text, { major: 1, minor: 7 });
    expect(on17).toEqual({
      hosts_toml: true,
      managed_by_trustplay: false,
      rejected:
        'rejected by containerd 1.7: it has no [host] table, which containerd 1.x requires ("failed to decode hosts.toml": invalid `host` tree, containerd#10027)',
    });
    const on21 = hostsTomlFacts(text, { major: 2, minor: 1 });
    expect(on21).toMatchObject({ ca: ['/etc/containerd/certs.d/r.test/ca.pem'], server: 'https://r.test' });
    expect(on21.rejected).toBeUndefined();
    expect(hostsTomlFacts(`${text}[host]\n`, { major: 1, minor: 7 }).ca).toEqual([
      '/etc/containerd/certs.d/r.test/ca.pem',
    ]);

    const entry = { dir: '/etc/containerd/certs.d', registry: 'r.test', ...on17, files: ['ca.pem', 'hosts.toml'] };
    expect(trustSources(node({ certs_d: [entry] }))['r.test']).toBe(
      `/etc/containerd/certs.d/r.test/hosts.toml: ${on17.rejected}; its settings are not used: falls back to the system roots`,
    );
    // The fallback is Docker's certs.d layout: *.crt files in the directory are CAs.
    expect(trustSources(node({ certs_d: [{ ...entry, files: ['ca.crt', 'hosts.toml'] }] }))['r.test']).toBe(
      `/etc/containerd/certs.d/r.test/hosts.toml: ${on17.rejected}; its settings are not used: ca from the directory's *.crt files /etc/containerd/certs.d/r.test/ca.crt`,
    );
    expect(
      trustSources(node({ major: 2, certs_d: [{ dir: entry.dir, registry: 'r.test', ...on21, files: entry.files }] }))[
        'r.test'
      ],
    ).toBe('/etc/containerd/certs.d/r.test/hosts.toml: ca /etc/containerd/certs.d/r.test/ca.pem');
  });
});

describe('facts: credential files', () => {
  const creds = (name: string): string =>
    readFileSync(new URL(`../../test/fixtures/image-modules/creds/${name}`, import.meta.url), 'utf8');

  it('name the auths entries, the registries credHelpers covers and the credsStore, never a value', () => {
    const docker = credentialKeys(creds('helpers-credhelpers.in.json'));
    expect(docker).toEqual({
      registries: ['other.example:5000', 'registry.test:5000', 'zz.example'],
      helpers: ['123456789012.dkr.ecr.eu-west-1.amazonaws.com', 'europe-docker.pkg.dev', 'registry.test:5000'],
      creds_store: 'secretservice',
    });
    expect(credentialKeys(creds('tabs.in.json'))).toEqual({
      registries: ['other.example:5000', 'registry.test:5000'],
    });
    const f = { ...node({}), trust: {} } as NodeFacts;
    f.credential_files = [{ path: '/root/.docker/config.json', exists: true, ...docker }];
    const out = formatNodeFacts('n1', f);
    expect(out).toContain(
      '  credentials /root/.docker/config.json: entries for other.example:5000, registry.test:5000, zz.example; helpers for 123456789012.dkr.ecr.eu-west-1.amazonaws.com, europe-docker.pkg.dev, registry.test:5000; credsStore secretservice\n',
    );
    expect(out).not.toContain('Y2ktYm90');
  });
});
