/**
 * Running a playbook from the CLI, shared by `run`, `check` and `restore`: the reporter, the run's
 * snapshot, a lock per host, the report files, and the engine's outcome as the closing line and
 * the exit code.
 */
import { join } from 'node:path';
import { hostname, userInfo } from 'node:os';
import type { Inventory } from '../playbook/inventory.js';
import type { Playbook } from '../playbook/playbook.js';
import type { ModuleRegistry, RunOptions, RunResult } from '../engine/run.js';
import type { Options } from './options.js';

export interface Execution {
  playbook: Playbook;
  inventory: Inventory;
  playHosts: string[][];
  modules: ModuleRegistry;
  check: boolean;
  /** What the snapshot records as the command, e.g. `run playbooks/fix-registry.yaml`. */
  command: string;
  /** Inventory path recorded in the snapshot (restore reuses it). */
  inventoryPath?: string;
  /** The closing hint after a snapshot was saved, e.g. "undo with". */
  undoWords?: string;
  /**
   * Prints the run's result itself, in human and json format, instead of the format's reporter
   * (`trustplay facts`); jsonl keeps the event stream, and reports and the closing line stay.
   */
  present?: (result: RunResult) => string;
  /** How hosts are reached, when not from the inventory (`trustplay agent`: its node, rooted at /host). */
  connectionFactory?: RunOptions['connectionFactory'];
  /** Tasks left to someone else (`trustplay agent`: k8s.sa.clear off the fleet leader). */
  skipTask?: RunOptions['skipTask'];
}

