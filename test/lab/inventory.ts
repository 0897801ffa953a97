/** The lab's inventory, in trustplay's own format, so `trustplay run ... -i <lab>/inventory.yaml` just works. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { LabNode } from './node.js';

/** The environment variable the inventory's `become_password_env` names on password nodes. */
export const LAB_SUDO_PASSWORD_ENV = 'TRUSTPLAY_LAB_SUDO_PASSWORD';

/** What the inventory is made from. */
export interface InventoryInput {
  nodes: LabNode[];
  identityFile: string;
  knownHosts: string;
  /** `registry.test:<port>` */
  registry: string;
  /** Lab CA PEM path on the controller. */
  ca: string;
  image: string;
  /** kubeconfig path on node1, when the emulator runs. */
  kubeconfig?: string | undefined;
}

/** Inventory document: node1 is the master, the others are workers (node1 alone is both). */
export function inventoryDocument(input: InventoryInput): Record<string, unknown> {
  const hosts = Object.fromEntries(
    input.nodes.map((n) => [
      n.name,
      {
        address: n.address,
        port: n.sshPort,
        user: n.login.user,
        identity_file: input.identityFile,
        // A sudo user's node: become, with the password from the environment where sudo asks one.
        ...(n.login.sudo ? { become: true } : {}),
        ...(n.login.sudo === 'password' ? { become_password_env: LAB_SUDO_PASSWORD_ENV } : {}),
      },
    ]),
  );
  const names = input.nodes.map((n) => n.name);
  const workers = names.length > 1 ? names.slice(1) : names;
  return {
    ssh: { known_hosts: input.knownHosts },
    hosts,
    groups: {
      masters: { hosts: names.slice(0, 1) },
      workers: { hosts: workers },
      nodes: { children: ['masters', 'workers'] },
    },
    vars: {
      registry: input.registry,
      registry_ca: input.ca,
      image: input.image,
      // Namespaces whose default ServiceAccount the emulator seeds with a stale pull secret.
      namespaces: ['default', 'aegis'],
      ...(input.kubeconfig ? { kubeconfig: input.kubeconfig } : {}),
    },
  };
}

/** Writes `<dir>/inventory.yaml` and returns its path. */
export function writeInventory(dir: string, input: InventoryInput): string {
  const file = path.join(dir, 'inventory.yaml');
  writeFileSync(
    file,
    `# trustplay lab inventory (written by test/lab; removed by \`npm run lab -- down\`)\n${stringify(inventoryDocument(input))}`,
  );
  return file;
}
