/**
 * Ansible's inventory data model, rebuilt so trustplay resolves an inventory exactly as
 * `ansible-inventory` does (ansible-core 2.14, lib/ansible/inventory/{data,group,host}.py):
 * groups keep their hosts and children in the order they were added, a group's depth is the
 * longest path from `all`, variables merge by (depth, priority, name) in code-point order, hosts in
 * no group land in `ungrouped`, and `localhost` exists implicitly (outside `all`) when a pattern
 * names it. Both file formats (YAML and INI) and trustplay's own format feed this model.
 */

/** A problem Ansible refuses; the parser that called the model adds the location. */
export class InventoryModelError extends Error {}

export class ModelGroup {
  readonly hosts: ModelHost[] = [];
  readonly children: ModelGroup[] = [];
  readonly parents: ModelGroup[] = [];
  depth = 0;
  priority = 1;
  vars: Record<string, unknown> = {};
  constructor(readonly name: string) {}

  ancestors(): Set<ModelGroup> {
    const seen = new Set<ModelGroup>();
    const stack = [...this.parents];
    while (stack.length) {
      const g = stack.pop()!;
      if (seen.has(g)) continue;
      seen.add(g);
      stack.push(...g.parents);
    }
    return seen;
  }

  /**
   * Hosts of this group and its descendants: own hosts, then each child's, breadth first (Ansible
   * walks a level as a set, so the order among grandchildren of different children is not
   * defined there; here it is the order the children were added).
   */
  allHosts(): ModelHost[] {
    const ordered: ModelGroup[] = [this, ...this.children];
    const seen = new Set<ModelGroup>(ordered);
    let level = [...this.children];
    while (level.length) {
      const next: ModelGroup[] = [];
      for (const g of level)
        for (const c of g.children)
          if (!seen.has(c)) {
            seen.add(c);
            ordered.push(c);
            next.push(c);
          }
      level = next;
    }
    const out: ModelHost[] = [];
    const have = new Set<ModelHost>();
    for (const g of ordered)
      for (const h of g.hosts)
        if (!have.has(h)) {
          have.add(h);
          if (this.name === 'all' && h.implicit) continue;
          out.push(h);
        }
    return out;
  }

  /** Every host of this group and its descendants, in no particular order. */
  allHostsRaw(): ModelHost[] {
    const out = new Set<ModelHost>(this.hosts);
    const stack = [...this.children];
    const seen = new Set<ModelGroup>();
    while (stack.length) {
      const g = stack.pop()!;
      if (seen.has(g)) continue;
      seen.add(g);
      for (const h of g.hosts) out.add(h);
      stack.push(...g.children);
    }
    return [...out];
  }

  setVariable(key: string, value: unknown): void {
    if (key === 'ansible_group_priority') {
      const n = typeof value === 'number' ? value : Number(String(value).trim());
      if (!Number.isInteger(n))
        throw new InventoryModelError(`ansible_group_priority of group \`${this.name}\` must be a whole number`);
      this.priority = n;
      return;
    }
    this.vars[key] = value;
  }
}

export class ModelHost {
  vars: Record<string, unknown> = {};
  /** Every group the host is in, ancestors included. */
  readonly groups: ModelGroup[] = [];
  implicit = false;
  constructor(readonly name: string) {}
}

/** Names Ansible treats as this machine (C.LOCALHOST). */
export const LOCALHOST_NAMES = ['127.0.0.1', 'localhost', '::1'];

/** Group names Ansible warns about (C.INVALID_VARIABLE_NAMES): not usable as variable names. */
const INVALID_GROUP_NAME = /^[\d\W]|[^\w]/u;

/** A warning of Ansible's, about the group or host it names (the parser locates it there). */
export interface ModelWarning {
  message: string;
  group?: string;
  host?: string;
}

export class InventoryModel {
  readonly groups = new Map<string, ModelGroup>();
  readonly hosts = new Map<string, ModelHost>();
  /** Ansible's warnings, in the order it gives them. */
  readonly warnings: ModelWarning[] = [];
  private localhost: ModelHost | undefined;

