/** `trustplay validate PLAYBOOK`: every problem at once, or a one-line summary; `--format json` as data. */
import { formatDiagnostic } from '../../playbook/diagnostics.js';
import { ExitCode } from '../exit-codes.js';
import { InputError, loadAll, problemsJson } from '../load.js';
import type { Options } from '../options.js';

export async function validateCommand(positionals: string[], options: Options): Promise<number> {
  const json = options.format !== 'human';
  let r;
  try {
    r = await loadAll(positionals[0], options);
  } catch (e) {
    if (!json || !(e instanceof InputError)) throw e;
    process.stdout.write(`${JSON.stringify({ valid: false, problems: problemsJson(e.problems) }, null, 2)}\n`);
    return ExitCode.Invalid;
  }
  const warnings = r.warnings ?? [];
  const hosts = new Set(r.playHosts.flat()).size;
  const tasks = r.playbook.plays.reduce((n, p) => n + p.tasks.length, 0);
  const handlers = r.playbook.plays.reduce((n, p) => n + p.handlers.length, 0);
  if (json) {
    const summary = { file: r.playbook.file, plays: r.playbook.plays.length, hosts, tasks, handlers };
    process.stdout.write(`${JSON.stringify({ valid: true, ...summary, problems: problemsJson(warnings) }, null, 2)}\n`);
    return ExitCode.Ok;
  }
  for (const w of warnings) process.stderr.write(`${formatDiagnostic(w)}\n`);
  const s = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  process.stdout.write(
    `${r.playbook.file}: valid — ${s(r.playbook.plays.length, 'play')}, ${s(hosts, 'host')}, ${s(tasks, 'task')}${handlers ? `, ${s(handlers, 'handler')}` : ''}${warnings.length ? `, ${s(warnings.length, 'warning')}` : ''}\n`,
  );
  return ExitCode.Ok;
}
