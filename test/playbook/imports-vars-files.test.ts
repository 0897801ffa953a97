/**
 * What goes wrong in a repository of playbooks, through the real CLI: every problem is reported
 * at the file, line and column it is written at, across files, before anything runs.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { trustplay } from '../support/cli.js';

const root = mkdtempSync(join(tmpdir(), 'trustplay-imports-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function repo(files: Record<string, string>): string {
  const dir = join(root, `r${++n}`);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const INVENTORY =
  'all:\n  children:\n    workers:\n      hosts:\n        node1:\n          ansible_connection: local\n';
const TASK = '- image.rmi: { image: "{{ image }}" }\n';

async function validate(dir: string, playbook = 'site.yaml') {
  return trustplay(['validate', join(dir, playbook), '-i', join(dir, 'hosts.yaml')]);
}

describe('imports and variable files: located errors across files', () => {
  it('a vars_files entry that does not exist is reported where the play names it', async () => {
    const dir = repo({
      'hosts.yaml': INVENTORY,
      'site.yaml': '- hosts: workers\n  vars_files:\n    - vars/nope.yml\n  tasks: []\n',
    });
    const r = await validate(dir);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `site.yaml:3:7: vars_files: \`vars/nope.yml\` (${join(dir, 'vars/nope.yml')}): cannot read vars file: no such file`,
    );
  });

  it('a problem inside a vars file, an imported playbook or a task file is reported in that file', async () => {
    const dir = repo({
      'hosts.yaml': INVENTORY,
      'site.yaml': '- import_playbook: sub/other.yaml\n',
      'sub/other.yaml': '- hosts: workers\n  vars_files: [vars.yml]\n  tasks:\n    - import_tasks: tasks.yaml\n',
      'sub/vars.yml': '- not\n- a mapping\n',
      'sub/tasks.yaml': '- image.rmi: { imag: x }\n',
    });
    const r = await validate(dir);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/sub\/vars\.yml:1:1: a vars file is a mapping of variable names to values/);
    expect(r.stderr).toMatch(/sub\/tasks\.yaml:1:\d+: .*imag/);
  });

  it('a connection variable Ansible would fail on, in group_vars beside the inventory, is located there', async () => {
    const dir = repo({
      'hosts.yaml': INVENTORY,
      'group_vars/workers.yml': 'ansible_port: abc\n',
      'site.yaml': '- hosts: workers\n  tasks: []\n',
    });
    const r = await validate(dir);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/group_vars\/workers\.yml:1:15: `ansible_port` must be a port number/);
  });

  it('group_vars beside the inventory take part in validation: a variable only they define is defined', async () => {
    const dir = repo({
      'hosts.yaml': INVENTORY,
      'group_vars/workers/images.yml': 'image: registry.example:5000/app:1\n',
      'site.yaml': `- hosts: workers\n  tasks:\n${TASK.replace(/^/gm, '    ')}`,
    });
    const r = await validate(dir);
    expect(r.code, r.stderr).toBe(0);
  });

  it('an import cycle is refused, naming the chain', async () => {
    const dir = repo({
      'hosts.yaml': INVENTORY,
      'site.yaml': '- import_playbook: a.yaml\n',
      'a.yaml': '- import_playbook: b.yaml\n',
      'b.yaml': '- import_playbook: a.yaml\n',
    });
    const r = await validate(dir);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /b\.yaml:1:20: import_playbook: `a\.yaml` is already being imported \(a\.yaml → b\.yaml → a\.yaml\)/,
    );
  });

  it('a task file that imports itself is refused; a missing imported playbook is located', async () => {
    const dir = repo({
      'hosts.yaml': INVENTORY,
      'site.yaml': '- hosts: workers\n  tasks:\n    - import_tasks: t.yaml\n- import_playbook: gone.yaml\n',
      't.yaml': '- import_tasks: t.yaml\n',
    });
    const r = await validate(dir);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/t\.yaml:1:17: import_tasks: `t\.yaml` is already being imported/);
    expect(r.stderr).toMatch(
      /site\.yaml:4:20: import_playbook: `gone\.yaml` \(.*gone\.yaml\): cannot read imported playbook: no such file/,
    );
  });

  it('relative paths in a vars file resolve against that file, from any working directory', async () => {
    const dir = repo({
      'hosts.yaml': INVENTORY,
      'group_vars/all/tls.yml': 'ca_file: ../../certs/missing-ca.pem\n',
      'site.yaml':
        '- hosts: workers\n  tasks:\n    - containerd.tls: { registry: r.example:5000, ca: "{{ ca_file }}" }\n',
    });
    const r = await validate(dir);
    expect(r.code).toBe(3);
    // ../../certs from group_vars/all is the repository's own certs/, named in full.
    expect(r.stderr).toContain(`\`ca\` (\`{{ ca_file }}\`) file ${join(dir, 'certs/missing-ca.pem')} does not exist`);
  });
});
