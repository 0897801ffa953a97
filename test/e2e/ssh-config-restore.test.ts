/**
 * A fleet reached only through the OpenSSH client config: the Ansible inventory names the nodes by
 * aliases, and `--ssh-config FILE` says where each alias is (HostName, Port, User, IdentityFile,
 * UserKnownHostsFile). run, check and restore all reach the nodes through it; without it the same
 * restore cannot reach them (so the config is what the restore used).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { managedState } from '../support/lab-node.js';
import { trustplay } from '../support/cli.js';

describeLab('run, check and restore through the SSH config (-F)', () => {
  const handle = useLab({ nodes: 2 });
  let dir: string;
  let inventory: string;
  let config: string;
  let playbook: string;
  const state = () => join(dir, 'state');
  const common = () => ['-i', inventory, '--state-dir', state()];

  beforeAll(() => {
    const { lab } = handle;
    dir = mkdtempSync(join(tmpdir(), 'tp-sshcfg-'));
    inventory = join(dir, 'hosts.ini');
    // Aliases only the SSH config resolves: without it they are names no resolver knows.
    writeFileSync(inventory, `[workers]\n${lab.nodes.map((n) => `${n.name}-alias`).join('\n')}\n`);
    config = join(dir, 'ssh_config');
    writeFileSync(
      config,
      lab.nodes
        .map((n) =>
          [
            `Host ${n.name}-alias`,
            `  HostName ${n.address}`,
            `  Port ${n.sshPort}`,
            '  User root',
            `  IdentityFile ${lab.ssh.identityFile}`,
            '  IdentitiesOnly yes',
            `  UserKnownHostsFile ${lab.ssh.knownHosts}`,
          ].join('\n'),
        )
        .join('\n') + '\n',
    );
    playbook = join(dir, 'trust.yaml');
    writeFileSync(
      playbook,
      [
        '- hosts: workers',
        '  tasks:',
        '    - containerd.tls:',
        `        registry: ${lab.registries.registry.host}`,
        `        ca: ${lab.ca}`,
        '',
      ].join('\n'),
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('run and check reach the aliases through --ssh-config; restore does too, and puts every file back', async () => {
    const { lab } = handle;
    const before = await Promise.all(lab.nodes.map((n) => managedState(n)));
    const r = await trustplay(['run', playbook, ...common(), '--ssh-config', config]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const id = /snapshot (\S+) saved/.exec(r.stderr)?.[1];
    expect(id).toBeDefined();
    const after = await Promise.all(lab.nodes.map((n) => managedState(n)));
    for (let i = 0; i < after.length; i++) expect(after[i]).not.toBe(before[i]);
    const check = await trustplay(['check', playbook, ...common(), '--ssh-config', config]);
    expect(check.code, check.stdout + check.stderr).toBe(0);

    // Without the config the aliases lead nowhere: the restore fails and changes nothing.
    const blind = await trustplay(['restore', id!, ...common(), '--ssh-config', 'none']);
    expect(blind.code).not.toBe(0);
    expect(await Promise.all(lab.nodes.map((n) => managedState(n)))).toEqual(after);

    const restored = await trustplay(['restore', id!, ...common(), '--ssh-config', config]);
    expect(restored.code, restored.stdout + restored.stderr).toBe(0);
    expect(await Promise.all(lab.nodes.map((n) => managedState(n)))).toEqual(before);
  });
});
