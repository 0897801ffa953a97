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

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
}
