/**
 * Inventory loading: trustplay's own YAML format, or Ansible's YAML inventory shape for people
 * arriving from Ansible. No inventory = `localhost` over a local connection.
 */
import { readFile } from 'node:fs/promises';
import { at, nodeAt, parseYamlSource, suggestion, type Diagnostic, type SourceFile } from './diagnostics.js';
import { ajvErrorsToDiagnostics, compileSchema } from './schema-validate.js';
import { inventorySchema } from './schema/playbook.js';

/** One host, as the engine sees it. */
export interface InventoryHost {
  name: string;
  address: string;
  port?: number;
  user?: string;
  identityFile?: string;
  identityPassphraseEnv?: string;
  connection: 'ssh' | 'local';
  become?: boolean;
  /** Name of the environment variable holding the sudo password (read at connect time). */
  becomePasswordEnv?: string;
  proxyJump?: string[];
  criSocket?: string;
  /** Host variables (own `vars`, or Ansible's non-connection host vars). */
  hostVars: Record<string, unknown>;
  /** Groups the host belongs to, directly or through children, ancestors first. */
  groups: string[];
}

export interface SshDefaults {
  knownHosts?: string[];
  acceptNewHostKeys?: boolean;
  connectTimeout?: number;
  user?: string;
  identityFile?: string;
  /** Default becomePasswordEnv for hosts without one. */
  becomePasswordEnv?: string;
}

export interface Inventory {
  file?: string;
  /** Host names in inventory order. */
  hosts: Map<string, InventoryHost>;
  /** Group name to its member hosts (transitively, through children). */
  groups: Map<string, Set<string>>;
  /** Group variables; `all` holds the top-level vars. */
  groupVars: Map<string, Record<string, unknown>>;
  /** Group depth (all = 0), for variable precedence: shallower groups are overridden by deeper ones. */
  groupDepth: Map<string, number>;
  ssh: SshDefaults;
}

/** The default inventory: this machine over a local connection. */
export function localInventory(): Inventory {
  const localhost: InventoryHost = {
    name: 'localhost',
    address: '127.0.0.1',
    connection: 'local',
    hostVars: {},
    groups: ['all'],
  };
  return {
    hosts: new Map([['localhost', localhost]]),
    groups: new Map([['all', new Set(['localhost'])]]),
    groupVars: new Map([['all', {}]]),
    groupDepth: new Map([['all', 0]]),
    ssh: {},
  };
}

/** Variables of a host: all < groups (shallow to deep, then by name) < host vars. */
export function hostVariables(inv: Inventory, host: InventoryHost): Record<string, unknown> {
  const groups = [...host.groups].sort(
    (a, b) => (inv.groupDepth.get(a) ?? 0) - (inv.groupDepth.get(b) ?? 0) || a.localeCompare(b),
  );
  const vars: Record<string, unknown> = {};
  for (const g of groups) Object.assign(vars, inv.groupVars.get(g));
  Object.assign(vars, host.hostVars);
  vars['inventory_hostname'] = host.name;
  // Modules look the CRI socket up as a variable, so a host's `cri_socket:` setting reaches them.
  if (host.criSocket !== undefined && vars['cri_socket'] === undefined) vars['cri_socket'] = host.criSocket;
  vars['group_names'] = host.groups.filter((g) => g !== 'all');
  return vars;
}

export async function loadInventory(file: string): Promise<{ inventory?: Inventory; errors: Diagnostic[] }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    return { errors: [{ file, line: 0, col: 0, message: `cannot read inventory: ${(e as Error).message}` }] };
  }
  return parseInventory(file, text);
}

const OWN_KEYS = new Set(['hosts', 'groups', 'vars', 'ssh']);

