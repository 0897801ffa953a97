/**
 * Validation messages name a secret's type, never its value, through the real CLI (validate, check
 * and run): a token given where a mapping belongs, a numeric password, a long string pasted in the
 * wrong place. Neither the message nor the source line shown under it carries the value.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trustplay } from '../support/cli.js';

let dir: string;
const TOKEN = 'TOPSECRET-token-0123456789abcdef';
const INLINE = 'TOPSECRET-inline-0123456789abcdef';
const PASSWORD = '987654321';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustplay-secret-msg-'));
  await writeFile(join(dir, 'inv.yaml'), 'hosts:\n  w1: { address: 127.0.0.11 }\n');
  await writeFile(
    join(dir, 'pb.yaml'),
    [
      '- hosts: all',
      '  tasks:',
      '    - name: token where a mapping belongs',
      '      image.pull.verify:',
      '        image: registry.test/app:1',
      '        auth: "{{ token }}"',
      '    - name: numeric password',
      '      image.pull.verify:',
      '        image: registry.test/app:1',
      `        auth: { username: u, password: ${PASSWORD} }`,
      '    - name: pasted inline',
      '      image.pull.verify:',
      '        image: registry.test/app:1',
      `        auth: ${INLINE}`,
      '',
    ].join('\n'),
  );
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('validation messages', () => {
  it.each(['validate', 'check', 'run'])('%s states the type of a secret, never its value', async (cmd) => {
    const r = await trustplay([cmd, join(dir, 'pb.yaml'), '-i', join(dir, 'inv.yaml'), '-e', `token=${TOKEN}`]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain('pb.yaml:6:15: image.pull.verify: `auth` must be a mapping, not a string\n');
    expect(r.stderr).toContain('pb.yaml:10:40: image.pull.verify: `auth.password` must be a string, not a number\n');
    expect(r.stderr).toContain('pb.yaml:14:15: image.pull.verify: `auth` must be a mapping, not a string\n');
    for (const secret of [TOKEN, INLINE, PASSWORD, 'TOPSECRET']) expect(r.stdout + r.stderr).not.toContain(secret);
  });

  it('a short non-secret value is still quoted, so typos stay easy to spot', async () => {
    await writeFile(
      join(dir, 'enum.yaml'),
      '- hosts: all\n  tasks:\n    - containerd.tls: { registry: r.test, ca: /x.pem, style: hsots }\n',
    );
    const r = await trustplay(['validate', join(dir, 'enum.yaml'), '-i', join(dir, 'inv.yaml')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /`style` must be one of auto, hosts, legacy, not the string "hsots" \(did you mean `hosts`\?\)/,
    );
  });
});
