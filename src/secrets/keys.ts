/**
 * Which keys hold secrets, one list for every format and every check: docker/kubelet config.json
 * (`auth`, `identitytoken`, `registrytoken`), containerd's auth table (`password`, `auth`,
 * `identitytoken`), argument and variable names (`registry_password`, `api_token`).
 */

/** The text printed instead of a secret. */
export const MASK = '********';

/**
 * True when a key's value is a secret. The last word of the key decides (`registry_password`,
 * `identitytoken`, `client_key`, `auth`), so keys that only name or point at secrets are not
 * themselves secret: `imagePullSecrets` / `secrets` (names of pull secrets), `secretName`,
 * `become_password_env` (a variable's name), `token_file` (a path), `auths` (a mapping).
 */
export function isSecretKey(key: string): boolean {
  const words = key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  const last = words.at(-1) ?? '';
  if (words.length === 1 && last === 'auth') return true;
  if (/(password|passwd|passphrase|token|secret)$/.test(last)) return true;
  return (
    /^(private|client|api)?key$/.test(last) &&
    (last !== 'key' || ['private', 'client', 'api'].includes(words.at(-2) ?? ''))
  );
}
