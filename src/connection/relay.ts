/**
 * Reaching a root-owned unix socket (containerd's, 0660 root:root) when the host is logged into as
 * another user with `become`: sshd opens stream-local forwards as the login user, who may not
 * connect. Instead a relay program the node already has runs through the same sudo wrapper as
 * every command and carries the byte stream (gRPC over HTTP/2) over the exec channel's stdio. The
 * socket's permissions and group are never changed.
 */
import { Duplex, type Readable, type Writable } from 'node:stream';
import type { Command, ExecResult } from './connection.js';
import { ConnectionError } from './errors.js';

/** The relay programs, in the order they are probed (the first found is used). */
export const RELAYS = ['socat', 'nc', 'python3', 'perl'] as const;
export type RelayName = (typeof RELAYS)[number];

/** How each relay is described in messages. */
const RELAY_LABELS: Record<RelayName, string> = {
  socat: 'socat',
  nc: 'nc -U (OpenBSD netcat)',
  python3: 'python3',
  perl: 'perl with IO::Socket::UNIX',
};

/** One remote command that prints the first relay found on the become user's PATH (`none` if none). */
export function relayProbeCommand(): Command {
  return {
    script: [
      'if command -v socat >/dev/null 2>&1; then r=socat',
      // Only OpenBSD netcat speaks -U and -N; traditional netcat and busybox nc do not.
      "elif command -v nc >/dev/null 2>&1 && nc -h 2>&1 | grep -q 'OpenBSD netcat'; then r=nc",
      "elif command -v python3 >/dev/null 2>&1 && python3 -c 'import socket; socket.AF_UNIX' >/dev/null 2>&1; then r=python3",
      'elif command -v perl >/dev/null 2>&1 && perl -MIO::Socket::UNIX -e 1 >/dev/null 2>&1; then r=perl',
      'else r=none; fi',
      'echo "trustplay-relay: $r"',
    ].join('\n'),
  };
}

// Both copy until either side ends: stdin's end is passed on as a half-close (shutdown(SHUT_WR)),
// so containerd closes its side and the relay exits when the client goes, instead of lingering.
const PYTHON_RELAY = [
  'import os, socket, sys, threading',
  's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
  's.connect(sys.argv[1])',
  'def up():',
  '    while True:',
  '        b = os.read(0, 65536)',
  '        if not b:',
  '            break',
  '        s.sendall(b)',
  '    s.shutdown(socket.SHUT_WR)',
  'threading.Thread(target=up, daemon=True).start()',
  'out = sys.stdout.buffer',
  'while True:',
  '    b = s.recv(65536)',
  '    if not b:',
  '        break',
  '    out.write(b)',
  '    out.flush()',
].join('\n');

const PERL_RELAY = [
  'use strict; use IO::Socket::UNIX;',
  'my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) or die "connect $ARGV[0]: $!\\n";',
  'sub put { my ($fh, $b) = @_; my $o = 0; while ($o < length $b) { my $w = syswrite($fh, $b, length($b) - $o, $o); return 0 unless $w; $o += $w } 1 }',
  'my $pid = fork; die "fork: $!\\n" unless defined $pid;',
  'if (!$pid) { my $b; while (sysread(STDIN, $b, 65536)) { put($s, $b) or last } shutdown($s, 1); exit 0 }',
  'my $b; while (sysread($s, $b, 65536)) { put(\\*STDOUT, $b) or last }',
  'kill "TERM", $pid; exit 0;',
].join('\n');

/** The argv that connects stdin/stdout to the unix socket `path`. */
export function relayArgv(relay: RelayName, path: string): string[] {
  switch (relay) {
    case 'socat':
      return ['socat', '-', `UNIX-CONNECT:${path.replace(/([\\:,!"'])/g, '\\$1')}`];
    case 'nc':
      return ['nc', '-N', '-U', path];
    case 'python3':
      return ['python3', '-c', PYTHON_RELAY, path];
    case 'perl':
      return ['perl', '-e', PERL_RELAY, path];
  }
}

/** Who logs in and who sudo makes us, for messages. */
export interface BecomeParty {
  /** `node1 (10.0.0.1:22)`: the start of every message. */
  label: string;
  host: string;
  user: string;
  becomeUser: string;
  /** The environment variable the sudo password came from, if any. */
  passwordEnv?: string | undefined;
  hasPassword: boolean;
}

/**
 * Why sudo did not run the command, as one sentence the operator can act on, or undefined when the
 * output is not sudo refusing (the command itself ran and failed).
 */
