/**
 * Ansible Vault's format (`$ANSIBLE_VAULT;1.1;AES256` and `;1.2;AES256;LABEL`), read and written
 * with Node's crypto only, byte-compatible with `ansible-vault`:
 *
 * - the key material is PBKDF2-HMAC-SHA256(password, 32-byte random salt, 10,000 iterations, 80
 *   bytes): 32 bytes of AES-256 key, 32 of HMAC-SHA256 key, 16 of initial CTR counter block;
 * - the plaintext is PKCS#7-padded to the AES block and encrypted with AES-256-CTR; the HMAC covers
 *   the ciphertext (encrypt-then-MAC), and is checked in constant time before anything is decrypted;
 * - the body is hex(hex(salt) "\n" hex(hmac) "\n" hex(ciphertext)), cut into 80-character lines
 *   under the header. The vault id in a 1.2 header is a label to pick the password by: it is not
 *   authenticated (as in Ansible), so it never decides whether data is trusted, only which password
 *   is tried first.
 */
import { createCipheriv, createDecipheriv, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export const VAULT_HEADER = '$ANSIBLE_VAULT';
const ITERATIONS = 10_000;
const KEY_BYTES = 32;
const IV_BYTES = 16;
const SALT_BYTES = 32;
const BLOCK = 16;
const LINE = 80;
/** A vault id Ansible writes no label for (format 1.1). */
export const DEFAULT_VAULT_ID = 'default';

/** Why vault data could not be read: `format` (not vault data, damaged), `hmac` (wrong password or tampered). */
export class VaultFormatError extends Error {
  constructor(
    message: string,
    readonly kind: 'format' | 'hmac' | 'cipher',
  ) {
    super(message);
    this.name = 'VaultFormatError';
  }
}

/** True when text is vault data (its first non-blank characters are the vault header). */
export function isVaultText(text: string): boolean {
  return text.trimStart().startsWith(VAULT_HEADER);
}

/** The parts of a vault envelope: format version, cipher, vault id (1.2 only), and the hex body. */
export interface VaultEnvelope {
  version: string;
  cipher: string;
  vaultId?: string;
  body: string;
}

export function parseEnvelope(text: string): VaultEnvelope {
  const lines = text.trim().split(/\r?\n/);
  const header = (lines[0] ?? '').trim().split(';');
  if (header[0] !== VAULT_HEADER || header.length < 3)
    throw new VaultFormatError('it does not start with an `$ANSIBLE_VAULT;VERSION;CIPHER` header', 'format');
  const [, version, cipher, vaultId] = header.map((s) => s.trim());
  if (version !== '1.1' && version !== '1.2')
    throw new VaultFormatError(`vault format ${version} is not supported (1.1 and 1.2 are)`, 'format');
  if (cipher !== 'AES256')
    throw new VaultFormatError(
      `cipher \`${cipher}\` is not supported (AES256 is; re-key the file with ansible-vault rekey)`,
      'cipher',
    );
  const body = lines
    .slice(1)
    .map((l) => l.trim())
    .join('');
  return { version, cipher, ...(vaultId ? { vaultId } : {}), body };
}

function unhex(s: string, what: string): Buffer {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s))
    throw new VaultFormatError(`its ${what} is not hexadecimal (the text was cut or edited)`, 'format');
  return Buffer.from(s, 'hex');
}

function derive(password: Buffer, salt: Buffer): { aesKey: Buffer; hmacKey: Buffer; iv: Buffer } {
  const m = pbkdf2Sync(password, salt, ITERATIONS, 2 * KEY_BYTES + IV_BYTES, 'sha256');
  return {
    aesKey: m.subarray(0, KEY_BYTES),
    hmacKey: m.subarray(KEY_BYTES, 2 * KEY_BYTES),
    iv: m.subarray(2 * KEY_BYTES),
  };
}

/** Decrypts vault text with one password; throws VaultFormatError (`hmac` for a wrong password or tampered data). */
export function decryptVault(text: string, password: Buffer): Buffer {
  const env = parseEnvelope(text);
  const inner = unhex(env.body, 'body').toString('latin1').split('\n');
  if (inner.length !== 3)
    throw new VaultFormatError('its body does not hold a salt, an HMAC and a ciphertext', 'format');
  const salt = unhex(inner[0]!, 'salt');
  const mac = unhex(inner[1]!, 'HMAC');
  const ciphertext = unhex(inner[2]!, 'ciphertext');
  const { aesKey, hmacKey, iv } = derive(password, salt);
  const expected = createHmac('sha256', hmacKey).update(ciphertext).digest();
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected))
    throw new VaultFormatError('the HMAC does not match', 'hmac');
  const d = createDecipheriv('aes-256-ctr', aesKey, iv);
  const padded = Buffer.concat([d.update(ciphertext), d.final()]);
  const pad = padded[padded.length - 1] ?? 0;
  if (pad < 1 || pad > BLOCK || pad > padded.length || !padded.subarray(padded.length - pad).every((b) => b === pad))
    throw new VaultFormatError('its padding is damaged', 'format');
  return padded.subarray(0, padded.length - pad);
}

/**
 * Encrypts plaintext as `ansible-vault encrypt` does: format 1.1 for the default vault id, 1.2 with
 * the label for any other. `salt` is for tests only (a fixed salt makes the output reproducible).
 */
export function encryptVault(plaintext: Buffer, password: Buffer, vaultId = DEFAULT_VAULT_ID, salt?: Buffer): string {
  if (password.length === 0) throw new VaultFormatError('an empty vault password cannot encrypt', 'format');
  const s = salt ?? randomBytes(SALT_BYTES);
  const { aesKey, hmacKey, iv } = derive(password, s);
  const pad = BLOCK - (plaintext.length % BLOCK);
  const c = createCipheriv('aes-256-ctr', aesKey, iv);
  const ciphertext = Buffer.concat([c.update(plaintext), c.update(Buffer.alloc(pad, pad)), c.final()]);
  const mac = createHmac('sha256', hmacKey).update(ciphertext).digest();
  const body = Buffer.from(
    `${s.toString('hex')}\n${mac.toString('hex')}\n${ciphertext.toString('hex')}`,
    'latin1',
  ).toString('hex');
  const labelled = vaultId !== '' && vaultId !== DEFAULT_VAULT_ID;
  const header = labelled ? `${VAULT_HEADER};1.2;AES256;${vaultId}` : `${VAULT_HEADER};1.1;AES256`;
  const lines = [header];
  for (let i = 0; i < body.length; i += LINE) lines.push(body.slice(i, i + LINE));
  return lines.join('\n') + '\n';
}