  constructor() {
    this.addGroup('all');
    this.addGroup('ungrouped');
    this.addChild('all', 'ungrouped');
  }

  addGroup(name: unknown): string {
    if (typeof name !== 'string')
      throw new InventoryModelError(`group name \`${String(name)}\` must be a string: quote it`);
    if (!name) throw new InventoryModelError('a group name cannot be empty');
    if (!this.groups.has(name)) {
      if (INVALID_GROUP_NAME.test(name))
        this.warnings.push({
          group: name,
          message: `group name \`${name}\` has characters Ansible does not allow in variable names (letters, digits and _ only, not starting with a digit); it is kept as written`,
        });
      this.groups.set(name, new ModelGroup(name));
    }
    return name;
  }

  addHost(name: unknown, group?: string, port?: number): ModelHost {
    if (typeof name !== 'string' || name === '')
      throw new InventoryModelError(
        typeof name === 'string' ? 'a host name cannot be empty' : `host name \`${String(name)}\` must be a string`,
      );
    let h = this.hosts.get(name);
    if (!h) {
      h = new ModelHost(name);
      if (port !== undefined) h.vars['ansible_port'] = port;
      this.hosts.set(name, h);
      if (LOCALHOST_NAMES.includes(name)) {
        if (!this.localhost) this.localhost = h;
        else
          this.warnings.push({
            host: name,
            message: `a duplicate localhost-like entry was found (${name}); the first one found was ${this.localhost.name}`,
          });
      }
    } else if (port !== undefined) h.vars['ansible_port'] = port;
    if (group !== undefined) {
      const g = this.groups.get(group);
      if (!g) throw new InventoryModelError(`could not find group ${group} in the inventory`);
      this.addHostToGroup(g, h);
    }
    return h;
  }

  private addHostToGroup(g: ModelGroup, h: ModelHost): void {
    if (g.hosts.includes(h)) return;
    g.hosts.push(h);
    for (const a of g.ancestors()) if (!h.groups.includes(a)) h.groups.push(a);
    if (!h.groups.includes(g)) h.groups.push(g);
  }

  private removeHostFromGroup(g: ModelGroup, h: ModelHost): void {
    const i = g.hosts.indexOf(h);
    if (i >= 0) g.hosts.splice(i, 1);
    const j = h.groups.indexOf(g);
    if (j >= 0) h.groups.splice(j, 1);
  }

  setVariable(entity: string, key: string, value: unknown): void {
    const g = this.groups.get(entity);
    if (g) return g.setVariable(key, value);
    const h = this.hosts.get(entity);
    if (!h) throw new InventoryModelError(`no group or host named ${entity}`);
    h.vars[key] = value;
  }

  /** Add a host or a group to a group (a name that is both is taken as the group, as in Ansible). */
  addChild(group: string, child: string): void {
    const g = this.groups.get(group);
    if (!g) throw new InventoryModelError(`${group} is not a known group`);
    const cg = this.groups.get(child);
    if (cg) return this.addChildGroup(g, cg);
    const h = this.hosts.get(child);
    if (!h) throw new InventoryModelError(`${child} is not a known host nor group`);
    this.addHostToGroup(g, h);
  }

  private addChildGroup(g: ModelGroup, child: ModelGroup): void {
    if (g === child) throw new InventoryModelError(`group \`${g.name}\` cannot be a child of itself`);
    if (g.children.includes(child)) return;
    const mine = g.ancestors();
    if (mine.has(child))
      throw new InventoryModelError(
        `adding group \`${child.name}\` as a child of \`${g.name}\` makes a loop (\`${child.name}\` is already an ancestor of \`${g.name}\`)`,
      );
    g.children.push(child);
    child.depth = Math.max(g.depth + 1, child.depth);
    this.deepen(child);
    if (!child.parents.includes(g)) {
      child.parents.push(g);
      const added = [g, ...mine];
      for (const h of child.allHostsRaw()) for (const a of added) if (!h.groups.includes(a)) h.groups.push(a);
    }
  }

