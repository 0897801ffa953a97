/**
 * Inventory loading: trustplay's own YAML format, or Ansible's inventories (YAML and INI) resolved
 * exactly as `ansible-inventory` resolves them, for people arriving from Ansible. Every format
 * feeds one model (inventory-model.ts). No inventory = `localhost` over a local connection.
 */
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { isMap, isPair, isScalar } from 'yaml';
import type { SshClientConfig } from '../connection/ssh-config.js';
import { readInputFile } from './input.js';
import { at, nodeAt, parseYamlSource, suggestion, type Diagnostic, type SourceFile } from './diagnostics.js';
import { hasTemplate, interpolateString, TemplateError } from './interpolate.js';
import {
  ANSIBLE_CONNECTION_VARS,
  becomePasswordSource,
  connectionField,
  convertConnectionVar,
  isPlainToken,
  isSecretVar,
  type ConnectionField,
} from './inventory-connection.js';
import { parseAnsibleIni } from './inventory-ini.js';
import { InventoryModel, InventoryModelError } from './inventory-model.js';
import { parseAnsibleYaml, type ParsedAnsible } from './inventory-yaml.js';
import { loadAdjacentVars, mergeVarsFiles, type AdjacentVars, type VarsFile } from './vars-files.js';
import { ajvErrorsToDiagnostics, compileSchema } from './schema-validate.js';
import { inventorySchema } from './schema/playbook.js';
import { defined } from '../defined.js';
import { maskSource } from '../secrets/index.js';

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
  /** The user sudo makes us (`become_user`, `ansible_become_user`; default root). */
  becomeUser?: string;
  /** Name of the environment variable holding the sudo password (read at connect time). */
  becomePasswordEnv?: string;
  /** The sudo password itself, only ever from a `!vault` value decrypted in memory. */
  becomePassword?: string;
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
  /** `ansible_group_priority` (default 1): among groups of one depth, higher wins. */
  groupPriority: Map<string, number>;
  ssh: SshDefaults;
  /** The resolved model, as `ansible-inventory` would show it. */
  model: InventoryModel;
  /** Where Ansible would warn (unknown keys, duplicate keys, odd group names): shown, not fatal. */
  warnings: Diagnostic[];
  format: InventoryFormat;
  /** The OpenSSH client config filling what the inventory leaves unset (set by the CLI). */
  sshConfig?: SshClientConfig;
  /** group_vars/ and host_vars/ next to the inventory file. */
  adjacent?: AdjacentVars;
}

export type InventoryFormat = 'trustplay' | 'yaml' | 'ini' | 'default';

