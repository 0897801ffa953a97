/**
 * The one way trustplay reads files from a host: any number of files, directories and directory
 * trees in ONE remote command, in one output format. Used by the modules' gather (containerd facts,
 * credential files), the snapshot (what a change is about to touch), restore and `trustplay facts`.
 *
 * The format: records `@@<tag> <field>...` on their own line, each path field base64 (any byte
 * may be in a name), each content as base64 lines after its record (base64 never starts a line
 * with `@`, so content can not be taken for a record), and `@@end` last (output cut short is told
 * from output that ended). Paths travel as positional parameters, never spliced into the script.
 *
 * A symbolic link is never read through: it is reported as `link`, and the caller decides (a
 * managed path that is a link is refused, see `linkRefusal`).
 */
import { posix } from 'node:path';
import type { Connection } from './connection.js';
import { describeExit } from './exit-codes.js';
import { linkRefusal } from './file-scripts.js';

/** What to read: files by path; directories (their regular files); trees (their subdirectories' files). */
export interface ReadRequest {
  /** Each: content, mode and owner; or absent, a link, or not a regular file. */
  files?: string[];
  /** Each: whether it exists, and every regular file (and link) directly in it, read as `files` are. */
  dirs?: string[];
  /**
   * Each: its subdirectories, and the entries of each as `dirs` reads them, except that only files
   * named `treeContent` are read (the others: metadata only).
   */
  trees?: string[];
  /** In trees, the file name whose content is read (e.g. `hosts.toml`). */
  treeContent?: string;
  /** In dirs and trees, a regular file bigger than this is `big`: metadata only, never shipped back. */
  maxFileBytes?: number;
  /**
   * A sh snippet run first, printing its own records in the same format (e.g. the containerd
   * version); they come back in `records`. `$1`...: `preludeArgs`. It may use `b64 TEXT` (one
   * base64 word) and must not `exit`.
   */
  prelude?: string;
  preludeArgs?: string[];
  /**
   * Ask the host even for files read ahead: a snapshot's read just before a change, whose bytes
   * the change's compare-and-swap relies on.
   */
  fresh?: boolean;
}

/** A path on the host as read. */
export type NodeEntry =
  | { kind: 'file'; path: string; content: Buffer; mode: number; uid: number; gid: number; size: number }
  /** A regular file whose content was not asked for (trees) or is too big (`maxFileBytes`). */
  | { kind: 'meta'; path: string; mode: number; uid: number; gid: number; size: number; big: boolean }
  | { kind: 'absent' | 'link' | 'other'; path: string }
  | { kind: 'dir'; path: string };

/** A record printed by the prelude. */
export interface PreludeRecord {
  tag: string;
  fields: string[];
  content?: Buffer;
}

export interface NodeRead {
  /** Every path the command reported, by path. */
  entries: Map<string, NodeEntry>;
  records: PreludeRecord[];
}

const RECORDS = new Set(['file', 'meta', 'big', 'absent', 'link', 'other', 'dir', 'end']);

