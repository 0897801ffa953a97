/** Plain lines for cron, CI and pipes: no spinners, no cursor movement, colour only on a TTY. */
import type { Reporter, RunEvent, TaskResult } from '../engine/events.js';
import { recapLines, renderDiff, statusWord, type RecapMode, type Style } from './format.js';

export interface PlainOptions {
  out: NodeJS.WritableStream;
  style: Style;
  verbose?: boolean;
  /** Default `full`: a line per host. */
  recap?: RecapMode;
}

export function formatResult(r: TaskResult, s: Style, verbose = false): string[] {
  if (r.module === 'connection' && r.status === 'unreachable')
    return [`${r.host} | ${statusWord(r, s)} | ${r.error?.message ?? ''}`];
  const lines = [
    `${r.host} | ${statusWord(r, s)} | ${r.handler ? 'handler: ' : ''}${r.task}${r.skipReason ? s.dim(` (${r.skipReason})`) : ''}`,
  ];
  for (const c of r.changes) lines.push(`${' '.repeat(r.host.length)} |   ${r.check ? 'would ' : ''}${c}`);
  for (const w of r.warnings) lines.push(`${' '.repeat(r.host.length)} |   ${s.yellow(`warning: ${w}`)}`);
  if (r.error) {
    lines.push(`${' '.repeat(r.host.length)} |   ${s.red(r.error.message)}`);
    if (verbose && r.error.detail)
      for (const l of r.error.detail.split('\n')) lines.push(`${' '.repeat(r.host.length)} |     ${s.dim(l)}`);
  }
  for (const d of r.diffs) lines.push(renderDiff(d, s));
  return lines;
}

export class PlainReporter implements Reporter {
  constructor(private readonly o: PlainOptions) {}

  event(e: RunEvent): void {
    const s = this.o.style;
    const w = (l: string) => this.o.out.write(l + '\n');
    switch (e.type) {
      case 'run-start':
        w(
          s.bold(
            `trustplay ${e.check ? 'check' : 'run'} ${e.playbook} (${e.hosts.length} host${e.hosts.length === 1 ? '' : 's'})`,
          ),
        );
        break;
      case 'play-start':
        w(s.bold(`PLAY ${e.play} [${e.hosts.join(', ') || 'no hosts left'}]`));
        break;
      case 'task-result':
        for (const l of formatResult(e.result, s, this.o.verbose)) w(l);
        break;
      case 'host-note':
        w(`${e.host} | ${s.yellow(e.message)}`);
        break;
      case 'play-end':
        if (e.aborted) w(s.red(e.aborted));
        break;
      case 'run-end': {
        w(s.bold('RECAP'));
        // The closing line (the outcome's reason) is the CLI's: see src/cli/outcome.ts.
        for (const l of recapLines(e.recap, this.o.recap ?? 'full', s)) w(l);
        break;
      }
      default:
        break;
    }
  }
}
