import { describe, expect, it } from 'vitest';
import { hostVariables, localInventory, parseInventory } from '../../src/playbook/inventory.js';
import { matchHosts } from '../../src/playbook/patterns.js';
import { interpolate, interpolateString } from '../../src/playbook/interpolate.js';
import { parsePlaybook, playVariables } from '../../src/playbook/playbook.js';

const own = `
vars: { registry: r.all, level: all }
hosts:
  m1: { address: 10.0.0.1, port: 2222, user: ops, identity_file: /k, become: true }
  w1: { vars: { level: host } }
  w2:
  worker-extra: { connection: local }
groups:
  masters: { hosts: [m1], vars: { level: masters } }
  workers: { hosts: [w1, w2, worker-extra], vars: { level: workers, role: worker } }
  canary: { hosts: [w2], vars: { level: canary } }
  nodes: { children: [masters, workers], vars: { level: nodes } }
`;

const ansible = `
all:
  vars: { registry: r.all }
  hosts:
    bastion: { ansible_host: 192.0.2.1 }
  children:
    masters:
      hosts:
        m1: { ansible_host: 10.0.0.1, ansible_port: 2222, ansible_user: ops, ansible_ssh_private_key_file: /k, role: master }
    workers:
      vars: { role: worker }
      hosts:
        w1:
        w2: { ansible_connection: local }
`;

describe('inventory', () => {
  it("loads trustplay's own format with groups, children and connection settings", () => {
    const { inventory, errors } = parseInventory('inv.yaml', own);
    expect(errors).toEqual([]);
    const m1 = inventory!.hosts.get('m1')!;
    expect(m1).toMatchObject({
      address: '10.0.0.1',
      port: 2222,
      user: 'ops',
      identityFile: '/k',
      become: true,
      connection: 'ssh',
    });
    expect(inventory!.hosts.get('w2')!.address).toBe('w2');
    expect(inventory!.hosts.get('worker-extra')!.connection).toBe('local');
    expect([...inventory!.groups.get('nodes')!]).toEqual(['m1', 'w1', 'w2', 'worker-extra']);
  });

  it('applies variable precedence: all < parent group < child group < host < play < extra', () => {
    const { inventory } = parseInventory('inv.yaml', own);
    const inv = inventory!;
    expect(hostVariables(inv, inv.hosts.get('m1')!)['level']).toBe('masters');
    expect(hostVariables(inv, inv.hosts.get('w1')!)['level']).toBe('host');
    expect(hostVariables(inv, inv.hosts.get('w2')!)['level']).toBe('workers'); // canary and workers both depth 1: by name
    expect(hostVariables(inv, inv.hosts.get('w2')!)['registry']).toBe('r.all');
    const r = parsePlaybook('p.yaml', 'hosts: all\nvars: { level: play }\ntasks: []\n', { inventory: inv });
    const play = r.playbook!.plays[0]!;
    expect(playVariables(inv, play, 'w1')['level']).toBe('play');
    expect(playVariables(inv, play, 'w1', { level: 'extra' })['level']).toBe('extra');
  });

  it("loads Ansible's YAML inventory shape", () => {
    const { inventory, errors } = parseInventory('hosts.yaml', ansible);
    expect(errors).toEqual([]);
    const inv = inventory!;
    expect(inv.hosts.get('m1')).toMatchObject({ address: '10.0.0.1', port: 2222, user: 'ops', identityFile: '/k' });
    expect(inv.hosts.get('w2')!.connection).toBe('local');
    expect(hostVariables(inv, inv.hosts.get('m1')!)).toMatchObject({ role: 'master', registry: 'r.all' });
    expect(hostVariables(inv, inv.hosts.get('w1')!)).toMatchObject({ role: 'worker' });
    expect(matchHosts(inv, 'all').hosts).toEqual(['bastion', 'm1', 'w1', 'w2']);
  });

  it('reports unknown hosts in groups, cycles and host/group name clashes', () => {
    const bad = parseInventory(
      'inv.yaml',
      'hosts: { a: }\ngroups:\n  g: { hosts: [b], children: [h] }\n  h: { children: [g] }\n  a: { hosts: [a] }\n',
    );
    const msgs = bad.errors.map((e) => `${e.line}:${e.col} ${e.message}`);
    expect(msgs.some((m) => /^3:16 group `g` lists unknown host `b`/.test(m))).toBe(true);
    expect(msgs.some((m) => /contains itself through its children/.test(m))).toBe(true);
    expect(msgs.some((m) => /^5:3 group `a` has the same name as a host/.test(m))).toBe(true);
  });

  it('defaults to localhost over a local connection', () => {
    const inv = localInventory();
    expect([...inv.hosts.values()]).toMatchObject([{ name: 'localhost', connection: 'local' }]);
  });
});

describe('host patterns', () => {
  const inv = parseInventory('inv.yaml', own).inventory!;
  it.each([
    ['all', ['m1', 'w1', 'w2', 'worker-extra']],
    ['*', ['m1', 'w1', 'w2', 'worker-extra']],
    ['m1', ['m1']],
    ['workers', ['w1', 'w2', 'worker-extra']],
    ['w*', ['w1', 'w2', 'worker-extra']],
    ['masters:canary', ['m1', 'w2']],
    ['masters,canary', ['m1', 'w2']],
    ['workers:!canary', ['w1', 'worker-extra']],
    ['nodes:&workers', ['w1', 'w2', 'worker-extra']],
    ['!workers:nodes', ['m1']],
    ['!canary', ['m1', 'w1', 'worker-extra']],
    ['worker-*:&workers', ['worker-extra']],
  ])('%s', (pattern, expected) => {
    expect(matchHosts(inv, pattern).hosts).toEqual(expected);
  });
  it('names the terms that matched nothing', () => {
    expect(matchHosts(inv, 'masters:wrokers')).toEqual({ hosts: ['m1'], unmatched: ['wrokers'] });
  });
});

describe('interpolation', () => {
  const vars = {
    registry: { host: 'r.test', port: 5443 },
    list: ['a', 'b'],
    n: 3,
    flag: true,
    ref: '{{ registry.host }}',
  };
  it('looks up dotted paths and list indexes', () => {
    expect(interpolateString('{{ registry.host }}:{{registry.port}}', vars)).toBe('r.test:5443');
    expect(interpolateString('{{ list.1 }}', vars)).toBe('b');
  });
  it('keeps the type of a whole-string template', () => {
    expect(interpolateString('{{ n }}', vars)).toBe(3);
    expect(interpolateString('{{ list }}', vars)).toEqual(['a', 'b']);
    expect(interpolate({ a: ['{{ flag }}'] }, vars)).toEqual({ a: [true] });
  });
  it('resolves variables that refer to other variables', () => {
    expect(interpolateString('{{ ref }}', vars)).toBe('r.test');
  });
  it('refuses expressions and undefined variables (no code execution)', () => {
    expect(() => interpolateString('{{ n + 1 }}', vars)).toThrow(/not a variable name/);
    expect(() => interpolateString("{{ constructor.constructor('x')() }}", vars)).toThrow(/not a variable name/);
    expect(() => interpolateString('{{ registry.nope }}', vars)).toThrow(/undefined variable `registry.nope`/);
    expect(() => interpolateString('{{ toString }}', vars)).toThrow(/undefined variable/);
  });
});
