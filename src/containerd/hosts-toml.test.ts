import TOML from '@iarna/toml';
import { describe, expect, it } from 'vitest';
import { inspectConfig, VERSION_1_REFUSAL } from './config.js';
import {
  hostsTomlModel,
  hostsTomlRejection,
  isManagedByTrustplay,
  MANAGED_MARKER,
  MIGRATED_MARKER,
  NO_HOST_TABLE,
  parseHostsToml,
  renderHostsModel,
  renderHostsToml,
} from './hosts-toml.js';
import { normalizeRegistryHost, registryKeyMatches } from './registry-host.js';

describe('hosts.toml', () => {
  // The CA is on the server AND on its host entry: with it only on the entry, containerd 1.6.20
  // reports a missing image as x509 (the 404 falls through to `server`, which lacks the CA).
  it('renders a CA trust file as docs/hosts.md describes it, the CA on every endpoint containerd tries', () => {
    const text = renderHostsToml({
      registry: 'registry.test:5000',
      ca: '/etc/containerd/certs.d/registry.test:5000/ca.crt',
    });
    expect(text).toBe(
      `${MANAGED_MARKER}\nserver = "https://registry.test:5000"\nca = "/etc/containerd/certs.d/registry.test:5000/ca.crt"\n\n[host."https://registry.test:5000"]\n  capabilities = ["pull", "resolve"]\n  ca = "/etc/containerd/certs.d/registry.test:5000/ca.crt"\n`,
    );
    expect(isManagedByTrustplay(text)).toBe(true);
  });

  it('renders mTLS, skip_verify and plain HTTP', () => {
    const mtls = TOML.parse(
      renderHostsToml({ registry: 'r.test', ca: '/ca', clientCert: '/c.crt', clientKey: '/c.key' }),
    ) as { host: Record<string, { client: unknown }> };
    expect(mtls.host['https://r.test']?.client).toEqual([['/c.crt', '/c.key']]);
    expect((mtls as unknown as { client: unknown }).client).toEqual([['/c.crt', '/c.key']]);
    const skip = renderHostsToml({ registry: 'r.test', skipVerify: true });
    expect(skip).toMatch(/\n {2}skip_verify = true\n$/);
    expect(skip).toMatch(/^server = "https:\/\/r\.test"\nskip_verify = true$/m);
    const http = renderHostsToml({ registry: 'r.test:5000', plainHttp: true });
    expect(http).toMatch(/^server = "http:\/\/r\.test:5000"$/m);
    expect(http).toMatch(/^\[host\."http:\/\/r\.test:5000"\]$/m);
  });

  it('parses back to the same model (idempotency) and normalises other spellings', () => {
    const o = { registry: 'registry.test:5000', ca: '/ca.crt', clientCert: '/c', clientKey: '/k', skipVerify: true };
    const p = parseHostsToml(renderHostsToml(o));
    expect(p.ok && p.model).toEqual(hostsTomlModel(o));
    expect(p.ok && p.managed).toBe(true);
    const hand = parseHostsToml(
      'server = "https://registry.test:5000"\nca = "/ca.crt"\nclient = [["/c", "/k"]]\nskip_verify = true\n[host."https://registry.test:5000"]\ncapabilities = ["pull","resolve"]\nca = ["/ca.crt"]\nclient = [["/c", "/k"]]\nskip_verify = true\n',
    );
    expect(hand.ok && hand.model).toEqual(hostsTomlModel(o));
    // The older layout (CA on the entry only) is a different model, so a node with it gets rewritten.
    const entryOnly = parseHostsToml(
      'server = "https://registry.test:5000"\n[host."https://registry.test:5000"]\ncapabilities = ["pull","resolve"]\nca = "/ca.crt"\nclient = [["/c", "/k"]]\nskip_verify = true\n',
    );
    expect(entryOnly.ok && entryOnly.model).not.toEqual(hostsTomlModel(o));
    expect(hand.ok && hand.managed).toBe(false);
    const bad = parseHostsToml('server = ');
    expect(bad.ok).toBe(false);
  });

  // containerd#10027: 1.6/1.7 ignore a hosts.toml whose root has no `host` table (lab: 1.6.20 and
  // 1.7.24 log "failed to decode hosts.toml" and pull with x509; 2.1.9 pulls with the file's ca).
  it('tells which files containerd 1.x rejects for want of a [host] table', () => {
    const v1 = { major: 1 };
    const v2 = { major: 2 };
    const topOnly = parseHostsToml('server = "https://r.test"\nca = "/ca.pem"\n');
    expect(topOnly.ok && topOnly.hostTable).toBe(false);
    expect(topOnly.ok && topOnly.model.serverCa).toEqual(['/ca.pem']);
    expect(hostsTomlRejection(false, v1)).toBe(NO_HOST_TABLE);
    expect(hostsTomlRejection(false, v2)).toBeNull();
    expect(hostsTomlRejection(false, null)).toBeNull();
    for (const text of [
      'server = "https://r.test"\nca = "/ca.pem"\n[host]\n',
      'server = "https://r.test"\n[host."https://r.test"]\nca = "/ca.pem"\n',
      'server = "https://r.test"\nhost = {}\n',
    ]) {
      const p = parseHostsToml(text);
      expect(p.ok && p.hostTable, text).toBe(true);
    }
    // An array of tables is not a table: go-toml v1's Get("host") is then no *Tree.
    const arr = parseHostsToml('[[host]]\nca = "/ca.pem"\n');
    expect(arr.ok && arr.hostTable).toBe(false);
    // What trustplay renders always has one: the managed file, and a migrated file with no entry.
    expect(parseHostsToml(renderHostsToml({ registry: 'r.test', ca: '/ca.pem' }))).toMatchObject({ hostTable: true });
    const noEntry = renderHostsModel(
      { server: 'https://r.test', serverCa: ['/ca.pem'], serverClient: [], serverSkipVerify: false, hosts: [] },
      MIGRATED_MARKER,
    );
    expect(noEntry).toBe(`${MIGRATED_MARKER}\nserver = "https://r.test"\nca = "/ca.pem"\n\n[host]\n`);
    const back = parseHostsToml(noEntry);
    expect(back.ok && back.hostTable).toBe(true);
    expect(back.ok && back.model.hosts).toEqual([]);
  });
});

