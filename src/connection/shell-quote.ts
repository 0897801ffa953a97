import type { Command } from './connection.js';

// Words made only of these characters mean the same quoted or not, so they stay bare for
// readable command lines in error messages.
const SAFE_WORD = /^[A-Za-z0-9_\-.,:/@%+=]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Quotes one word for a POSIX shell (single quotes; a quote inside becomes '\''). */
export function quote(word: string): string {
  if (word.includes('\0')) {
    throw new Error(`cannot pass an argument containing a NUL byte to a command: ${JSON.stringify(word)}`);
  }
  if (word === '') return "''";
  if (SAFE_WORD.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

// In command position a bare `NAME=value` is an assignment, not a command, and a reserved word is
// syntax: argv[0] like `PATH=/tmp/x` must run a program of that name (or fail), never set PATH.
const RESERVED = new Set([
  '!',
  '{',
  '}',
  'case',
  'do',
  'done',
  'elif',
  'else',
  'esac',
  'fi',
  'for',
  'if',
  'in',
  'then',
  'until',
  'while',
]);

/** Quotes a word for command position (argv[0]). */
export function quoteCommandName(word: string): string {
  const q = quote(word);
  return q === word && (word.includes('=') || RESERVED.has(word)) ? `'${word}'` : q;
}

/** Quotes every word of an argv and joins them with spaces. */
export function quoteArgv(argv: readonly string[]): string {
  return argv.map((w, i) => (i === 0 ? quoteCommandName(w) : quote(w))).join(' ');
}

/** The argv a command runs as: scripts go through `sh -c` so the login shell never matters. */
export function commandArgv(command: Command): string[] {
  if ('argv' in command) {
    if (command.argv.length === 0) throw new Error('cannot run an empty argv');
    return [...command.argv];
  }
  return ['sh', '-c', command.script];
}

function checkEnv(env: Record<string, string>): [string, string][] {
  const entries = Object.entries(env);
  for (const [name] of entries) {
    if (!ENV_NAME.test(name)) throw new Error(`invalid environment variable name ${JSON.stringify(name)}`);
  }
  return entries;
}

/** How to run a command through a shell-interpreting transport (an SSH exec request). */
export interface CommandLineOptions {
  env?: Record<string, string>;
  /** Wrap in coreutils `timeout` so the remote process group dies even when the channel is just closed. */
  timeoutMs?: number;
  become?: boolean;
  /** The user sudo runs the command as (default root). */
  becomeUser?: string;
  /** When set, sudo reads it from the first line of stdin; it never appears on the command line. */
  becomePassword?: string;
  /**
   * The line replaces the shell that reads it (`exec`; the command driver sources it in a subshell,
   * one fork and no extra shell per command). Without become only.
   */
  exec?: boolean;
}

/** A shell command line plus the bytes that must precede the caller's stdin. */
export interface CommandLine {
  line: string;
  /** Fed before the command's own stdin (the sudo password line), never logged. */
  stdinPrefix?: Buffer;
}

/** Seconds for `timeout`, a little later than the client's own timer so the client reports first. */
function timeoutSeconds(ms: number): string {
  return ((ms + 1000) / 1000).toFixed(3);
}

/**
 * Builds the line sent to the remote login shell: environment, timeout and sudo folded into the
 * command because sshd drops most client-side environment variables.
 */
export function buildCommandLine(command: Command, options: CommandLineOptions = {}): CommandLine {
  let argv = commandArgv(command);
  if (options.timeoutMs !== undefined && options.timeoutMs > 0) {
    argv = ['timeout', '-k', '2', timeoutSeconds(options.timeoutMs), ...argv];
  }
  const env = checkEnv(options.env ?? {});
  if (!options.become) {
    const assignments = env.map(([k, v]) => `${k}=${quote(v)}`);
    return { line: [...assignments, ...(options.exec ? ['exec'] : []), quoteArgv(argv)].join(' ') };
  }
  // sudo may refuse `VAR=value` arguments under its env policy; `env` applies them after sudo.
  if (env.length > 0) argv = ['env', ...env.map(([k, v]) => `${k}=${v}`), ...argv];
  const asUser = options.becomeUser !== undefined && options.becomeUser !== 'root' ? ['-u', options.becomeUser] : [];
  if (options.becomePassword === undefined) {
    return { line: quoteArgv(['sudo', '-n', ...asUser, '--', ...argv]) };
  }
  if (options.becomePassword.includes('\n')) throw new Error('a become password cannot contain a newline');
  // The password arrives as the first stdin line (`read` takes no more than that line from a pipe),
  // and only sudo's askpass helper ever sees it: sudo runs `cat <prompt>` as the login user, the
  // prompt being a private fifo that a background writer feeds with the password. The command gets
  // the rest of our stdin directly, as whatever user it runs as. Sharing one stdin instead would
  // hand the password to a command sudo runs without asking (NOPASSWD rules, cached credentials),
  // and after a wrong password sudo would try the command's input lines as passwords. `printf` is
  // a shell builtin, so the password is on no command line. After a wrong password sudo asks again,
  // and the writer then gives only an empty answer, which makes sudo stop after one attempt (as
  // `sudo -S` did); it is killed when sudo has finished (blocked, when sudo never asked). A fifo,
  // not a file: the password never rests on disk.
  const script = [
    'IFS= read -r pw',
    'd=$(mktemp -d "${TMPDIR:-/tmp}/trustplay-sudo.XXXXXX") || exit 1',
    'trap \'rm -rf -- "$d"\' EXIT',
    'mkfifo -m 600 -- "$d/pw" || exit 1',
    '(printf \'%s\\n\' "$pw" >"$d/pw"; while :; do : >"$d/pw"; done) </dev/null 2>/dev/null & w=$!',
    'unset pw',
    'a=$(command -v cat) || exit 1',
    `SUDO_ASKPASS="$a" sudo -A -p "$d/pw" ${asUser.map(quote).join(' ')}${asUser.length ? ' ' : ''}-- ${quoteArgv(argv)}`,
    'rc=$?',
    'kill "$w" 2>/dev/null',
    'exit "$rc"',
  ].join('\n');
  return {
    line: quoteArgv(['sh', '-c', script]),
    stdinPrefix: Buffer.from(`${options.becomePassword}\n`),
  };
}
