/**
 * The command driver (issue 21): one long-lived POSIX `sh` on a host's SSH connection that runs
 * every command of the run, instead of one SSH session (and one sshd-forked shell) per command.
 * It lives inside the host lock's holder session (DECISIONS: "One SSH session per host"), so the
 * host keeps one session for the whole run, and the lock goes when that session goes.
 *
 * Protocol, on the session's stdin, one request per command (pipelined, answered in order):
 *   `x <script bytes> <stdin bytes>\n` then the script (a simple command: `[VAR=value...] exec
 *   ARGV`, sourced by a subshell it replaces), then the command's stdin;
 * answered on stdout by `\x1eR <exit code> <stdout bytes> <stderr bytes>\n`, then both outputs.
 * A contained command (one that leaves no process behind: a read, a file write) is asked with
 * `x <script bytes> <stdin bytes> <token>\n`: its stdout comes straight back after a `\x1eO` line,
 * ended by `\x1eE<token> <exit code> <stderr bytes>\n` and its stderr. The token is the session's
 * own random one, sent only on the session's stdin, so no output can end the frame early; and no
 * output file, `wc` or `dd` on the node (two processes fewer per command).
 * At start the driver says `\x1eD ok`, or `\x1eD off <why>` when this shell cannot run it (no
 * mktemp, no way to read an exact byte count): the connection then runs one session per command,
 * as before. Lines not starting with \x1e are the holder's own answers.
 *
 * Nothing stays on the node: the outputs that are not streamed go through files in a private (0700)
 * temp directory that are removed in batches, and the directory when the session ends (EOF, HUP,
 * TERM).
 */
import { randomBytes } from 'node:crypto';
import type { ExecResult } from './connection.js';

/**
 * Whether SSH connections carry their commands on the lock holder's session: on unless
 * TRUSTPLAY_SSH_DRIVER=0 (then one session per command, as before issue 21).
 */
export function driverEnabled(): boolean {
  return process.env['TRUSTPLAY_SSH_DRIVER'] !== '0';
}

/** Marks the driver's own lines on the session's stdout. */
export const DRIVER_MARK = 0x1e;

/** Verb of a framed command; a holder script routes `x ...` lines to `tp_exec`. */
export const DRIVER_CASE_ARM = `x\\ *) tp_exec \${verb#x } ;;`;

/**
 * Shell functions for a session script: set up (prints the `D` line), `tp_exec SLEN ILEN [TOKEN]`,
 * and `tp_cleanup [PATH...]` (call it on every way out, PIPE included: an answer written after the
 * connection went kills the shell with SIGPIPE otherwise), which stops the ticker, then removes the
 * driver's directory and the PATHs given (the holder's lock) in one `rm`. `tp_tick`, when the
 * holder sets it, is a command run every 5 s while a command runs (the lock's refresh: a long
 * command must not let it go stale).
 */
