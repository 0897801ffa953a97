/**
 * Ansible Vault in trustplay: vault-encrypted files and inline `!vault |` values are decrypted in
 * memory, when they are loaded, with the command's passwords; the plaintext is never written to
 * disk and is marked secret (src/secrets/known.ts) so no output shows it. Only `trustplay vault
 * decrypt|view` print or write plaintext, because that is what the user asked for.
 *
 * Loaders call `decryptVaultText` (one value or one whole file) or parse YAML through
 * `parseYamlSource`, which knows the `!vault` tag and whole encrypted files.
 */
import type { ScalarTag } from 'yaml';
import { markSecret } from '../secrets/known.js';
import { parseVaultId, readPasswordFile, VaultError, VaultKeyring, type VaultPassword } from './keyring.js';

export { isVaultText, encryptVault, decryptVault, DEFAULT_VAULT_ID } from './format.js';
export { VaultError, VaultKeyring, parseVaultId } from './keyring.js';

let active = new VaultKeyring();

/** The passwords every later decryption of this process uses (set once by the CLI). */
export function useVaultKeyring(k: VaultKeyring): void {
  active = k;
}

export function vaultKeyring(): VaultKeyring {
  return active;
}

/**
 * Decrypts vault text (an inline value or a whole file) with the command's passwords and marks the
 * plaintext secret. Throws VaultError with a sentence that starts after the subject ("is
 * encrypted for vault id `prod` and ..."): the caller names what and where.
 */
export function decryptVaultText(text: string): string {
  const plain = active.decrypt(text).toString('utf8');
  markSecret(plain);
  return plain;
}

/**
 * The `!vault` YAML tag (`password: !vault |` + `$ANSIBLE_VAULT;...`): resolved to the plaintext
 * as the file is parsed; a value that cannot be decrypted is a located error of that file.
 */
export const vaultTag: ScalarTag = {
  tag: '!vault',
  resolve(str: string, onError: (message: string) => void): string {
    try {
      return decryptVaultText(str);
    } catch (e) {
      if (!(e instanceof VaultError)) throw e;
      onError(`this \`!vault\` value ${e.message}`);
      return '';
    }
  },
};

/** What the vault options of a command say. */
export interface VaultOptions {
  vaultIds?: string[];
  vaultPasswordFiles?: string[];
  askVaultPassword?: boolean;
}

/** The passwords the options name, read (files, scripts) or asked for (prompts), in the order given. */
export async function loadVaultKeyring(o: VaultOptions): Promise<VaultKeyring> {
  const specs = [
    ...(o.vaultPasswordFiles ?? []).map((f) => ({ id: 'default', source: f })),
    ...(o.vaultIds ?? []).map(parseVaultId),
    ...(o.askVaultPassword ? [{ id: 'default', source: 'prompt' }] : []),
  ];
  const passwords: VaultPassword[] = [];
  for (const s of specs) {
    if (s.source === 'prompt') {
      const { promptPassword } = await import('./prompt.js');
      const password = await promptPassword(s.id === 'default' ? 'Vault password: ' : `Vault password (${s.id}): `);
      if (password.length === 0) throw new VaultError('the vault password given at the prompt is empty; nothing ran');
      passwords.push({ id: s.id, password });
    } else passwords.push({ id: s.id, password: readPasswordFile(s.source, s.id) });
  }
  return new VaultKeyring(passwords);
}
