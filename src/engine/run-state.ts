/**
 * What one run shares between its parts (selection, connect + lock, the per-host task loop, the
 * recap): the connections, each host's state, the results so far and the run's secrets. Every
 * result passes through `record`, which counts it and masks it before any reporter sees it.
 */
import { SecretSet } from '../secrets/index.js';
import { defined } from '../defined.js';
import { ConnectionPool } from './connect.js';
import { emptyRecap, type TaskResult } from './events.js';
import { interruptedBy, type StopSignal } from './cancel.js';
import type { RunOptions } from './run.js';

/** One host's state for the whole run. */
export class HostRun {
  readonly recap = emptyRecap();
  failed = false;
  unreachable = false;
  readonly hostState = new Map<string, unknown>();
  readonly facts: Record<string, unknown> = {};
  connected = false;
  constructor(readonly name: string) {}

  /** Failed or unreachable: it runs no more tasks and takes no part in later plays. */
  get out(): boolean {
    return this.failed || this.unreachable;
  }
}

export class RunState {
  readonly check: boolean;
  /** Every result passes through this set's maskers before any reporter sees it. */
  readonly secrets = new SecretSet();
  readonly conns: ConnectionPool;
  readonly hosts = new Map<string, HostRun>();
  readonly results: TaskResult[] = [];
  /** Tasks an interruption kept from running, per host. */
  readonly notRun = new Map<string, number>();
  /** Connection or lock failures of hosts connected ahead of their batch, reported in the host's play. */
  readonly connectErrors = new Map<string, Error>();

  constructor(
    readonly opts: RunOptions,
    readonly runId: string,
  ) {
    this.check = opts.check ?? false;
    this.conns = new ConnectionPool(
      opts.inventory,
      { ...defined({ acceptNewHostKeys: opts.acceptNewHostKeys }), onSecret: (v) => this.secrets.add(v) },
      opts.connectionFactory,
    );
    for (const h of new Set(opts.playHosts.flat())) this.hosts.set(h, new HostRun(h));
  }

  host(name: string): HostRun {
    return this.hosts.get(name)!;
  }

  /** The signal that interrupted the run, if one did. */
  stopped(): StopSignal | undefined {
    return interruptedBy(this.opts.signal);
  }

  countNotRun(host: string, n: number): void {
    if (n > 0) this.notRun.set(host, (this.notRun.get(host) ?? 0) + n);
  }

  /** Masks a result, keeps it and reports it. */
  emit(r: TaskResult): void {
    const m = (t: string) => this.secrets.maskText(t);
    const clean: TaskResult = {
      ...r,
      changes: r.changes.map(m),
      diffs: r.diffs.map((d) => this.secrets.maskDiff(d)),
      warnings: r.warnings.map(m),
      ...(r.error
        ? {
            error: {
              ...r.error,
              message: m(r.error.message),
              ...defined({ detail: r.error.detail === undefined ? undefined : m(r.error.detail) }),
            },
          }
        : {}),
    };
    this.results.push(clean);
    this.opts.reporter.event({ type: 'task-result', result: clean });
  }

  /** Counts a task's result in its host's recap, then emits it. */
  record(hr: HostRun, r: TaskResult): void {
    switch (r.status) {
      case 'ok':
        hr.recap.ok++;
        break;
      case 'changed':
        hr.recap.changed++;
        break;
      case 'skipped':
        hr.recap.skipped++;
        break;
      case 'unreachable':
        hr.recap.unreachable++;
        hr.unreachable = true;
        break;
      case 'failed':
        if (r.ignored) hr.recap.ignored++;
        else {
          hr.recap.failed++;
          if (r.error?.kind === 'verification') hr.recap.verifyFailed++;
          hr.failed = true;
        }
        break;
    }
    this.emit(r);
  }
}
