/**
 * How Ansible inventories reach the engine: connection variables at every level, become with
 * Ansible's booleans, paths relative to the inventory, patterns in the pattern's order, and the
 * located errors for what Ansible would fail on. The resolution itself is compared with the real
 * Ansible in inventory-differential.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectionSpec } from '../../src/engine/connect.js';
import { encryptVault, useVaultKeyring, VaultKeyring } from '../../src/vault/index.js';
import { hostVariables, parseInventory } from '../../src/playbook/inventory.js';
import { matchHosts } from '../../src/playbook/patterns.js';
import { iniValue } from '../../src/playbook/inventory-ini.js';
import { resolvePlain } from '../../src/playbook/inventory-yaml11.js';
import { trustplay } from '../support/cli.js';

const yaml = `
all:
  vars:
    ansible_user: deploy
    ansible_become: yes
  children:
    web:
      vars:
        ansible_port: 2222
        ansible_ssh_private_key_file: keys/web
      hosts:
        web2:
        web1:
          ansible_become: no
    db:
      hosts:
        db1:
          ansible_connection: local
`;

describe('Ansible inventories: connection variables', () => {
  const inv = parseInventory('/srv/inv/hosts.yaml', yaml).inventory!;

  it('applies ansible_* set at all and group level, and host values override them', () => {
    expect(inv.hosts.get('web2')).toMatchObject({ user: 'deploy', port: 2222, become: true, connection: 'ssh' });
    // `no` is false (YAML 1.1): no sudo where Ansible would run none.
    expect(inv.hosts.get('web1')!.become).toBe(false);
    expect(connectionSpec(inv, inv.hosts.get('web1')!).become).toBe(false);
    expect(inv.hosts.get('db1')).toMatchObject({ connection: 'local', become: true });
  });

  it('resolves a relative key path against the inventory file', () => {
    expect(inv.hosts.get('web2')!.identityFile).toBe('/srv/inv/keys/web');
  });

  it('keeps ansible_* variables visible to templates, as Ansible does', () => {
    expect(hostVariables(inv, inv.hosts.get('web1')!)).toMatchObject({ ansible_port: 2222, ansible_become: false });
  });

  it('maps the become names at every level with Ansible boolean spellings', () => {
    const r = parseInventory(
      'i.ini',
      '[g]\nh1 ansible_become=True\nh2 ansible_become=off\nh3\n[g:vars]\nansible_become=YES\nansible_become_user=root\n',
    );
    expect(r.errors).toEqual([]);
    const b = (h: string) => r.inventory!.hosts.get(h)!;
    expect([b('h1').become, b('h2').become, b('h3').become]).toEqual([true, false, true]);
    expect(b('h3').becomeUser).toBe('root');
  });

  it('takes any become user; refuses a written become password and an unknown connection, located', () => {
    const r = parseInventory(
      'i.yaml',
      'g:\n  hosts:\n    h1: { ansible_become_user: postgres }\n    h2: { ansible_become_password: hunter2 }\n    h3: { ansible_connection: winrm }\n',
    );
    const text = r.errors.map((e) => `${e.line}: ${e.message}`).join('\n');
    expect(text).not.toMatch(/^3: /m);
    expect(text).toMatch(/^4: .*lookup\('env', 'NAME'\).*become_password_env/m);
    expect(text).not.toContain('hunter2');
    expect(text).toMatch(/^5: .*`winrm` connection is not supported/m);
    const ok = parseInventory(
      'i.yaml',
      'g:\n  hosts:\n    h1: { ansible_become: yes, ansible_become_user: postgres }\n',
    );
    expect(ok.inventory!.hosts.get('h1')!.becomeUser).toBe('postgres');
  });

  it('maps ansible_become_password from an env lookup onto become_password_env, at every level, never reading it', () => {
    const lookup = (name: string, q = "'") => `"{{ lookup(${q}env${q}, ${q}${name}${q}) }}"`;
    const r = parseInventory(
      'i.yaml',
      [
        'all:',
        `  vars: { ansible_user: ubuntu, ansible_become: true, ansible_become_password: ${lookup('ALL_PW')} }`,
        '  children:',
        '    web:',
        `      vars: { ansible_become_password: ${lookup('WEB_PW', '"').replace(/^"|"$/g, "'")} }`,
        '      hosts:',
        `        w1: { ansible_become_user: deploy, ansible_become_password: ${lookup('W1_PW')} }`,
        '        w2:',
        '    db:',
        '      hosts: { d1: }',
        '',
      ].join('\n'),
    );
    expect(r.errors).toEqual([]);
    const h = (n: string) => r.inventory!.hosts.get(n)!;
    expect([h('w1').becomePasswordEnv, h('w2').becomePasswordEnv, h('d1').becomePasswordEnv]).toEqual([
      'W1_PW',
      'WEB_PW',
      'ALL_PW',
    ]);
    expect([h('w1').user, h('w1').become, h('w1').becomeUser, h('d1').becomeUser]).toEqual([
      'ubuntu',
      true,
      'deploy',
      undefined,
    ]);
    // A !vault value is the password itself, decrypted in memory; the connection gets it (and no
    // variable name to blame in messages).
    const key = Buffer.from('vault-pw');
    useVaultKeyring(new VaultKeyring([{ id: 'default', password: key }]));
    try {
      const sealed = encryptVault(Buffer.from('s3cret-sudo'), key)
        .split('\n')
        .map((l) => `        ${l}`)
        .join('\n');
      const v = parseInventory(
        'i.yaml',
        `all:\n  hosts:\n    h:\n      ansible_become: true\n      ansible_become_password: !vault |\n${sealed}\n`,
      );
      expect(v.errors).toEqual([]);
      const vh = v.inventory!.hosts.get('h')!;
      expect(vh.becomePassword).toBe('s3cret-sudo');
      const spec = connectionSpec(v.inventory!, vh);
      expect([spec.becomePassword, spec.becomePasswordEnv]).toEqual(['s3cret-sudo', undefined]);
    } finally {
      useVaultKeyring(new VaultKeyring());
    }
    // Any other template is not a source trustplay reads a password from.
    const other = parseInventory(
      'i.yaml',
      'all:\n  vars: { pw: x }\n  hosts:\n    h: { ansible_become_password: "{{ pw }}" }\n',
    );
    expect(other.errors.map((e) => e.message).join('\n')).toMatch(
      /host `h`: `ansible_become_password` puts the sudo password/,
    );
  });

  it('resolves templated connection variables, and names an undefined one', () => {
    const ok = parseInventory('i.yaml', 'all:\n  vars: { p: 2201 }\n  hosts:\n    h: { ansible_port: "{{ p }}" }\n');
    expect(ok.inventory!.hosts.get('h')!.port).toBe(2201);
    const bad = parseInventory('i.yaml', 'all:\n  hosts:\n    h: { ansible_host: "{{ nope }}" }\n');
    expect(bad.errors[0]!.message).toMatch(/`ansible_host`: .*nope/);
  });
});

describe('Ansible inventories: patterns', () => {
  const inv = parseInventory(
    'i.yaml',
    'a:\n  hosts: { a1: , a2: , a3: }\nb:\n  hosts: { b1: , a1: }\nweb:\n  hosts: { web1: , web22: , webx: }\n',
  ).inventory!;
  it.each([
    ['b:a', ['b1', 'a1', 'a2', 'a3']],
    ['a[0]', ['a1']],
    ['a[-1]', ['a3']],
    ['a[0:1]', ['a1', 'a2']],
    ['a[1:]', ['a2', 'a3']],
    ['~web\\d+', ['web1', 'web22']],
    // `all` is a group name a glob can match (as `[ab]*` would); `[bw]*` matches groups b and web.
    ['[bw]*', ['b1', 'a1', 'web1', 'web22', 'webx']],
    ['nosuch:a[0]', ['a1']],
  ])('%s', (pattern, hosts) => {
    expect(matchHosts(inv, pattern).hosts).toEqual(hosts);
  });
  it('reports a subscript past the end', () => {
    expect(matchHosts(inv, 'a[7]').error).toMatch(/index 7 is past the 3 hosts of `a`/);
  });
});

describe('YAML 1.1 and INI values, as Ansible reads them', () => {
  it.each([
    ['yes', true],
    ['Off', false],
    ['y', 'y'],
    ['yEs', 'yEs'],
    ['0755', 493],
    ['0x1F', 31],
    ['1:20', 80],
    ['1e3', '1e3'],
    ['1.10', 1.1],
    ['09', '09'],
    ['~', null],
  ])('YAML %s', (text, value) => {
    expect(resolvePlain(text)).toEqual(value);
  });
  it.each([
    ['1', 1],
    ["'x y'", 'x y'],
    ['yes', 'yes'],
    ['010', '010'],
    ['[1, "a"]', [1, 'a']],
    ['{"k": 1}', { k: 1 }],
    ['True', true],
    ['None', null],
    ['1.5', 1.5],
    ['0x1F', 31],
  ])('INI %s', (text, value) => {
    expect(iniValue(text)).toEqual(value);
  });
});

describe('run/check --list-hosts and validate with an Ansible inventory (the real CLI)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trustplay-inv-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  it('prints the hosts of each play in the order they would run, and runs nothing', async () => {
    writeFileSync(join(dir, 'hosts.ini'), '[b]\nb1\n[a]\na1\na2\n');
    writeFileSync(join(dir, 'play.yaml'), '- hosts: "a:b"\n  tasks:\n    - image.rmi: { image: r.test/app:1 }\n');
    const r = await trustplay(['check', join(dir, 'play.yaml'), '-i', join(dir, 'hosts.ini'), '--list-hosts']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('    hosts (3):\n      a1\n      a2\n      b1\n');
  });
  it('warns where Ansible warns and still validates', async () => {
    writeFileSync(join(dir, 'hosts.yaml'), 'web:\n  hosts:\n    w1:\n  colour: blue\n');
    writeFileSync(join(dir, 'p2.yaml'), '- hosts: web\n  tasks: []\n');
    const r = await trustplay(['validate', join(dir, 'p2.yaml'), '-i', join(dir, 'hosts.yaml')]);
    expect(r.stderr).toMatch(/hosts\.yaml:4:3: warning: skipping key `colour` in group `web`/);
    expect(r.code).toBe(0);
  });
  it('locates every warning: INI group and host names, pattern terms matching nothing, --limit terms', async () => {
    writeFileSync(
      join(dir, 'warn.ini'),
      '[web]\nweb1 ansible_host=127.0.0.1\n[web-servers]\nw2 ansible_host=127.0.0.1\n[db]\ndb1 ansible_host=127.0.0.1\n[all:children]\ndb\n[web1]\nx1 ansible_host=127.0.0.1\n',
    );
    writeFileSync(join(dir, 'warn.yaml'), '- hosts: web:nosuch\n  tasks: []\n');
    const r = await trustplay(['validate', join(dir, 'warn.yaml'), '-i', join(dir, 'warn.ini'), '--limit', 'web1:zzz']);
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('warning:'));
    expect(warnings).toHaveLength(4);
    expect(r.stderr).toMatch(/warn\.ini:3:2: warning: group name `web-servers` has characters/);
    expect(r.stderr).toMatch(/warn\.ini:9:2: warning: found both a group and a host named `web1`/);
    expect(r.stderr).toMatch(/warn\.yaml:1:10: warning: host pattern term `nosuch` matches no host, so it is ignored/);
    expect(r.stderr).toMatch(/^--limit: warning: term `zzz` matches no host, so it is ignored/m);
  });
  it('a password written in clear in the inventory is a located error whose source line never shows it', async () => {
    // YAML host vars, INI inline host vars and an INI [group:vars] section, each password unique.
    writeFileSync(
      join(dir, 'pw.yaml'),
      'all:\n  hosts:\n    h1: { ansible_host: 127.0.0.9, ansible_ssh_pass: clear-ssh-pw-1 }\n    h2:\n      ansible_become_password: clear-sudo-pw-2\n',
    );
    writeFileSync(
      join(dir, 'pw.ini'),
      '[g]\nh1 ansible_password=clear-ssh-pw-3 ansible_port=22\n[g:vars]\nansible_become_pass=clear-sudo-pw-4\n',
    );
    writeFileSync(join(dir, 'pw-play.yaml'), '- hosts: all\n  tasks: []\n');
    const located = {
      'pw.yaml': [
        /pw\.yaml:3:54: host h1: `ansible_ssh_pass` sets an SSH password/,
        /pw\.yaml:5:32: host h2: `ansible_become_password` puts/,
      ],
      'pw.ini': [/pw\.ini:2:4: host h1: `ansible_password` sets/, /pw\.ini:4:1: group g: `ansible_become_pass` puts/],
    };
    for (const [inv, want] of Object.entries(located))
      for (const cmd of [
        ['validate', join(dir, 'pw-play.yaml')],
        ['inventory', '--list'],
      ]) {
        const r = await trustplay([...cmd, '-i', join(dir, inv)]);
        expect(r.code, r.stderr).toBe(3);
        for (const w of want) expect(r.stderr).toMatch(w);
        expect(r.stderr).toContain('********');
        expect(r.stdout + r.stderr).not.toMatch(/clear-(ssh|sudo)-pw/);
      }
  });
  it('--resolved applies the SSH config given with -F, inventory values first', async () => {
    writeFileSync(join(dir, 'ssh_config'), 'Host web1\n  HostName 192.0.2.9\n  User cfguser\n  Port 2201\n');
    writeFileSync(join(dir, 'inv.ini'), '[web]\nweb1 ansible_port=2300\n');
    const r = await trustplay([
      'inventory',
      '-i',
      join(dir, 'inv.ini'),
      '--host',
      'web1',
      '--resolved',
      '-F',
      join(dir, 'ssh_config'),
    ]);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as Record<string, unknown>)['_trustplay_resolved']).toMatchObject({
      address: '192.0.2.9',
      user: 'cfguser',
      port: 2300,
    });
  });
});