export function parseInventory(file: string, text: string): { inventory?: Inventory; errors: Diagnostic[] } {
  const { src, errors } = parseYamlSource(file, text);
  if (errors.length) return { errors };
  let data: unknown;
  try {
    data = src.doc.toJS();
  } catch (e) {
    return { errors: [at(src, src.doc.contents, `YAML error: ${(e as Error).message}`)] };
  }
  if (data === null || data === undefined) {
    return { errors: [at(src, src.doc.contents, 'inventory is empty: declare `hosts:` (and optionally `groups:`)')] };
  }
  if (typeof data !== 'object' || Array.isArray(data)) {
    return {
      errors: [
        at(src, src.doc.contents, "inventory must be a mapping with `hosts:` and `groups:` (or Ansible's `all:`)"),
      ],
    };
  }
  const keys = Object.keys(data);
  const own = keys.every((k) => OWN_KEYS.has(k));
  return own ? parseOwn(src, data as Record<string, unknown>) : parseAnsible(src, data as Record<string, unknown>);
}

let validateOwn: ReturnType<typeof compileSchema> | undefined;

function parseOwn(src: SourceFile, data: Record<string, unknown>): { inventory?: Inventory; errors: Diagnostic[] } {
  validateOwn ??= compileSchema(inventorySchema as unknown as Record<string, unknown>);
  const errors: Diagnostic[] = [];
  if (!validateOwn(data)) {
    errors.push(...ajvErrorsToDiagnostics(src, [], validateOwn.errors ?? [], { context: 'inventory' }));
    return { errors };
  }
  const inv: Inventory = {
    file: src.file,
    hosts: new Map(),
    groups: new Map(),
    groupVars: new Map([['all', (data['vars'] as Record<string, unknown>) ?? {}]]),
    groupDepth: new Map([['all', 0]]),
    ssh: {},
  };
  const ssh = (data['ssh'] ?? {}) as Record<string, unknown>;
  if (ssh['known_hosts'] !== undefined) inv.ssh.knownHosts = toList(ssh['known_hosts']);
  if (ssh['accept_new_host_keys'] !== undefined) inv.ssh.acceptNewHostKeys = Boolean(ssh['accept_new_host_keys']);
  if (ssh['connect_timeout'] !== undefined) inv.ssh.connectTimeout = ssh['connect_timeout'] as number;
  if (ssh['user'] !== undefined) inv.ssh.user = ssh['user'] as string;
  if (ssh['identity_file'] !== undefined) inv.ssh.identityFile = ssh['identity_file'] as string;
  if (ssh['become_password_env'] !== undefined) inv.ssh.becomePasswordEnv = ssh['become_password_env'] as string;

  const hosts = (data['hosts'] ?? {}) as Record<string, Record<string, unknown> | null>;
  for (const [name, h0] of Object.entries(hosts)) {
    const h = h0 ?? {};
    const host: InventoryHost = {
      name,
      address: (h['address'] as string) ?? name,
      connection: (h['connection'] as 'ssh' | 'local') ?? (name === 'localhost' && !h['address'] ? 'local' : 'ssh'),
      hostVars: (h['vars'] as Record<string, unknown>) ?? {},
      groups: ['all'],
    };
    assignConn(host, {
      port: h['port'],
      user: h['user'],
      identityFile: h['identity_file'],
      identityPassphraseEnv: h['identity_passphrase_env'],
      become: h['become'],
      becomePasswordEnv: h['become_password_env'],
      proxyJump: h['proxy_jump'] === undefined ? undefined : toList(h['proxy_jump']),
      criSocket: h['cri_socket'],
    });
    inv.hosts.set(name, host);
  }
  const groups = (data['groups'] ?? {}) as Record<
    string,
    { hosts?: string[]; children?: string[]; vars?: Record<string, unknown> }
  >;
  for (const [g, def] of Object.entries(groups)) {
    if (g === 'all') {
      errors.push(
        at(
          src,
          nodeAt(src, ['groups', g], true),
          '`all` is built in: put variables for every host under the top-level `vars:`',
        ),
      );
      continue;
    }
    if (inv.hosts.has(g))
      errors.push(
        at(
          src,
          nodeAt(src, ['groups', g], true),
          `group \`${g}\` has the same name as a host: rename one, patterns could not tell them apart`,
        ),
      );
    inv.groupVars.set(g, def.vars ?? {});
    (def.hosts ?? []).forEach((h, i) => {
      if (!inv.hosts.has(h))
        errors.push(
          at(
            src,
            nodeAt(src, ['groups', g, 'hosts', i]),
            `group \`${g}\` lists unknown host \`${h}\`${suggestion(h, [...inv.hosts.keys()])}: declare it under \`hosts:\``,
          ),
        );
    });
    (def.children ?? []).forEach((c, i) => {
      if (!(c in groups))
        errors.push(
          at(
            src,
            nodeAt(src, ['groups', g, 'children', i]),
            `group \`${g}\` lists unknown child group \`${c}\`${suggestion(c, Object.keys(groups))}`,
          ),
        );
    });
  }
  const direct = new Map<string, { hosts: string[]; children: string[] }>();
  for (const [g, def] of Object.entries(groups))
    direct.set(g, { hosts: def.hosts ?? [], children: def.children ?? [] });
  errors.push(
    ...resolveGroups(inv, direct, (g) =>
      at(
        src,
        nodeAt(src, ['groups', g], true),
        `group \`${g}\` contains itself through its children: remove the cycle`,
      ),
    ),
  );
  return errors.length ? { errors } : { inventory: inv, errors };
}

