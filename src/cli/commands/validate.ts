/** `trustplay validate PLAYBOOK [-i INVENTORY]`: every problem at once, or a one-line summary. */
import { ExitCode } from '../exit-codes.js';
import { loadAll } from '../load.js';
import type { Options } from '../options.js';

export async function validateCommand(positionals: string[], options: Options): Promise<number> {
  const r = await loadAll(positionals[0], options);
  const hosts = new Set(r.playHosts.flat());
  const tasks = r.playbook.plays.reduce((n, p) => n + p.tasks.length, 0);
  const handlers = r.playbook.plays.reduce((n, p) => n + p.handlers.length, 0);
  const s = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  process.stdout.write(
    `${r.playbook.file}: valid — ${s(r.playbook.plays.length, 'play')}, ${s(hosts.size, 'host')}, ${s(tasks, 'task')}${handlers ? `, ${s(handlers, 'handler')}` : ''}\n`,
  );
  return ExitCode.Ok;
}