  /** A group's descendants sit at least one level below it. */
  private deepen(g: ModelGroup): void {
    const stack = [g];
    while (stack.length) {
      const p = stack.pop()!;
      for (const c of p.children)
        if (c.depth < p.depth + 1) {
          c.depth = p.depth + 1;
          stack.push(c);
        }
    }
  }

  /** After parsing, as Ansible's reconcile_inventory: root groups under `all`, lone hosts in `ungrouped`. */
  reconcile(): void {
    const all = this.groups.get('all')!;
    const ungrouped = this.groups.get('ungrouped')!;
    for (const g of this.groups.values()) if (g !== all && g.parents.length === 0) this.addChildGroup(all, g);
    for (const h of this.hosts.values()) {
      if (h.groups.includes(ungrouped)) {
        if (h.groups.some((g) => g !== all && g !== ungrouped)) this.removeHostFromGroup(ungrouped, h);
      } else if (!h.implicit && h.groups.every((g) => g === all)) this.addHostToGroup(ungrouped, h);
    }
    for (const name of this.groups.keys())
      if (this.hosts.has(name))
        this.warnings.push({ group: name, message: `found both a group and a host named \`${name}\`` });
  }

  /** The host of that name, or the implicit localhost Ansible creates when a pattern names it. */
  getHost(name: string): ModelHost | undefined {
    const h = this.hosts.get(name);
    if (h) return h;
    if (!LOCALHOST_NAMES.includes(name)) return undefined;
    if (!this.localhost) {
      const lh = new ModelHost(name);
      lh.implicit = true;
      lh.vars = { ...this.groups.get('all')!.vars, ansible_connection: 'local' };
      this.localhost = lh;
    }
    return this.localhost;
  }

  /** Groups sorted as Ansible merges their variables: depth, then priority, then name (code points). */
  static sortGroups(groups: readonly ModelGroup[]): ModelGroup[] {
    return [...groups].sort(
      (a, b) => a.depth - b.depth || a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    );
  }

  /** A host's variables as `ansible-inventory --list` shows them: groups merged, then its own. */
  hostVars(h: ModelHost): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    if (!h.implicit) for (const g of InventoryModel.sortGroups(h.groups)) Object.assign(out, g.vars);
    Object.assign(out, h.vars);
    return out;
  }
}

// --- host patterns in inventory files (lib/ansible/parsing/utils/addresses.py, plugins/inventory) ---

const NUMERIC_RANGE = String.raw`\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const HEX_RANGE = String.raw`\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]`;
const ALNUM_RANGE = String.raw`\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const V6 = `(?:[0-9a-f]{1,4}|${HEX_RANGE})`;
const V4 = `(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|${NUMERIC_RANGE})`;
const LABEL = String.raw`(?:[\p{L}\p{N}_]|${ALNUM_RANGE})(?:[\p{L}\p{N}_-]|${ALNUM_RANGE})*(?<![_-])`;
const BRACKETED_HOSTPORT = /^\[(.+)\]:([0-9]+)$/s;
const HOSTPORT = /^((?:[^:[\]]|\[[^\]]*\])*):([0-9]+)$/s;
const IPV4 = new RegExp(`^(?:${V4}\\.){3}${V4}$`, 'i');
const IPV6 = new RegExp(
  '^(?:' +
    [
      `(?:${V6}:){7}${V6}`,
      `(?:${V6}:){1,6}:`,
      `(?:${V6}:)(?::${V6}){1,6}`,
      `(?:${V6}:){2}(?::${V6}){1,5}`,
      `(?:${V6}:){3}(?::${V6}){1,4}`,
      `(?:${V6}:){4}(?::${V6}){1,3}`,
      `(?:${V6}:){5}(?::${V6}){1,2}`,
      `(?:${V6}:){6}(?::${V6})`,
      `:(?::${V6}){1,6}`,
      `${V6}?::`,
      `(?:0:){6}(?:${V6}\\.){3}${V6}`,
      `::(?:ffff:)?(?:${V6}\\.){3}${V6}`,
      `(?:0:){5}ffff:(?:${V6}\\.){3}${V6}`,
    ].join('|') +
    ')$',
  'i',
);
const HOSTNAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, 'iu');