export function driverFunctions(): string {
  return `tp_d=
tp_tick=
tp_k=
tp_n=0
tp_cleanup() {
  [ -n "$tp_k" ] && kill "$tp_k" 2>/dev/null; tp_k=
  if [ -n "$tp_d" ] || [ "$#" -gt 0 ]; then rm -rf -- \${tp_d:+"$tp_d"} "$@"; fi; tp_d=
}
tp_setup() {
  # An exact read from a pipe: GNU and busybox head read no further than asked; dd bs=1 always works.
  # (What the reader left is read back with the read builtin: no process for that.)
  if [ "$(printf 'abc\\n' | { head -c 1 >/dev/null 2>&1; read -r tp_x; printf %s "$tp_x"; })" = bc ]; then tp_take() { head -c "$1"; }
  elif [ "$(printf 'abc\\n' | { dd bs=1 count=1 >/dev/null 2>&1; read -r tp_x; printf %s "$tp_x"; })" = bc ]; then tp_take() { dd bs=1 count="$1" 2>/dev/null; }
  else printf '\\036D off no head -c or dd to read an exact byte count\\n'; return; fi
  tp_d=$(umask 077; mktemp -d "\${TMPDIR:-/tmp}/trustplay-driver.XXXXXX" 2>&1) || {
    printf '\\036D off mktemp: %s\\n' "$(printf %s "$tp_d" | tr '\\n' ' ')"; tp_d=; return; }
  echo 0 >"$tp_d/busy"
  printf '\\036D ok\\n'
}
# Commands get the session's own locale, whatever the holder sets for itself. The command line
# (\`[VAR=value...] exec ARGV\`: simple, quoted) is read from a file and sourced in a subshell that
# it replaces: one fork and one exec per command, no shell between the driver and the command.
tp_lc=\${LC_ALL-}; tp_lc_set=\${LC_ALL+1}
tp_run() { ( if [ -n "$tp_lc_set" ]; then LC_ALL=$tp_lc; else unset LC_ALL; fi; . "$tp_d/s" ); }
# The command: its stdout to its file, or (contained: $1 set) left on the session's; its stderr to its file.
tp_cmd() { if [ -n "$1" ]; then tp_run 2>"$tp_e"; else tp_run >"$tp_o" 2>"$tp_e"; fi; }
# Exactly the bytes counted: a daemon the command started may still be appending to its output file.
tp_part() { if [ "$2" -gt 0 ]; then dd if="$1" bs="$2" count=1 2>/dev/null; fi; }
tp_exec() {
  # Each command writes its own output files (a daemon a command started may keep appending to its
  # file); older ones go in batches, one rm per 32 commands.
  tp_n=$((tp_n + 1))
  [ $((tp_n % 32)) = 0 ] && rm -f -- "$tp_d"/o* "$tp_d"/e*
  tp_o=$tp_d/o$tp_n tp_e=$tp_d/e$tp_n
  tp_take "$1" >"$tp_d/s"
  echo 1 >"$tp_d/busy"
  if [ -n "$tp_tick" ]; then
    # A ticker while commands run: tp_tick every 5 s while one runs (busy: the lock's refresh, a
    # long command must not let it go stale). It leaves when it wakes to an idle driver (an idle
    # session forks nothing: a held host waiting for the run's end cost a sleep every 5 s) or when the
    # driver is gone ($$ is the driver's pid); the next command starts another. File t says whether
    # one runs: each side writes its own flag, then reads the other's (busy, then t here; t, then
    # busy in the ticker), so a ticker leaving as a command starts is always seen, and replaced.
    tp_t=; read -r tp_t <"$tp_d/t" 2>/dev/null
    if [ "$tp_t" != 1 ]; then
      echo 1 >"$tp_d/t"
      (while sleep 5 && kill -0 $$ 2>/dev/null; do
        tp_b=; read -r tp_b <"$tp_d/busy" 2>/dev/null
        [ "$tp_b" = 1 ] && { eval "$tp_tick"; continue; }
        # (A flag read while its writer rewrites it is empty: taken for idle, which is safe here.)
        echo 0 >"$tp_d/t" || exit 0
        tp_b=; read -r tp_b <"$tp_d/busy" 2>/dev/null
        [ "$tp_b" = 1 ] || exit 0
        echo 1 >"$tp_d/t"
      done) </dev/null >/dev/null 2>&1 & tp_k=$!
    fi
  fi
  # A contained command's stdout goes straight to the session, after the O line (nothing can outlive
  # the command and write after it).
  [ -n "$3" ] && printf '\\036O\\n'
  # The command's stdin is exactly its bytes; what it leaves unread is drained, never taken for a request.
  if [ "$2" -gt 0 ]; then
    tp_take "$2" | { tp_cmd "$3"; tp_r=$?; cat >/dev/null; exit $tp_r; }
  else
    tp_cmd "$3" </dev/null
  fi
  tp_r=$?
  echo 0 >"$tp_d/busy"
  # No process for an empty output (the usual stderr).
  tp_es=0; [ -s "$tp_e" ] && tp_es=$(($(wc -c <"$tp_e")))
  if [ -n "$3" ]; then
    printf '\\036E%s %s %s\\n' "$3" "$tp_r" "$tp_es"
  else
    tp_os=0; [ -s "$tp_o" ] && tp_os=$(($(wc -c <"$tp_o")))
    printf '\\036R %s %s %s\\n' "$tp_r" "$tp_os" "$tp_es"
    tp_part "$tp_o" "$tp_os"
  fi
  tp_part "$tp_e" "$tp_es"
}
tp_setup
`;
}

/**
 * The bytes asking the driver to run `line` (a command line for `sh -c`) with `stdin`; with the
 * session's `token`, as a contained command (its stdout streamed back, see above).
 */
export function driverRequest(line: string, stdin?: string | Buffer, token?: string): Buffer {
  const script = Buffer.from(line);
  const input = stdin === undefined ? Buffer.alloc(0) : Buffer.isBuffer(stdin) ? stdin : Buffer.from(stdin);
  if (token !== undefined && !/^[0-9a-f]{32}$/.test(token))
    throw new Error('internal: a driver token is 32 hex digits');
  return Buffer.concat([Buffer.from(`x ${script.length} ${input.length}${token ? ` ${token}` : ''}\n`), script, input]);
}

/** A session's token for contained commands: random, never on a command line. */
export function driverToken(): string {
  return randomBytes(16).toString('hex');
}

