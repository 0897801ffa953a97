import { describe, expect, it } from 'vitest';
import { decryptVault, encryptVault, isVaultText, parseEnvelope, VaultFormatError } from './format.js';
import { VaultKeyring } from './keyring.js';

const pw = Buffer.from('pw-1');

describe('vault format', () => {
  it('round-trips every padding length, with the 80-column body and the 1.1/1.2 headers', () => {
    for (let n = 0; n <= 33; n++) {
      const plain = Buffer.alloc(n, 0x61 + (n % 26));
      const text = encryptVault(plain, pw, n % 2 ? 'prod' : 'default');
      expect(text.split('\n')[0]).toBe(n % 2 ? '$ANSIBLE_VAULT;1.2;AES256;prod' : '$ANSIBLE_VAULT;1.1;AES256');
      expect(
        text
          .split('\n')
          .slice(1, -2)
          .every((l) => l.length === 80),
      ).toBe(true);
      expect(decryptVault(text, pw).equals(plain)).toBe(true);
    }
  });

  it('a fixed salt gives the same text (the salt is the only randomness)', () => {
    const salt = Buffer.alloc(32, 7);
    expect(encryptVault(Buffer.from('x'), pw, 'default', salt)).toBe(
      encryptVault(Buffer.from('x'), pw, 'default', salt),
    );
  });

  it('a wrong password and a changed ciphertext fail the HMAC, before any decryption', () => {
    const text = encryptVault(Buffer.from('secret'), pw);
    expect(() => decryptVault(text, Buffer.from('pw-2'))).toThrow(VaultFormatError);
    const [header, ...body] = text.trim().split('\n');
    const inner = Buffer.from(body.join(''), 'hex').toString('latin1').split('\n');
    inner[2] = (inner[2]![0] === 'a' ? 'b' : 'a') + inner[2]!.slice(1);
    const changed = [header, Buffer.from(inner.join('\n'), 'latin1').toString('hex')].join('\n');
    expect(() => decryptVault(changed, pw)).toThrow(/HMAC does not match/);
  });

  it('envelopes: whitespace and CRLF tolerated, other versions and ciphers refused', () => {
    const text = encryptVault(Buffer.from('v'), pw, 'lab');
    expect(isVaultText(`  ${text}`)).toBe(true);
    expect(decryptVault(text.replace(/\n/g, '\r\n').replace(/^/gm, '  '), pw).toString()).toBe('v');
    expect(parseEnvelope(text).vaultId).toBe('lab');
    expect(() => parseEnvelope('$ANSIBLE_VAULT;1.0;AES\n00')).toThrow(/1\.0 is not supported/);
    expect(() => parseEnvelope('$ANSIBLE_VAULT;1.1;AES\n00')).toThrow(/`AES` is not supported/);
    expect(() => decryptVault('$ANSIBLE_VAULT;1.1;AES256\nzz', pw)).toThrow(/not hexadecimal/);
  });

  it('the keyring tries the vault id named in the header first, then the others', () => {
    const text = encryptVault(Buffer.from('v'), Buffer.from('prod-pw'), 'prod');
    const k = new VaultKeyring([
      { id: 'dev', password: Buffer.from('dev-pw') },
      { id: 'other', password: Buffer.from('prod-pw') },
    ]);
    // Relabelled (the id is not authenticated): the right password still opens it, as in Ansible.
    expect(k.decrypt(text).toString()).toBe('v');
    expect(() => new VaultKeyring([{ id: 'dev', password: Buffer.from('x') }]).decrypt(text)).toThrow(
      /encrypted for vault id `prod` and no password was given for it/,
    );
    expect(() => new VaultKeyring().decrypt(text)).toThrow(/--vault-id prod@FILE/);
  });
});
