/**
 * README sections generated from their sources of truth: the module reference from the argument
 * schemas, the troubleshooting table from containerd's recorded pull errors run through the
 * classifier. `npm run docs` rewrites them; a test keeps the README in step.
 */
import { readFileSync } from 'node:fs';
import { classifyPullError } from '../src/cri/classify.js';
import { moduleArgSchemas } from '../src/playbook/schema/modules.js';

type Prop = {
  type?: string;
  enum?: readonly (string | boolean)[];
  default?: unknown;
  description?: string;
  anyOf?: readonly Prop[];
  items?: Prop;
};

function typeOf(p: Prop): string {
  if (p.enum) return p.enum.map((e) => `\`${e}\``).join(' \\| ');
  if (p.anyOf) return p.anyOf.map(typeOf).join(' or ');
  if (p.type === 'array') return `list of ${p.items ? typeOf(p.items) : 'values'}`;
  return p.type ?? 'any';
}

export function modulesSection(): string {
  const out: string[] = [];
  for (const [name, schema] of Object.entries(moduleArgSchemas)) {
    const s = schema;
    out.push(`### \`${name}\``, '', s.description, '', '| argument | type | default | |', '|---|---|---|---|');
    for (const [arg, p] of Object.entries(s.properties) as Array<[string, Prop]>) {
      const req = s.required?.includes(arg) ? ' **required**' : '';
      const dflt = p.default === undefined ? '' : `\`${JSON.stringify(p.default)}\``;
      out.push(`| \`${arg}\`${req} | ${typeOf(p)} | ${dflt} | ${(p.description ?? '').replace(/\|/g, '\\|')} |`);
    }
    for (const g of s['x-exclusive'] ?? []) out.push('', `Mutually exclusive: ${g.map((k) => `\`${k}\``).join(', ')}.`);
    for (const g of s['x-together'] ?? []) out.push('', `Given together: ${g.map((k) => `\`${k}\``).join(', ')}.`);
    out.push('');
  }
  return out.join('\n').trimEnd();
}

export function troubleshootingSection(): string {
  const fixtures = JSON.parse(
    readFileSync(new URL('../src/cri/fixtures/pull-errors.json', import.meta.url), 'utf8'),
  ) as { errors: Array<{ class: string; message: string }> };
  const seen = new Set<string>();
  const rows = [
    '| containerd says (recorded from containerd 1.6) | trustplay classifies it as | fix |',
    '|---|---|---|',
  ];
  for (const e of fixtures.errors) {
    const c = classifyPullError(e.message);
    if (seen.has(c.class)) continue;
    seen.add(c.class);
    const tail = e.message
      .replace(/^.*?: (?=(?:failed to do request|dial tcp|pulling from host|[^:]+: not found))/, '')
      .replace(/^failed to do request: /, '');
    rows.push(
      `| \`${tail.replace(/\|/g, '\\|').replace(/127\.0\.0\.1:\d+|:\d{4,5}/g, (m) => m.replace(/\d{4,5}$/, 'PORT'))}\` | ${c.class} | ${c.hint.replace(/\|/g, '\\|')} |`,
    );
  }
  return rows.join('\n');
}

export function renderReadme(readme: string): string {
  const replace = (text: string, name: string, body: string) => {
    const re = new RegExp(`(<!-- ${name}:start[^>]*-->\\n)[\\s\\S]*?(<!-- ${name}:end -->)`);
    if (!re.test(text)) throw new Error(`README has no <!-- ${name}:start --> ... <!-- ${name}:end --> markers`);
    return text.replace(re, (_m, a: string, b: string) => `${a}${body}\n${b}`);
  };
  return replace(replace(readme, 'modules', modulesSection()), 'troubleshooting', troubleshootingSection());
}
