/**
 * The terminal view at fleet scale: one progress bar per play with live counts (ok / changed /
 * failed / unreachable / remaining) and the slowest hosts in flight, and rows only for hosts that
 * need attention (a failure, an unreachable host, a warning, a wait for a lock). A listr2 row per
 * host is right for a screenful of hosts and unreadable past it (ansible#80494), so `terminalView`
 * picks this view when the fleet is taller than the terminal, or when `--progress bar` asks.
 */
import type { Reporter, RunEvent, TaskResult } from '../engine/events.js';
import { recapLines, seconds, type RecapMode, type Style } from './format.js';
import { ListrReporter } from './listr.js';
import { formatResult } from './plain.js';

/** `auto`: the bar when the fleet has more hosts than the terminal has lines, rows otherwise. */
export type ProgressMode = 'auto' | 'bar' | 'rows';

export interface TerminalViewOptions {
  progress: ProgressMode;
  /** `auto`: grouped under the bar, a line per host with rows. */
  recap: RecapMode | 'auto';
  verbose: boolean;
  /** `--diff`: the changes (and their diffs) are printed under the bar too. */
  diff: boolean;
}

/** Lines a run's header and a play's title take above the host rows. */
const HEADER_LINES = 3;
const BAR_WIDTH = 30;
/** How many of the hosts in flight the bar names (the slowest ones). */
const SLOWEST_SHOWN = 3;
const REDRAW_MS = 200;

/** The reporter for a terminal: decides between rows and the bar once it knows the fleet's size. */
export class TerminalReporter implements Reporter {
  private inner?: Reporter;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly style: Style,
    private readonly o: TerminalViewOptions,
  ) {}

  event(e: RunEvent): void {
    if (!this.inner) {
      const hosts = e.type === 'run-start' || e.type === 'play-start' ? e.hosts.length : 0;
      const bar =
        this.o.progress === 'bar' || (this.o.progress === 'auto' && hosts + HEADER_LINES > (this.out.rows || 24));
      const recap = this.o.recap === 'auto' ? (bar ? 'grouped' : 'full') : this.o.recap;
      this.inner = bar
        ? new ProgressReporter(this.out, this.style, { ...this.o, recap })
        : new ListrReporter(this.out, this.style, this.o.verbose, recap);
    }
    this.inner.event(e);
  }

  async close(): Promise<void> {
    await this.inner?.close?.();
  }
}

interface PlayProgress {
  name: string;
  total: number;
  ok: number;
  changed: number;
  failed: number;
  unreachable: number;
  /** Hosts running now: when each started and the task it is on. */
  inFlight: Map<string, { since: number; task: string }>;
  /** Hosts that changed something in this play (the host's recap counts the whole run). */
  changedHosts: Set<string>;
}

