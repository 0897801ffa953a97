import type { Command, ExecResult, FileExpectation, FileStat, WriteOptions } from './connection.js';
import { FileChangedError, FileOperationError } from './errors.js';

// Each file operation is ONE remote command (one channel, one round trip): POSIX sh plus
// coreutils/busybox `stat -c`, `mktemp`, `cat`, `mv`. Paths travel as positional parameters,
// never spliced into the script text.

/** Exit status the scripts use for "no such file", distinct from real failures. */
export const MISSING = 66;

// `[ -e ]` is also false when a directory on the way cannot be searched (a login user without
// become looking into a root-only dir): walk up to the nearest existing ancestor and call it
// absent only when that one is searchable, so "cannot look" is never reported as "not there".
const ABSENT = `absent() {
  p=$1
  while :; do
    case $p in */*) p=\${p%/*}; p=\${p:-/};; *) break;; esac
    [ -e "$p" ] && break
  done
  if [ -d "$p" ] && [ ! -x "$p" ]; then echo "permission denied: $p cannot be searched by $(id -un) (become needed?)" >&2; exit 1; fi
  exit ${MISSING}
}`;

/** Exit status for "the managed path is a symbolic link": refused, never followed. */
export const IS_LINK = 65;

/** Exit status of a compare-and-swap write that found the file changed: nothing written. */
export const CHANGED = 67;

/** The one sentence every connection uses for a managed path that is a link. */
export function linkRefusal(path: string): string {
  return `${path} is a symbolic link: trustplay never reads, writes or changes the owner of a managed file through a link (its target could be any file); replace the link with the file itself`;
}

// A link at a managed path is refused (no read, no write, no chown): a link planted at hosts.toml
// pointing at /etc/passwd must not be shown by --diff nor overwritten by run.
/** A sh function `nolink PATH` that exits IS_LINK with linkRefusal's sentence when PATH is a link. */
export const NO_LINK = `nolink() {
  [ -L "$1" ] || return 0
  printf '%s is a symbolic link: trustplay never reads, writes or changes the owner of a managed file through a link (its target could be any file); replace the link with the file itself\\n' "$1" >&2
  exit ${IS_LINK}
}`;

const READ = `${ABSENT}
${NO_LINK}
nolink "$1"
[ -e "$1" ] || absent "$1"; exec cat -- "$1"`;

// Mode as `stat -c %f` (hex, with file type bits) so the caller tells files from directories.
const STAT = `${ABSENT}
[ -e "$1" ] || absent "$1"; exec stat -L -c '%f %u %g %s' -- "$1"`;

// Compare-and-swap: \`cas PATH EXPECT\` exits CHANGED unless the file is still what the controller
// read (EXPECT: - for absent, else its sha256; empty: no check). Without sha256sum only its
// presence is checked here (the controller compared the bytes just before).
const CAS = `cas() {
  case $2 in
    '') ;;
    -) if [ -e "$1" ]; then echo "it exists now" >&2; exit ${CHANGED}; fi ;;
    *) if [ ! -e "$1" ]; then echo "it is gone" >&2; exit ${CHANGED}; fi
       if command -v sha256sum >/dev/null 2>&1; then
         set -- "$2" $(sha256sum < "$1")
         if [ "$1" != "\${2-}" ]; then echo "its content is not what was read" >&2; exit ${CHANGED}; fi
       fi ;;
  esac
}`;

const REMOVE = `${NO_LINK}
${CAS}
nolink "$1"
[ -d "$1" ] && { echo "$1 is a directory" >&2; exit 1; }
cas "$1" "\${2-}"
exec rm -f -- "$1"`;

// Write: refuse a link at the path, and a parent directory that someone other than root or us
// can write (they could swap the file between our check and the rename). Keep the existing
// mode/owner unless given; the temp file is created 0600 beside the target (mktemp: O_EXCL, never
// through a link), gets owner and mode while it is still ours alone, is fsynced and renamed over
// the path (rename replaces a link planted meanwhile instead of following it), then the directory
// is fsynced. The trap removes the temp file on any failure.
const WRITE = `set -u
${NO_LINK}
${CAS}
p=$1 mode=$2 uid=$3 gid=$4 mkdirs=$5 size=$6 expect=\${7-}
nolink "$p"
# An absolute path to a file splits without a process; anything else as dirname/basename say.
case $p in
  /*[!/]) d=\${p%/*} n=\${p##*/}; d=\${d:-/} ;;
  *) d=$(dirname -- "$p") n=$(basename -- "$p") ;;
esac
cas "$p" "$expect"
if [ "$mkdirs" = 1 ] && [ ! -d "$d" ]; then (umask 022 && mkdir -p -- "$d") || exit 1; fi
if [ -d "$p" ]; then echo "$p is a directory" >&2; exit 1; fi
# The directory's mode and owner, and the file's (when it exists) in the same stat.
if [ -e "$p" ]; then set -- $(stat -L -c '%a %u %g' -- "$d" "$p") || exit 1
else set -- $(stat -L -c '%a %u %g' -- "$d") || exit 1; fi
if [ "$2" != 0 ] && [ "$2" != "$(id -u)" ]; then echo "the directory $d of $p is owned by uid $2, not root: anyone who owns it can swap the file; fix with: chown root $d" >&2; exit 1; fi
if [ $((0$1 & 022)) != 0 ]; then echo "the directory $d of $p is writable by group or others (mode $1): anyone could swap the file; fix with: chmod go-w $d" >&2; exit 1; fi
if [ $# = 6 ]; then
  [ -n "$mode" ] || mode=$4; [ -n "$uid" ] || uid=$5; [ -n "$gid" ] || gid=$6
fi
[ -n "$mode" ] || mode=644
umask 077
tmp=$(mktemp "$d/.$n.trustplay-XXXXXX") || exit 1
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM PIPE
cat > "$tmp" || exit 1
# A controller that dies mid-write closes our stdin: cat then ends "successfully" with a prefix of
# the content. Only the announced length is renamed into place.
got=$(wc -c < "$tmp") || exit 1
if [ "$((got))" != "$size" ]; then echo "the content for $p arrived incomplete ($((got)) of $size bytes: the connection ended during the write); $p is unchanged" >&2; exit 1; fi
if [ -n "$uid" ]; then chown -- "$uid\${gid:+:$gid}" "$tmp" || exit 1
elif [ -n "$gid" ]; then chgrp -- "$gid" "$tmp" || exit 1; fi
chmod -- "$mode" "$tmp" || exit 1
sync -- "$tmp" 2>/dev/null || sync
mv -f -- "$tmp" "$p" || exit 1
trap - EXIT
sync -- "$d" 2>/dev/null || :
`;

