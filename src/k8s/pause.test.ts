import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { pause, wakeablePause } from './pause.js';

describe('pause', () => {
  it('leaves no abort listener behind, however many waits share one signal', async () => {
    const c = new AbortController();
    for (let i = 0; i < 25; i++) await pause(1, c.signal);
    expect(getEventListeners(c.signal, 'abort')).toHaveLength(0);
  });

  it('ends early, without throwing, when the signal aborts', async () => {
    const c = new AbortController();
    const started = Date.now();
    const waiting = pause(60_000, c.signal);
    setTimeout(() => c.abort(), 10);
    await waiting;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(getEventListeners(c.signal, 'abort')).toHaveLength(0);
    // Already aborted: returns at once.
    await pause(60_000, c.signal);
  });

  it('wakeablePause ends at its time, at wake() or at abort, leaving no listener', async () => {
    const c = new AbortController();
    for (let i = 0; i < 12; i++) await wakeablePause(1, c.signal).done;
    const woken = wakeablePause(60_000, c.signal);
    woken.wake();
    await woken.done;
    expect(getEventListeners(c.signal, 'abort')).toHaveLength(0);
    const aborted = wakeablePause(60_000, c.signal);
    expect(getEventListeners(c.signal, 'abort')).toHaveLength(1);
    c.abort();
    await aborted.done;
    expect(getEventListeners(c.signal, 'abort')).toHaveLength(0);
  });
});