describe('config model', () => {
  it('reads the registry settings of a version 2 and a version 3 file', () => {
    const v2 = inspectConfig(
      'version = 2\nimports = ["/x.toml"]\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/a:/b"\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\nendpoint = ["https://m"]\n[plugins."io.containerd.grpc.v1.cri".registry.configs."h".tls]\nca_file = "/ca"\n',
    );
    expect(v2).toEqual({
      ok: true,
      info: {
        version: 2,
        exists: true,
        criRegistryTable: 'plugins."io.containerd.grpc.v1.cri".registry',
        criRegistryPath: ['plugins', 'io.containerd.grpc.v1.cri', 'registry'],
        configPath: '/a:/b',
        configPathDirs: ['/a', '/b'],
        localPull: false,
        mirrors: { 'docker.io': { endpoint: ['https://m'] } },
        configs: { h: { tls: { ca_file: '/ca' } } },
        imports: ['/x.toml'],
      },
    });
    const v3 = inspectConfig("version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = ''\n");
    expect(v3.ok && v3.info.criRegistryTable).toBe('plugins."io.containerd.cri.v1.images".registry');
  });

  it('a missing or comment-only file takes the version of the containerd major', () => {
    expect(inspectConfig(null, { containerdMajor: 1 })).toMatchObject({
      ok: true,
      info: { version: 2, exists: false },
    });
    expect(inspectConfig('# nothing\n', { containerdMajor: 2 })).toMatchObject({
      ok: true,
      info: { version: 3, exists: false },
    });
  });

  it('refuses version 1 with the exported sentence, and points at the line of a syntax error', () => {
    expect(inspectConfig('[plugins.cri]\nx = 1\n')).toEqual({ ok: false, error: VERSION_1_REFUSAL });
    expect(inspectConfig('version = 1\n')).toEqual({ ok: false, error: VERSION_1_REFUSAL });
    const broken = inspectConfig('version = 2\n[a\n');
    expect(!broken.ok && broken.error).toMatch(/^config\.toml is not valid TOML at line 2:\d+: [^\n]+\.$/);
  });
});

describe('registry names', () => {
  it('matches host, host:port and URL forms of the same registry only', () => {
    expect(normalizeRegistryHost('https://registry.test:5000/v2/')).toBe('registry.test:5000');
    expect(registryKeyMatches('https://registry.test', 'registry.test')).toBe(true);
    expect(registryKeyMatches('registry.test:443', 'registry.test')).toBe(true);
    expect(registryKeyMatches('http://registry.test:443', 'registry.test')).toBe(false);
    expect(registryKeyMatches('registry.test:5000', 'registry.test')).toBe(false);
    expect(registryKeyMatches('other.registry.test', 'registry.test')).toBe(false);
  });
});