function assignConn(host: InventoryHost, f: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(f))
    if (v !== undefined && v !== null) (host as unknown as Record<string, unknown>)[k] = v;
}

function toList(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : [String(v)];
}

/** Fill inv.groups (transitive members), host.groups and group depths; report cycles. */
function resolveGroups(
  inv: Inventory,
  direct: Map<string, { hosts: string[]; children: string[] }>,
  cycle: (group: string) => Diagnostic,
): Diagnostic[] {
  const errors: Diagnostic[] = [];
  const members = new Map<string, Set<string>>();
  const visiting = new Set<string>();
  const expand = (g: string): Set<string> => {
    const done = members.get(g);
    if (done) return done;
    if (visiting.has(g)) {
      errors.push(cycle(g));
      return new Set();
    }
    visiting.add(g);
    const set = new Set<string>(direct.get(g)?.hosts.filter((h) => inv.hosts.has(h)) ?? []);
    for (const c of direct.get(g)?.children ?? []) if (direct.has(c)) for (const h of expand(c)) set.add(h);
    visiting.delete(g);
    members.set(g, set);
    return set;
  };
  // Depth: a child is one deeper than its deepest parent.
  const parents = new Map<string, string[]>();
  for (const [g, d] of direct) for (const c of d.children) parents.set(c, [...(parents.get(c) ?? []), g]);
  const depth = (g: string, seen = new Set<string>()): number => {
    if (seen.has(g)) return 1;
    seen.add(g);
    const ps = parents.get(g) ?? [];
    return 1 + (ps.length ? Math.max(...ps.map((p) => depth(p, seen))) : 0);
  };
  inv.groups.set('all', new Set(inv.hosts.keys()));
  for (const g of direct.keys()) {
    inv.groups.set(g, expand(g));
    inv.groupDepth.set(g, depth(g));
  }
  for (const [g, set] of inv.groups) {
    if (g === 'all') continue;
    for (const h of set) inv.hosts.get(h)!.groups.push(g);
  }
  return errors;
}

const ANSIBLE_CONN: Record<string, keyof InventoryHost> = {
  ansible_host: 'address',
  ansible_port: 'port',
  ansible_user: 'user',
  ansible_ssh_private_key_file: 'identityFile',
  ansible_connection: 'connection',
  ansible_become: 'become',
};

