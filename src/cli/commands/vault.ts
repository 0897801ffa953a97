/**
 * `trustplay vault encrypt|decrypt|view FILE...` and `vault encrypt_string [STRING] --name VAR`:
 * Ansible Vault files and values that `ansible-vault` reads, and that trustplay reads from
 * `ansible-vault`. `decrypt` and `view` are the only commands that ever write or print plaintext,
 * because that is what they are asked for (DECISIONS.md, "Names").
 */
import { readFileSync, statSync } from 'node:fs';
import { writeFileAtomic } from '../../snapshots/store.js';
import { isVaultText, vaultKeyring, VaultError } from '../../vault/index.js';
import { ExitCode, ExitError } from '../exit-codes.js';
import type { Options } from '../options.js';

const ACTIONS = ['encrypt', 'decrypt', 'view', 'encrypt_string'] as const;
/** The indentation `ansible-vault encrypt_string` puts under `!vault |`. */
const INDENT = ' '.repeat(10);

function invalid(message: string): ExitError {
  return new ExitError(ExitCode.Invalid, message);
}

async function readInput(file: string): Promise<Buffer> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  try {
    return readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw invalid(
      `${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message}`,
    );
  }
}

/** Writes in place (keeping the file's mode) or to --output; `-` is stdout. */
async function writeOutput(target: string, data: string | Buffer, modeFrom?: string): Promise<void> {
  if (target === '-') {
    process.stdout.write(data);
    return;
  }
  let mode = 0o600;
  try {
    if (modeFrom) mode = statSync(modeFrom).mode & 0o777;
  } catch {
    // A new file: private by default.
  }
  await writeFileAtomic(target, data, mode);
}

function decrypt(file: string, text: string): Buffer {
  if (!isVaultText(text)) throw invalid(`${file} is not vault-encrypted (it does not start with \`$ANSIBLE_VAULT\`)`);
  try {
    return vaultKeyring().decrypt(text);
  } catch (e) {
    if (e instanceof VaultError) throw invalid(`${file} ${e.message}`);
    throw e;
  }
}

function encrypt(plaintext: Buffer, options: Options): string {
  try {
    return vaultKeyring().encrypt(plaintext, options.encryptVaultId);
  } catch (e) {
    if (e instanceof VaultError) throw invalid(e.message);
    throw e;
  }
}

export async function vaultCommand(positionals: string[], options: Options): Promise<number> {
  const [action, ...args] = positionals;
  if (!ACTIONS.includes(action as (typeof ACTIONS)[number])) {
    const { suggestion } = await import('../../playbook/diagnostics.js');
    throw invalid(
      `${action === undefined ? 'missing vault action' : `unknown vault action \`${action}\`${suggestion(action, ACTIONS)}`}: use ${ACTIONS.join(', ')}`,
    );
  }
  if (action === 'encrypt_string') {
    if (args.length > 1) throw invalid('vault encrypt_string takes one STRING (or reads it from stdin)');
    // Read from stdin when no STRING is given: a value on the command line stays in shell history.
    const fromStdin = args.length === 0 || args[0] === '-';
    let plain = fromStdin ? await readInput('-') : Buffer.from(args[0]!, 'utf8');
    // `echo "$PW" |` adds a newline that is no part of the password.
    if (fromStdin) plain = Buffer.from(plain.toString('utf8').replace(/\r?\n$/, ''), 'utf8');
    if (plain.length === 0) throw invalid('vault encrypt_string: the value to encrypt is empty');
    const block = encrypt(plain, options)
      .trimEnd()
      .split('\n')
      .map((l) => INDENT + l)
      .join('\n');
    process.stdout.write(`${options.name ? `${options.name}: ` : ''}!vault |\n${block}\n`);
    return ExitCode.Ok;
  }
  if (args.length === 0) throw invalid(`vault ${action} needs at least one FILE (\`-\` reads stdin)`);
  if (options.output !== undefined && args.length > 1)
    throw invalid(`vault ${action} --output takes one input FILE, not ${args.length}`);
  for (const file of args) {
    const data = await readInput(file);
    const target = options.output ?? (file === '-' ? '-' : file);
    if (action === 'encrypt') {
      if (isVaultText(data.toString('latin1'))) throw invalid(`${file} is already vault-encrypted`);
      await writeOutput(target, encrypt(data, options), file === '-' ? undefined : file);
      if (target !== '-') process.stderr.write(`${target}: encrypted\n`);
    } else {
      const plain = decrypt(file, data.toString('latin1'));
      if (action === 'view') process.stdout.write(plain);
      else {
        await writeOutput(target, plain, file === '-' ? undefined : file);
        if (target !== '-') process.stderr.write(`${target}: decrypted (the plaintext is now on disk)\n`);
      }
    }
  }
  return ExitCode.Ok;
}
