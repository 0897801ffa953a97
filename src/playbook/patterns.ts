/**
 * Host patterns, evaluated as Ansible's InventoryManager does (ansible-core 2.14,
 * lib/ansible/inventory/manager.py): terms separated by `,` (or `:` when the pattern is not one
 * address), names, groups, `all`/`*`, shell globs with `[chars]`, regexes `~web\d+`, subscripts
 * `web[0]`, `web[-1]`, `web[0:2]`, `web[1:]`; unions first, then `&` intersections, then `!`
 * exclusions. Hosts come out in the pattern's order (each term's hosts in group order), which
 * decides `serial` batches and the host `run_once` picks. A term matching nothing is ignored with a
 * warning, as in Ansible.
 */
import type { Inventory, InventoryHost } from './inventory.js';
import { LOCALHOST_NAMES, parseAddress, type ModelHost } from './inventory-model.js';

export interface PatternResult {
  hosts: string[];
  /** Terms that matched nothing (a typo is the usual cause): Ansible warns and ignores them. */
  unmatched: string[];
  /** A term Ansible refuses (a subscript past the end, an invalid regex). */
  error?: string;
}

const SUBSCRIPT = /^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$/s;

/** Split a pattern into terms, as Ansible's split_host_pattern. */
export function splitPattern(pattern: string): string[] {
  let parts: string[];
  if (pattern.includes(',')) parts = pattern.split(',');
  else if (parseAddress(pattern)) parts = [pattern];
  else parts = pattern.match(/(?:[^\s:[\]]|\[[^\]]*\])+/g) ?? [];
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

/** Python's fnmatch.translate: `*`, `?`, `[seq]`, `[!seq]`, anchored at both ends, case-sensitive. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      let j = i + 1;
      if (glob[j] === '!') j++;
      if (glob[j] === ']') j++;
      while (j < glob.length && glob[j] !== ']') j++;
      if (j >= glob.length) re += '\\[';
      else {
        let body = glob.slice(i + 1, j).replace(/\\/g, '\\\\');
        if (body[0] === '!') body = '^' + body.slice(1);
        else if (body[0] === '^') body = '\\' + body;
        re += `[${body}]`;
        i = j;
      }
    } else re += c.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^(?:${re})$`, 's');
}

class PatternError extends Error {}

function matcher(term: string): RegExp {
  if (term[0] !== '~') return globToRegExp(term);
  try {
    // Python's re.match: anchored at the start only.
    return new RegExp(`^(?:${term.slice(1)})`);
  } catch {
    throw new PatternError(`invalid regular expression in host pattern \`${term}\``);
  }
}

function enumerate(inv: Inventory, expr: string): ModelHost[] {
  const model = inv.model;
  const re = matcher(expr);
  const results: ModelHost[] = [];
  const groups = [...model.groups.keys()].filter((g) => re.test(g));
  for (const g of groups) results.push(...model.groups.get(g)!.allHosts());
  if (!groups.length || expr[0] === '~' || /[.?*[]/.test(expr))
    for (const [name, h] of model.hosts) if (re.test(name)) results.push(h);
  if (!results.length && LOCALHOST_NAMES.includes(expr)) {
    const h = model.getHost(expr);
    if (h) results.push(h);
  }
  return results;
}

function matchOne(inv: Inventory, raw: string, cache: Map<string, ModelHost[]>): ModelHost[] {
  const term = raw[0] === '&' || raw[0] === '!' ? raw.slice(1) : raw;
  const hit = cache.get(term);
  if (hit) return hit;
  let expr = term;
  let sub: [number, number | undefined] | undefined;
  const m = term[0] === '~' ? null : SUBSCRIPT.exec(term);
  if (m) {
    expr = m[1]!;
    if (m[2] !== undefined) sub = [Number(m[2]), undefined];
    else sub = [Number(m[3]), m[5] ? Number(m[5]) : -1];
  }
  let hosts = enumerate(inv, expr);
  if (hosts.length && sub) {
    const [start, end] = sub;
    if (end === undefined) {
      const i = start < 0 ? hosts.length + start : start;
      if (i < 0 || i >= hosts.length)
        throw new PatternError(
          `host pattern \`${term}\`: index ${start} is past the ${hosts.length} host${hosts.length === 1 ? '' : 's'} of \`${expr}\``,
        );
      hosts = [hosts[i]!];
    } else {
      const stop = end === -1 ? hosts.length - 1 : end;
      hosts = hosts.slice(start, stop + 1);
    }
  }
  cache.set(term, hosts);
  return hosts;
}

/** Make the implicit localhost Ansible creates when a pattern names it usable by the engine. */
function implicitHost(inv: Inventory, h: ModelHost): void {
  if (inv.hosts.has(h.name)) return;
  const host: InventoryHost = {
    name: h.name,
    address: '127.0.0.1',
    connection: 'local',
    hostVars: h.vars,
    groups: [],
  };
  inv.hosts.set(h.name, host);
}

export function matchHosts(inv: Inventory, pattern: string): PatternResult {
  const terms = splitPattern(pattern);
  const regular = terms.filter((t) => t[0] !== '&' && t[0] !== '!');
  const ordered = [
    ...(regular.length ? regular : ['all']),
    ...terms.filter((t) => t[0] === '&'),
    ...terms.filter((t) => t[0] === '!'),
  ];
  const unmatched: string[] = [];
  const cache = new Map<string, ModelHost[]>();
  let hosts: ModelHost[] = [];
  try {
    for (const p of ordered) {
      const plain = inv.model.hosts.get(p);
      if (plain) {
        hosts.push(plain);
        continue;
      }
      const that = matchOne(inv, p, cache);
      const term = p[0] === '&' || p[0] === '!' ? p.slice(1) : p;
      if (!that.length && term !== 'all') unmatched.push(term);
      if (p[0] === '!') {
        const s = new Set(that);
        hosts = hosts.filter((h) => !s.has(h));
      } else if (p[0] === '&') {
        const s = new Set(that);
        hosts = hosts.filter((h) => s.has(h));
      } else {
        const have = new Set(hosts.map((h) => h.name));
        hosts.push(...that.filter((h) => !have.has(h.name)));
      }
    }
  } catch (e) {
    if (!(e instanceof PatternError)) throw e;
    return { hosts: [], unmatched, error: e.message };
  }
  const out: string[] = [];
  const seen = new Set<string>();
  for (const h of hosts) {
    if (seen.has(h.name)) continue;
    seen.add(h.name);
    if (h.implicit) implicitHost(inv, h);
    out.push(h.name);
  }
  return { hosts: out, unmatched };
}