/** Ansible's YAML inventory: `all:` (or any top-level groups) with `hosts`, `vars`, `children`. */
function parseAnsible(src: SourceFile, data: Record<string, unknown>): { inventory?: Inventory; errors: Diagnostic[] } {
  const errors: Diagnostic[] = [];
  const inv: Inventory = {
    file: src.file,
    hosts: new Map(),
    groups: new Map(),
    groupVars: new Map([['all', {}]]),
    groupDepth: new Map([['all', 0]]),
    ssh: {},
  };
  const direct = new Map<string, { hosts: string[]; children: string[] }>();
  const GROUP_KEYS = ['hosts', 'vars', 'children'];

  const walk = (g: string, def: unknown, path: (string | number)[]): void => {
    if (def === null || def === undefined) def = {};
    if (typeof def !== 'object' || Array.isArray(def)) {
      errors.push(
        at(src, nodeAt(src, path), `group \`${g}\` must be a mapping with \`hosts\`, \`vars\` or \`children\``),
      );
      return;
    }
    const d = def as Record<string, unknown>;
    for (const k of Object.keys(d)) {
      if (!GROUP_KEYS.includes(k))
        errors.push(
          at(
            src,
            nodeAt(src, [...path, k], true),
            `unknown key \`${k}\` in Ansible group \`${g}\`${suggestion(k, GROUP_KEYS)}: a group has \`hosts\`, \`vars\` and \`children\``,
          ),
        );
    }
    const entry = direct.get(g) ?? { hosts: [], children: [] };
    direct.set(g, entry);
    if (d['vars'] !== undefined) {
      if (typeof d['vars'] !== 'object' || d['vars'] === null || Array.isArray(d['vars']))
        errors.push(at(src, nodeAt(src, [...path, 'vars']), `\`vars\` of group \`${g}\` must be a mapping`));
      else inv.groupVars.set(g, { ...(inv.groupVars.get(g) ?? {}), ...(d['vars'] as Record<string, unknown>) });
    } else if (!inv.groupVars.has(g)) inv.groupVars.set(g, {});
    const hosts = d['hosts'];
    if (hosts !== undefined && hosts !== null) {
      if (typeof hosts !== 'object' || Array.isArray(hosts)) {
        errors.push(
          at(
            src,
            nodeAt(src, [...path, 'hosts']),
            `\`hosts\` of group \`${g}\` must be a mapping of host names (Ansible's YAML inventory shape)`,
          ),
        );
      } else {
        for (const [h, hv0] of Object.entries(hosts as Record<string, unknown>)) {
          const hv = (hv0 ?? {}) as Record<string, unknown>;
          let host = inv.hosts.get(h);
          if (!host) {
            host = {
              name: h,
              address: h,
              connection: h === 'localhost' ? 'local' : 'ssh',
              hostVars: {},
              groups: ['all'],
            };
            inv.hosts.set(h, host);
          }
          for (const [k, v] of Object.entries(hv)) {
            const field = ANSIBLE_CONN[k];
            if (field === 'connection') host.connection = v === 'local' ? 'local' : 'ssh';
            else if (field) (host as unknown as Record<string, unknown>)[field] = field === 'port' ? Number(v) : v;
            else host.hostVars[k] = v;
          }
          if (g !== 'all' && !entry.hosts.includes(h)) entry.hosts.push(h);
        }
      }
    }
    const children = d['children'];
    if (children !== undefined && children !== null) {
      if (typeof children !== 'object' || Array.isArray(children)) {
        errors.push(
          at(
            src,
            nodeAt(src, [...path, 'children']),
            `\`children\` of group \`${g}\` must be a mapping of group names`,
          ),
        );
      } else {
        for (const [c, cdef] of Object.entries(children as Record<string, unknown>)) {
          if (g !== 'all' && !entry.children.includes(c)) entry.children.push(c);
          walk(c, cdef, [...path, 'children', c]);
        }
      }
    }
  };
  for (const [g, def] of Object.entries(data)) walk(g, def, [g]);
  const allVars = inv.groupVars.get('all') ?? {};
  direct.delete('all');
  inv.groupVars.set('all', allVars);
  for (const g of direct.keys())
    if (inv.hosts.has(g))
      errors.push(
        at(
          src,
          nodeAt(src, [g], true),
          `group \`${g}\` has the same name as a host: rename one, patterns could not tell them apart`,
        ),
      );
  errors.push(
    ...resolveGroups(inv, direct, (g) =>
      at(src, src.doc.contents, `group \`${g}\` contains itself through its children: remove the cycle`),
    ),
  );
  return errors.length ? { errors } : { inventory: inv, errors };
}
