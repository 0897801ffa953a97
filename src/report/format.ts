/** Text pieces shared by the reporters: status words, diffs, recap lines. */
import { createRequire } from 'node:module';
import type { Diff } from '../engine/module.js';
import type { HostRecap, TaskResult } from '../engine/events.js';

export interface Style {
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

const wrap = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;
export const colours: Style = {
  red: wrap(31, 39),
  green: wrap(32, 39),
  yellow: wrap(33, 39),
  cyan: wrap(36, 39),
  dim: wrap(2, 22),
  bold: wrap(1, 22),
};
const id = (s: string) => s;
export const plain: Style = { red: id, green: id, yellow: id, cyan: id, dim: id, bold: id };

/** Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function styleFor(stream: NodeJS.WriteStream): Style {
  return stream.isTTY && !process.env['NO_COLOR'] && process.env['TERM'] !== 'dumb' ? colours : plain;
}

export function statusWord(r: TaskResult, s: Style): string {
  switch (r.status) {
    case 'ok':
      return s.green('ok');
    case 'changed':
      return s.yellow(r.check ? 'would change' : 'changed');
    case 'skipped':
      return s.cyan('skipped');
    case 'unreachable':
      return s.red('UNREACHABLE');
    case 'failed':
      return r.ignored
        ? s.yellow('failed (ignored)')
        : s.red(r.error?.kind === 'verification' ? 'FAILED (verify)' : 'FAILED');
  }
}

// jsdiff costs ~20 ms to load and only --diff needs it: loaded on first use (its CommonJS build,
// so rendering stays synchronous).
let twoFilesPatch: typeof import('diff').createTwoFilesPatch | undefined;

/** A unified diff of one change (content already masked by the engine, src/secrets). */
export function renderDiff(d: Diff, s: Style): string {
  twoFilesPatch ??= (createRequire(import.meta.url)('diff') as typeof import('diff')).createTwoFilesPatch;
  const patch = twoFilesPatch(
    `${d.target} (before)`,
    `${d.target} (after)`,
    ensureNl(d.before),
    ensureNl(d.after),
    undefined,
    undefined,
    { context: 3 },
  );
  return patch
    .split('\n')
    .slice(1) // the "====" separator line
    .filter((l) => l !== '\\ No newline at end of file')
    .map((l) =>
      l.startsWith('+') && !l.startsWith('+++')
        ? s.green(l)
        : l.startsWith('-') && !l.startsWith('---')
          ? s.red(l)
          : l.startsWith('@@')
            ? s.cyan(l)
            : l,
    )
    .join('\n')
    .trimEnd();
}

function ensureNl(t: string): string {
  return t === '' || t.endsWith('\n') ? t : t + '\n';
}

export function recapLine(host: string, r: HostRecap, width: number, s: Style): string {
  const f = (k: string, n: number, colour: (x: string) => string) => (n ? colour(`${k}=${n}`) : `${k}=${n}`);
  return `${host.padEnd(width)}  ${f('ok', r.ok, s.green)}  ${f('changed', r.changed, s.yellow)}  ${f('failed', r.failed, s.red)}  ${f('skipped', r.skipped, s.cyan)}  ${f('unreachable', r.unreachable, s.red)}${r.ignored ? `  ignored=${r.ignored}` : ''}`;
}

/** What a host's run came to, worst first: the word the grouped recap counts it under. */
export type HostOutcome = 'unreachable' | 'failed' | 'changed' | 'ok' | 'not run';

export function outcomeOf(r: HostRecap): HostOutcome {
  if (r.unreachable) return 'unreachable';
  if (r.failed) return 'failed';
  if (r.changed) return 'changed';
  return r.ok + r.skipped + r.ignored + r.verifyFailed ? 'ok' : 'not run';
}

/** How the recap lists hosts: one line per host, or hosts with identical outcomes together. */
export type RecapMode = 'full' | 'grouped';

/** Names listed per group in a grouped recap before the rest are counted. */
const NAMES_SHOWN = 20;

function nameList(names: string[]): string {
  const shown = names.slice(0, NAMES_SHOWN).join(', ');
  return names.length > NAMES_SHOWN
    ? `${shown} and ${names.length - NAMES_SHOWN} more (--recap full lists every host)`
    : shown;
}

/**
 * The recap at fleet scale: one line of totals ("982 hosts ok, 14 changed, 3 unreachable: n17,
 * n402, n981"), then one line per distinct set of counts with how many hosts share it, naming the
 * hosts of the groups that failed or were unreachable.
 */
export function groupedRecap(recap: Record<string, HostRecap>, s: Style): string[] {
  const byOutcome = new Map<HostOutcome, string[]>();
  const byCounts = new Map<string, { recap: HostRecap; hosts: string[] }>();
  for (const [host, r] of Object.entries(recap)) {
    const o = outcomeOf(r);
    byOutcome.set(o, [...(byOutcome.get(o) ?? []), host]);
    const key = recapLine('', r, 0, plain);
    const group = byCounts.get(key) ?? { recap: r, hosts: [] };
    group.hosts.push(host);
    byCounts.set(key, group);
  }
  const colour = { ok: s.green, changed: s.yellow, failed: s.red, unreachable: s.red, 'not run': s.cyan };
  let headline = '';
  let afterNames = false;
  for (const o of ['ok', 'changed', 'not run', 'failed', 'unreachable'] as const) {
    const hosts = byOutcome.get(o);
    if (!hosts) continue;
    // "982 hosts ok, 14 changed, 3 unreachable: n17, n402, n981": the first part carries "hosts".
    const count = headline ? `${hosts.length} ${o}` : `${hosts.length} host${hosts.length === 1 ? '' : 's'} ${o}`;
    const named = o === 'failed' || o === 'unreachable';
    const part = colour[o](count) + (named ? `: ${nameList(hosts)}` : '');
    headline += headline ? `${afterNames ? ';' : ','} ${part}` : part;
    afterNames = named;
  }
  const lines = [headline || '0 hosts'];
  const groups = [...byCounts.values()].sort((a, b) => b.hosts.length - a.hosts.length);
  const width = Math.max(...groups.map((g) => `${g.hosts.length} hosts`.length));
  for (const g of groups) {
    const label = `${g.hosts.length} host${g.hosts.length === 1 ? '' : 's'}`;
    const o = outcomeOf(g.recap);
    const named = o === 'failed' || o === 'unreachable' || g.hosts.length <= 3;
    lines.push(`  ${recapLine(label.padStart(width), g.recap, width, s)}${named ? `  ${nameList(g.hosts)}` : ''}`);
  }
  return lines;
}

/** The RECAP section's lines: a line per host (`full`), or hosts grouped by outcome. */
export function recapLines(recap: Record<string, HostRecap>, mode: RecapMode, s: Style): string[] {
  if (mode === 'grouped') return groupedRecap(recap, s);
  const names = Object.keys(recap);
  const width = Math.max(4, ...names.map((n) => n.length));
  return names.map((n) => recapLine(n, recap[n]!, width, s));
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
}
