/**
 * `trustplay facts [-i INVENTORY] [--limit P] [--format json]`: what each host's containerd trusts
 * and which credentials it holds (registry names only, never values), changing nothing.
 */
import { ExitCode, ExitError } from '../exit-codes.js';
import { hostStringVars, loadInventoryOrExit, selectHostsOrExit } from '../load.js';
import type { Options } from '../options.js';

export async function factsCommand(positionals: string[], options: Options): Promise<number> {
  if (positionals.length)
    throw new ExitError(ExitCode.Invalid, 'usage: trustplay facts [-i INVENTORY] [--limit PATTERN] [--format json]');
  const inventory = await loadInventoryOrExit(options);
  const [{ ConnectionPool }, { pool }, { gatherNodeFacts, formatNodeFacts }] = await Promise.all([
    import('../../engine/connect.js'),
    import('../../engine/run.js'),
    import('../../snapshots/facts.js'),
  ]);
  const hosts = await selectHostsOrExit(inventory, options.limit);
  const conns = new ConnectionPool(inventory, { acceptNewHostKeys: options.acceptNewHostKeys });
  const results: Record<
    string,
    { facts?: import('../../snapshots/facts.js').NodeFacts; error?: string; unreachable?: boolean }
  > = {};
  try {
    await pool(hosts, options.forks, async (host) => {
      const conn = conns.get(host);
      try {
        await conn.connect();
      } catch (e) {
        results[host] = { error: (e as Error).message, unreachable: true };
        return;
      }
      // The same variables a play would see, so per-host containerd paths are honoured.
      const str = await hostStringVars(inventory, host, options.extraVars);
      try {
        const configFile = str('containerd_config_file');
        const configPath = str('containerd_config_path');
        const criSocket = str('cri_socket');
        results[host] = {
          facts: await gatherNodeFacts(conn, {
            ...(criSocket ? { criSocket } : {}),
            ...(configFile ? { configFile } : {}),
            ...(configPath ? { configPath } : {}),
          }),
        };
      } catch (e) {
        results[host] = { error: (e as Error).message };
      }
    });
  } finally {
    await conns.closeAll();
  }
  const ordered = Object.fromEntries(hosts.map((h) => [h, results[h]!]));
  if (options.format === 'json' || options.format === 'jsonl')
    process.stdout.write(JSON.stringify({ hosts: ordered }, null, 2) + '\n');
  else {
    for (const [h, r] of Object.entries(ordered)) {
      if (r.facts) process.stdout.write(formatNodeFacts(h, r.facts));
      else process.stdout.write(`${h}:\n  ${r.unreachable ? 'UNREACHABLE' : 'FAILED'}: ${r.error ?? ''}\n`);
    }
  }
  // The same exit rules as a run: a host that failed is exit 1, one that was unreachable exit 4.
  const [{ outcomeOf }, { emptyRecap }, { printOutcome }] = await Promise.all([
    import('../../engine/outcome.js'),
    import('../../engine/events.js'),
    import('../outcome.js'),
  ]);
  const recap = Object.fromEntries(
    Object.entries(ordered).map(([h, r]) => [
      h,
      {
        ...emptyRecap(),
        ok: r.facts ? 1 : 0,
        failed: r.error && !r.unreachable ? 1 : 0,
        unreachable: r.unreachable ? 1 : 0,
      },
    ]),
  );
  const outcome = outcomeOf(recap, { check: false });
  await printOutcome(outcome, options);
  return outcome.code;
}
