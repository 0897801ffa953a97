/**
 * containers.tls: gather on real files through the local connection (a certs.d tree and a
 * registries.conf with drop-ins in a temporary directory), the plan applied by the engine's applier
 * and empty when planned again; which registries.conf entry marks a registry insecure, as
 * containers/image matches them. The shared certs.d rules are docker-tls.test.ts's; the real
 * skopeo pull is test/e2e/containers-tls.test.ts.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { taskContext } from '../../test/support/task-context.js';
import { applyChanges, type SnapshotSink } from '../engine/apply.js';
import { TaskError } from '../engine/errors.js';
import { selfSignedCa } from '../../test/lab/certs.js';
import { readMaterial } from './containerd-tls.js';
import containersTls, {
  insecureEntry,
  planContainersTls,
  type ContainersTlsArgs,
  type ContainersTlsObserved,
} from './containers-tls.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CA = readFileSync(join(HERE, '../../test/fixtures/containerd-tls/test-ca.pem'), 'utf8');
const REG = 'registry.example:5000';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'tp-containers-tls-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const args = (over: Partial<ContainersTlsArgs> = {}): ContainersTlsArgs => ({
  registry: REG,
  certs_dir: join(root, 'certs.d'),
  registries_conf: join(root, 'registries.conf'),
  state: 'present',
  ca: CA,
  ...over,
});

describe('insecureEntry (containers/image registries.conf matching)', () => {
  it('the longest matching prefix wins; location is the default prefix; *.domain matches subdomains', () => {
    const conf = [
      '[[registry]]',
      'location = "registry.example:5000"',
      'insecure = true',
      '',
      '[[registry]]',
      'prefix = "registry.example:5000/team"',
      'location = "registry.example:5000/team"',
      '',
      '[[registry]]',
      'prefix = "*.corp.example"',
      'location = "mirror.corp.example"',
      'insecure = true',
    ].join('\n');
    expect(insecureEntry(conf, 'registry.example:5000')).toEqual({
      entry: '[[registry]] prefix "registry.example:5000"',
      insecure: true,
    });
    expect(insecureEntry(conf, 'r1.corp.example:443')).toMatchObject({ insecure: true });
    expect(insecureEntry(conf, 'other.example')).toBeNull();
    // Not a prefix of the registry name: "registry.example:50001" is another registry.
    expect(insecureEntry(conf, 'registry.example:50001')).toBeNull();
  });

  it("the v1 format's [registries.insecure] list", () => {
    expect(insecureEntry('[registries.insecure]\nregistries = ["registry.example:5000"]\n', REG)).toMatchObject({
      insecure: true,
    });
  });
});

describe('containers.tls on real files', () => {
  const sink: SnapshotSink = { save: () => Promise.resolve(), facts: () => undefined };
  const run = async (a: ContainersTlsArgs) => {
    const ctx = taskContext();
    const observed = await containersTls.gather(ctx, a);
    const changes = await containersTls.plan(a, observed, ctx);
    return { ctx, observed, changes };
  };

  it('writes ca.crt into certs.d/<registry>/, then plans nothing; a drop-in marking the registry insecure warns', async () => {
    // PATH must find a containers/image program: a stand-in `crio` (CRI-O is not packaged here) in a bin dir of the test.
    const bin = join(root, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'crio'), '#!/bin/sh\n', { mode: 0o755 });
    const path0 = process.env['PATH'];
    process.env['PATH'] = `${bin}:${path0 ?? ''}`;
    try {
      mkdirSync(join(root, 'registries.conf.d'));
      writeFileSync(join(root, 'registries.conf'), 'unqualified-search-registries = ["docker.io"]\n');
      writeFileSync(
        join(root, 'registries.conf.d', '50-lab.conf'),
        `[[registry]]\nlocation = "${REG}"\ninsecure = true\n`,
      );
      const first = await run(args());
      expect(first.observed.programs).toContain(join(bin, 'crio'));
      expect(first.ctx.warnings.join('\n')).toMatch(
        /registry\.example:5000 is marked insecure \(.*registries\.conf\.d\/50-lab\.conf: \[\[registry\]\] prefix "registry\.example:5000"\): containers\/image does not verify/,
      );
      await applyChanges(first.ctx, first.changes, sink, 'containers.tls');
      const ca = join(root, 'certs.d', REG, 'ca.crt');
      expect(readFileSync(ca, 'utf8')).toBe(CA);
      expect(statSync(ca).mode & 0o777).toBe(0o644);
      const again = await run(args());
      expect(again.changes).toEqual([]);
    } finally {
      process.env['PATH'] = path0;
    }
  });
});

describe('a CA rotation', () => {
  it('a list of CAs (old and new) is written as one ca.crt bundle, each certificate once', async () => {
    const other = await selfSignedCa(root, 'new-ca', 'rotation test CA');
    const a = args({ ca: [CA, other.cert, CA] });
    const observed: ContainersTlsObserved = {
      dir: { path: `/etc/containers/certs.d/${REG}`, exists: false, files: {} },
      otherNames: [],
      material: (await readMaterial(a)).material,
      materialWarnings: [],
      programs: ['/usr/bin/podman'],
      confProblems: [],
    };
    const plan = planContainersTls(a, observed);
    const write = plan.changes.find((c) => c.op === 'file.write');
    expect(write?.op === 'file.write' ? write.content.toString() : '').toBe(CA + readFileSync(other.cert, 'utf8'));
  });
});

describe('planContainersTls', () => {
  const observed = (over: Partial<ContainersTlsObserved> = {}): ContainersTlsObserved => ({
    dir: { path: `/etc/containers/certs.d/${REG}`, exists: false, files: {} },
    otherNames: [],
    material: { ca: CA },
    materialWarnings: [],
    programs: ['/usr/bin/podman'],
    confProblems: [],
    ...over,
  });

  it('a node with no containers/image program fails with what was looked for (green means checked)', () => {
    expect(() => planContainersTls(args(), observed({ programs: [] }), 'node7')).toThrow(
      new TaskError(
        "node7: no containers/image program found (looked for podman, buildah, skopeo, crio on PATH): containers.tls has nothing to configure here; use the module for this host's runtime (containerd.tls, docker.tls).",
        'refused',
      ),
    );
  });

  it('a registries.conf that is not TOML is named: containers/image refuses to pull with it', () => {
    const plan = planContainersTls(
      args(),
      observed({ confProblems: ['/etc/containers/registries.conf is not valid TOML (x)'] }),
    );
    expect(plan.warnings.join('\n')).toMatch(
      /registries\.conf is not valid TOML \(x\): podman, skopeo and CRI-O refuse/,
    );
    expect(plan.changes.map((c) => c.op)).toContain('file.write');
  });
});