// `one PATH MAX WANT`: one record for PATH (MAX: bytes above which content is not read, 0 none;
// WANT: 1 to read the content). Exit 3: the host failed to read a file it had just seen.
const SCRIPT = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
b64() { printf '%s' "$1" | base64 | tr -d '\\n'; }
# A path in a record, in $pp: as itself (after '=') when it has only plain characters, else base64;
# no process for the usual path (a $(b64) is four).
p64() { case $1 in *[!A-Za-z0-9._/:@+-]*|'') pp=$(b64 "$1") ;; *) pp="=$1" ;; esac; }
one() {
  if [ -L "$1" ]; then p64 "$1"; echo "@@link $pp"; return 0; fi
  if [ -d "$1" ]; then p64 "$1"; echo "@@dir $pp"; return 0; fi
  if [ ! -e "$1" ]; then p64 "$1"; echo "@@absent $pp"; return 0; fi
  if [ ! -f "$1" ]; then p64 "$1"; echo "@@other $pp"; return 0; fi
  # A regular file: its record comes after the walk (\`regular\`), one stat for all of them.
  rf_n=$((rf_n + 1)); eval "rf_p$rf_n=\\$1 rf_x$rf_n=\\$2 rf_w$rf_n=\\$3"
}
# The regular files \`one\` saw: mode, owner, group and size from ONE stat (it was a stat process
# per file), then each record, and the content of those wanted.
regular() {
  [ "$rf_n" -gt 0 ] || return 0
  set --; i=1
  while [ "$i" -le "$rf_n" ]; do eval "set -- \\"\\$@\\" \\"\\$rf_p$i\\""; i=$((i + 1)); done
  rf_st=$(stat -c '%a %u %g %s' -- "$@") || exit 3
  set -- $rf_st
  [ "$#" -eq $((rf_n * 4)) ] || exit 3
  i=1
  while [ "$i" -le "$rf_n" ]; do
    eval "rf_f=\\$rf_p$i rf_x=\\$rf_x$i rf_w=\\$rf_w$i"
    p64 "$rf_f"
    if [ "$rf_w" != 1 ]; then echo "@@meta $pp $1 $2 $3 $4"
    elif [ "$rf_x" -gt 0 ] && [ "$4" -gt "$rf_x" ]; then echo "@@big $pp $1 $2 $3 $4"
    else echo "@@file $pp $1 $2 $3 $4"; base64 < "$rf_f" || exit 3; fi
    shift 4; i=$((i + 1))
  done
}
rf_n=0
# Entries directly in $1 (links reported, subdirectories skipped); content of names $3 ('*': all).
entries() {
  for f in "$1"/* "$1"/.[!.]*; do
    [ -L "$f" ] || [ -f "$f" ] || continue
    case $3 in '*') w=1;; "\${f##*/}") w=1;; *) w=0;; esac
    one "$f" "$2" "$w"
  done
}
n=$1 max=$2 want=$3
shift 3
`;

// The prelude sees its own arguments first; the read list follows as `kind path` pairs.
function script(prelude: string | undefined): string {
  return `${SCRIPT}${prelude ? `prelude() {\n${prelude}\n}\nprelude "$@"\n` : ''}shift "$n"
while [ "$#" -ge 2 ]; do
  k=$1 p=$2; shift 2
  case $k in
    f) one "$p" 0 1 ;;
    d) if [ -L "$p" ] || [ ! -d "$p" ]; then one "$p" 0 0; continue; fi
       p64 "$p"; echo "@@dir $pp"; entries "$p" "$max" '*' ;;
    t) if [ -L "$p" ] || [ ! -d "$p" ]; then one "$p" 0 0; continue; fi
       p64 "$p"; echo "@@dir $pp"
       for s in "$p"/*/; do
         s=\${s%/}
         [ -d "$s" ] && [ ! -L "$s" ] || continue
         p64 "$s"; echo "@@dir $pp"; entries "$s" "$max" "$want"
       done ;;
  esac
done
regular
echo "@@end"
`;
}

/** Parses the reader's output (exported for tests). */
export function parseNodeRead(out: string): NodeRead {
  const entries = new Map<string, NodeEntry>();
  const records: PreludeRecord[] = [];
  let sink: ((b: Buffer) => void) | null = null;
  let chunks: string[] = [];
  const flush = (): void => {
    if (sink) sink(Buffer.from(chunks.join(''), 'base64'));
    sink = null;
    chunks = [];
  };
  let ended = false;
  for (const line of out.split('\n')) {
    if (!line.startsWith('@@')) {
      if (sink) chunks.push(line.trim());
      continue;
    }
    flush();
    const [tag = '', ...f] = line.slice(2).split(' ');
    if (!RECORDS.has(tag)) {
      const rec: PreludeRecord = { tag, fields: f };
      records.push(rec);
      sink = (b) => (rec.content = b);
      continue;
    }
    if (tag === 'end') {
      ended = true;
      continue;
    }
    const field = f[0] ?? '';
    const path = field.startsWith('=') ? field.slice(1) : Buffer.from(field, 'base64').toString('utf8');
    const [mode, uid, gid, size] = [parseInt(f[1] ?? '', 8), Number(f[2]), Number(f[3]), Number(f[4])];
    if (tag === 'file') sink = (content) => entries.set(path, { kind: 'file', path, content, mode, uid, gid, size });
    else if (tag === 'meta' || tag === 'big')
      entries.set(path, { kind: 'meta', path, mode, uid, gid, size, big: tag === 'big' });
    else entries.set(path, { kind: tag as 'absent' | 'link' | 'other' | 'dir', path });
  }
  flush();
  if (!ended) throw new Error('the read command stopped before its end marker (output cut short)');
  return { entries, records };
}