export interface InventoryLoad {
  inventory?: Inventory;
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

/** The default inventory: this machine over a local connection. */
export function localInventory(): Inventory {
  const model = new InventoryModel();
  model.addHost('localhost', 'all');
  model.reconcile();
  const inv = fromModel(model, 'default');
  inv.hosts.set('localhost', {
    name: 'localhost',
    address: '127.0.0.1',
    connection: 'local',
    hostVars: {},
    groups: ['all', 'ungrouped'],
  });
  return inv;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Groups in the order Ansible merges their variables: depth, priority, then name (code points). */
export function sortGroupNames(inv: Inventory, groups: readonly string[]): string[] {
  return [...groups].sort(
    (a, b) =>
      (inv.groupDepth.get(a) ?? 0) - (inv.groupDepth.get(b) ?? 0) ||
      (inv.groupPriority.get(a) ?? 1) - (inv.groupPriority.get(b) ?? 1) ||
      compareNames(a, b),
  );
}

/**
 * Inventory variables of a host, in Ansible's order (VariableManager.get_vars with the default
 * VARIABLE_PRECEDENCE), later layers winning:
 * the inventory file's `all` vars, its other groups' vars (by depth, priority, name);
 * group_vars/all next to the inventory, then next to the playbook; group_vars/<group> next to the
 * inventory, then next to the playbook (groups in the same order); the inventory file's host vars,
 * host_vars/<host> next to the inventory, then next to the playbook.
 */
export function inventoryVariables(
  inv: Inventory,
  host: InventoryHost,
  playbookAdjacent?: AdjacentVars,
): Record<string, unknown> {
  const vars: Record<string, unknown> = {};
  const groups = sortGroupNames(inv, host.groups).filter((g) => g !== 'all');
  Object.assign(vars, inv.groupVars.get('all'));
  for (const g of groups) Object.assign(vars, inv.groupVars.get(g));
  const sides = [inv.adjacent, playbookAdjacent];
  for (const side of sides) Object.assign(vars, mergeVarsFiles(side?.groups.get('all')));
  for (const side of sides) for (const g of groups) Object.assign(vars, mergeVarsFiles(side?.groups.get(g)));
  Object.assign(vars, host.hostVars);
  for (const side of sides) Object.assign(vars, mergeVarsFiles(side?.hosts.get(host.name)));
  return vars;
}

/** Variables of a host: the inventory's, plus the names Ansible gives every host. */
export function hostVariables(
  inv: Inventory,
  host: InventoryHost,
  playbookAdjacent?: AdjacentVars,
): Record<string, unknown> {
  const vars = inventoryVariables(inv, host, playbookAdjacent);
  vars['inventory_hostname'] = host.name;
  // Modules look the CRI socket up as a variable, so a host's `cri_socket:` setting reaches them.
  if (host.criSocket !== undefined && vars['cri_socket'] === undefined) vars['cri_socket'] = host.criSocket;
  vars['group_names'] = host.groups.filter((g) => g !== 'all').sort(compareNames);
  return vars;
}

/** INI unless the name says YAML; a file with another name is YAML when it reads as a YAML mapping. */
function detectFormat(file: string, text: string): 'yaml' | 'ini' {
  const ext = extname(file).toLowerCase();
  if (['.yaml', '.yml', '.json'].includes(ext)) return 'yaml';
  if (['.ini', '.cfg', '.hosts'].includes(ext)) return 'ini';
  const { src, errors } = parseYamlSource(file, text);
  return errors.every((e) => e.message.startsWith('duplicate key')) && isMap(src.doc.contents) ? 'yaml' : 'ini';
}

export async function loadInventory(file: string): Promise<InventoryLoad> {
  const input = await readInputFile(file, 'inventory');
  if ('error' in input)
    return {
      errors: [{ file, line: input.line ?? 0, col: input.col ?? 0, message: input.error }],
      warnings: [],
    };
  const r = parseInventory(file, input.text);
  if (!r.inventory) return r;
  const errors = withAdjacentVars(r.inventory, dirname(resolve(file)));
  return errors.length ? { errors, warnings: r.warnings } : r;
}

/**
 * Read group_vars/ and host_vars/ beside the inventory, then set each host's connection again
 * from every layer, so an `ansible_user` in group_vars/all.yml reaches the connection as in
 * Ansible. Connection values in those files are checked where they are written.
 */
export function withAdjacentVars(inv: Inventory, dir: string): Diagnostic[] {
  const { adjacent, errors } = loadAdjacentVars(dir, inv.groups.keys(), inv.hosts.keys());
  if (errors.length) return errors;
  if (!adjacent.groups.size && !adjacent.hosts.size) return [];
  inv.adjacent = adjacent;
  return applyFileConnectionVars(inv, [...adjacent.groups.values(), ...adjacent.hosts.values()].flat());
}

/** Connection variables written in variable files: checked where written, then applied to every host. */
export function applyFileConnectionVars(
  inv: Inventory,
  files: readonly VarsFile[],
  playbookAdjacent?: AdjacentVars,
): Diagnostic[] {
  const errors: Diagnostic[] = [];
  const fields = new Set<ConnectionField>();
  for (const f of files)
    for (const [k, v] of Object.entries(f.vars)) {
      const field = connectionField(k);
      if (!field) continue;
      fields.add(field);
      if (typeof v === 'string' && hasTemplate(v)) continue;
      const r = convertConnectionVar(k, v);
      if (!r.ok) errors.push(hideSecretSource(k, { ...f.locate(k), message: r.message }));
    }
  if (errors.length || !fields.size) return errors;
  for (const host of inv.hosts.values()) {
    const where = { file: inv.file ?? '', line: 0, col: 0, message: '' };
    errors.push(
      ...applyConnectionVars(
        host,
        hostVariables(inv, host, playbookAdjacent),
        where,
        dirname(resolve(inv.file ?? '.')),
        fields,
      ),
    );
  }
  return errors;
}

const OWN_KEYS = new Set(['hosts', 'groups', 'vars', 'ssh']);

/** Parse an inventory's text: trustplay's format, Ansible's YAML or Ansible's INI (by name and content). */
export function parseInventory(file: string, text: string, format?: 'yaml' | 'ini'): InventoryLoad {
  if ((format ?? detectFormat(file, text)) === 'ini') return fromAnsible(parseAnsibleIni(file, text), 'ini', file);
  const { src, errors } = parseYamlSource(file, text);
  const dupes = errors.filter((e) => e.message.startsWith('duplicate key'));
  const syntax = errors.filter((e) => !e.message.startsWith('duplicate key'));
  if (syntax.length) return { errors: syntax, warnings: [] };
  const top = src.doc.contents;
  const own =
    isMap(top) &&
    top.items.length > 0 &&
    top.items.every((p) => isPair(p) && isScalar(p.key) && OWN_KEYS.has(String(p.key.value)));
  if (own) {
    if (dupes.length) return { errors: dupes, warnings: [] };
    return parseOwn(src);
  }
  // Ansible keeps the last of duplicate keys and warns; so does trustplay for Ansible's format.
  const warnings = dupes.map((d): Diagnostic => ({
    ...d,
    severity: 'warning',
    message: d.message.replace(/: each host.*$/, ': Ansible uses the last one'),
  }));
  const r = fromAnsible(parseAnsibleYaml(src), 'yaml', file);
  return { ...r, warnings: [...warnings, ...r.warnings] };
}

let validateOwn: ReturnType<typeof compileSchema> | undefined;

function parseOwn(src: SourceFile): InventoryLoad {
  let data: Record<string, unknown>;
  try {
    data = src.doc.toJS() as Record<string, unknown>;
  } catch (e) {
    return { errors: [at(src, src.doc.contents, `YAML error: ${(e as Error).message}`)], warnings: [] };
  }
  validateOwn ??= compileSchema(inventorySchema as unknown as Record<string, unknown>);
  const errors: Diagnostic[] = [];
  if (!validateOwn(data)) {
    errors.push(...ajvErrorsToDiagnostics(src, [], validateOwn.errors ?? [], { context: 'inventory' }));
    return { errors, warnings: [] };
  }
  const model = new InventoryModel();
  for (const [k, v] of Object.entries((data['vars'] as Record<string, unknown>) ?? {})) model.setVariable('all', k, v);
  const hosts = (data['hosts'] ?? {}) as Record<string, Record<string, unknown> | null>;
  // Hosts sit directly in `all` in the order written, so `all` lists them in that order.
  for (const [name, h] of Object.entries(hosts)) {
    model.addHost(name, 'all');
    for (const [k, v] of Object.entries((h?.['vars'] as Record<string, unknown>) ?? {})) model.setVariable(name, k, v);
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
    if (g in hosts)
      errors.push(
        at(
          src,
          nodeAt(src, ['groups', g], true),
          `group \`${g}\` has the same name as a host: rename one, patterns could not tell them apart`,
        ),
      );
    model.addGroup(g);
    for (const [k, v] of Object.entries(def.vars ?? {})) model.setVariable(g, k, v);
  }
  for (const [g, def] of Object.entries(groups)) {
    if (g === 'all') continue;
    (def.hosts ?? []).forEach((h, i) => {
      if (!(h in hosts))
        errors.push(
          at(
            src,
            nodeAt(src, ['groups', g, 'hosts', i]),
            `group \`${g}\` lists unknown host \`${h}\`${suggestion(h, Object.keys(hosts))}: declare it under \`hosts:\``,
          ),
        );
      else if (!(g in hosts)) model.addChild(g, h);
    });
    (def.children ?? []).forEach((c, i) => {
      if (!(c in groups) || c === 'all') {
        errors.push(
          at(
            src,
            nodeAt(src, ['groups', g, 'children', i]),
            `group \`${g}\` lists unknown child group \`${c}\`${suggestion(c, Object.keys(groups))}`,
          ),
        );
        return;
      }
      try {
        model.addChild(g, c);
      } catch (e) {
        if (!(e instanceof InventoryModelError)) throw e;
        errors.push(
          at(
            src,
            nodeAt(src, ['groups', g, 'children', i]),
            `group \`${g}\` contains itself through its children: remove the cycle`,
          ),
        );
      }
    });
  }
  if (errors.length) return { errors, warnings: [] };
  model.reconcile();
  const inv = fromModel(model, 'trustplay', src.file);
  const ssh = (data['ssh'] ?? {}) as Record<string, unknown>;
  if (ssh['known_hosts'] !== undefined)
    inv.ssh.knownHosts = toList(ssh['known_hosts']).map((k) => fromFile(src.file, k));
  if (ssh['accept_new_host_keys'] !== undefined) inv.ssh.acceptNewHostKeys = Boolean(ssh['accept_new_host_keys']);
  if (ssh['connect_timeout'] !== undefined) inv.ssh.connectTimeout = ssh['connect_timeout'] as number;
  if (ssh['user'] !== undefined) inv.ssh.user = ssh['user'] as string;
  if (ssh['identity_file'] !== undefined) inv.ssh.identityFile = fromFile(src.file, ssh['identity_file'] as string);
  if (ssh['become_password_env'] !== undefined) inv.ssh.becomePasswordEnv = ssh['become_password_env'] as string;
  for (const [name, h0] of Object.entries(hosts)) {
    const h = h0 ?? {};
    const host = inv.hosts.get(name)!;
    if (h['address'] !== undefined) host.address = h['address'] as string;
    // trustplay's own format: a `localhost` entry without an address means this machine.
    host.connection = (h['connection'] as 'ssh' | 'local') ?? (name === 'localhost' && !h['address'] ? 'local' : 'ssh');
    assignConn(host, {
      port: h['port'],
      user: h['user'],
      identityFile: h['identity_file'] === undefined ? undefined : fromFile(src.file, h['identity_file'] as string),
      identityPassphraseEnv: h['identity_passphrase_env'],
      become: h['become'],
      becomeUser: h['become_user'],
      becomePasswordEnv: h['become_password_env'],
      proxyJump: h['proxy_jump'] === undefined ? undefined : toList(h['proxy_jump']),
      criSocket: h['cri_socket'],
    });
  }
  return { inventory: inv, errors: [], warnings: [] };
}

/** A path written in an inventory, relative to that file (`~` is left for the connection to expand). */
function fromFile(file: string, p: string): string {
  return fromDir(dirname(resolve(file)), p);
}

function fromDir(dir: string, p: string): string {
  return isAbsolute(p) || p === '~' || p.startsWith('~/') ? p : resolve(dir, p);
}

function assignConn(host: InventoryHost, f: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(f))
    if (v !== undefined && v !== null) (host as unknown as Record<string, unknown>)[k] = v;
}

function toList(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : [String(v)];
}

/** The engine's view of a resolved model: hosts in `all`'s order, each group's hosts in Ansible's order. */
function fromModel(model: InventoryModel, format: InventoryFormat, file?: string): Inventory {
  const inv: Inventory = {
    ...defined({ file }),
    hosts: new Map(),
    groups: new Map(),
    groupVars: new Map(),
    groupDepth: new Map(),
    groupPriority: new Map(),
    ssh: {},
    model,
    warnings: [],
    format,
  };
  for (const g of model.groups.values()) {
    inv.groups.set(g.name, new Set(g.allHosts().map((h) => h.name)));
    inv.groupVars.set(g.name, g.vars);
    inv.groupDepth.set(g.name, g.depth);
    inv.groupPriority.set(g.name, g.priority);
  }
  for (const h of model.groups.get('all')!.allHosts())
    inv.hosts.set(h.name, {
      name: h.name,
      address: h.name,
      connection: 'ssh',
      hostVars: h.vars,
      groups: h.groups.map((g) => g.name),
    });
  return inv;
}

/**
 * An error about a password written in the inventory (`ansible_ssh_pass`, `ansible_become_password`
 * in clear): its source line stops at the column, so the caret display never prints the password.
 */
function hideSecretSource(name: string, d: Diagnostic): Diagnostic {
  return isSecretVar(name) ? maskSource(d) : d;
}

const FIELD_NAMES: Record<ConnectionField, string[]> = {} as Record<ConnectionField, string[]>;
for (const [name, field] of ANSIBLE_CONNECTION_VARS) (FIELD_NAMES[field] ??= []).push(name);

/** An Ansible inventory: the model, then each host's connection from its merged variables. */
function fromAnsible(parsed: ParsedAnsible, format: 'yaml' | 'ini', file: string): InventoryLoad {
  const { model, warnings } = parsed;
  if (!model || parsed.errors.length) return { errors: parsed.errors, warnings };
  const errors: Diagnostic[] = [];
  // Each connection variable is checked where it is written; templated ones once per host, below.
  for (const d of parsed.definitions) {
    if (connectionField(d.key) === 'becomePassword' && becomePasswordSource(d.value)) continue;
    if (typeof d.value === 'string' && hasTemplate(d.value)) continue;
    const r = convertConnectionVar(d.key, d.value);
    if (!r.ok) errors.push(hideSecretSource(d.key, { ...d.where, message: `${d.owner}: ${r.message}` }));
  }
  const inv = fromModel(model, format, file);
  inv.warnings = warnings;
  for (const host of inv.hosts.values()) {
    const vars = hostVariables(inv, host);
    const where = parsed.hostWhere.get(host.name) ?? { file, line: 0, col: 0, message: '' };
    errors.push(...applyConnectionVars(host, vars, where, dirname(resolve(file))));
    if (host.connection === 'ssh' && !isPlainToken(host.address))
      errors.push({
        ...where,
        message: `host ${JSON.stringify(host.name)} cannot be connected to: its name has spaces or control characters; set \`ansible_host\` to its address`,
      });
    const env = vars['become_password_env'];
    if (typeof env === 'string') host.becomePasswordEnv = env;
    const cri = vars['cri_socket'];
    if (typeof cri === 'string') host.criSocket = cri;
  }
  return errors.length ? { errors, warnings } : { inventory: inv, errors: [], warnings };
}

/**
 * Set a host's connection from Ansible's connection variables in VARS (merged, highest layer
 * last), each field from the first of its names that is set, as Ansible's PlayContext reads them.
 * FIELDS limits which fields are set; a relative key file resolves against DIR.
 */
function applyConnectionVars(
  host: InventoryHost,
  vars: Record<string, unknown>,
  where: Diagnostic,
  dir: string,
  fields?: ReadonlySet<ConnectionField>,
): Diagnostic[] {
  const errors: Diagnostic[] = [];
  for (const [field, names] of Object.entries(FIELD_NAMES) as Array<[ConnectionField, string[]]>) {
    if (fields && !fields.has(field)) continue;
    const name = names.find((n) => vars[n] !== undefined && vars[n] !== null);
    if (name === undefined) continue;
    let value = vars[name];
    if (field === 'becomePassword') {
      const source = becomePasswordSource(value);
      if (source && 'env' in source) host.becomePasswordEnv = source.env;
      else if (source) host.becomePassword = source.value;
      // An untemplated inventory value was already reported where it is written.
      else if ((typeof value === 'string' && hasTemplate(value)) || fields)
        errors.push({
          ...where,
          message: `host \`${host.name}\`: ${(convertConnectionVar(name, value) as { message: string }).message}`,
        });
      continue;
    }
    const templated = typeof value === 'string' && hasTemplate(value);
    if (templated) {
      try {
        value = interpolateString(value as string, vars);
      } catch (e) {
        if (!(e instanceof TemplateError)) throw e;
        errors.push({ ...where, message: `host \`${host.name}\`: \`${name}\`: ${e.message}` });
        continue;
      }
    }
    const r = convertConnectionVar(name, value);
    if (!r.ok) {
      // An untemplated inventory value was already reported where it is written.
      if (templated || fields) errors.push({ ...where, message: `host \`${host.name}\`: ${r.message}` });
      continue;
    }
    const v = r.value;
    if (field === 'becomeUser') host.becomeUser = v as string;
    else if (field === 'address') host.address = v as string;
    else if (field === 'port') host.port = v as number;
    else if (field === 'user') host.user = v as string;
    else if (field === 'identityFile') host.identityFile = fromDir(dir, v as string);
    else if (field === 'connection') host.connection = v as 'ssh' | 'local';
    else if (field === 'become') host.become = v as boolean;
  }
  return errors;
}

/**
 * `-e` extra variables are Ansible's highest precedence, connection variables included: an
 * `-e ansible_user=deploy` logs in as deploy on every host, whatever the inventory says. Only
 * the fields `-e` names change; a relative key file is relative to the working directory, as every
 * `-e` path is. Returns the problems, located at `-e`.
 */
export function applyExtraConnectionVars(inv: Inventory, extraVars: Record<string, unknown>): Diagnostic[] {
  const fields = new Set(
    Object.keys(extraVars).flatMap((k) => {
      const f = connectionField(k);
      return f ? [f] : [];
    }),
  );
  if (!fields.size) return [];
  const where: Diagnostic = { file: '-e', line: 0, col: 0, message: '' };
  const errors: Diagnostic[] = [];
  for (const host of inv.hosts.values())
    errors.push(
      ...applyConnectionVars(host, { ...hostVariables(inv, host), ...extraVars }, where, process.cwd(), fields),
    );
  // The same bad value is one problem, not one per host.
  return errors.filter(
    (e, i) =>
      errors.findIndex((o) => o.message.replace(/^host `[^`]*`: /, '') === e.message.replace(/^host `[^`]*`: /, '')) ===
      i,
  );
}
