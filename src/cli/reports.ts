/** `--report FILE` (json, written atomically) and `--junit FILE` for CI dashboards. */
import type { JsonReport } from '../report/json.js';
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
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="trustplay ${report.check ? 'check' : 'run'} ${xml(report.playbook)}">\n${suites.join('\n')}\n</testsuites>\n`;
}

export async function writeReports(
  options: Options,
  report: JsonReport | undefined,
  _secrets: string[],
): Promise<void> {
  if (!report) return;
  if (options.report) await writeFileAtomic(options.report, JSON.stringify(report, null, 2) + '\n', 0o600);
  if (options.junit) await writeFileAtomic(options.junit, junit(report), 0o644);
}
