/** The engine over the local connection: the same contract as over SSH, on this machine's temp dir. */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LocalConnection } from '../../src/connection/local.js';
import { batches } from '../../src/engine/run.js';
import { evaluateWhen } from '../../src/engine/when.js';
import { parseInventory } from '../../src/playbook/inventory.js';
import { inventoryFrom, runText } from '../support/engine-harness.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustplay-local-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const inv = () =>
  inventoryFrom(
    `vars: { dir: ${dir} }\nhosts:\n  l1: { connection: local }\n  l2: { connection: local }\n  l3: { connection: local }\ngroups:\n  canary: { hosts: [l1] }\n`,
  );
const sha = async (p: string) =>
  createHash('sha256')
    .update(await readFile(p))
    .digest('hex');

describe('engine over the local connection', () => {
  it('applies, converges, and reports ok the second time', async () => {
    const pb = `- hosts: all\n  tasks:\n    - test.file: { path: "{{ dir }}/{{ inventory_hostname }}.txt", content: "x" }\n`;
    const a = await runText(pb, inv());
    expect(a.exitCode).toBe(0);
    expect(Object.values(a.result.recap).map((r) => r.changed)).toEqual([1, 1, 1]);
    const b = await runText(pb, inv());
    expect(Object.values(b.result.recap).map((r) => [r.ok, r.changed])).toEqual([
      [1, 0],
      [1, 0],
      [1, 0],
    ]);
  });

  it('check mode writes nothing; a failed verification is drift (2), a failed task is failure (1)', async () => {
    const before = await sha(join(dir, 'l1.txt'));
    const pb = `- hosts: all\n  tasks:\n    - test.file: { path: "{{ dir }}/{{ inventory_hostname }}.txt", content: "y" }\n    - test.verify: { path: "{{ dir }}/missing" }\n`;
    const c = await runText(pb, inv(), { check: true });
    expect(c.exitCode).toBe(2);
    expect(await sha(join(dir, 'l1.txt'))).toBe(before);
    const r = await runText(pb.replace('content: "y"', 'content: "x"'), inv());
    expect(r.exitCode).toBe(1);
    expect(r.text).toMatch(/FAILED \(verify\)/);
  });

  it('honours tags, when, run_once, ignore_errors and max_fail_percentage', async () => {
    const pb = `
- hosts: all
  max_fail_percentage: 30
  tasks:
    - test.file: { path: "{{ dir }}/t-{{ inventory_hostname }}", content: "t" }
      tags: [files]
    - test.file: { path: "{{ dir }}/untagged-{{ inventory_hostname }}", content: "u" }
    - test.file: { path: "{{ dir }}/once", content: "{{ inventory_hostname }}" }
      run_once: true
      tags: [files]
    - test.fail: { message: ignored }
      ignore_errors: true
      tags: [files]
    - test.fail: { message: "canary broke" }
      when: "'canary' in group_names"
      tags: [files]
- hosts: all
  tasks:
    - test.file: { path: "{{ dir }}/second-play", content: "never" }
`;
    const r = await runText(pb, inv(), { tags: ['files'] });
    expect(r.exitCode).toBe(1);
    expect(r.result.aborted).toMatch(/1 of 3 hosts failed .*max_fail_percentage 30%/);
    expect(await readFile(join(dir, 'once'), 'utf8')).toBe('l1');
    await expect(readFile(join(dir, 'untagged-l1'))).rejects.toThrow();
    await expect(readFile(join(dir, 'second-play'))).rejects.toThrow();
    expect(r.result.recap['l2']).toMatchObject({ ignored: 1, failed: 0, skipped: 2 });
  });

  it("an Ansible inventory's YAML 1.1 and INI values are tested by when: as Ansible tests them", async () => {
    // What ansible-playbook 2.14 did with the same inventories and conditions: in YAML, `no` and
    // `OFF` are false, `Yes` true, `0755` is 493; in INI, `no` is the string "no" (true), `False`
    // is false and `0755` the string "0755".
    const yaml = inventoryFrom(
      `all:\n  vars: { dir: ${dir} }\n  hosts:\n    y1: { ansible_connection: local, flag_no: no, flag_yes: Yes, flag_off: OFF, mode: 0755 }\n`,
    );
    const ini = parseInventory(
      'inventory.ini',
      `i1 ansible_connection=local flag_no=no flag_yes=yes flag_off=False mode=0755\n[all:vars]\ndir=${dir}\n`,
      'ini',
    ).inventory!;
    const names = ['flag_no', 'flag_yes', 'flag_off', 'mode == 493'];
    const pb = `- hosts: all\n  tasks:\n${names
      .map(
        (c, i) =>
          `    - test.file: { path: "{{ dir }}/when-{{ inventory_hostname }}-${i}", content: "x" }\n      when: ${c}\n`,
      )
      .join('')}`;
    const ran = async (host: string) => {
      const out: string[] = [];
      for (const [i, c] of names.entries())
        if (
          await readFile(join(dir, `when-${host}-${i}`)).then(
            () => true,
            () => false,
          )
        )
          out.push(c);
      return out;
    };
    expect((await runText(pb, yaml)).exitCode).toBe(0);
    expect(await ran('y1')).toEqual(['flag_yes', 'mode == 493']);
    expect((await runText(pb, ini)).exitCode).toBe(0);
    expect(await ran('i1')).toEqual(['flag_no', 'flag_yes']);
  });

  it('reads a later task’s files with the host’s first read, and never answers from it after a change', async () => {
    const exec = vi.spyOn(LocalConnection.prototype, 'exec');
    try {
      const pb = (a: string, b: string) =>
        `- hosts: all\n  tasks:\n` +
        `    - test.readahead: { path: "{{ dir }}/ra-a-{{ inventory_hostname }}", content: "${a}" }\n` +
        `    - test.readahead: { path: "{{ dir }}/ra-b-{{ inventory_hostname }}", content: "${b}" }\n` +
        // Reads what the first task writes: after that change it must see the new content.
        `    - test.readahead: { path: "{{ dir }}/ra-a-{{ inventory_hostname }}", content: "${a}" }\n`;
      const first = await runText(pb('1', '1'), inv());
      expect(first.exitCode).toBe(0);
      expect(Object.values(first.result.recap).map((r) => [r.changed, r.ok])).toEqual([
        [2, 1],
        [2, 1],
        [2, 1],
      ]);
      // Converged: one read per host for its three tasks (each read on its own: three).
      exec.mockClear();
      const again = await runText(pb('1', '1'), inv());
      expect(Object.values(again.result.recap).map((r) => [r.changed, r.ok])).toEqual([
        [0, 3],
        [0, 3],
        [0, 3],
      ]);
      expect(exec.mock.calls.length).toBe(3);
      // A change by the first task: the tasks after it read the host again, and see it.
      const changed = await runText(pb('2', '1'), inv());
      expect(Object.values(changed.result.recap).map((r) => [r.changed, r.ok])).toEqual([
        [1, 2],
        [1, 2],
        [1, 2],
      ]);
      expect(await readFile(join(dir, 'ra-a-l1'), 'utf8')).toBe('2');
      // A change by the second task, of another file: the third task's read is still answered from
      // the first. Per host: the first read, and the snapshot's read before the write.
      exec.mockClear();
      const other = await runText(pb('2', '2'), inv());
      expect(Object.values(other.result.recap).map((r) => [r.changed, r.ok])).toEqual([
        [1, 2],
        [1, 2],
        [1, 2],
      ]);
      expect(exec.mock.calls.length).toBe(6);
      // Check mode changes nothing: answered from the first read, and the same verdicts.
      exec.mockClear();
      const check = await runText(pb('3', '2'), inv(), { check: true });
      expect(check.exitCode).toBe(2);
      expect(Object.values(check.result.recap).map((r) => r.changed)).toEqual([2, 2, 2]);
      expect(exec.mock.calls.length).toBe(3);
    } finally {
      exec.mockRestore();
    }
  });

  it('reports an undefined variable at run time as a failed task, not a crash', async () => {
    const pb = `- hosts: all\n  tasks:\n    - test.file: { path: "{{ dir }}/w", content: "x" }\n      when: nope == 1\n`;
    const r = await runText(pb, inv());
    expect(r.exitCode).toBe(1);
    expect(r.text).toMatch(/undefined variable `nope`/);
  });
});

