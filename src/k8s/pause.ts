import { setTimeout as delay } from 'node:timers/promises';

/**
 * Waits `ms`, or less when `signal` aborts (then resolves too: the caller checks the signal). The
 * agent's loops wait on one signal for days: a wait leaves no listener on it once over (a listener
 * added per wait and never removed grew without bound, and Node warned after 10).
 */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return signal ? wakeablePause(ms, signal).done : delay(ms);
}

/**
 * Waits `ms`, or until `signal` aborts, or until `wake()` is called: the agent's wait between
 * passes, which a ConfigMap change ends at once. It leaves no listener behind.
 */
export function wakeablePause(ms: number, signal: AbortSignal): { done: Promise<void>; wake: () => void } {
  let wake = (): void => undefined;
  const done = new Promise<void>((resolve) => {
    const finish = (): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', finish);
      resolve();
    };
    const t = setTimeout(finish, ms);
    wake = finish;
    if (signal.aborted) finish();
    else signal.addEventListener('abort', finish, { once: true });
  });
  return { done, wake };
}