export function sudoRefusal(p: BecomeParty, result: ExecResult): string | undefined {
  const err = result.stderr.toString('utf8');
  const who = `user ${p.user}`;
  if (/must have a tty|sorry, you must have a tty/i.test(err))
    return `${p.label}: sudo requires a terminal for ${who} (Defaults requiretty in sudoers), and trustplay runs commands without one — add \`Defaults:${p.user} !requiretty\` to the host's sudoers with visudo`;
  if (/a (terminal|password) is required|no askpass program|no tty present/i.test(err))
    return p.hasPassword
      ? `${p.label}: sudo did not accept a password for ${who} — check the sudoers rules for ${p.user}`
      : `${p.label}: sudo asks ${who} for a password — set become_password_env to the name of an environment variable holding it, or give ${p.user} NOPASSWD in the host's sudoers`;
  if (/incorrect password|Sorry, try again/i.test(err))
    return p.passwordEnv
      ? `${p.label}: sudo refused the password from ${p.passwordEnv} for ${who} — check the value of that variable`
      : `${p.label}: sudo refused the become password for ${who} (from the inventory's vault) — check ansible_become_password`;
  if (/is not in the sudoers file|is not allowed to execute|may not run sudo|not allowed to run sudo/i.test(err))
    return `${p.label}: sudoers does not let ${who} run commands as ${p.becomeUser} — allow it on the host (e.g. \`${p.user} ALL=(${p.becomeUser}) ALL\`) or change become_user`;
  if (/unknown user/i.test(err))
    return `${p.label}: become_user ${p.becomeUser} does not exist on the host — fix become_user in the inventory`;
  if (result.code === 127 && /sudo/.test(err))
    return `${p.label}: sudo is not installed on the host, so ${who} cannot become ${p.becomeUser} — install sudo or log in as ${p.becomeUser}`;
  return undefined;
}

/**
 * The relay found by `probe` (the probe command's result, run through become), or a
 * ConnectionError saying what was tried and how to fix it. Also the first place a broken sudo shows.
 */
export function relayFromProbe(p: BecomeParty, result: ExecResult): RelayName {
  const refusal = sudoRefusal(p, result);
  if (refusal !== undefined) throw new ConnectionError('auth', p.host, refusal);
  const m = /^trustplay-relay: (\S+)$/m.exec(result.stdout.toString('utf8'));
  if (result.code !== 0 || !m) {
    const err = result.stderr.toString('utf8').trim().split('\n').slice(-1)[0] ?? '';
    throw new ConnectionError(
      'auth',
      p.host,
      `${p.label}: running a command as ${p.becomeUser} through sudo failed (exit ${result.code}${err ? `: ${err}` : ''}) — check that ${p.user} can run \`sudo -u ${p.becomeUser} sh\` there`,
    );
  }
  const found = m[1] as RelayName | 'none';
  if (found === 'none') {
    throw new ConnectionError(
      'unreachable',
      p.host,
      `${p.label}: ${p.user} logs in with become, and containerd's socket (owned by root) can only be reached through a relay run by sudo, but none of ${RELAYS.map((r) => RELAY_LABELS[r]).join(', ')} is on the sudo PATH — install one (e.g. the socat package), or give ${p.user} access through the socket's group (containerd's [grpc] gid) and log in without become; nothing was changed`,
    );
  }
  return found;
}

/** The relay's description for messages (`socat`, `nc -U (OpenBSD netcat)`...). */
export function relayLabel(relay: RelayName): string {
  return RELAY_LABELS[relay];
}

/**
 * The Error a relay that ended badly reports (the stream's error, which the CRI client shows as
 * the cause): its last stderr line, e.g. socat's `No such file or directory`.
 */
export function relayError(relay: RelayName, path: string, code: number, stderr: string): Error {
  const last = stderr.trim().split('\n').slice(-1)[0] ?? '';
  return new Error(
    `the ${relayLabel(relay)} relay run through sudo could not connect to ${path} (exit ${code}${last ? `: ${last}` : ''})`,
  );
}

/**
 * The relay's stdio as one stream. `ended` resolves with the relay's exit code once its output has
 * all arrived (null when it was killed or the code is unknown). The stream ends only then: a
 * non-zero code destroys it with `describe`'s error (socat's "No such file or directory"), so the
 * reader learns why instead of seeing a bare end.
 */
export function relayStream(
  stdout: Readable,
  stderr: Readable,
  stdin: Writable,
  ended: Promise<number | null>,
  describe: (code: number, stderr: string) => Error,
): Duplex {
  let text = '';
  stderr.on('data', (b: Buffer) => {
    if (text.length < 8192) text += b.toString('utf8');
  });
  const stream = new Duplex({
    allowHalfOpen: true,
    read() {
      stdout.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (!stdin.writable) return callback();
      stdin.write(chunk, () => callback());
    },
    final(callback) {
      stdin.end();
      callback();
    },
    destroy(err, callback) {
      stdin.destroy();
      stdout.destroy();
      callback(err);
    },
  });
  stdout.on('data', (b: Buffer) => {
    if (!stream.push(b)) stdout.pause();
  });
  stdout.on('error', () => undefined);
  stdin.on('error', () => undefined);
  let outEnded = false;
  stdout.once('end', () => (outEnded = true));
  void ended.then((code) => {
    if (stream.destroyed) return;
    if (code !== null && code !== 0) stream.destroy(describe(code, text));
    else if (outEnded) stream.push(null);
    else stream.destroy();
  });
  return stream;
}
