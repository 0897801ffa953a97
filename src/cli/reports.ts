/**
 * `--report FILE` (json), `--junit FILE` for CI dashboards and `--metrics FILE` for Prometheus, written atomically after every run
 * whatever its exit code, and `--metrics-push URL`, the same metrics PUT to a Pushgateway job: a command stopped by invalid
 * input (exit 3) or an error reports that it did, so a scheduled check's report never stays green after the playbook broke.
 */
import { invalidInputOutcome, ExitCode, type Outcome } from '../engine/outcome.js';
import type { InputProblem, JsonReport } from '../report/json.js';
import { prometheusMetrics } from '../report/metrics.js';
import { pushMetrics } from '../report/push.js';
import { writeFileAtomic } from '../snapshots/store.js';
import type { Options } from './options.js';

// XML 1.0 cannot carry most control characters, even escaped.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f]/g;

function xml(s: string): string {
  return s
    .replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!)
    .replace(CONTROL, '');
}

export function junit(report: JsonReport): string {
  const problems = (report.errors ?? []).map(
    (p) =>
      `    <testcase classname="input" name="${xml(p.line ? `${p.file}:${p.line}:${p.col}` : p.file)}" time="0.000"><failure message="${xml(p.message)}"/></testcase>`,
  );
  const inputSuite = problems.length
    ? [
        `  <testsuite name="input" tests="${problems.length}" failures="${problems.length}">\n${problems.join('\n')}\n  </testsuite>`,
      ]
    : [];
  const suites = Object.entries(report.hosts).map(([host, { tasks }]) => {
    const failures = tasks.filter(
      (t) =>
        (t.status === 'failed' && !t.ignored) || t.status === 'unreachable' || (report.check && t.status === 'changed'),
    ).length;
    const cases = tasks.map((t) => {
      const name = xml(`${t.handler ? 'handler: ' : ''}${t.task}`);
      const head = `    <testcase classname="${xml(host)}" name="${name}" time="${(t.durationMs / 1000).toFixed(3)}">`;
      if (t.status === 'skipped') return `${head}<skipped message="${xml(t.skipReason ?? 'skipped')}"/></testcase>`;
      if ((t.status === 'failed' && !t.ignored) || t.status === 'unreachable')
        return `${head}<failure message="${xml(t.error?.message ?? t.status)}">${xml(t.error?.detail ?? '')}</failure></testcase>`;
      if (report.check && t.status === 'changed')
        return `${head}<failure message="drift: would change">${xml(t.changes.join('\n'))}</failure></testcase>`;
      return `${head}</testcase>`;
    });
    return `  <testsuite name="${xml(host)}" tests="${tasks.length}" failures="${failures}">\n${cases.join('\n')}\n  </testsuite>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="trustplay ${report.check ? 'check' : 'run'} ${xml(report.playbook)}">\n${[...inputSuite, ...suites].join('\n')}\n</testsuites>\n`;
}

export async function writeReports(
  options: Pick<Options, 'report' | 'junit' | 'metrics' | 'metricsPush'>,
  report: JsonReport | undefined,
): Promise<void> {
  if (!report) return;
  if (options.report) await writeFileAtomic(options.report, JSON.stringify(report, null, 2) + '\n', 0o600);
  if (options.junit) await writeFileAtomic(options.junit, junit(report), 0o644);
  const metrics = options.metrics || options.metricsPush ? prometheusMetrics(report, Date.now()) : '';
  // 0644: node_exporter reads it as another user.
  if (options.metrics) await writeFileAtomic(options.metrics, metrics, 0o644);
  if (options.metricsPush) {
    // A gateway that is down costs the alert, not the run: said on stderr, the exit code stays the run's.
    const problem = await pushMetrics(options.metricsPush, metrics);
    if (problem) process.stderr.write(`trustplay: ${problem}\n`);
  }
}

/** The report of a command that stopped before or outside the run: invalid input (exit 3) or an error. */
export function failureReport(
  o: { playbook: string; check: boolean; code: ExitCode; message: string },
  problems: InputProblem[],
): JsonReport {
  const lastLine = o.message.trim().split('\n').at(-1) ?? '';
  const outcome: Outcome =
    o.code === ExitCode.Invalid
      ? invalidInputOutcome(lastLine)
      : { code: o.code, reason: `${lastLine} (exit ${o.code})`, hosts: [] };
  return {
    runId: '',
    playbook: o.playbook,
    check: o.check,
    exitCode: outcome.code,
    outcome,
    durationMs: 0,
    hosts: {},
    errors: problems.length ? problems : [{ file: o.playbook, line: 0, col: 0, message: o.message.trim() }],
  };
}
