/**
 * `--metrics FILE`: the run as Prometheus text exposition (format 0.0.4), for node_exporter's
 * textfile collector (name the file `*.prom` in its directory) or, with `--metrics-push URL`, a
 * Pushgateway job (src/report/push.ts). Written atomically after every run, check and restore, whatever
 * the exit code, so a check that stopped on a broken playbook (exit 3) reports that instead of
 * leaving the last green figures in place.
 *
 * Per host and task: whether it is in the desired state; per host: the same, all tasks together;
 * per run: when it ended, how long it took, its exit code. Values come from the masked report:
 * nothing here is a secret, labels are playbook, host, play and task names.
 */
import type { JsonReport } from './json.js';

/** A label value escaped as the exposition format requires (backslash, double quote, newline). */
function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(l: Record<string, string>): string {
  return `{${Object.entries(l)
    .map(([k, v]) => `${k}="${label(v)}"`)
    .join(',')}}`;
}

interface Family {
  name: string;
  help: string;
  samples: Array<[Record<string, string>, number]>;
}

/** The metrics text of one run's report; `endedAt` is when the run ended (ms since the epoch). */
export function prometheusMetrics(report: JsonReport, endedAt: number): string {
  const mode = report.check ? 'check' : 'run';
  const run = { playbook: report.playbook, mode };
  const task: Family = {
    name: 'trustplay_task_in_sync',
    help: 'Whether the task found (check) or left (run) its host in the desired state: 1 yes, 0 no (drift, failure, unreachable). Skipped tasks have no sample.',
    samples: [],
  };
  const host: Family = {
    name: 'trustplay_host_in_sync',
    help: 'Whether every task of the host is in the desired state (0: drift, a failure or unreachable).',
    samples: [],
  };
  for (const [name, { tasks }] of Object.entries(report.hosts)) {
    let inSync = 1;
    // Two tasks may share a name in a play: the first keeps its series, later ones are numbered.
    const seen = new Map<string, number>();
    for (const t of tasks) {
      if (t.status === 'skipped') continue;
      const ok =
        t.status === 'ok' || (!report.check && t.status === 'changed') || (t.status === 'failed' && !!t.ignored);
      if (!ok) inSync = 0;
      const base = `${t.handler ? 'handler: ' : ''}${t.task}`;
      const n = (seen.get(`${t.play}\u0000${base}`) ?? 0) + 1;
      seen.set(`${t.play}\u0000${base}`, n);
      task.samples.push([{ ...run, host: name, play: t.play, task: n > 1 ? `${base} (${n})` : base }, ok ? 1 : 0]);
    }
    host.samples.push([{ ...run, host: name }, inSync]);
  }
  const families: Family[] = [
    task,
    host,
    {
      name: 'trustplay_last_run_timestamp_seconds',
      help: 'When the last trustplay run or check of this playbook ended (Unix time).',
      samples: [[run, endedAt / 1000]],
    },
    {
      name: 'trustplay_run_duration_seconds',
      help: 'How long the last run or check took.',
      samples: [[run, report.durationMs / 1000]],
    },
    {
      name: 'trustplay_exit_code',
      help: 'Exit code of the last run or check: 0 ok, 1 a task failed, 2 drift (check) or changed (--detailed-exitcode), 3 invalid input, 4 unreachable.',
      samples: [[run, report.exitCode]],
    },
  ];
  return families
    .filter((f) => f.samples.length > 0)
    .map(
      (f) =>
        `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} gauge\n${f.samples.map(([l, v]) => `${f.name}${labels(l)} ${v}`).join('\n')}\n`,
    )
    .join('');
}
