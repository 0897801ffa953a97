import { describe, expect, it } from 'vitest';
import { describeExit } from './exit-codes.js';

describe('describeExit', () => {
  it('explains common codes and signals in words', () => {
    expect(describeExit(127)).toBe('exit 127: command not found');
    expect(describeExit(126)).toMatch(/not executable/);
    expect(describeExit(124)).toMatch(/timed out/);
    expect(describeExit(255)).toMatch(/ssh error/);
    expect(describeExit(137)).toMatch(/^exit 137: killed \(SIGKILL/);
    expect(describeExit(null, 'TERM')).toMatch(/SIGTERM/);
    expect(describeExit(3)).toBe('exit 3: failed');
  });
});