/** One bar per play, redrawn in place; lines about hosts that need attention are printed above it. */
export class ProgressReporter implements Reporter {
  private play?: PlayProgress;
  /** Lines of the live area drawn last, to move back over. */
  private drawn = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly style: Style,
    private readonly o: { recap: RecapMode; verbose: boolean; diff: boolean },
  ) {}

  event(e: RunEvent): void {
    const s = this.style;
    switch (e.type) {
      case 'run-start':
        this.print([s.bold(`trustplay ${e.check ? 'check' : 'run'} ${e.playbook} (${e.hosts.length} hosts)`)]);
        break;
      case 'play-start':
        this.play = {
          name: e.play,
          total: e.hosts.length,
          ok: 0,
          changed: 0,
          failed: 0,
          unreachable: 0,
          inFlight: new Map(),
          changedHosts: new Set(),
        };
        this.timer ??= setInterval(() => this.redraw(), REDRAW_MS).unref();
        this.redraw();
        break;
      case 'host-start':
        this.play?.inFlight.set(e.host, { since: Date.now(), task: '' });
        break;
      case 'task-start': {
        const h = this.play?.inFlight.get(e.host);
        if (h) h.task = `${e.handler ? 'handler: ' : ''}${e.task}`;
        break;
      }
      case 'task-result':
        if (e.result.status === 'changed') this.play?.changedHosts.add(e.result.host);
        this.print(this.attention(e.result));
        break;
      case 'host-note':
        this.print([`${e.host} | ${s.yellow(e.message)}`]);
        break;
      case 'host-end': {
        const p = this.play;
        if (!p?.inFlight.delete(e.host)) break;
        if (e.unreachable) p.unreachable++;
        else if (e.failed) p.failed++;
        else if (p.changedHosts.has(e.host)) p.changed++;
        else p.ok++;
        break;
      }
      case 'play-end':
        this.clear();
        if (this.play) this.out.write(this.bar(this.play) + '\n');
        if (e.aborted) this.out.write(s.red(e.aborted) + '\n');
        this.play = undefined;
        break;
      case 'run-end':
        this.stop();
        this.print([s.bold('RECAP'), ...recapLines(e.recap, this.o.recap, s)]);
        break;
      default:
        break;
    }
  }

  async close(): Promise<void> {
    this.stop();
  }

  /** What the operator must see about one task: failures and warnings; every change only with --diff or -v. */
  private attention(r: TaskResult): string[] {
    const failed = (r.status === 'failed' && !r.ignored) || r.status === 'unreachable';
    const asked = (this.o.verbose || this.o.diff) && r.status !== 'ok' && (r.status !== 'skipped' || this.o.verbose);
    if (failed || asked) return formatResult(r, this.style, this.o.verbose);
    return r.warnings.map((w) => `${r.host} | ${this.style.yellow(`warning: ${w}`)}`);
  }

  private bar(p: PlayProgress): string {
    const s = this.style;
    const done = p.ok + p.changed + p.failed + p.unreachable;
    const filled = p.total ? Math.round((done / p.total) * BAR_WIDTH) : BAR_WIDTH;
    const count = (word: string, n: number, colour: (x: string) => string) =>
      n ? colour(`${word} ${n}`) : `${word} ${n}`;
    return [
      s.bold(`PLAY ${p.name}`),
      `[${'█'.repeat(filled)}${s.dim('░'.repeat(BAR_WIDTH - filled))}]`,
      `${done}/${p.total}`,
      count('ok', p.ok, s.green),
      count('changed', p.changed, s.yellow),
      count('failed', p.failed, s.red),
      count('unreachable', p.unreachable, s.red),
      `remaining ${p.total - done}`,
    ].join('  ');
  }

  /** The bar and the hosts in flight that have run longest. */
  private live(): string[] {
    const p = this.play;
    if (!p) return [];
    const now = Date.now();
    const slowest = [...p.inFlight.entries()].sort((a, b) => a[1].since - b[1].since).slice(0, SLOWEST_SHOWN);
    const flying = slowest.length
      ? `  ${p.inFlight.size} in flight, slowest: ${slowest.map(([h, f]) => `${h} ${seconds(now - f.since)}${f.task ? ` (${f.task})` : ''}`).join(', ')}`
      : `  ${p.ok + p.changed + p.failed + p.unreachable < p.total ? 'connecting…' : ''}`;
    return [this.bar(p), this.style.dim(flying)];
  }

  /** Prints lines above the live area, then draws it again below them. */
  private print(lines: string[]): void {
    if (!lines.length) return;
    this.clear();
    this.out.write(lines.join('\n') + '\n');
    this.draw();
  }

  private redraw(): void {
    this.clear();
    this.draw();
  }

  private draw(): void {
    const lines = this.live().map((l) => fit(l, (this.out.columns || 80) - 1));
    if (lines.length) this.out.write(lines.join('\n') + '\n');
    this.drawn = lines.length;
  }

  /** Moves back over the live area and erases it (and everything below it). */
  private clear(): void {
    if (this.drawn) this.out.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }
}

/**
 * Cuts a line to `width` visible characters, keeping its escape codes: a live line that wrapped
 * would take two terminal lines, and moving back over the live area would then miss one.
 */
function fit(line: string, width: number): string {
  let visible = 0;
  let out = '';
  // eslint-disable-next-line no-control-regex
  for (const part of line.split(/(\x1b\[[0-9;]*m)/)) {
    if (part.startsWith('\x1b[')) out += part;
    else {
      const chars = [...part];
      const room = Math.max(0, width - visible);
      out += chars.slice(0, room).join('');
      visible += Math.min(chars.length, room);
    }
  }
  return out;
}