/** A framed answer: exit code and both outputs. */
export type DriverAnswer = Pick<ExecResult, 'code' | 'stdout' | 'stderr'>;

/**
 * Splits a session's stdout into the holder's lines and the driver's frames. Feed it every chunk;
 * it calls `line` for each plain line, `status` for the `D` line and `frame` for each answer.
 */
export class DriverParser {
  // What arrived and is not parsed yet, as received: a big answer (an OS store, a file) comes in
  // many chunks, joined once when the frame is whole (joining on every chunk copied it over and over).
  private parts: Buffer[] = [];
  private have = 0;
  private want: { code: number; out: number; err: number; stdout?: Buffer } | undefined;
  /** In a contained command's output (after its `O` line): where the search for its end resumes. */
  private raw: { from: number; at?: number } | undefined;
  private readonly end: Buffer | undefined;

  constructor(
    private readonly on: {
      line: (l: string) => void;
      status: (s: string) => void;
      frame: (a: DriverAnswer) => void;
    },
    /** The session's token for contained commands (driverToken); without it an `O` line starts no stream. */
    token?: string,
  ) {
    this.end = token === undefined ? undefined : Buffer.from(`\x1eE${token} `);
  }

  private joined(): Buffer {
    const buf = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.have);
    this.parts = [buf];
    return buf;
  }

  /** Bytes [from, to) of what is buffered (clipped), copying only the parts they span. */
  private window(from: number, to: number): Buffer {
    const out: Buffer[] = [];
    let o = 0;
    for (const p of this.parts) {
      const s = Math.max(from - o, 0);
      const e = Math.min(to - o, p.length);
      if (e > s) out.push(p.subarray(s, e));
      o += p.length;
      if (o >= to) break;
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /** Where `end` starts in what is buffered, searching from `raw.from`; moves `raw.from` on. */
  private findEnd(end: Buffer): number | undefined {
    const raw = this.raw!;
    const at = this.window(raw.from, this.have).indexOf(end);
    if (at >= 0) return raw.from + at;
    // The end may begin in the last bytes: search again from there when more comes.
    raw.from = Math.max(raw.from, this.have - end.length + 1);
    return undefined;
  }

  private keep(rest: Buffer): void {
    this.parts = rest.length ? [rest] : [];
    this.have = rest.length;
  }

  push(chunk: Buffer): void {
    if (!chunk.length) return;
    this.parts.push(chunk);
    this.have += chunk.length;
    for (;;) {
      if (this.want) {
        const { code, out, err } = this.want;
        if (this.have < out + err) return;
        const buf = this.joined();
        const stdout = this.want.stdout ?? Buffer.from(buf.subarray(0, out));
        const stderr = Buffer.from(buf.subarray(out, out + err));
        this.keep(buf.subarray(out + err));
        this.want = undefined;
        this.on.frame({ code, stdout, stderr });
        continue;
      }
      if (this.raw && this.end) {
        // A contained command's stdout runs to its end line, `\x1eE<token> <code> <stderr bytes>`.
        // Only the bytes not searched yet are (a big output is never joined until its end is seen).
        const at = this.raw.at ?? this.findEnd(this.end);
        if (at === undefined) return;
        this.raw.at = at;
        const after = this.window(at + this.end.length, at + this.end.length + 48);
        const nl = after.indexOf(0x0a);
        // Its line is not all here yet.
        if (nl < 0 && after.length < 48) return;
        const tail = nl < 0 ? null : /^(\d+) (\d+)$/.exec(after.subarray(0, nl).toString('latin1'));
        if (!tail) {
          // Not an end line after all: output; search on past it.
          this.raw = { from: at + 1 };
          continue;
        }
        const buf = this.joined();
        const stdout = Buffer.from(buf.subarray(0, at));
        this.keep(buf.subarray(at + this.end.length + nl + 1));
        this.raw = undefined;
        // Its stderr follows by count, as an `R` frame's does.
        this.want = { code: Number(tail[1]), out: 0, err: Number(tail[2]), stdout };
        continue;
      }
      if (!this.have) return;
      const buf = this.joined();
      const nl = buf.indexOf(0x0a);
      if (nl < 0) return;
      const text = buf.subarray(0, nl).toString('utf8');
      this.keep(buf.subarray(nl + 1));
      if (text.charCodeAt(0) !== DRIVER_MARK) {
        this.on.line(text);
        continue;
      }
      const head = /^R (\d+) (\d+) (\d+)$/.exec(text.slice(1));
      if (head) this.want = { code: Number(head[1]), out: Number(head[2]), err: Number(head[3]) };
      else if (text === '\x1eO' && this.end) this.raw = { from: 0 };
      else if (text.startsWith('D ', 1)) this.on.status(text.slice(3));
    }
  }
}
