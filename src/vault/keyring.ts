/**
 * The vault passwords of one command, by vault id, and decryption with Ansible's rules for picking
 * one: the password of the id named in a 1.2 header first, then every other password given (the
 * id is an unauthenticated label, so a relabelled file still opens with the right password).
 * Passwords come from `--vault-password-file FILE`, `--vault-id LABEL@FILE`, `--vault-id
 * LABEL@prompt` or `--ask-vault-password`. An executable password file is run, as Ansible runs it
 * (a script the operator named on the command line, never one a playbook names), with `--vault-id
 * LABEL` when its name ends in `-client`.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { DEFAULT_VAULT_ID, decryptVault, encryptVault, parseEnvelope, VaultFormatError } from './format.js';

/** A vault problem in one sentence (exit 3 at the CLI); never carries a password or plaintext. */
export class VaultError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VaultError';
  }
}

/** One password and the vault id it is for. */
export interface VaultPassword {
  id: string;
  password: Buffer;
}

/** Where one password comes from, as given on the command line. */
export interface VaultIdSpec {
  id: string;
  /** A file (read, or run when executable) or `prompt`. */
  source: string;
}

const HOW = 'pass --vault-password-file FILE, --vault-id LABEL@FILE or --ask-vault-password';

/** `LABEL@SOURCE` or `SOURCE` (the default id), as Ansible's `--vault-id` reads it. */
export function parseVaultId(arg: string): VaultIdSpec {
  const at = arg.indexOf('@');
  const id = at < 0 ? DEFAULT_VAULT_ID : arg.slice(0, at);
  const source = at < 0 ? arg : arg.slice(at + 1);
  if (source === '')
    throw new VaultError(`--vault-id \`${arg}\` names no password source: write LABEL@FILE or LABEL@prompt`);
  if (id.includes(';') || /\s/.test(id))
    throw new VaultError(`--vault-id label \`${id}\` may not hold \`;\` or spaces (it goes into the vault header)`);
  return { id: id === '' ? DEFAULT_VAULT_ID : id, source };
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** A password from a file, or from the output of an executable one. */
export function readPasswordFile(file: string, id: string): Buffer {
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new VaultError(
      `vault password file ${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}; give an existing file to --vault-password-file or --vault-id ${id}@FILE`,
    );
  }
  if (!st.isFile())
    throw new VaultError(`vault password file ${file} is not a regular file; give the file that holds the password`);
  let password: Buffer;
  if (isExecutable(file)) {
    const name = basename(file, extname(file));
    const args = name.endsWith('-client') ? ['--vault-id', id] : [];
    try {
      // stderr is the operator's terminal: a script may ask for something there.
      const out = execFileSync(file, args, { stdio: ['inherit', 'pipe', 'inherit'], maxBuffer: 1024 * 1024 });
      password = stripNewlines(out);
    } catch (e) {
      const status = (e as { status?: number | null }).status;
      throw new VaultError(
        `vault password script ${file} failed (${status === undefined || status === null ? (e as Error).message : `exit ${status}`}); run it by hand to see why, or remove its executable bit if it is a plain password file`,
      );
    }
  } else {
    // As Ansible: surrounding whitespace is not part of a password kept in a file.
    password = Buffer.from(readFileSync(file).toString('latin1').trim(), 'latin1');
  }
  if (password.length === 0)
    throw new VaultError(`vault password file ${file} gives an empty password; put the password in it`);
  return password;
}

function stripNewlines(b: Buffer): Buffer {
  let start = 0;
  let end = b.length;
  while (start < end && (b[start] === 0x0a || b[start] === 0x0d)) start++;
  while (end > start && (b[end - 1] === 0x0a || b[end - 1] === 0x0d)) end--;
  return b.subarray(start, end);
}

/** The passwords of one command. */
export class VaultKeyring {
  constructor(readonly passwords: readonly VaultPassword[] = []) {}

  get empty(): boolean {
    return this.passwords.length === 0;
  }

  /**
   * Plaintext of vault text, or a VaultError whose sentence starts after the subject (the caller
   * says what was being decrypted: "`db_password` (inventory.yaml:4:14) ...").
   */
  decrypt(text: string): Buffer {
    let env;
    try {
      env = parseEnvelope(text);
    } catch (e) {
      throw damaged(e);
    }
    const id = env.vaultId;
    if (this.empty)
      throw new VaultError(
        `is vault-encrypted${id ? ` (vault id \`${id}\`)` : ''} and no vault password was given: ${id ? HOW.replace('LABEL@', `${id}@`) : HOW}`,
      );
    const matching = this.passwords.filter((p) => p.id === id);
    const ordered = [...matching, ...this.passwords.filter((p) => p.id !== id)];
    for (const p of ordered) {
      try {
        return decryptVault(text, p.password);
      } catch (e) {
        if (!(e instanceof VaultFormatError) || e.kind !== 'hmac') throw damaged(e);
      }
    }
    const tried = [...new Set(this.passwords.map((p) => `\`${p.id}\``))].join(', ');
    if (id && matching.length === 0)
      throw new VaultError(
        `is encrypted for vault id \`${id}\` and no password was given for it (the passwords of ${tried} do not open it): add --vault-id ${id}@FILE`,
      );
    throw new VaultError(
      `cannot be decrypted with the vault password${this.passwords.length > 1 ? 's' : ''} of ${tried}: the password is wrong or the data was changed (its HMAC does not match); give the password it was encrypted with`,
    );
  }

  /** Encrypts with the password of `vaultId` (default: the first one given). */
  encrypt(plaintext: Buffer, vaultId?: string): string {
    const p = vaultId === undefined ? this.passwords[0] : this.passwords.find((x) => x.id === vaultId);
    if (!p)
      throw new VaultError(
        vaultId === undefined
          ? `encrypting needs a vault password: ${HOW}`
          : `--encrypt-vault-id ${vaultId} names no vault id given with --vault-id (given: ${this.passwords.map((x) => x.id).join(', ') || 'none'})`,
      );
    return encryptVault(plaintext, p.password, p.id);
  }
}

function damaged(e: unknown): VaultError {
  if (e instanceof VaultFormatError)
    return new VaultError(
      e.kind === 'cipher'
        ? `is vault data trustplay cannot read: ${e.message}`
        : `is damaged vault data (${e.message}); restore it from git or encrypt it again`,
    );
  return e as VaultError;
}
