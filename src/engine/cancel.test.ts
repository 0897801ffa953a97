import { afterEach, expect, it } from 'vitest';
import { runStopController } from './cancel.js';

const warnings: Error[] = [];
const onWarning = (w: Error): void => void warnings.push(w);
afterEach(() => void process.off('warning', onWarning));

it("a fleet's hosts all listening to the run's stop signal is no leak warning on the operator's terminal", async () => {
  process.on('warning', onWarning);
  const { signal } = runStopController();
  const listeners = Array.from({ length: 60 }, () => () => undefined);
  for (const l of listeners) signal.addEventListener('abort', l, { once: true });
  // Node emits the warning on the next tick.
  await new Promise((r) => setImmediate(r));
  expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
  // A plain controller does warn: the test would see it.
  const plain = new AbortController();
  for (const l of listeners) plain.signal.addEventListener('abort', l, { once: true });
  await new Promise((r) => setImmediate(r));
  expect(warnings.map((w) => w.name)).toContain('MaxListenersExceededWarning');
});
