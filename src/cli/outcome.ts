/**
 * The closing line of a command: the outcome's reason, on stderr in every format (so `--format
 * json` keeps stdout pure JSON, and `systemctl status` / cron's `tail -n 1` show the verdict), and
 * also at the end of stdout in human format when stdout goes somewhere else than stderr (a pipe,
 * a file), so `trustplay check ... | tail -n 1` keeps it. On a terminal it is printed once.
 */
import { fstatSync } from 'node:fs';
import type { Outcome } from '../engine/outcome.js';
import { seconds } from '../report/format.js';
import type { Options } from './options.js';

function sameDestination(): boolean {
  try {
    const out = fstatSync(1);
    const err = fstatSync(2);
    return out.dev === err.dev && out.ino === err.ino;
  } catch {
    return false;
  }
}

/** Writes and flushes, so the closing line really comes last when both streams share a destination. */
function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text, () => resolve()));
}

/** Prints the closing line of a run. */
export async function printOutcome(
  outcome: Outcome,
  options: Pick<Options, 'format'>,
  durationMs?: number,
): Promise<void> {
  const line = `${outcome.reason}${durationMs !== undefined ? ` in ${seconds(durationMs)}` : ''}\n`;
  if (options.format === 'human' && !sameDestination()) await write(process.stdout, line);
  else await write(process.stdout, '');
  await write(process.stderr, line);
}
