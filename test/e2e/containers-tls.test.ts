/**
 * containers.tls end to end: the real CLI against a lab node where Debian's skopeo 1.9.3 pulls
 * through containers/image (the library podman, buildah and CRI-O use too; CRI-O is not packaged
 * here, so it is this shared library that is proven, not a CRI-O daemon), with the node's own
 * /etc/containers (test/lab/containers-image.ts). `skopeo inspect` reads the manifest from the lab
 * registry over TLS, as a pull starts:
 *   x509 unknown authority -> check writes nothing -> run writes certs.d/<host:port>/ca.crt and the
 *   next inspect succeeds (nothing to restart) -> a second run is ok -> restore removes the file and
 *   x509 is back; node.creds.wipe cleans containers/image's auth.json of the registry's entry and
 *   reports a helper registries.conf's `credential-helpers` names (skopeo asks it; the `skopeo
 *   logout` it advises erases there); a node with no containers/image program fails the task, by name.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { JsonReport } from '../../src/report/json.js';
import { containersImageAvailable } from '../lab/containers-image.js';
import type { LabNode } from '../lab/lab.js';
import { trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { hidePrograms, inNode } from '../support/lab-node.js';

vi.setConfig({ testTimeout: 120_000 });

if (process.env['CI'] && !containersImageAvailable())
  throw new Error('skopeo is needed for the containers.tls lab test in CI (apt-get install skopeo)');

describeLab('containers.tls end to end (skopeo in a lab node, containers/image)', () => {
  const env = useLab({ nodes: 1, containers: [true] });
  let work: string;
  let node: LabNode;
  let playbook: string;
  let runId = '';
  const args = (...extra: string[]) => [...extra, '-i', env.lab.inventoryPath, '--state-dir', path.join(work, 'state')];
  const certs = () => `/etc/containers/certs.d/${env.lab.registries.registry.host}`;
  /** containers/image's answer for the lab image: '' when it verified and read the manifest. */
  const inspect = async (): Promise<string> => {
    const r = await inNode(node, `skopeo inspect --raw docker://${env.lab.image.ref} >/dev/null`);
    return r.code === 0 ? '' : r.stderr.trim();
  };

  beforeAll(() => {
    if (!containersImageAvailable()) throw new Error('skopeo is not installed: apt-get install skopeo');
    work = mkdtempSync(path.join(os.tmpdir(), 'tp-e2e-containers-'));
    node = env.lab.nodes[0]!;
    playbook = path.join(work, 'containers-trust.yaml');
    writeFileSync(
      playbook,
      [
        '- hosts: all',
        '  tasks:',
        '    - name: containers/image trusts the lab CA',
        '      containers.tls:',
        '        registry: "{{ registry }}"',
        '        ca: "{{ registry_ca }}"',
        '',
      ].join('\n'),
    );
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('before: skopeo on the node fails with the real x509 unknown-authority error', async () => {
    expect(await inspect()).toMatch(/x509: certificate signed by unknown authority/);
  });

  it('check says it would write ca.crt and writes nothing', async () => {
    const r = await trustplay(['check', playbook, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout).toContain(`${certs()}/ca.crt`);
    expect((await inNode(node, `ls ${certs()} 2>&1`)).stdout).toMatch(/No such file/);
  });

  it('run writes certs.d/<host:port>/ca.crt and the next inspect succeeds, nothing restarted', async () => {
    const r = await trustplay(['run', playbook, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    runId = /snapshot (\S+) saved/.exec(r.stderr)?.[1] ?? '';
    expect(runId).not.toBe('');
    expect((await inNode(node, `cat ${certs()}/ca.crt`)).stdout).toBe(readFileSync(env.lab.ca, 'utf8'));
    expect((await inNode(node, `stat -c %a ${certs()}/ca.crt`)).stdout.trim()).toBe('644');
    expect(await inspect()).toBe('');
  });

  it('facts names containers/image (the program that says so) and what its certs.d holds for the registry', async () => {
    const r = await trustplay(['facts', ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const facts = JSON.parse(r.stdout) as {
      hosts: Record<string, { facts: { runtimes: Array<Record<string, unknown>> } }>;
    };
    const runtimes = facts.hosts[node.name]!.facts.runtimes;
    expect(runtimes).toContainEqual({
      runtime: 'containers/image',
      evidence: expect.arrayContaining([expect.stringMatching(/^skopeo at \/\S+\/skopeo$/)]) as unknown,
      certs_dir: '/etc/containers/certs.d',
      registries: [{ registry: env.lab.registries.registry.host, files: ['ca.crt'] }],
    });
  });

  it('a second run is ok: nothing to change', async () => {
    const r = await trustplay(['run', playbook, ...args('--format', 'json')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as JsonReport;
    expect(report.hosts[node.name]!.tasks.map((t) => [t.status, t.changes])).toEqual([['ok', []]]);
  });

  it('restore removes what the run wrote and skopeo fails with x509 again', async () => {
    const r = await trustplay(['restore', runId, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // The file is gone (the directory the run made may stay, empty: containers/image reads nothing there).
    expect((await inNode(node, `ls -A ${certs()} 2>/dev/null`)).stdout).toBe('');
    expect(await inspect()).toMatch(/x509: certificate signed by unknown authority/);
  });

  it("node.creds.wipe removes the registry's stale entry from containers/image's auth.json (podman login's file) and keeps the others and the mode", async () => {
    const reg = env.lab.registries.registry.host;
    const auth = (user: string) => Buffer.from(`${user}:stale-password`).toString('base64');
    const before = {
      auths: { [reg]: { auth: auth('old') }, 'other.example': { auth: auth('keep') } },
    };
    const seeded = await inNode(
      node,
      'mkdir -p /run/containers/0 && cat > /run/containers/0/auth.json && chmod 0600 /run/containers/0/auth.json',
      JSON.stringify(before, null, 2),
    );
    expect(seeded.code, seeded.stderr).toBe(0);
    const wipe = path.join(work, 'wipe.yaml');
    writeFileSync(
      wipe,
      ['- hosts: all', '  tasks:', '    - node.creds.wipe:', '        registry: "{{ registry }}"', ''].join('\n'),
    );
    const r = await trustplay(['run', wipe, ...args()]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('/run/containers/0/auth.json');
    expect(r.stdout + r.stderr).not.toContain('stale-password');
    const after = JSON.parse((await inNode(node, 'cat /run/containers/0/auth.json')).stdout) as typeof before;
    expect(Object.keys(after.auths)).toEqual(['other.example']);
    expect(after.auths['other.example']).toEqual(before.auths['other.example']);
    expect((await inNode(node, 'stat -c %a /run/containers/0/auth.json')).stdout.trim()).toBe('600');
  });

  it("node.creds.wipe reports the helper registries.conf's credential-helpers names (a drop-in): real skopeo asks it for the registry, and the `skopeo logout` the warning gives erases the registry there", async () => {
    const reg = env.lab.registries.registry.host;
    const dropIn = '/etc/containers/registries.conf.d/50-tptest.conf';
    // A credential helper as a login through it leaves things: a program on root's PATH (the node's
    // own /root), answering `get` and logging what it is asked; named by a drop-in.
    const helper = [
      '#!/bin/sh',
      'in=$(cat)',
      'echo "$1 $in" >> /root/tptest-helper.log',
      'case $1 in',
      `  get) printf '{"ServerURL":"%s","Username":"helper-user","Secret":"not-shown"}' "$in" ;;`,
      '  erase) exit 0 ;;',
      "  list) echo '{}' ;;",
      'esac',
      '',
    ].join('\n');
    const setup = await inNode(
      node,
      `mkdir -p /root/bin && cat > /root/bin/docker-credential-tptest && chmod 0755 /root/bin/docker-credential-tptest && printf '%s\\n' 'credential-helpers = ["containers-auth.json", "tptest"]' > ${dropIn} && rm -f /root/tptest-helper.log`,
      helper,
    );
    expect(setup.code, setup.stderr).toBe(0);
    const withHelper = 'PATH=/root/bin:$PATH';
    try {
      const login = await inNode(node, `${withHelper} skopeo login --get-login ${reg}`);
      expect(login.stdout.trim(), login.stderr).toBe('helper-user');
      const wipe = path.join(work, 'wipe-helper.yaml');
      writeFileSync(
        wipe,
        [
          '- hosts: all',
          '  tasks:',
          '    - name: wipe',
          '      node.creds.wipe:',
          '        registry: "{{ registry }}"',
          '',
        ].join('\n'),
      );
      const r = await trustplay(['run', wipe, ...args('--format', 'json')]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const task = (JSON.parse(r.stdout) as JsonReport).hosts[node.name]!.tasks.find((t) => t.task === 'wipe')!;
      expect(task.data).toEqual({ not_removed: [{ file: dropIn, registry: reg, helper: 'tptest' }] });
      const warning = task.warnings.find((w) => w.startsWith(`${dropIn}: `));
      expect(warning).toContain('`tptest`');
      const logout = /`(skopeo logout [^`]+)`/.exec(warning ?? '')?.[1];
      expect(logout).toBe(`skopeo logout ${reg}`);
      expect(r.stdout + r.stderr).not.toContain('not-shown');
      // The command the warning gives, run as it says: the helper is asked to erase the registry.
      const out = await inNode(node, `${withHelper} ${logout!}`);
      expect(out.code, out.stderr).toBe(0);
      expect((await inNode(node, 'cat /root/tptest-helper.log')).stdout).toContain(`erase ${reg}\n`);
    } finally {
      await inNode(node, `rm -f ${dropIn} /root/bin/docker-credential-tptest /root/tptest-helper.log`);
    }
  });

  it('a node with no containers/image program fails the task with what was looked for, and changes nothing', async () => {
    const undo = await hidePrograms(node, ['podman', 'buildah', 'skopeo', 'crio']);
    try {
      const r = await trustplay(['run', playbook, ...args()]);
      expect(r.code, r.stdout + r.stderr).not.toBe(0);
      expect(r.stdout + r.stderr).toContain(
        'node1: no containers/image program found (looked for podman, buildah, skopeo, crio on PATH)',
      );
      expect((await inNode(node, `ls -A ${certs()} 2>/dev/null`)).stdout).toBe('');
    } finally {
      await undo();
    }
  });
});
