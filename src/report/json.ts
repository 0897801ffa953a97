/** `--format json`: one report on stdout at the end; `--format jsonl`: one event per line as it happens. */
import type { HostRecap, Reporter, RunEvent, TaskResult } from '../engine/events.js';
import type { Outcome } from '../engine/outcome.js';

/** A problem with the input that stopped the command before anything ran. */
export interface InputProblem {
  file: string;
  /** 1-based; 0 when the problem has no position. */
  line: number;
  col: number;
  message: string;
}

export interface JsonReport {
  /** Empty when nothing ran (invalid input). */
  runId: string;
  playbook: string;
  check: boolean;
  /** The same as `outcome.code`. */
  exitCode: number;
  /** The verdict: exit code, the one-line reason, the hosts it names. */
  outcome: Outcome;
  durationMs: number;
  hosts: Record<string, { recap: HostRecap; tasks: TaskResult[] }>;
  /** Why nothing ran (exit 3). */
  errors?: InputProblem[];
}

/** Builds the json report from events (also used for --report FILE). */
export class JsonCollector implements Reporter {
  private runId = '';
  private playbook = '';
  private check = false;
  private readonly tasks = new Map<string, TaskResult[]>();
  report: JsonReport | undefined;

  event(e: RunEvent): void {
    if (e.type === 'run-start') {
      this.runId = e.runId;
      this.playbook = e.playbook;
      this.check = e.check;
      for (const h of e.hosts) this.tasks.set(h, []);
    } else if (e.type === 'task-result') {
      const list = this.tasks.get(e.result.host) ?? [];
      list.push(e.result);
      this.tasks.set(e.result.host, list);
    } else if (e.type === 'run-end') {
      const hosts: JsonReport['hosts'] = {};
      for (const [h, recap] of Object.entries(e.recap)) hosts[h] = { recap, tasks: this.tasks.get(h) ?? [] };
      this.report = {
        runId: this.runId,
        playbook: this.playbook,
        check: this.check,
        exitCode: e.outcome.code,
        outcome: e.outcome,
        durationMs: e.durationMs,
        hosts,
      };
    }
  }
}

export class JsonReporter extends JsonCollector {
  constructor(private readonly out: NodeJS.WritableStream) {
    super();
  }
  override event(e: RunEvent): void {
    super.event(e);
    if (e.type === 'run-end' && this.report) this.out.write(JSON.stringify(this.report, null, 2) + '\n');
  }
}

export class JsonlReporter implements Reporter {
  constructor(private readonly out: NodeJS.WritableStream) {}
  event(e: RunEvent): void {
    this.out.write(JSON.stringify({ time: new Date().toISOString(), ...e }) + '\n');
  }
}

/** Sends every event to several reporters. */
export class TeeReporter implements Reporter {
  constructor(private readonly reporters: Reporter[]) {}
  event(e: RunEvent): void {
    for (const r of this.reporters) r.event(e);
  }
  async close(): Promise<void> {
    for (const r of this.reporters) await r.close?.();
  }
}
