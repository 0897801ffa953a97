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
  /** When set, sudo reads it from the first line of stdin; it never appears on the command line. */
  becomePassword?: string;
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
    return { line: [...assignments, quoteArgv(argv)].join(' ') };
  }
  // sudo may refuse `VAR=value` arguments under its env policy; `env` applies them after sudo.
  if (env.length > 0) argv = ['env', ...env.map(([k, v]) => `${k}=${v}`), ...argv];
  if (options.becomePassword === undefined) {
    return { line: quoteArgv(['sudo', '-n', '--', ...argv]) };
  }
  if (options.becomePassword.includes('\n')) throw new Error('a become password cannot contain a newline');
  // The password arrives as the first stdin line and sudo alone reads it: its stdin carries only
  // that line, and the command reads the rest of our stdin from a fifo. Sharing one stdin would
  // hand the password to a command sudo runs without asking (NOPASSWD rules, cached credentials),
  // and after a wrong password sudo would try the command's input lines as passwords. `printf` is
  // a shell builtin, so the password is on no command line; fd 3 keeps our stdin for the
  // background `cat`, which a non-interactive shell would otherwise give /dev/null.
  const script = [
    'IFS= read -r pw',
    'exec 3<&0',
    'd=$(mktemp -d "${TMPDIR:-/tmp}/trustplay-sudo.XXXXXX") || exit 1',
    'trap \'rm -rf -- "$d"\' EXIT',
    'mkfifo -m 600 -- "$d/in" || exit 1',
    'cat <&3 >"$d/in" 3<&- & c=$!',
    'exec 3<&-',
    `printf '%s\\n' "$pw" | sudo -S -p '' -- sh -c 'exec "$@" <"$0"' "$d/in" ${quoteArgv(argv)}`,
    'rc=$?',
    'unset pw',
    // The copier is still blocked opening the fifo when sudo refused to run the command.
    'kill "$c" 2>/dev/null',
    'exit "$rc"',
  ].join('\n');
  return {
    line: quoteArgv(['sh', '-c', script]),
    stdinPrefix: Buffer.from(`${options.becomePassword}\n`),
  };
}
