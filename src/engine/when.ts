/**
 * `when:` conditions: a small expression language over variables and facts, never code.
 * Grammar: or-expr := and-expr ('or' and-expr)*; and-expr := not-expr ('and' not-expr)*;
 * not-expr := 'not' not-expr | cmp; cmp := value (('=='|'!='|'in'|'not in') value | 'is' ['not'] 'defined')?;
 * value := '(' or-expr ')' | string | number | true | false | dotted.name | [list].
 *
 * A condition is parsed once, at load time (so `validate` reports a malformed one, located, before
 * anything runs), and evaluated per host.
 */
import { didYouMean } from '../playbook/diagnostics.js';
import { isDefined, lookup } from '../playbook/interpolate.js';

type Token = { t: 'op' | 'str' | 'num' | 'name' | 'punct'; v: string; offset: number };

/** A parsed condition. */
export type WhenExpr =
  | { k: 'or' | 'and'; l: WhenExpr; r: WhenExpr }
  | { k: 'not'; e: WhenExpr }
  | { k: 'defined'; e: WhenExpr; undef: boolean; neg: boolean }
  | { k: 'eq'; l: WhenExpr; r: WhenExpr; neg: boolean }
  | { k: 'in'; l: WhenExpr; r: WhenExpr; neg: boolean }
  | { k: 'lit'; v: unknown }
  | { k: 'var'; name: string; offset: number }
  | { k: 'list'; items: WhenExpr[] };

/** A condition that cannot be read: one sentence, and where in the expression the problem starts. */
export class WhenSyntaxError extends Error {
  constructor(
    message: string,
    /** Offset of the problem inside the expression text. */
    readonly offset: number,
  ) {
    super(message);
    this.name = 'WhenSyntaxError';
  }
}

const TOKEN =
  /\s*(?:(==|!=|\(|\)|\[|\]|,)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(-?\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_.-]*))/y;

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let pos = 0;
  while (pos < src.length) {
    if (/^\s*$/.test(src.slice(pos))) break;
    TOKEN.lastIndex = pos;
    const m = TOKEN.exec(src);
    if (!m) {
      const at = pos + (/^\s*/.exec(src.slice(pos))?.[0].length ?? 0);
      const rest = src.slice(at);
      const hint = /^=(?!=)/.test(rest)
        ? 'a single `=` is not a comparison: write `==`'
        : /^(<=|>=|<|>)/.test(rest)
          ? `\`${/^[<>]=?/.exec(rest)![0]}\` is not supported: only \`==\`, \`!=\`, \`in\`, \`not in\` and \`is defined\` compare`
          : /^\|/.test(rest)
            ? 'filters are not supported in conditions'
            : undefined;
      throw new WhenSyntaxError(
        hint ? `\`when: ${src}\`: ${hint}` : `cannot read \`when: ${src}\` at "${rest.trim()}"`,
        at,
      );
    }
    const start = pos + (/^\s*/.exec(src.slice(pos))?.[0].length ?? 0);
    pos = TOKEN.lastIndex;
    if (m[1]) out.push({ t: m[1] === '==' || m[1] === '!=' ? 'op' : 'punct', v: m[1], offset: start });
    else if (m[2]) out.push({ t: 'str', v: m[2].slice(1, -1).replace(/\\(.)/g, '$1'), offset: start });
    else if (m[3]) out.push({ t: 'num', v: m[3], offset: start });
    else if (m[4]) out.push({ t: 'name', v: m[4], offset: start });
  }
  return out;
}

const TESTS = ['defined', 'undefined'];

