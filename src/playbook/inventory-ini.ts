/**
 * Ansible's INI inventory (the `ini` inventory plugin of ansible-core 2.14): `[group]`,
 * `[group:vars]`, `[group:children]`, `host key=value ...` lines split like a POSIX shell with
 * `#`/`;` comments, host ranges, values read as Python literals (`1` is a number, `'x'` a string,
 * `yes` stays the string "yes"). Refusals are located at their line.
 */
import { split as shlexSplit } from 'shlex';
import type { Diagnostic } from './diagnostics.js';
import { expandHostEntry, InventoryModelError } from './inventory-model.js';
import { parseState, type ParsedAnsible } from './inventory-yaml.js';
import { defined } from '../defined.js';

const SECTION = /^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$/;
const GROUP_NAME = /^([^:\]\s]+)\s*(?:#.*)?$/;

/** Where a `#` outside quotes starts a comment (Python's shlex with comments=True, posix mode). */
function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '\\') i++;
    else if (c === '"' || c === "'") quote = c;
    else if (c === '#') return line.slice(0, i);
  }
  return line;
}

class Literal {
  i = 0;
  constructor(private readonly s: string) {}
  private ws(): void {
    while (this.i < this.s.length) {
      const c = this.s[this.i]!;
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') this.i++;
      else if (c === '#') this.i = this.s.length;
      else break;
    }
  }
  private fail(): never {
    throw new SyntaxError('not a literal');
  }
  value(): unknown {
    this.ws();
    const c = this.s[this.i];
    if (c === undefined) this.fail();
    if (c === '[') return this.seq(']');
    if (c === '(') return this.seq(')');
    if (c === '{') return this.dict();
    if (
      c === '"' ||
      c === "'" ||
      ((c === 'u' || c === 'r' || c === 'U' || c === 'R') && /['"]/.test(this.s[this.i + 1] ?? ''))
    )
      return this.strings();
    const word = /^(?:True|False|None)\b/.exec(this.s.slice(this.i));
    if (word) {
      this.i += word[0].length;
      return word[0] === 'True' ? true : word[0] === 'False' ? false : null;
    }
    return this.number();
  }
  private number(): number {
    const m =
      /^[-+]?\s*(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:(?:[0-9](?:_?[0-9])*)?\.[0-9](?:_?[0-9])*|[0-9](?:_?[0-9])*\.?)(?:[eE][-+]?[0-9](?:_?[0-9])*)?)(?![\w.])/.exec(
        this.s.slice(this.i),
      );
    if (!m) this.fail();
    this.i += m[0].length;
    let t = m[0].replace(/[\s_]/g, '');
    let sign = 1;
    if (t[0] === '-' || t[0] === '+') {
      sign = t[0] === '-' ? -1 : 1;
      t = t.slice(1);
    }
    // Python refuses leading zeros on decimal integers (`010` is a syntax error, kept as text).
    if (/^0[0-9]+$/.test(t) && !/^0+$/.test(t)) this.fail();
    if (/^0[xX]/.test(t)) return sign * parseInt(t.slice(2), 16);
    if (/^0[oO]/.test(t)) return sign * parseInt(t.slice(2), 8);
    if (/^0[bB]/.test(t)) return sign * parseInt(t.slice(2), 2);
    return sign * Number(t);
  }
  private strings(): string {
    let out = '';
    let any = false;
    for (;;) {
      this.ws();
      let c = this.s[this.i];
      let raw = false;
      if ((c === 'r' || c === 'R' || c === 'u' || c === 'U') && /['"]/.test(this.s[this.i + 1] ?? '')) {
        raw = c === 'r' || c === 'R';
        this.i++;
        c = this.s[this.i];
      }
      if (c !== '"' && c !== "'") break;
      any = true;
      const triple = this.s.startsWith(c.repeat(3), this.i);
      const q = triple ? c.repeat(3) : c;
      this.i += q.length;
      for (;;) {
        if (this.i >= this.s.length) this.fail();
        if (this.s.startsWith(q, this.i)) {
          this.i += q.length;
          break;
        }
        const ch = this.s[this.i]!;
        if (ch === '\\' && !raw) {
          const n = this.s[this.i + 1] ?? '';
          const esc: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
          out += esc[n] ?? '\\' + n;
          this.i += 2;
        } else {
          out += ch;
          this.i++;
        }
      }
    }
    if (!any) this.fail();
    return out;
  }
  private seq(close: string): unknown[] {
    this.i++;
    const out: unknown[] = [];
    for (;;) {
      this.ws();
      if (this.s[this.i] === close) {
        this.i++;
        return out;
      }
      out.push(this.value());
      this.ws();
      if (this.s[this.i] === ',') this.i++;
      else if (this.s[this.i] !== close) this.fail();
    }
  }
  private dict(): Record<string, unknown> {
    this.i++;
    const out: Record<string, unknown> = {};
    for (;;) {
      this.ws();
      if (this.s[this.i] === '}') {
        this.i++;
        return out;
      }
      const k = this.value();
      this.ws();
      if (this.s[this.i] !== ':') this.fail();
      this.i++;
      out[String(k)] = this.value();
      this.ws();
      if (this.s[this.i] === ',') this.i++;
      else if (this.s[this.i] !== '}') this.fail();
    }
  }
  end(): void {
    this.ws();
    if (this.i < this.s.length) this.fail();
  }
}

/** An INI value as Ansible reads it: a Python literal when it is one, else the text itself. */
export function iniValue(v: string): unknown {
  try {
    const p = new Literal(v.replace(/^[ \t]+/, ''));
    const out = p.value();
    p.end();
    return out;
  } catch {
    return v;
  }
}

export function parseAnsibleIni(file: string, text: string): ParsedAnsible {
  // groupWhere: a group's section, or the [parent:children] line that first names it.
  const { model, errors, warnings, definitions, hostWhere, groupWhere } = parseState();
  const lines = text.split(/\r?\n/);
  const where = (lineno: number, col = 1): Diagnostic => ({
    file,
    line: lineno,
    col,
    message: '',
    ...defined({ source: lines[lineno - 1] }),
  });
  const fail = (lineno: number, message: string): ParsedAnsible => ({
    errors: [{ ...where(lineno), message }],
    warnings,
    definitions,
    hostWhere,
  });
  type Pending = { line: number; state: string; name: string; parents: string[] };
  const pending = new Map<string, Pending>();
  let group = 'ungrouped';
  let state = 'hosts';
  const addPendingChildren = (g: string): void => {
    const p = pending.get(g)!;
    for (const parent of p.parents) {
      model.addChild(parent, g);
      if (pending.get(parent)?.state === 'children') addPendingChildren(parent);
    }
    pending.delete(g);
  };
  for (let n = 1; n <= lines.length; n++) {
    const line = lines[n - 1]!.trim();
    if (!line || line[0] === '#' || line[0] === ';') continue;
    try {
      const m = SECTION.exec(line);
      if (m) {
        group = m[1]!;
        state = m[2] ?? 'hosts';
        if (!groupWhere.has(group)) groupWhere.set(group, where(n, lines[n - 1]!.indexOf('[') + 2));
        if (!['hosts', 'children', 'vars'].includes(state))
          return fail(
            n,
            `section [${group}:${state}] has an unknown type: use [${group}], [${group}:vars] or [${group}:children]`,
          );
        if (!model.groups.has(group)) {
          if (state === 'vars' && !pending.has(group)) pending.set(group, { line: n, state, name: group, parents: [] });
          model.addGroup(group);
        }
        const p = pending.get(group);
        if (p && state !== 'vars') {
          if (p.state === 'children') addPendingChildren(group);
          else if (p.state === 'vars') pending.delete(group);
        }
        continue;
      }
      if (line.startsWith('[') && line.endsWith(']'))
        return fail(
          n,
          `invalid section \`${line}\`: a section is [group], [group:vars] or [group:children], with no spaces or other characters`,
        );
      if (state === 'hosts') {
        let tokens: string[];
        try {
          tokens = shlexSplit(stripComment(line));
        } catch (e) {
          return fail(n, `cannot split host line \`${line}\`: ${(e as Error).message}`);
        }
        if (tokens.length === 0) continue;
        const pattern = tokens[0]!;
        const entry = expandHostEntry(pattern);
        if (pattern.trim().endsWith(':') && entry.port === undefined)
          return fail(n, `host \`${pattern}\` ends in \`:\`, which is reserved for a port: remove it or add the port`);
        if (entry.names.some((h) => h.trim() === '---'))
          return fail(n, 'host `---` looks like the start of a YAML document: name the file .yaml');
        const vars: Array<[string, unknown]> = [];
        for (const t of tokens.slice(1)) {
          const eq = t.indexOf('=');
          if (eq < 0) return fail(n, `expected key=value after the host name, got \`${t}\``);
          vars.push([t.slice(0, eq), iniValue(t.slice(eq + 1))]);
        }
        for (const h of entry.names) {
          model.addHost(h, group, entry.port);
          if (!hostWhere.has(h)) hostWhere.set(h, where(n));
          for (const [k, v] of vars) {
            model.setVariable(h, k, v);
            definitions.push({ owner: `host ${h}`, key: k, value: v, where: where(n, lines[n - 1]!.indexOf(k) + 1) });
          }
        }
      } else if (state === 'vars') {
        const eq = line.indexOf('=');
        if (eq < 0) return fail(n, `expected key=value in [${group}:vars], got \`${line}\``);
        const k = line.slice(0, eq).trim();
        const v = iniValue(line.slice(eq + 1).trim());
        model.setVariable(group, k, v);
        definitions.push({ owner: `group ${group}`, key: k, value: v, where: where(n, lines[n - 1]!.indexOf(k) + 1) });
      } else {
        const cm = GROUP_NAME.exec(line);
        if (!cm) return fail(n, `expected a group name in [${group}:children], got \`${line}\``);
        const child = cm[1]!;
        if (!groupWhere.has(child)) groupWhere.set(child, where(n, lines[n - 1]!.indexOf(child) + 1));
        if (!model.groups.has(child)) {
          const p = pending.get(child);
          if (!p) pending.set(child, { line: n, state, name: child, parents: [group] });
          else p.parents.push(group);
        } else model.addChild(group, child);
      }
    } catch (e) {
      if (e instanceof InventoryModelError) return fail(n, e.message);
      throw e;
    }
  }
  for (const p of pending.values()) {
    if (p.state === 'vars')
      return fail(p.line, `section [${p.name}:vars] is for a group that is never defined: add a [${p.name}] section`);
    return fail(
      p.line,
      `[${p.parents[p.parents.length - 1]}:children] names group \`${p.name}\`, which is never defined: add a [${p.name}] section`,
    );
  }
  try {
    model.reconcile();
  } catch (e) {
    if (e instanceof InventoryModelError) return fail(1, e.message);
    throw e;
  }
  for (const w of model.warnings) {
    const loc = (w.host !== undefined ? hostWhere.get(w.host) : groupWhere.get(w.group!)) ?? where(1);
    warnings.push({ ...loc, message: w.message, severity: 'warning' });
  }
  return { model, errors, warnings, definitions, hostWhere };
}