describe('serial batches', () => {
  it.each([
    [undefined, [[1, 2, 3, 4, 5]]],
    [2, [[1, 2], [3, 4], [5]]],
    ['40%', [[1, 2], [3, 4], [5]]],
    ['10%', [[1], [2], [3], [4], [5]]],
    [
      [1, '50%'],
      [[1], [2, 3], [4, 5]],
    ],
  ])('%s', (serial, expected) => {
    expect(batches(['1', '2', '3', '4', '5'], serial as never).map((b) => b.map(Number))).toEqual(expected);
  });
});

describe('when expressions', () => {
  const vars = { a: 'x', n: 3, list: ['p', 'q'], flag: false, nested: { k: 'v' } };
  it.each([
    ['a == "x"', true],
    ["a != 'x'", false],
    ['n == 3', true],
    ['flag', false],
    ['not flag', true],
    ['"p" in list', true],
    ['"z" not in list', true],
    ['nested.k == "v" and n == 3', true],
    ['flag or (a == "x" and not flag)', true],
    ['missing is defined', false],
    ['missing is not defined', true],
    ['a is defined', true],
  ])('%s', (expr, expected) => {
    expect(evaluateWhen(expr, vars)).toBe(expected);
  });
  it('refuses code and undefined variables with a sentence', () => {
    expect(() => evaluateWhen('missing == 1', vars)).toThrow(/undefined variable `missing`/);
    expect(() => evaluateWhen('a; rm -rf /', vars)).toThrow(/cannot read/);
    expect(() => evaluateWhen('a == ', vars)).toThrow(/unexpected end/);
  });
});

describe('handlers in check mode', () => {
  it('are reported as "would run" without gathering the state the change would create', async () => {
    const pb = `
- hosts: l1
  tasks:
    - test.file: { path: "{{ dir }}/h-check.txt", content: "new" }
      notify: verify it
  handlers:
    - name: verify it
      test.verify: { path: "{{ dir }}/h-check.txt" }
`;
    const r = await runText(pb, inv(), { check: true });
    expect(r.exitCode).toBe(2);
    expect(r.text).toMatch(/l1 \| would change \| handler: verify it\n\s+\|\s+would run \(notified by: test.file\)/);
    expect(r.result.recap['l1']).toMatchObject({ failed: 0, changed: 2 });
  });
});
