/**
 * Picks the reporter for the output mode: on a terminal listr2 rows or, for a fleet taller than the
 * terminal, a progress bar per play; plain lines otherwise; json/jsonl on request.
 */
import type { Reporter } from '../engine/events.js';
import { styleFor } from '../report/format.js';
import { JsonCollector, JsonlReporter, JsonReporter, TeeReporter } from '../report/json.js';
import { PlainReporter } from '../report/plain.js';
import { TerminalReporter } from '../report/progress.js';
import type { Options } from './options.js';

/**
 * `quiet`: the command prints its own result at the end (`trustplay facts`), so no progress is
 * drawn; what the operator must see while it runs (waiting for a host's lock) still goes to stderr.
 */
export function makeReporter(options: Options, quiet = false): { reporter: Reporter; collector: JsonCollector } {
  const collector = new JsonCollector();
  let main: Reporter;
  if (quiet)
    main = {
      event: (e) => {
        if (e.type === 'host-note') process.stderr.write(`${e.host}: ${e.message}\n`);
      },
    };
  else if (options.format === 'json') main = new JsonReporter(process.stdout);
  else if (options.format === 'jsonl') main = new JsonlReporter(process.stdout);
  else if (process.stdout.isTTY && process.env['TERM'] !== 'dumb' && !process.env['CI'])
    main = new TerminalReporter(process.stdout, styleFor(process.stdout), options);
  // Without a terminal the recap is a line per host unless --recap grouped asks (cron mails, CI logs read as before).
  else
    main = new PlainReporter({
      out: process.stdout,
      style: styleFor(process.stdout),
      verbose: options.verbose,
      recap: options.recap === 'grouped' ? 'grouped' : 'full',
    });
  return { reporter: new TeeReporter([collector, main]), collector };
}
