/**
 * The playbook repository fixture (test/fixtures/git-repo: group_vars/host_vars beside the
 * inventory and the playbook, vars_files, import_playbook, import_tasks) on the lab, run the way
 * cron or CI runs it: from another working directory, with every path given in full. The nodes
 * are reached through an SSH config that says only where they are (its `User nobody` loses to the
 * `ansible_user: root` of the inventory's group_vars/all.yml, as in Ansible); the registry CA is
 * the repository's `files/registry-ca.pem`, named relative to the vars file that names it.
 */
import { copyFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, managedState } from '../support/lab-node.js';
import { trustplay } from '../support/cli.js';

describeLab('a playbook repository (group_vars, vars_files, imports) on the lab', () => {
  const handle = useLab({ nodes: 2 });
  let dir: string;
  let repo: string;
  const args = (cmd: string) => [
    cmd,
    join(repo, 'playbooks/site.yaml'),
    '-i',
    join(repo, 'inventory/hosts.yaml'),
    '--ssh-config',
    join(dir, 'ssh_config'),
    '--state-dir',
    join(dir, 'state'),
    '--vault-password-file',
    join(repo, 'vault-pass'),
    // The lab's registry port is chosen when the lab starts; everything else comes from the repository.
    '-e',
    `registry=${handle.lab.registries.registry.host}`,
  ];

  beforeAll(() => {
    const { lab } = handle;
    dir = mkdtempSync(join(tmpdir(), 'tp-git-repo-'));
    repo = join(dir, 'repo');
    cpSync(new URL('../fixtures/git-repo', import.meta.url), repo, { recursive: true });
    copyFileSync(lab.ca, join(repo, 'files/registry-ca.pem'));
    writeFileSync(
      join(dir, 'ssh_config'),
      lab.nodes
        .map((n) =>
          [
            `Host ${n.name}`,
            `  HostName ${n.address}`,
            `  Port ${n.sshPort}`,
            '  User nobody',
            `  IdentityFile ${lab.ssh.identityFile}`,
            `  UserKnownHostsFile ${lab.ssh.knownHosts}`,
          ].join('\n'),
        )
        .join('\n') + '\n',
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('validates, reports the drift in check, fixes it in run, and check is then green', async () => {
    const { lab } = handle;
    const v = await trustplay(args('validate'));
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/valid — 2 plays, 2 hosts, 2 tasks/);

    const before = await Promise.all(lab.nodes.map((n) => managedState(n)));
    const drift = await trustplay(args('check'));
    expect(drift.code, drift.stdout + drift.stderr).toBe(2);
    expect(await Promise.all(lab.nodes.map((n) => managedState(n)))).toEqual(before);

    const run = await trustplay(args('run'));
    expect(run.code, run.stdout + run.stderr).toBe(0);
    for (const n of lab.nodes) expect(await criPull(n.hostSocket, lab.image.ref)).toBe('');

    const green = await trustplay(args('check'));
    expect(green.code, green.stdout + green.stderr).toBe(0);
    // --tags from an import: only the verify play's imported task runs.
    const tagged = await trustplay([...args('check'), '--tags', 'verify', '--format', 'json']);
    expect(tagged.code, tagged.stderr).toBe(0);
    expect(tagged.stdout).toContain('pull through the CRI');
    expect(tagged.stdout).not.toContain("trust the registry's CA");
  });
});
