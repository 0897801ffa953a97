/** Picks the reporter for the output mode: listr2 on a terminal, plain lines otherwise, json/jsonl on request. */
import type { Reporter } from '../engine/events.js';
import { styleFor } from '../report/format.js';
import { JsonCollector, JsonlReporter, JsonReporter, TeeReporter } from '../report/json.js';
import { ListrReporter } from '../report/listr.js';
import { PlainReporter } from '../report/plain.js';
import type { Options } from './options.js';

export function makeReporter(options: Options): { reporter: Reporter; collector: JsonCollector } {
  const collector = new JsonCollector();
  let main: Reporter;
  if (options.format === 'json') main = new JsonReporter(process.stdout);
  else if (options.format === 'jsonl') main = new JsonlReporter(process.stdout);
  else if (process.stdout.isTTY && process.env['TERM'] !== 'dumb' && !process.env['CI'])
    main = new ListrReporter(process.stdout, styleFor(process.stdout), options.verbose);
  else main = new PlainReporter({ out: process.stdout, style: styleFor(process.stdout), verbose: options.verbose });
  return { reporter: new TeeReporter([collector, main]), collector };
}
