/**
 * Masking for diffs of files a snapshot restores (credential files, config.toml with auth, client
 * keys): values of secret-looking keys and private-key blocks become `********`. Only for display;
 * the bytes written are the snapshot's, untouched.
 */
const MASK = '********';
// A quoted value after a key whose name says it is a secret, in JSON (`"auth": "..."`) or TOML (`password = '...'`).
const SECRET_VALUE =
  /((["']?)[\w.-]*(?:auth|password|passwd|token|secret)[\w.-]*\2\s*[:=]\s*)(["'])((?:\\.|(?!\3).)*)\3/gi;
const PRIVATE_KEY = /(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----)/g;

/** Text of a file for a diff: secrets masked, binary content summarised. */
export function maskedText(content: Buffer | null): string {
  if (content === null) return '(absent)\n';
  if (content.includes(0)) return `(binary, ${content.length} bytes)\n`;
  return content
    .toString('utf8')
    .replace(PRIVATE_KEY, `$1\n${MASK}\n$2`)
    .replace(SECRET_VALUE, (_m, head: string, _kq: string, q: string, value: string) =>
      value === '' ? `${head}${q}${q}` : `${head}${q}${MASK}${q}`,
    );
}
