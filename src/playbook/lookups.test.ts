import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SecretSet } from '../secrets/index.js';
import { isKnownSecret } from '../secrets/known.js';
import { encryptVault, useVaultKeyring, VaultKeyring } from '../vault/index.js';
import { interpolate, interpolateString, TemplateError, templateRefs } from './interpolate.js';
import { setLookupBaseDir } from './lookups.js';

const dir = mkdtempSync(join(tmpdir(), 'tp-lookups-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const errorOf = (s: string, vars: Record<string, unknown> = {}): TemplateError => {
  try {
    interpolateString(s, vars);
  } catch (e) {
    if (e instanceof TemplateError) return e;
    throw e;
  }
  throw new Error(`${s} did not fail`);
};

describe("lookup('env') and lookup('file')", () => {
  it('read the environment and files, and what they read is a secret of every run', () => {
    process.env['TP_LOOKUP_TEST'] = 'env-value-4417';
    writeFileSync(join(dir, 'pw'), 'file-value-9902\n\n');
    expect(interpolateString("{{ lookup('env', 'TP_LOOKUP_TEST') }}", {})).toBe('env-value-4417');
    // Trailing whitespace is not part of the value, as in Ansible's file lookup.
    expect(interpolateString(`x={{ lookup("file", "${join(dir, 'pw')}") }}`, {})).toBe('x=file-value-9902');
    // Through a variable whose value is a lookup, as a vars file would hold it.
    expect(interpolate({ a: '{{ pw }}' }, { pw: "{{ lookup('env', 'TP_LOOKUP_TEST') }}" })).toEqual({
      a: 'env-value-4417',
    });
    expect(isKnownSecret('env-value-4417') && isKnownSecret('file-value-9902')).toBe(true);
    const set = new SecretSet();
    expect(set.maskText('pull failed for env-value-4417 / file-value-9902')).toBe(
      'pull failed for ******** / ********',
    );
  });

  it('a file lookup is not templated again, and a vault-encrypted file is decrypted in memory', () => {
    writeFileSync(join(dir, 'tpl'), '{{ not_a_var }}');
    expect(interpolateString(`{{ lookup('file', '${join(dir, 'tpl')}') }}`, {})).toBe('{{ not_a_var }}');
    writeFileSync(join(dir, 'vaulted'), encryptVault(Buffer.from('vaulted-value-3310\n'), Buffer.from('pw')));
    useVaultKeyring(new VaultKeyring([{ id: 'default', password: Buffer.from('pw') }]));
    try {
      expect(interpolateString(`{{ lookup('file', '${join(dir, 'vaulted')}') }}`, {})).toBe('vaulted-value-3310');
    } finally {
      useVaultKeyring(new VaultKeyring());
    }
    expect(isKnownSecret('vaulted-value-3310')).toBe(true);
  });

  it('relative paths read from the playbook directory; without one they are refused', () => {
    writeFileSync(join(dir, 'rel'), 'relative-value');
    setLookupBaseDir(undefined);
    expect(errorOf("{{ lookup('file', 'rel') }}").message).toMatch(/there is no playbook here; give an absolute path/);
    setLookupBaseDir(dir);
    expect(interpolateString("{{ lookup('file', 'rel') }}", {})).toBe('relative-value');
    setLookupBaseDir(undefined);
  });

  it('one sentence for what cannot be read, never "undefined variable"', () => {
    delete process.env['TP_LOOKUP_UNSET'];
    const unset = errorOf("{{ lookup('env', 'TP_LOOKUP_UNSET') }}");
    expect(unset.kind).toBe('lookup');
    expect(unset.message).toMatch(/`TP_LOOKUP_UNSET` is not set for trustplay; export it/);
    expect(errorOf(`{{ lookup('file', '${join(dir, 'missing')}') }}`).message).toMatch(/no such file/);
    expect(errorOf(`{{ lookup('file', '${dir}') }}`).message).toMatch(/is not a regular file/);
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    expect(errorOf(`{{ lookup('file', '${join(dir, 'fifo')}') }}`).message).toMatch(/is not a regular file/);
    writeFileSync(join(dir, 'big'), Buffer.alloc(1024 * 1024 + 1, 0x61));
    expect(errorOf(`{{ lookup('file', '${join(dir, 'big')}') }}`).message).toMatch(/more than the 1 MiB/);
  });

  it('other lookups and malformed calls are syntax errors: no plugins, no code', () => {
    expect(templateRefs("{{ lookup('pipe', 'id') }}")[0]!.valid).toBe(false);
    expect(errorOf("{{ lookup('pipe', 'id') }}").message).toMatch(/lookup `pipe` is not supported/);
    expect(errorOf("{{ lookup('env', X) }}").message).toMatch(/with one quoted argument/);
    expect(errorOf("{{ lookup('env', 'A', 'B') }}").kind).toBe('syntax');
    // A variable named like a lookup is still a variable.
    expect(interpolateString('{{ env }}/{{ lookup }}', { env: 'prod', lookup: 'x' })).toBe('prod/x');
  });
});
