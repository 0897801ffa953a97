import { describe, expect, it } from 'vitest';
import { effectiveConfigPath, trustSources, type NodeFacts } from './node-facts.js';

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
});
