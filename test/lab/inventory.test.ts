import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { inventoryDocument } from './inventory.js';
import type { LabNode } from './node.js';

const node = (i: number, login: LabNode['login'] = { user: 'root' }): LabNode =>
  ({ name: `node${i}`, address: `127.0.0.${10 + i}`, sshPort: 30000 + i, login }) as LabNode;

describe('the lab inventory', () => {
  const base = {
    identityFile: '/lab/ssh/id',
    knownHosts: '/lab/ssh/known_hosts',
    registry: 'registry.test:5443',
    ca: '/lab/pki/ca.pem',
    image: 'registry.test:5443/aegis/aegis-hc-install:latest',
  };

  it('makes node1 the master and the rest workers, with host connection settings and shared vars', () => {
    const doc = inventoryDocument({ ...base, nodes: [node(1), node(2), node(3)], kubeconfig: '/root/.kube/config' });
    expect(doc).toEqual({
      ssh: { known_hosts: '/lab/ssh/known_hosts' },
      hosts: {
        node1: { address: '127.0.0.11', port: 30001, user: 'root', identity_file: '/lab/ssh/id' },
        node2: { address: '127.0.0.12', port: 30002, user: 'root', identity_file: '/lab/ssh/id' },
        node3: { address: '127.0.0.13', port: 30003, user: 'root', identity_file: '/lab/ssh/id' },
      },
      groups: {
        masters: { hosts: ['node1'] },
        workers: { hosts: ['node2', 'node3'] },
        nodes: { children: ['masters', 'workers'] },
      },
      vars: {
        registry: 'registry.test:5443',
        registry_ca: '/lab/pki/ca.pem',
        image: base.image,
        namespaces: ['default', 'aegis'],
        kubeconfig: '/root/.kube/config',
      },
    });
  });

  it('logs into sudo nodes as their user with become, naming the password variable where sudo asks one', () => {
    const doc = inventoryDocument({
      ...base,
      nodes: [node(1, { user: 'ops', sudo: 'nopasswd' }), node(2, { user: 'ops', sudo: 'password' })],
    });
    expect(doc.hosts).toEqual({
      node1: { address: '127.0.0.11', port: 30001, user: 'ops', identity_file: '/lab/ssh/id', become: true },
      node2: {
        address: '127.0.0.12',
        port: 30002,
        user: 'ops',
        identity_file: '/lab/ssh/id',
        become: true,
        become_password_env: 'TRUSTPLAY_LAB_SUDO_PASSWORD',
      },
    });
  });

  it('makes a single node both master and worker, and omits kubeconfig without the emulator', () => {
    const doc = inventoryDocument({ ...base, nodes: [node(1)] });
    expect(doc.groups).toMatchObject({ masters: { hosts: ['node1'] }, workers: { hosts: ['node1'] } });
    expect(doc.vars).not.toHaveProperty('kubeconfig');
  });

  it("validates against trustplay's inventory schema", () => {
    const schema = JSON.parse(
      readFileSync(new URL('../../schemas/inventory.schema.json', import.meta.url), 'utf8'),
    ) as object;
    const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);
    const doc = inventoryDocument({ ...base, nodes: [node(1), node(2), node(3)], kubeconfig: '/root/.kube/config' });
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
    const sudo = inventoryDocument({ ...base, nodes: [node(1, { user: 'ops', sudo: 'password' })] });
    expect(validate(sudo), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...doc, ssh: { known_hosts: 7 } })).toBe(false);
  });
});
