/**
 * The terminal view: listr2 with one row per host (its current task, then its recap), so hundreds
 * of hosts stay readable. Details (changes, diffs, errors) are printed below each play's rows.
 */
import type { Reporter, RunEvent, TaskResult } from '../engine/events.js';
import { recapLine, recapLines, type RecapMode, type Style } from './format.js';
import { formatResult } from './plain.js';

interface HostRow {
  setTitle?: (t: string) => void;
  done?: (error?: Error) => void;
  finished?: { error?: Error };
  tasks: number;
  current?: string;
}

export class ListrReporter implements Reporter {
  private chain: Promise<void> = Promise.resolve();
  private rows = new Map<string, HostRow>();
  private details: string[] = [];

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly style: Style,
    private readonly verbose = false,
    private readonly recapMode: RecapMode = 'full',
  ) {}

  event(e: RunEvent): void {
    const s = this.style;
    switch (e.type) {
      case 'run-start':
        this.out.write(s.bold(`trustplay ${e.check ? 'check' : 'run'} ${e.playbook}\n`));
        break;
      case 'play-start': {
        const rows = new Map<string, HostRow>();
        for (const h of e.hosts) rows.set(h, { tasks: 0 });
        this.rows = rows;
        const title = `PLAY ${e.play}`;
        this.chain = this.chain.then(async () => {
          const { Listr } = await import('listr2');
          this.out.write(s.bold(title) + '\n');
          const list = new Listr(
            [...rows.entries()].map(([host, row]) => ({
              title: host,
              task: (_ctx: unknown, task: { title: string }) =>
                new Promise<void>((resolve, reject) => {
                  row.setTitle = (t) => {
                    task.title = t;
                  };
                  row.done = (err) => (err ? reject(err) : resolve());
                  if (row.current) task.title = row.current;
                  if (row.finished) row.done(row.finished.error);
                }),
            })),
            // listr2's own SIGINT handler exits 127 on the spot; trustplay's (cli/execute.ts) stops the run in order.
            {
              concurrent: true,
              exitOnError: false,
              registerSignalListeners: false,
              rendererOptions: { collapseErrors: false },
            },
          );
          await list.run().catch(() => undefined);
          for (const l of this.details) this.out.write(l + '\n');
          this.details = [];
        });
        break;
      }
      case 'task-start': {
        const row = this.rows.get(e.host);
        if (!row) break;
        row.current = `${e.host}: ${e.handler ? 'handler: ' : ''}${e.task}`;
        row.setTitle?.(row.current);
        break;
      }
      case 'task-result':
        this.noteResult(e.result);
        break;
      case 'host-note': {
        const row = this.rows.get(e.host);
        if (e.waiting && row) {
          row.current = `${e.host}: ${e.message}`;
          row.setTitle?.(row.current);
        } else this.details.push(`${e.host} | ${s.yellow(e.message)}`);
        break;
      }
      case 'host-end': {
        const row = this.rows.get(e.host);
        if (!row) break;
        const text = recapLine(e.host, e.recap, e.host.length, s);
        row.current = text;
        row.setTitle?.(text);
        const error = e.failed || e.unreachable ? new Error(text) : undefined;
        row.finished = error ? { error } : {};
        row.done?.(error);
        break;
      }
      case 'run-end': {
        const recap = e.recap;
        this.chain = this.chain.then(() => {
          this.out.write(s.bold('RECAP') + '\n');
          for (const l of recapLines(recap, this.recapMode, s)) this.out.write(l + '\n');
        });
        break;
      }
      default:
        break;
    }
  }

  private noteResult(r: TaskResult): void {
    const row = this.rows.get(r.host);
    if (row) row.tasks++;
    if (r.status === 'ok' || (r.status === 'skipped' && !this.verbose)) return;
    this.details.push(...formatResult(r, this.style, this.verbose));
  }

  async close(): Promise<void> {
    await this.chain;
  }
}
