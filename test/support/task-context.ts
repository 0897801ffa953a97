/** A TaskContext for module unit tests: a local connection, warnings collected, nothing else set. */
import { LocalConnection } from '../../src/connection/index.js';
import type { TaskContext } from '../../src/engine/module.js';

/** A fresh context for `host` (default localhost); `warnings` holds what the module warned. */
export function taskContext(overrides: Partial<TaskContext> = {}): TaskContext & { warnings: string[] } {
  const warnings: string[] = [];
  return {
    conn: new LocalConnection({ host: overrides.host ?? 'localhost' }),
    host: 'localhost',
    vars: {},
    check: false,
    warn: (m) => warnings.push(m),
    fact: () => undefined,
    hostState: new Map(),
    ...overrides,
    warnings,
  };
}
