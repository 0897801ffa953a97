/**
 * Host patterns, as in Ansible: names, groups, `all`/`*`, globs (`worker*`), union `a:b` (or
 * `a,b`), intersection `a:&b`, exclusion `a:!b`. Unions are taken first, then intersections, then
 * exclusions, whatever their order in the pattern. Result order follows the inventory.
 */
import type { Inventory } from './inventory.js';

export interface PatternResult {
  hosts: string[];
  /** Terms that matched nothing (a typo is the usual cause). */
  unmatched: string[];
}

function globToRegExp(glob: string): RegExp {
  const re = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

function termHosts(inv: Inventory, term: string): Set<string> {
  if (term === 'all' || term === '*') return new Set(inv.hosts.keys());
  const group = inv.groups.get(term);
  if (group) return new Set(group);
  if (inv.hosts.has(term)) return new Set([term]);
  if (/[*?]/.test(term)) {
    const re = globToRegExp(term);
    const out = new Set<string>();
    for (const h of inv.hosts.keys()) if (re.test(h)) out.add(h);
    for (const [g, members] of inv.groups) if (re.test(g)) for (const h of members) out.add(h);
    return out;
  }
  return new Set();
}

/** Split a pattern into terms; `:` inside `[ipv6]` or a `host:port`-free name is not expected here. */
export function splitPattern(pattern: string): string[] {
  return pattern
    .split(/[:,]/)
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
}

export function matchHosts(inv: Inventory, pattern: string): PatternResult {
  const unmatched: string[] = [];
  let union = new Set<string>();
  const intersections: Set<string>[] = [];
  const exclusions: Set<string>[] = [];
  let sawUnion = false;
  for (const raw of splitPattern(pattern)) {
    const op = raw[0] === '&' || raw[0] === '!' ? raw[0] : '';
    const term = op ? raw.slice(1) : raw;
    const hosts = termHosts(inv, term);
    if (hosts.size === 0) unmatched.push(term);
    if (op === '&') intersections.push(hosts);
    else if (op === '!') exclusions.push(hosts);
    else {
      sawUnion = true;
      for (const h of hosts) union.add(h);
    }
  }
  // A pattern of only `!x` means "all but x", as in Ansible.
  if (!sawUnion) union = new Set(inv.hosts.keys());
  for (const s of intersections) union = new Set([...union].filter((h) => s.has(h)));
  for (const s of exclusions) for (const h of s) union.delete(h);
  const order = [...inv.hosts.keys()];
  return { hosts: order.filter((h) => union.has(h)), unmatched };
}