export function readFileCommand(path: string): Command {
  return { argv: ['sh', '-c', READ, 'sh', path] };
}

export function statCommand(path: string): Command {
  return { argv: ['sh', '-c', STAT, 'sh', path] };
}

/** The remove command; with `expect`, the file must still be what was read (see `WriteOptions.expect`). */
export function removeCommand(path: string, expect?: FileExpectation): Command {
  return { argv: ['sh', '-c', REMOVE, 'sh', path, expectArg(expect)] };
}

function intArg(name: string, value: number | undefined, radix: 8 | 10): string {
  if (value === undefined) return '';
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${value}`);
  return value.toString(radix);
}

/** The write command for `size` bytes of content given on stdin (a shorter stdin is refused, never renamed into place). */
export function writeFileCommand(path: string, size: number, options: WriteOptions = {}): Command {
  if (options.mode !== undefined && options.mode > 0o7777)
    throw new Error(`mode ${options.mode.toString(8)} is not a permission mode`);
  return {
    argv: [
      'sh',
      '-c',
      WRITE,
      'sh',
      path,
      intArg('mode', options.mode, 8),
      intArg('uid', options.uid, 10),
      intArg('gid', options.gid, 10),
      options.mkdirs ? '1' : '0',
      intArg('size', size, 10),
      expectArg(options.expect),
    ],
  };
}

function expectArg(expect: FileExpectation | undefined): string {
  if (expect === undefined) return '';
  if ('absent' in expect) return '-';
  if (!/^[0-9a-f]{64}$/.test(expect.sha256)) throw new Error(`expect.sha256 must be 64 lower-case hex digits`);
  return expect.sha256;
}

/** The one sentence for a write or removal refused because the file changed since it was read. */
export function changedRefusal(host: string, path: string, op: 'write' | 'remove' = 'write'): string {
  return `${host}: ${path} changed on the node while this task ran, so it was not ${op === 'write' ? 'written' : 'removed'}: run again.`;
}

function stderrLine(result: ExecResult): string {
  const text = result.stderr.toString('utf8').trim().split('\n').slice(-3).join('; ');
  return text || `exit ${result.code}`;
}

/** Throws a one-sentence error for a failed file operation. */
export function fileError(host: string, op: string, path: string, result: ExecResult): FileOperationError {
  if ((op === 'write' || op === 'remove') && result.code === CHANGED && !result.timedOut)
    return new FileChangedError(host, path, `${changedRefusal(host, path, op)} (${stderrLine(result)})`);
  const why = result.timedOut ? 'timed out' : stderrLine(result);
  return new FileOperationError(host, path, `${host}: cannot ${op} ${path}: ${why}`);
}

export function parseReadResult(host: string, path: string, result: ExecResult): Buffer | null {
  if (result.code === MISSING) return null;
  if (result.code !== 0) throw fileError(host, 'read', path, result);
  return result.stdout;
}

/** Parses `stat -c '%f %u %g %s'` output. */
export function parseStatResult(host: string, path: string, result: ExecResult): FileStat {
  if (result.code === MISSING) return { exists: false };
  if (result.code !== 0) throw fileError(host, 'stat', path, result);
  const [rawMode, uid, gid, size] = result.stdout.toString('utf8').trim().split(/\s+/);
  const mode = parseInt(rawMode ?? '', 16);
  if (Number.isNaN(mode))
    throw fileError(host, 'stat', path, {
      ...result,
      stderr: Buffer.from(`unexpected stat output ${JSON.stringify(result.stdout.toString())}`),
    });
  return statFromMode(mode, Number(uid), Number(gid), Number(size));
}

/** A FileStat from a full st_mode (type bits included). */
export function statFromMode(mode: number, uid: number, gid: number, size: number): FileStat {
  const type = mode & 0o170000;
  return {
    exists: true,
    isFile: type === 0o100000,
    isDirectory: type === 0o040000,
    mode: mode & 0o7777,
    uid,
    gid,
    size,
  };
}
