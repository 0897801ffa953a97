import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkHostKey,
  entriesForHosts,
  entryMatches,
  fingerprint,
  hostPattern,
  keyTypeOf,
  loadKnownHosts,
  parseKnownHosts,
  preferredHostKeyAlgorithms,
} from './known-hosts.js';

function blob(type: string, body = randomBytes(32)): Buffer {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  return Buffer.concat([len, t, body]);
}

const ed = blob('ssh-ed25519');
const ed2 = blob('ssh-ed25519');
const rsa = blob('ssh-rsa');

function hashed(host: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(host).digest('base64')}`;
}

describe('known_hosts', () => {
  it('parses plain, hashed, marked and malformed lines', () => {
    const text = [
      '# comment',
      '',
      `node1,10.0.0.1 ssh-ed25519 ${ed.toString('base64')} root@node1`,
      `${hashed('[10.0.0.2]:2222')} ssh-rsa ${rsa.toString('base64')}`,
      `@revoked * ssh-ed25519 ${ed2.toString('base64')}`,
      `@cert-authority *.example ssh-ed25519 ${ed.toString('base64')}`,
      'garbage',
      `node3 ssh-rsa ${ed.toString('base64')}`,
    ].join('\n');
    const { entries, notes } = parseKnownHosts(text, 'kh');
    expect(entries.map((e) => [e.line, e.marker ?? '', e.keyType])).toEqual([
      [3, '', 'ssh-ed25519'],
      [4, '', 'ssh-rsa'],
      [5, 'revoked', 'ssh-ed25519'],
    ]);
    expect(notes).toHaveLength(3);
    expect(notes.join('\n')).toMatch(/kh:6: @cert-authority/);
    expect(notes.join('\n')).toMatch(/kh:8: key does not decode as ssh-rsa/);
  });

  it('matches host lists, [host]:port, wildcards, negation and hashes like OpenSSH', () => {
    const e = (hosts: string) => ({ file: 'f', line: 1, hosts, keyType: 'ssh-ed25519', key: ed });
    expect(hostPattern('10.0.0.1')).toBe('10.0.0.1');
    expect(hostPattern('10.0.0.1', 2222)).toBe('[10.0.0.1]:2222');
    expect(entryMatches(e('a,10.0.0.1'), '10.0.0.1')).toBe(true);
    expect(entryMatches(e('10.0.0.1'), '[10.0.0.1]:2222')).toBe(false);
    expect(entryMatches(e('[10.0.0.1]:2222'), '[10.0.0.1]:2222')).toBe(true);
    expect(entryMatches(e('10.0.0.*,!10.0.0.9'), '10.0.0.5')).toBe(true);
    expect(entryMatches(e('10.0.0.*,!10.0.0.9'), '10.0.0.9')).toBe(false);
    expect(entryMatches(e('node?'), 'NODE1')).toBe(true);
    expect(entryMatches(e(hashed('[10.0.0.2]:2222')), '[10.0.0.2]:2222')).toBe(true);
    expect(entryMatches(e(hashed('[10.0.0.2]:2222')), '10.0.0.2')).toBe(false);
  });

  it('tells trusted, changed, unknown and revoked apart', () => {
    const { entries } = parseKnownHosts(
      [
        `h1 ssh-ed25519 ${ed.toString('base64')}`,
        `h2 ssh-rsa ${rsa.toString('base64')}`,
        `@revoked * ssh-ed25519 ${ed2.toString('base64')}`,
      ].join('\n'),
      'kh',
    );
    expect(checkHostKey(entries, ['h1'], ed).status).toBe('trusted');
    expect(checkHostKey(entries, ['h3'], ed2).status).toBe('revoked');
    const other = blob('ssh-ed25519');
    const changed = checkHostKey(entries, ['h1'], other);
    expect(changed.status).toBe('changed');
    expect(changed.status === 'changed' && changed.entry.line).toBe(1);
    // A key-type switch (pinned ssh-rsa, now offering only ed25519) is a changed key, not a new one.
    const switched = checkHostKey(entries, ['h2'], other);
    expect(switched.status).toBe('changed');
    expect(switched.status === 'changed' && switched.entry.keyType).toBe('ssh-rsa');
    expect(checkHostKey(entries, ['h9'], other)).toEqual({ status: 'unknown' });
    expect(
      preferredHostKeyAlgorithms(entries, ['h2'], ['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']),
    ).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ssh-ed25519']);
  });

  it("finds a host's lines by name as matching every line would: plain, lists, case, wildcards, negation, hashes", () => {
    const names = ['node1', 'NODE2', '10.0.0.3', '[10.0.0.4]:2222', 'web.example', 'db.example'];
    const patterns = [
      ...names,
      'node1,10.0.0.1',
      'Node1',
      'node?',
      '*.example',
      '*.example,!db.example',
      '10.0.0.*',
      '[10.0.0.4]:*',
      hashed('node1'),
      hashed('[10.0.0.4]:2222'),
      'other',
    ];
    const lines: string[] = [];
    // A seeded mix of 300 lines (marked ones too): the index must give the filter's answer, in order.
    let seed = 7;
    const next = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 300; i++) {
      const marker = next(10) === 0 ? '@revoked ' : '';
      lines.push(`${marker}${patterns[next(patterns.length)]!} ssh-ed25519 ${blob('ssh-ed25519').toString('base64')}`);
    }
    const { entries } = parseKnownHosts(lines.join('\n'), 'kh');
    for (const hosts of [...names.map((n) => [n]), ['node1', '10.0.0.3'], ['NODE1'], ['absent'], []]) {
      const expected = entries.filter((e) => e.marker === undefined && hosts.some((h) => entryMatches(e, h)));
      expect(entriesForHosts(entries, hosts).map((e) => e.line)).toEqual(expected.map((e) => e.line));
    }
    expect(entriesForHosts(entries, ['node1']).length).toBeGreaterThan(10);
  });

  it('loads unchanged files once: the same answer object until a file changes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tp-kh-'));
    try {
      const file = join(dir, 'known_hosts');
      writeFileSync(file, `h1 ssh-ed25519 ${ed.toString('base64')}\n`);
      const [a, b] = await Promise.all([loadKnownHosts([file]), loadKnownHosts([file])]);
      expect(b).toBe(a);
      expect(await loadKnownHosts([file])).toBe(a);
      writeFileSync(file, `h1 ssh-ed25519 ${ed.toString('base64')}\nh2 ssh-rsa ${rsa.toString('base64')}\n`);
      const c = await loadKnownHosts([file, join(dir, 'missing')]);
      expect(c.entries.map((e) => e.hosts)).toEqual(['h1', 'h2']);
      expect(checkHostKey(c.entries, ['h2'], rsa).status).toBe('trusted');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fingerprints in OpenSSH format and reads key types', () => {
    expect(fingerprint(ed)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(keyTypeOf(rsa)).toBe('ssh-rsa');
    expect(keyTypeOf(Buffer.from([0, 0]))).toBe('unknown');
  });
});
