/** `trustplay run PLAYBOOK` and `trustplay check PLAYBOOK` (= run --check with the drift exit code). */
import { ExitCode } from '../exit-codes.js';
import { loadAll } from '../load.js';
import type { Options } from '../options.js';

export async function runCommand(positionals: string[], options: Options): Promise<number> {
  return execute(positionals, options, options.check ? 'check' : 'run');
}

export async function checkCommand(positionals: string[], options: Options): Promise<number> {
  return execute(positionals, { ...options, check: true }, 'check');
}

async function execute(positionals: string[], options: Options, mode: 'run' | 'check'): Promise<number> {
  const loaded = await loadAll(positionals[0], options);
  const [{ runPlaybook, exitCodeFor }, { builtinModules }, { makeReporter }, { SnapshotStore, RunSnapshot }, { writeReports }] = await Promise.all([
    import('../../engine/run.js'),
    import('../../modules/index.js'),
    import('../reporter.js'),
    import('../../snapshots/store.js'),
    import('../reports.js'),
  ]);
  const { reporter, collector } = makeReporter(options);
  const check = mode === 'check' || options.check;
  const runId = `${new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, 'Z')}-${Math.random().toString(16).slice(2, 8)}`;
  const store = new SnapshotStore(options.stateDir);
  const { readServiceAccountForSnapshot } = await import('../../snapshots/readers.js');
  const snapshot = new RunSnapshot(
    store,
    {
      runId,
      command: `${mode} ${positionals[0]}`,
      playbook: { path: loaded.playbook.file, digest: loaded.playbook.digest },
      ...(options.inventory ? { inventory: options.inventory } : {}),
    },
    readServiceAccountForSnapshot,
  );
  const { acquireHostLock } = await import('../../engine/lock.js');
  const { hostname, userInfo } = await import('node:os');
  const releases = new Map<string, () => Promise<void>>();
  const owner = `${userInfo().username}@${hostname()} pid ${process.pid}`;
  const result = await runPlaybook({
    playbook: loaded.playbook,
    inventory: loaded.inventory,
    playHosts: loaded.playHosts,
    modules: builtinModules,
    reporter,
    check,
    diff: options.diff,
    forks: options.forks,
    extraVars: options.extraVars,
    acceptNewHostKeys: options.acceptNewHostKeys,
    runId,
    onConnect: async (host, conn) => {
      const lockDir = process.env['TRUSTPLAY_LOCK_DIR'];
      releases.set(host, await acquireHostLock(conn, { runId, owner, timeoutMs: options.lockTimeout * 1000, ...(lockDir ? { dir: lockDir } : {}) }));
    },
    onRelease: async (host) => {
      await releases.get(host)?.();
    },
    ...(check ? {} : { snapshot }),
    ...(options.tags ? { tags: options.tags } : {}),
    ...(options.skipTags ? { skipTags: options.skipTags } : {}),
  });
  await snapshot.complete();
  const code = exitCodeFor(result, { check, detailedExitcode: options.detailedExitcode }) as ExitCode;
  reporter.event({ type: 'run-end', recap: result.recap, durationMs: result.durationMs, exitCode: code, check });
  await reporter.close?.();
  if (snapshot.exists && options.format === 'human') process.stderr.write(`snapshot ${runId} saved in ${store.dir} (undo with: trustplay restore ${runId})\n`);
  await writeReports(options, collector.report, result.secrets);
  return code;
}