/** Parse a condition; throws WhenSyntaxError with a one-sentence message. */
export function parseWhen(expr: string): WhenExpr {
  const toks = tokenize(expr);
  let i = 0;
  const peek = () => toks[i];
  const isWord = (w: string) => peek()?.t === 'name' && peek()!.v === w;
  const fail = (why: string, tok = peek()): never => {
    throw new WhenSyntaxError(`\`when: ${expr}\`: ${why}`, tok?.offset ?? expr.trimEnd().length);
  };
  const expect = (v: string) => {
    if (peek()?.v !== v) fail(peek() ? `expected \`${v}\`, found \`${peek()!.v}\`` : `expected \`${v}\` at the end`);
    i++;
  };
  const orExpr = (): WhenExpr => {
    let l = andExpr();
    while (isWord('or')) {
      i++;
      l = { k: 'or', l, r: andExpr() };
    }
    return l;
  };
  const andExpr = (): WhenExpr => {
    let l = notExpr();
    while (isWord('and')) {
      i++;
      l = { k: 'and', l, r: notExpr() };
    }
    return l;
  };
  const notExpr = (): WhenExpr => {
    if (isWord('not')) {
      i++;
      return { k: 'not', e: notExpr() };
    }
    return cmp();
  };
  const cmp = (): WhenExpr => {
    const l = value();
    if (isWord('is')) {
      i++;
      const neg = isWord('not') ? (i++, true) : false;
      const test = peek();
      if (test?.t !== 'name' || !TESTS.includes(test.v)) {
        const near = test?.t === 'name' ? didYouMean(test.v, TESTS) : undefined;
        fail(
          `only \`is defined\` / \`is not defined\` are supported${test ? `, not \`is ${neg ? 'not ' : ''}${test.v}\`` : ''}${near ? ` (did you mean \`${near}\`?)` : ''}`,
          test,
        );
      }
      i++;
      return { k: 'defined', e: l, undef: test!.v === 'undefined', neg };
    }
    const op = peek();
    if (op?.t === 'op') {
      i++;
      return { k: 'eq', l, r: value(), neg: op.v === '!=' };
    }
    if (isWord('in') || (isWord('not') && toks[i + 1]?.v === 'in')) {
      const neg = isWord('not');
      i += neg ? 2 : 1;
      return { k: 'in', l, r: value(), neg };
    }
    return l;
  };
  const value = (): WhenExpr => {
    const tk = peek();
    if (!tk) return fail('unexpected end: a comparison or operator is missing its right-hand side');
    i++;
    if (tk.t === 'punct' && tk.v === '(') {
      const v = orExpr();
      expect(')');
      return v;
    }
    if (tk.t === 'punct' && tk.v === '[') {
      const items: WhenExpr[] = [];
      while (peek()?.v !== ']') {
        items.push(value());
        if (peek()?.v === ',') i++;
        else break;
      }
      expect(']');
      return { k: 'list', items };
    }
    if (tk.t === 'str') return { k: 'lit', v: tk.v };
    if (tk.t === 'num') return { k: 'lit', v: Number(tk.v) };
    if (tk.t === 'name') {
      if (['and', 'or', 'in', 'is'].includes(tk.v))
        return fail(`unexpected \`${tk.v}\`: a value is missing before it`, tk);
      if (tk.v === 'true' || tk.v === 'True') return { k: 'lit', v: true };
      if (tk.v === 'false' || tk.v === 'False') return { k: 'lit', v: false };
      if (tk.v === 'none' || tk.v === 'None' || tk.v === 'null') return { k: 'lit', v: null };
      return { k: 'var', name: tk.v, offset: tk.offset };
    }
    return fail(`unexpected \`${tk.v}\``, tk);
  };
  if (toks.length === 0) fail('the condition is empty');
  const result = orExpr();
  if (i < toks.length) fail(`unexpected \`${toks[i]!.v}\``, toks[i]);
  return result;
}

/** Variables a condition tests for truth directly (`flag`, `not flag`, `a and flag`), not by comparison. */
export function truthTestedVariables(e: WhenExpr): Array<{ name: string; offset: number }> {
  switch (e.k) {
    case 'var':
      return [{ name: e.name, offset: e.offset }];
    case 'or':
    case 'and':
      return [...truthTestedVariables(e.l), ...truthTestedVariables(e.r)];
    case 'not':
      return truthTestedVariables(e.e);
    default:
      return [];
  }
}

const parsed = new Map<string, WhenExpr>();

/** Evaluate one condition; throws with a one-sentence message on a syntax error or an undefined variable. */
export function evaluateWhen(expr: string | boolean, vars: Record<string, unknown>): boolean {
  if (typeof expr === 'boolean') return expr;
  let ast = parsed.get(expr);
  if (!ast) parsed.set(expr, (ast = parseWhen(expr)));
  return truthy(evaluate(ast, vars, expr));
}

function evaluate(e: WhenExpr, vars: Record<string, unknown>, expr: string): unknown {
  const ev = (x: WhenExpr) => evaluate(x, vars, expr);
  switch (e.k) {
    case 'or':
      return truthy(ev(e.l)) || truthy(ev(e.r));
    case 'and':
      return truthy(ev(e.l)) && truthy(ev(e.r));
    case 'not':
      return !truthy(ev(e.e));
    case 'defined': {
      const defined = e.e.k === 'var' && isDefined(vars, e.e.name);
      return (e.undef ? !defined : defined) !== e.neg;
    }
    case 'eq':
      return (JSON.stringify(ev(e.l)) === JSON.stringify(ev(e.r))) !== e.neg;
    case 'in': {
      const l = ev(e.l);
      const r = ev(e.r);
      const inside = Array.isArray(r)
        ? r.some((x) => x === l)
        : typeof r === 'string'
          ? typeof l === 'string' && r.includes(l)
          : false;
      return inside !== e.neg;
    }
    case 'lit':
      return e.v;
    case 'list':
      return e.items.map(ev);
    case 'var':
      if (!isDefined(vars, e.name))
        throw new Error(`\`when: ${expr}\`: undefined variable \`${e.name}\` (use \`is defined\` to test for it)`);
      return lookup(vars, e.name);
  }
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}
