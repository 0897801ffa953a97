/**
 * Registry names are host[:port] only (issue 13, finding 4): a name becomes a directory under
 * certs.d, so `.`, `..`, a leading `-`, a `/` or an unbounded name never get through, whether the
 * name comes from a playbook, `-e`, or the node's own config.toml during migrate_legacy.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { hostsDirFor } from './facts.js';
import { trustplay } from '../../test/support/cli.js';
import { ensureConfigPath } from './edits.js';
import { isRegistryName, registryNameProblem } from './registry-host.js';

// Runs the real CLI several times: slow on a loaded machine.
vi.setConfig({ testTimeout: 90_000 });

const GOOD = [
  'registry.example.com',
  'registry.example.com:5000',
  'localhost',
  'localhost:5000',
  '10.0.0.1:5000',
  '[fd00::1]:5000',
  '[::1]',
  'a-b.c',
  `${'a'.repeat(63)}.example`,
];
const BAD = [
  '.',
  '..',
  '../x',
  '-evil',
  'evil-',
  'a/b',
  'a..b',
  '.a',
  'a.',
  'a_b',
  'reg:99999',
  'reg:0',
  'reg:',
  '[::1',
  '[fd00::1]x',
  '[10.0.0.1]',
  '999.1.1.1',
  `${'a'.repeat(64)}.example`,
  `${'a.'.repeat(127)}ab`,
  '',
  'a b',
  'a\nb',
];

describe('registry names', () => {
  it('accepts host[:port] with DNS labels or IP literals and refuses the rest, saying why', () => {
    for (const n of GOOD) expect(registryNameProblem(n), n).toBeNull();
    for (const n of BAD) {
      expect(isRegistryName(n), JSON.stringify(n)).toBe(false);
      expect(registryNameProblem(n)).toMatch(/^[a-z`]/);
    }
  });

  it('every certs.d directory is a direct child of config_path, whatever the name', () => {
    expect(hostsDirFor('/etc/containerd/certs.d/', 'registry.test:5000')).toBe(
      '/etc/containerd/certs.d/registry.test:5000',
    );
    expect(hostsDirFor('/etc/containerd/certs.d', '*')).toBe('/etc/containerd/certs.d/_default');
    for (const n of ['..', '../../etc', '.', 'a/../../b'])
      expect(() => hostsDirFor('/etc/containerd/certs.d', n)).toThrow(/is not a registry name/);
  });

  it("migrate_legacy refuses a mirror name from the node's config.toml that is not a registry name", () => {
    const text = `version = 2
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."../../../etc/cron.d"]
  endpoint = ["https://evil.example"]
`;
    const r = ensureConfigPath(text, '/etc/containerd/certs.d', { containerdMajor: 1, migrateLegacy: true });
    expect(r).toMatchObject({
      error: expect.stringMatching(
        /config\.toml names the registry "\.\.\/\.\.\/\.\.\/etc\/cron\.d".*not a registry name/,
      ),
    });
  });

  it('validate refuses `registry: ".."` in a playbook and through -e, located, exit 3', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tp-regname-'));
    try {
      const pb = join(dir, 'pb.yaml');
      writeFileSync(pb, '- hosts: localhost\n  tasks:\n    - node.creds.wipe:\n        registry: "{{ registry }}"\n');
      for (const value of ['..', '../../etc', '-x', 'a'.repeat(254)]) {
        const r = await trustplay(['validate', pb, '-e', `registry=${value}`]);
        expect(r.code, r.stdout + r.stderr).toBe(3);
        expect(r.stdout + r.stderr).toMatch(/pb\.yaml:4:19: node\.creds\.wipe.*`registry`/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
