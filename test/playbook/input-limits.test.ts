/**
 * Bounded inputs through the real CLI (issue 13, findings 5 and 6): a template bomb and 2,000-level
 * nesting are refused with exit 3 and a located message; a FIFO or a device given as a playbook is
 * refused instead of hanging; an input over the size limit (configurable) is refused; non-UTF-8
 * input names the offending byte's offset instead of being silently replaced.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { trustplay } from '../support/cli.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tp-input-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// Runs the real CLI several times: slow on a loaded machine.
vi.setConfig({ testTimeout: 90_000 });

const validate = (file: string, env: Record<string, string> = {}) =>
  trustplay(['validate', file], { env, timeoutMs: 60_000 });

describe('inputs that would hang, crash or blow up are refused with exit 3', () => {
  it('a 1 KB template bomb: located error', async () => {
    const vars = Array.from({ length: 10 }, (_, i) => `    v${i}: "${`{{ v${i + 1} }}`.repeat(10)}"`).join('\n');
    const f = join(dir, 'bomb.yaml');
    writeFileSync(
      f,
      `- hosts: localhost\n  vars:\n${vars}\n    v10: "xxxxxxxxxx"\n  tasks:\n    - node.creds.wipe:\n        registry: "{{ v0 }}"\n`,
    );
    const r = await validate(f);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(r.stdout + r.stderr).toContain(`${f}:16:19: node.creds.wipe: \`{{ v5 }}\` expands to more than 1 MiB`);
  });

  it('2,000-level block nesting: located error, no stack trace', async () => {
    const f = join(dir, 'deep.yaml');
    const body = Array.from({ length: 2000 }, (_, i) => `${'  '.repeat(i + 3)}k${i}:`).join('\n');
    writeFileSync(f, `- hosts: localhost\n  vars:\n    a:\n${body} v\n  tasks: []\n`);
    const r = await validate(f);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(r.stdout + r.stderr).toMatch(new RegExp(`${f}:\\d+:\\d+: YAML nests more than 100 levels deep here`));
    expect(r.stdout + r.stderr).not.toMatch(/\n\s+at |RangeError|Maximum call stack/);
  });

  it('a FIFO and a device are refused, not read', async () => {
    const fifo = join(dir, 'pipe.yaml');
    execFileSync('mkfifo', [fifo]);
    const r = await validate(fifo);
    expect(r.code).toBe(3);
    expect(r.stdout + r.stderr).toContain('cannot read playbook: it is a FIFO (named pipe); give a regular file');
    const dev = await validate('/dev/zero');
    expect(dev.code).toBe(3);
    expect(dev.stdout + dev.stderr).toContain('cannot read playbook: it is a device; give a regular file');
    const inv = await trustplay(['validate', join(dir, 'bomb.yaml'), '-i', fifo], { timeoutMs: 60_000 });
    expect(inv.code).toBe(3);
    expect(inv.stdout + inv.stderr).toContain('cannot read inventory: it is a FIFO (named pipe)');
  });

  it('an input over the size limit is refused; the limit is configurable', async () => {
    const f = join(dir, 'big.yaml');
    writeFileSync(f, `- hosts: localhost\n  tasks: []\n# ${'x'.repeat(5000)}\n`);
    const r = await validate(f, { TRUSTPLAY_MAX_INPUT_BYTES: '4096' });
    expect(r.code).toBe(3);
    expect(r.stdout + r.stderr).toMatch(
      /cannot read playbook: it is 5\d{3} bytes, more than the 4096-byte limit .*TRUSTPLAY_MAX_INPUT_BYTES/,
    );
    expect((await validate(f)).code).toBe(0);
  });

  it('non-UTF-8 input names the byte offset', async () => {
    const f = join(dir, 'latin1.yaml');
    writeFileSync(
      f,
      Buffer.concat([
        Buffer.from('- hosts: localhost\n  name: caf'),
        Buffer.from([0xe9]),
        Buffer.from('\n  tasks: []\n'),
      ]),
    );
    const r = await validate(f);
    expect(r.code).toBe(3);
    expect(r.stdout + r.stderr).toContain(`${f}:2:12: playbook is not valid UTF-8: byte 30 (0xe9)`);
  });
});