/**
 * Read-ahead (issue 21: the gathers of a play's tasks in one round trip): files a later task's
 * gather will read ride along with the host's next read, and a files-only read of paths seen that
 * way is answered from it, with no command. A path registered with a trailing `/` is a directory
 * read as `dirs` reads it (its regular files and links, with content); a read of such directories
 * (and files seen) is answered the same way. The engine registers them as a host starts a play and
 * forgets them before anything may change on the host (a task's changes, a verify, a handler), so
 * an answer is never older than the last change trustplay made there.
 */
interface ReadAhead {
  pending: Set<string>;
  seen: Map<string, NodeEntry>;
  /** Directory listings read ahead, by path without its slash: the size limit they were read with, and every entry. */
  listings: Map<string, { max: number; entries: NodeEntry[] }>;
}
const readAheads = new WeakMap<Connection, ReadAhead>();

/** Paths (files; directories with a trailing `/`) to read with the host's next read (replacing what was registered or seen before). */
export function readAhead(conn: Connection, paths: readonly string[]): void {
  if (paths.length === 0) readAheads.delete(conn);
  else readAheads.set(conn, { pending: new Set(paths), seen: new Map(), listings: new Map() });
}

/**
 * Forgets what was read ahead: the next reads ask the host. With `paths` (what a task's file
 * changes write or remove), only those, their parent directories (a write may create them) and
 * anything under them are forgotten; the rest still answers.
 */
export function forgetReadAhead(conn: Connection, paths?: readonly string[]): void {
  const ahead = readAheads.get(conn);
  if (!ahead) return;
  if (paths === undefined) {
    readAheads.delete(conn);
    return;
  }
  const touched = paths.map(withoutSlash);
  const stale = (p: string): boolean => {
    const q = withoutSlash(p);
    return touched.some((t) => q === t || t.startsWith(q === '/' ? q : `${q}/`) || q.startsWith(`${t}/`));
  };
  for (const p of [...ahead.seen.keys()]) if (stale(p)) ahead.seen.delete(p);
  for (const p of [...ahead.listings.keys()]) if (stale(p)) ahead.listings.delete(p);
  for (const p of [...ahead.pending]) if (stale(p)) ahead.pending.delete(p);
}

/**
 * Whether a listing read ahead answers a read with size limit `max` (0: none) as the host would:
 * read with the same limit, or with every file's content in it and none bigger than `max`.
 */
function servable(l: { max: number; entries: NodeEntry[] } | undefined, max: number): boolean {
  if (!l) return false;
  if (l.max === max) return true;
  return l.entries.every((e) => e.kind !== 'meta' && (max === 0 || e.kind !== 'file' || e.size <= max));
}

/** Whether a `dirs` read of `dir` reports `path`: the directory itself, or an entry directly in it. */
function inDir(path: string, dir: string): boolean {
  return path === dir || posix.dirname(path) === dir;
}

/** What `dir`'s read returned: its own entry and the entries directly in it. */
function listingOf(read: NodeRead, dir: string): NodeEntry[] {
  return [...read.entries.values()].filter((e) => inDir(e.path, dir));
}