export async function executePlaybook(x: Execution, options: Options): Promise<number> {
  const [
    { runPlaybook, newRunId },
    { makeReporter },
    { SnapshotStore, RunSnapshot },
    { writeReports },
    { readServiceAccountForSnapshot },
    { acquireHostLocks },
    { Interrupted, signalExitCode, runStopController },
    { printOutcome },
  ] = await Promise.all([
    import('../engine/run.js'),
    import('./reporter.js'),
    import('../snapshots/store.js'),
    import('./reports.js'),
    import('../snapshots/readers.js'),
    import('../engine/lock.js'),
    import('../engine/cancel.js'),
    import('./outcome.js'),
  ]);
  const present = options.format === 'jsonl' ? undefined : x.present;
  const { reporter, collector } = makeReporter(options, present !== undefined);
  const runId = newRunId();
  const store = new SnapshotStore(options.stateDir, options.snapshotKey ? { keyFile: options.snapshotKey } : {});
  const snapshot = new RunSnapshot(
    store,
    {
      runId,
      command: x.command,
      playbook: { path: x.playbook.file, digest: x.playbook.digest },
      ...(x.inventoryPath ? { inventory: x.inventoryPath } : {}),
    },
    readServiceAccountForSnapshot,
  );
  const releases = new Map<string, () => Promise<void>>();
  const owner = `${userInfo().username}@${hostname()} pid ${process.pid}`;
  // Ctrl-C / SIGTERM: the first stops the run in order (no new change; changes in flight and their
  // restarts finish or roll back; locks released; the snapshot completed and marked interrupted).
  // A second within 2 s stops at once: every write is atomic (temp file and rename), so no file is
  // left half-written, and each node drops our lock when the connection ends.
  const cancel = runStopController();
  let lastSignal = 0;
  const onSignal = (sig: 'SIGINT' | 'SIGTERM'): void => {
    const now = Date.now();
    if (!cancel.signal.aborted) {
      lastSignal = now;
      cancel.abort(new Interrupted(sig));
      process.stderr.write(
        `\n${sig}: stopping — no new change starts; CRI calls in flight (a long pull) are cancelled; changes in flight and the containerd restarts they need finish or roll back. Send it again within 2 s to stop at once.\n`,
      );
      return;
    }
    if (now - lastSignal > 2000) {
      lastSignal = now;
      process.stderr.write(
        `${sig}: still finishing the changes in flight; send it again within 2 s to stop at once.\n`,
      );
      return;
    }
    process.stderr.write(
      `${sig}: stopping at once; a change in flight may be left unfinished (its snapshot ${runId} is marked interrupted: the next run finishes it, or undo with trustplay restore ${runId}).\n`,
    );
    const code = signalExitCode(sig);
    const timer = setTimeout(() => process.exit(code), 1000);
    void snapshot.complete(sig).finally(() => {
      clearTimeout(timer);
      process.exit(code);
    });
  };
  const onInt = () => onSignal('SIGINT');
  const onTerm = () => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const note = (host: string, waiting: boolean) => (message: string) =>
    reporter.event({ type: 'host-note', host, message, ...(waiting ? { waiting } : {}) });
  // containerd's version per host and binary, kept between runs (src/containerd/facts.ts): a cache
  // only, so an unreadable or unwritable file costs a `containerd --version` per host, nothing else.
  // Signed with the snapshot key, read and never created here: the key is made by the first run
  // that saves a snapshot (README), so until one has, there is no cache. A key problem is the
  // snapshot code's to report.
  const [versions, keys] = await Promise.all([import('../containerd/facts.js'), import('../snapshots/key.js')]);
  const versionsFile = join(store.dir, 'cache', 'containerd-versions.json');
  const versionsMac = async (): Promise<((doc: unknown) => string) | undefined> => {
    const key = await keys.readSnapshotKey(store.keyFile).catch(() => undefined);
    return key ? (doc: unknown) => keys.macOf(key, doc) : undefined;
  };
  const loadMac = await versionsMac();
  if (loadMac) await versions.loadContainerdVersions(versionsFile, loadMac);
  const result = await runPlaybook({
    playbook: x.playbook,
    inventory: x.inventory,
    playHosts: x.playHosts,
    modules: x.modules,
    reporter,
    check: x.check,
    detailedExitcode: options.detailedExitcode,
    diff: options.diff,
    forks: options.forks,
    extraVars: options.extraVars,
    acceptNewHostKeys: options.acceptNewHostKeys,
    ...(options.expiryWarningDays !== undefined ? { expiryWarningDays: options.expiryWarningDays } : {}),
    runId,
    ...(x.skipTask !== undefined ? { skipTask: x.skipTask } : {}),
    onConnect: async (conns) => {
      const locks = await acquireHostLocks(
        conns.map((conn) => ({
          conn,
          options: {
            runId,
            owner,
            timeoutMs: options.lockTimeout * 1000,
            signal: cancel.signal,
            onWait: note(conn.host, true),
            onNotice: note(conn.host, false),
          },
        })),
      );
      const failed = new Map<string, Error>();
      for (const [host, lock] of locks) {
        if (lock instanceof Error) failed.set(host, lock);
        else releases.set(host, lock);
      }
      return failed;
    },
    onRelease: async (host) => {
      await releases.get(host)?.();
    },
    ...(x.check ? {} : { snapshot }),
    ...(x.connectionFactory ? { connectionFactory: x.connectionFactory } : {}),
    signal: cancel.signal,
    ...(options.tags ? { tags: options.tags } : {}),
    ...(options.skipTags ? { skipTags: options.skipTags } : {}),
  });
  await snapshot.complete(result.interrupted?.signal);
  // The key again: this run's first snapshot may have created it.
  const saveMac = loadMac ?? (await versionsMac());
  if (saveMac) await versions.saveContainerdVersions(versionsFile, saveMac).catch(() => undefined);
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);
  await reporter.close?.();
  if (present) process.stdout.write(present(result));
  if (snapshot.exists && options.format === 'human') {
    // The hint is a command to paste: it must find the snapshot where this run put it.
    const { quoteArgv } = await import('../connection/shell-quote.js');
    const undo = quoteArgv([
      'trustplay',
      'restore',
      runId,
      ...(options.stateDir !== undefined ? ['--state-dir', options.stateDir] : []),
    ]);
    process.stderr.write(`snapshot ${runId} saved in ${store.dir} (${x.undoWords ?? 'undo with'}: ${undo})\n`);
  }
  await writeReports(options, collector.report);
  await printOutcome(result.outcome, options, result.durationMs);
  return result.outcome.code;
}
