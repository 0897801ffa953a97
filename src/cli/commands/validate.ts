/**
 * `trustplay validate PLAYBOOK...`: every problem at once, or a one-line summary per playbook;
 * `--format json` as data. Several playbooks (a pre-commit hook passes every changed file) are each
 * validated against the same inventory; the exit code is 3 when any of them has a problem.
 */
import { formatDiagnostic } from '../../playbook/diagnostics.js';
import { ExitCode } from '../exit-codes.js';
import { InputError, loadAll, problemsJson } from '../load.js';
import type { Options } from '../options.js';

/** One playbook's verdict: printed (human) or returned as data (json). */
async function validateOne(file: string | undefined, options: Options): Promise<{ code: number; json?: unknown }> {
  const json = options.format !== 'human';
  let r;
  try {
    r = await loadAll(file, options);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    if (!json) {
      process.stderr.write(`${e.message}\n`);
      return { code: ExitCode.Invalid };
    }
    return { code: ExitCode.Invalid, json: { valid: false, problems: problemsJson(e.problems) } };
  }
  const warnings = r.warnings ?? [];
  const hosts = new Set(r.playHosts.flat()).size;
  const tasks = r.playbook.plays.reduce((n, p) => n + p.tasks.length, 0);
  const handlers = r.playbook.plays.reduce((n, p) => n + p.handlers.length, 0);
  if (json) {
    const summary = { file: r.playbook.file, plays: r.playbook.plays.length, hosts, tasks, handlers };
    return { code: ExitCode.Ok, json: { valid: true, ...summary, problems: problemsJson(warnings) } };
  }
  for (const w of warnings) process.stderr.write(`${formatDiagnostic(w)}\n`);
  const s = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  process.stdout.write(
    `${r.playbook.file}: valid — ${s(r.playbook.plays.length, 'play')}, ${s(hosts, 'host')}, ${s(tasks, 'task')}${handlers ? `, ${s(handlers, 'handler')}` : ''}${warnings.length ? `, ${s(warnings.length, 'warning')}` : ''}\n`,
  );
  return { code: ExitCode.Ok };
}

export async function validateCommand(positionals: string[], options: Options): Promise<number> {
  const files = positionals.length ? positionals : [undefined];
  const results = [];
  for (const f of files) results.push(await validateOne(f, options));
  if (options.format !== 'human') {
    // One playbook: one report, as always; several: a list of them, in the order given.
    const docs = results.map((r) => r.json);
    process.stdout.write(`${JSON.stringify(docs.length === 1 ? docs[0] : docs, null, 2)}\n`);
  }
  return Math.max(...results.map((r) => r.code));
}
