/** Asking for a vault password on the terminal, without echo (as Ansible's `--ask-vault-password`). */
import { VaultError } from './keyring.js';

/** Reads one line from the terminal on stdin with echo off; the prompt goes to stderr. */
export async function promptPassword(prompt: string): Promise<Buffer> {
  const stdin = process.stdin;
  if (!stdin.isTTY)
    throw new VaultError(
      'a vault password prompt needs a terminal on stdin, and there is none (cron, CI, a pipe): give --vault-password-file FILE or --vault-id LABEL@FILE instead',
    );
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  const chars: string[] = [];
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        for (const c of chunk.toString('utf8')) {
          if (c === '\r' || c === '\n') {
            stdin.off('data', onData);
            resolve(Buffer.from(chars.join('').trim(), 'utf8'));
            return;
          }
          if (c === '\u0003' || c === '\u0004') {
            stdin.off('data', onData);
            reject(new VaultError('the vault password prompt was cancelled; nothing ran'));
            return;
          }
          if (c === '\u007f' || c === '\b') chars.pop();
          else chars.push(c);
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}
