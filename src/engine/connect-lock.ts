/** Connecting a batch's hosts and taking their host locks; releasing them when the run ends. */
import { pool } from './selection.js';
import type { RunState } from './run-state.js';

/**
 * Connects a batch's new hosts in parallel, then takes their host locks one at a time in one global
 * order (host name). Two runs over overlapping fleets then never each hold a lock the other waits
 * for: taken in parallel, run A held node9 waiting for node2 while run B held node2 waiting for
 * node9, and both waited out --lock-timeout (found by the chaos suite's two concurrent runs).
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
  for (const h of [...fresh].sort()) {
    if (state.stopped() || !state.host(h).connected) continue;
    try {
      await opts.onConnect?.(h, conns.get(h));
    } catch (e) {
      connectErrors.set(h, e as Error);
    }
  }
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