/** Reads what `req` asks for in one remote command. A failure on the host throws `ReadFailed`. */
export async function readNode(conn: Connection, req: ReadRequest): Promise<NodeRead> {
  const ahead = readAheads.get(conn);
  const own = req.files ?? [];
  const ownDirs = (req.dirs ?? []).map(withoutSlash);
  const max = req.maxFileBytes ?? 0;
  if (
    ahead &&
    !req.fresh &&
    (own.length || ownDirs.length) &&
    !req.prelude &&
    !req.trees?.length &&
    own.every((f) => ahead.seen.has(f)) &&
    ownDirs.every((d) => servable(ahead.listings.get(d), max))
  ) {
    const entries = new Map(own.map((f) => [f, ahead.seen.get(f)!]));
    for (const d of ownDirs) for (const e of ahead.listings.get(d)!.entries) entries.set(e.path, e);
    return { entries, records: [] };
  }
  // Paths under a directory this read lists would show in its listing: they wait for another read.
  const ownTrees = (req.trees ?? []).map(withoutSlash);
  const listed = [...ownDirs, ...ownTrees];
  const along = ahead
    ? [...ahead.pending].filter((p) => {
        const q = withoutSlash(p);
        return !listed.some((d) => q === d || q.startsWith(d === '/' ? d : `${d}/`));
      })
    : [];
  for (const p of along) ahead!.pending.delete(p);
  const alongFiles = along.filter((p) => !p.endsWith('/'));
  const alongDirs = along.filter((p) => p.endsWith('/')).map(withoutSlash);
  const read = await readNow(conn, {
    ...req,
    files: [...own, ...alongFiles.filter((p) => !own.includes(p))],
    ...(alongDirs.length ? { dirs: [...(req.dirs ?? []), ...alongDirs] } : {}),
  });
  for (const d of alongDirs) ahead!.listings.set(d, { max, entries: listingOf(read, d) });
  for (const p of alongFiles) {
    const e = read.entries.get(p);
    if (e) ahead!.seen.set(p, e);
  }
  // The answer holds only what this read asked for: what rode along is taken out of it.
  const asked = (p: string): boolean =>
    own.includes(p) || ownDirs.some((d) => inDir(p, d)) || ownTrees.some((t) => p === t || p.startsWith(`${t}/`));
  for (const p of [...read.entries.keys()])
    if ((alongFiles.includes(p) || alongDirs.some((d) => inDir(p, d))) && !asked(p)) read.entries.delete(p);
  return read;
}

async function readNow(conn: Connection, req: ReadRequest): Promise<NodeRead> {
  const pre = req.preludeArgs ?? [];
  const list = [
    ...(req.files ?? []).flatMap((p) => ['f', p]),
    ...(req.dirs ?? []).flatMap((p) => ['d', withoutSlash(p)]),
    ...(req.trees ?? []).flatMap((p) => ['t', withoutSlash(p)]),
  ];
  const argv = [
    'sh',
    '-c',
    script(req.prelude),
    'sh',
    String(pre.length),
    String(req.maxFileBytes ?? 0),
    req.treeContent ?? '',
    ...pre,
    ...list,
  ];
  // A read leaves nothing running (its prelude's programs answer and exit): its output streams back.
  const r = await conn.exec({ argv }, { contained: true });
  if (r.code !== 0) {
    const err = r.stderr.toString('utf8').trim().split('\n').slice(-3).join('; ');
    throw new ReadFailed(conn.host, `${describeExit(r.code, r.signal)}${err ? `: ${err}` : ''}`);
  }
  try {
    return parseNodeRead(r.stdout.toString('utf8'));
  } catch (e) {
    throw new ReadFailed(conn.host, (e as Error).message);
  }
}

/** The read command failed on the host (not a connection failure: those stay ConnectionErrors). */
export class ReadFailed extends Error {
  override readonly name = 'ReadFailed';
  constructor(
    readonly host: string,
    /** The exit and the host's last words, or why the output was unusable. */
    readonly why: string,
  ) {
    super(`${host}: reading files failed (${why})`);
  }
}

/** A directory's path without trailing slashes, as the reader keys it and its entries (`certs.d/` → `certs.d`). */
export function withoutSlash(dir: string): string {
  return dir.replace(/\/+$/, '') || (dir === '' ? '' : '/');
}

/** Names directly in `dir` among `entries` (files, links, subdirectories), sorted. */
export function namesIn(read: NodeRead, dir: string): string[] {
  const root = withoutSlash(dir);
  const out: string[] = [];
  for (const p of read.entries.keys()) if (p !== root && posix.dirname(p) === root) out.push(posix.basename(p));
  return out.sort();
}

/** The entry of a managed path: a link there is refused with the one sentence every reader uses. */
export function managedEntry(read: NodeRead, path: string): NodeEntry {
  const e = read.entries.get(path) ?? { kind: 'absent', path };
  if (e.kind === 'link') throw new LinkRefused(path);
  return e;
}

/** A managed path is a symbolic link: never read, written or chowned through. */
export class LinkRefused extends Error {
  override readonly name = 'LinkRefused';
  constructor(readonly path: string) {
    super(linkRefusal(path));
  }
}
