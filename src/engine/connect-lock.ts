/** Connecting a batch's hosts and taking their host locks; releasing them when the run ends. */
import { pool } from './selection.js';
import type { RunState } from './run-state.js';

/**
 * Connects a batch's new hosts in parallel, then hands them to `onConnect` together (the host
 * locks: src/engine/lock.ts takes them in one global order, in parallel while uncontended).
 * A host's failure is kept in `state.connectErrors` and reported when its tasks would start.
 */
export async function connectAndLock(state: RunState, batch: string[]): Promise<void> {
  const { opts, conns, connectErrors } = state;
  const fresh = batch.filter((h) => !state.host(h).connected && !connectErrors.has(h));
  await pool(fresh, opts.forks ?? 50, async (h) => {
    if (state.stopped()) return;
    try {
      await conns.get(h).connect();
      state.host(h).connected = true;
    } catch (e) {
      connectErrors.set(h, e as Error);
    }
  });
  const connected = fresh.filter((h) => state.host(h).connected);
  if (state.stopped() || !opts.onConnect || !connected.length) return;
  for (const [h, e] of await opts.onConnect(connected.map((h) => conns.get(h)))) connectErrors.set(h, e);
}

/** Releases every connected host (its lock) and closes every connection. */
export async function releaseAll(state: RunState): Promise<void> {
  await Promise.allSettled(
    [...state.hosts.values()]
      .filter((h) => h.connected)
      .map(async (h) => {
        await state.opts.onRelease?.(h.name, state.conns.get(h.name));
      }),
  );
  await state.conns.closeAll();
}
