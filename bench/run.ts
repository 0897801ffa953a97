/**
 * `npm run bench [-- SECTION...]`: prints figures (never asserts them). Sections: startup,
 * validate, engine (converged check on 20 loopback SSH hosts). Default: all that can run here.
 */
import { benchStartup, benchValidate } from './validate-startup.js';
import { table } from './util.js';

const wanted = new Set(process.argv.slice(2).filter((a) => !a.startsWith('-')));
const all = wanted.size === 0;

async function main(): Promise<void> {
  const rows: Array<Record<string, string | number>> = [];
  if (all || wanted.has('startup')) rows.push(await benchStartup());
  if (all || wanted.has('validate')) rows.push(...(await benchValidate()));
  if (rows.length) process.stdout.write(table(rows) + '\n');
  if (all || wanted.has('engine')) {
    const { benchEngine } = await import('./engine.js');
    process.stdout.write('\n' + table(await benchEngine()) + '\n');
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
