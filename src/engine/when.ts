/**
 * `when:` conditions: a small expression language over variables and facts, never code.
 * Grammar: or-expr := and-expr ('or' and-expr)*; and-expr := not-expr ('and' not-expr)*;
 * not-expr := 'not' not-expr | cmp; cmp := value (('=='|'!='|'in'|'not in') value | 'is' ['not'] 'defined')?;
 * value := '(' or-expr ')' | string | number | true | false | dotted.name | [list].
 */
import { isDefined, lookup } from '../playbook/interpolate.js';

type Token = { t: 'op' | 'str' | 'num' | 'name' | 'punct'; v: string };

const TOKEN =
  /\s*(?:(==|!=|\(|\)|\[|\]|,)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(-?\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_.-]*))/y;

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  TOKEN.lastIndex = 0;
  let pos = 0;
  while (pos < src.length) {
    if (/^\s*$/.test(src.slice(pos))) break;
    TOKEN.lastIndex = pos;
    const m = TOKEN.exec(src);
    if (!m) throw new Error(`cannot read \`when: ${src}\` at "${src.slice(pos).trim()}"`);
    pos = TOKEN.lastIndex;
    if (m[1]) out.push({ t: m[1] === '==' || m[1] === '!=' ? 'op' : 'punct', v: m[1] });
    else if (m[2]) out.push({ t: 'str', v: m[2].slice(1, -1).replace(/\\(.)/g, '$1') });
    else if (m[3]) out.push({ t: 'num', v: m[3] });
    else if (m[4]) out.push({ t: 'name', v: m[4] });
  }
  return out;
}

const UNDEFINED = Symbol('undefined');

/** Evaluate one condition; throws with a one-sentence message on a syntax error or an undefined variable. */
export function evaluateWhen(expr: string | boolean, vars: Record<string, unknown>): boolean {
  if (typeof expr === 'boolean') return expr;
  const toks = tokenize(expr);
  let i = 0;
  const peek = () => toks[i];
  const isWord = (w: string) => peek()?.t === 'name' && peek()!.v === w;
  const expect = (v: string) => {
    if (peek()?.v !== v) throw new Error(`\`when: ${expr}\`: expected \`${v}\``);
    i++;
  };
  const orExpr = (): unknown => {
    let l = andExpr();
    while (isWord('or')) {
      i++;
      const r = andExpr();
      l = truthy(l) || truthy(r);
    }
    return l;
  };
  const andExpr = (): unknown => {
    let l = notExpr();
    while (isWord('and')) {
      i++;
      const r = notExpr();
      l = truthy(l) && truthy(r);
    }
    return l;
  };
  const notExpr = (): unknown => {
    if (isWord('not')) {
      i++;
      return !truthy(notExpr());
    }
    return cmp();
  };
  const cmp = (): unknown => {
    const startName = peek()?.t === 'name' ? peek()!.v : undefined;
    const l = value(true);
    if (isWord('is')) {
      i++;
      const neg = isWord('not') ? (i++, true) : false;
      if (!isWord('defined') && !isWord('undefined'))
        throw new Error(`\`when: ${expr}\`: only \`is defined\` / \`is not defined\` are supported`);
      const undef = peek()!.v === 'undefined';
      i++;
      const defined = startName !== undefined && isDefined(vars, startName);
      return (undef ? !defined : defined) !== neg;
    }
    const op = peek();
    if (op?.t === 'op') {
      i++;
      const r = value(false);
      return op.v === '==' ? equal(l, r, expr) : !equal(l, r, expr);
    }
    if (isWord('in') || (isWord('not') && toks[i + 1]?.v === 'in')) {
      const neg = isWord('not');
      i += neg ? 2 : 1;
      const r = value(false);
      const inside = Array.isArray(r)
        ? r.some((x) => x === l)
        : typeof r === 'string'
          ? typeof l === 'string' && r.includes(l)
          : false;
      return inside !== neg;
    }
    return deref(l, expr);
  };
  const value = (allowUndefined: boolean): unknown => {
    const tk = peek();
    if (!tk) throw new Error(`\`when: ${expr}\`: unexpected end`);
    i++;
    if (tk.v === '(' && tk.t === 'punct') {
      const v = orExpr();
      expect(')');
      return v;
    }
    if (tk.v === '[' && tk.t === 'punct') {
      const items: unknown[] = [];
      while (peek()?.v !== ']') {
        items.push(deref(value(false), expr));
        if (peek()?.v === ',') i++;
        else break;
      }
      expect(']');
      return items;
    }
    if (tk.t === 'str') return tk.v;
    if (tk.t === 'num') return Number(tk.v);
    if (tk.t === 'name') {
      if (tk.v === 'true' || tk.v === 'True') return true;
      if (tk.v === 'false' || tk.v === 'False') return false;
      if (tk.v === 'none' || tk.v === 'None' || tk.v === 'null') return null;
      const v = lookup(vars, tk.v);
      if (!isDefined(vars, tk.v)) return allowUndefined ? { [UNDEFINED]: tk.v } : deref({ [UNDEFINED]: tk.v }, expr);
      return v;
    }
    throw new Error(`\`when: ${expr}\`: unexpected \`${tk.v}\``);
  };
  const result = orExpr();
  if (i < toks.length) throw new Error(`\`when: ${expr}\`: unexpected \`${toks[i]!.v}\``);
  return truthy(deref(result, expr));
}

function deref(v: unknown, expr: string): unknown {
  if (v && typeof v === 'object' && UNDEFINED in v) {
    throw new Error(
      `\`when: ${expr}\`: undefined variable \`${(v as Record<symbol, string>)[UNDEFINED]}\` (use \`is defined\` to test for it)`,
    );
  }
  return v;
}

function equal(a: unknown, b: unknown, expr: string): boolean {
  a = deref(a, expr);
  b = deref(b, expr);
  return JSON.stringify(a) === JSON.stringify(b);
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}
