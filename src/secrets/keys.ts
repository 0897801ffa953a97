/**
 * Which keys hold secrets, one list for every format and every check: docker/kubelet config.json
 * (`auth`, `identitytoken`, `registrytoken`), containerd's auth table (`password`, `auth`,
 * `identitytoken`), argument and variable names (`registry_password`, `api_token`).
 */

/** The text printed instead of a secret. */
export const MASK = '********';

// `auth` alone (docker's base64 user:password); `auths` is a mapping of registries, not a secret.
const SECRET_WORD = /password|passwd|passphrase|secret|token|private_?key|client_?key|credential/i;

/** True when a key's value is a secret. */
export function isSecretKey(key: string): boolean {
  return key.toLowerCase() === 'auth' || SECRET_WORD.test(key);
}