/** Split `host:port` / `[v6]:port` as Ansible's parse_address does; undefined when not an address. */
export function parseAddress(address: string): { host: string; port?: number } | undefined {
  let host = address;
  let port: number | undefined;
  // Both forms are tried in turn, as Ansible does (`[h]:1` then the hostport form on the rest).
  for (const re of [BRACKETED_HOSTPORT, HOSTPORT]) {
    const m = re.exec(host);
    if (m) {
      host = m[1]!;
      port = Number(m[2]);
    }
  }
  if (IPV4.test(host) || IPV6.test(host) || HOSTNAME.test(host)) return port === undefined ? { host } : { host, port };
  return undefined;
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Expand `www[01:50]`, `db-[a:f]`, `x[1:9:2]` (several ranges multiply), as Ansible does. */
export function expandHostRange(line: string): string[] {
  const open = line.indexOf('[');
  if (open < 0) return [line];
  const close = line.indexOf(']', open);
  if (close < 0) throw new InventoryModelError(`host range in \`${line}\` has no closing \`]\``);
  const head = line.slice(0, open);
  const range = line.slice(open + 1, close);
  const tail = line.slice(close + 1);
  if (tail.includes(']') && !tail.includes('['))
    throw new InventoryModelError(`host range in \`${line}\` has an unmatched \`]\``);
  const bounds = range.split(':');
  if (bounds.length !== 2 && bounds.length !== 3)
    throw new InventoryModelError(`host range \`[${range}]\` must be begin:end or begin:end:step`);
  const beg = bounds[0] || '0';
  const end = bounds[1]!;
  const step = bounds.length === 3 ? bounds[2]! : '1';
  if (!end) throw new InventoryModelError(`host range \`[${range}]\` must give an end value`);
  if (!/^[0-9]+$/.test(step) || Number(step) === 0)
    throw new InventoryModelError(`host range \`[${range}]\` needs a positive whole step`);
  let width = 0;
  if (beg[0] === '0' && beg.length > 1) {
    if (beg.length !== end.length)
      throw new InventoryModelError(`host range \`[${range}]\` must give begin and end with the same number of digits`);
    width = beg.length;
  }
  const fill = (x: string | number) => String(x).padStart(width, '0');
  let seq: string[];
  const ib = beg.length === 1 ? LETTERS.indexOf(beg) : -1;
  const ie = end.length === 1 ? LETTERS.indexOf(end) : -1;
  if (ib >= 0 && ie >= 0) {
    if (ib > ie) throw new InventoryModelError(`host range \`[${range}]\` must have begin <= end`);
    seq = [];
    for (let i = ib; i <= ie; i += Number(step)) seq.push(LETTERS[i]!);
  } else {
    if (!/^[0-9]+$/.test(beg) || !/^[0-9]+$/.test(end))
      throw new InventoryModelError(`host range \`[${range}]\` must be numbers or single letters`);
    seq = [];
    const count = Math.floor((Number(end) - Number(beg)) / Number(step)) + 1;
    if (count > 100_000)
      throw new InventoryModelError(`host range \`[${range}]\` expands to ${count} hosts: at most 100,000 are allowed`);
    for (let i = Number(beg); i <= Number(end); i += Number(step)) seq.push(String(i));
  }
  const out: string[] = [];
  for (const s of seq) out.push(...expandHostRange(head + fill(s) + tail));
  return out;
}

/** A host entry of an inventory file: names (ranges expanded) and the port it carries, if any. */
export function expandHostEntry(pattern: string): { names: string[]; port?: number } {
  const addr = parseAddress(pattern);
  const base = addr ? addr.host : pattern;
  const names = base.includes('[') ? expandHostRange(base) : [base];
  return addr?.port !== undefined ? { names, port: addr.port } : { names };
}
