import { afterEach, beforeEach, expect, it } from 'vitest';
import { runStopController } from './cancel.js';

const warnings: Error[] = [];
const onWarning = (w: Error): void => void warnings.push(w);
// Node prints each warning to stderr from its own 'warning' listener: the warning this test makes
// on purpose stays out of the CI log (where it read as a leak), and the listeners come back after.
let printers: ((w: Error) => void)[] = [];
beforeEach(() => {
  printers = process.listeners('warning');
  process.removeAllListeners('warning');
});
afterEach(() => {
  process.off('warning', onWarning);
  for (const p of printers) process.on('warning', p);
});

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
