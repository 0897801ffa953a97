/**
 * A lock per host, so a scheduled `check` and a manual `run` never interleave on one node.
 *
 * The lock is a directory created atomically with mkdir on the node (`/run/trustplay.lock`, or under
 * /tmp when /run is not writable) with an `owner` file: the run id, who runs it, and the node-side
 * process that holds it. That process is a long-lived session on the host's connection: it takes the
 * lock, refreshes it when trustplay says so, and removes it when trustplay releases it or when its
 * stdin ends — which is what happens when trustplay dies or the connection drops, whoever killed it.
 * So a lock whose holder process is gone is broken at once; one whose holder lives on but is no
 * longer refreshed (a connection cut without a FIN, a frozen sshd) is broken after `staleMs`, a
 * small multiple of the refresh interval. Breaking happens under flock(1) on the lock's directory
 * so two runs breaking the same stale lock never both take it.
 */
import type { Connection } from '../connection/connection.js';
import type { HostSession } from '../connection/session.js';
import { DRIVER_CASE_ARM, driverFunctions } from '../connection/driver.js';
import { quote } from '../connection/shell-quote.js';

export interface LockOptions {
  runId: string;
  /** How long to wait for a busy host (default 60 s). */
  timeoutMs?: number;
  /** How often the holder refreshes the lock (default 10 s). */
  refreshMs?: number;
  /** A lock not refreshed for this long is broken even if its holder lives (default 3 × refreshMs). */
  staleMs?: number;
  /** Directory for the lock (default: TRUSTPLAY_LOCK_DIR, else /run, falling back to /tmp). */
  dir?: string;
  /** Who we are, for the busy message. */
  owner?: string;
  /** Told once when the host is busy and we start waiting, with who holds it. */
  onWait?: (message: string) => void;
  /** Told when a lock left by a run that is gone is broken. */
  onNotice?: (message: string) => void;
  /** Stops waiting (Ctrl-C). */
  signal?: AbortSignal;
}

/** The node-side directory for trustplay's lock: TRUSTPLAY_LOCK_DIR or /run. */
export function nodeRunDir(): string {
  return process.env['TRUSTPLAY_LOCK_DIR'] ?? '/run';
}

export class HostBusyError extends Error {
  override readonly name = 'HostBusyError';
}

/** The lock could not be created at all (missing directory, read-only, permissions): never "busy". */
export class LockError extends Error {
  override readonly name = 'LockError';
}

// The holder's protocol, one verb per line on stdin: `try` (answers ACQUIRED, HELD, BUSY or FAIL,
// after any BROKE notice), `touch` (refresh), `release`, `end` (release and leave); EOF releases
// too. The owner file's second line names the holder process and its start time (so a reused pid
// is not taken for it).
// With `carry`, the holder also runs the host's commands (`x ...` requests, src/connection/driver.ts),
// refreshing the lock while a long one runs, so the host needs no other session.
function holderScript(o: { runId: string; owner: string; dir?: string; staleSec: number; carry: boolean }): string {
  // C locale: the errno text of mkdir's message is matched and shown.
  return `${o.carry ? driverFunctions() : 'tp_cleanup() { [ "$#" -eq 0 ] || rm -rf -- "$@"; }'}
export LC_ALL=C
${o.dir ? `d=${quote(o.dir)}` : 'd=/run; [ -d "$d" ] && [ -w "$d" ] || d=/tmp'}
lock="$d/trustplay.lock"
run=${quote(o.runId)}
me=${quote(`${o.runId} ${o.owner}`)}
stale=${o.staleSec}
held=0
pstart() { tp_st=; read -r tp_st 2>/dev/null <"/proc/$1/stat" || [ -n "$tp_st" ] || return 0; set -- $tp_st; [ "$3" = Z ] || eval "printf %s \\"\\\${22}\\""; }
self=$(pstart $$)
alive() {
  [ -n "$1" ] && [ -r /proc/self/stat ] || { echo unknown; return; }
  if [ -n "$2" ]; then [ "$(pstart "$1")" = "$2" ] && echo alive || echo gone; return; fi
  [ -n "$(pstart "$1")" ] && echo alive || echo gone
}
# Whether the owner file names this holder (same pid, same start), read with builtins: no process
# per refresh. \`mine\` also needs this session to have taken it.
owned() { tp_o2=; { read -r tp_o1; read -r tp_o2; } 2>/dev/null <"$lock/owner"; [ "$tp_o2" = "holder $$ $self" ]; }
mine() { [ "$held" = 1 ] && owned; }
take() {
  if err=$(mkdir "$lock" 2>&1); then
    printf '%s\\nholder %s %s\\n' "$me" "$$" "$self" > "$lock/owner"
    held=1; echo "ACQUIRED $lock"; return 0
  fi
  # EEXIST is "busy", even if the holder removed it a moment later (the next try takes it).
  case $err in *'File exists'*) return 1 ;; esac
  [ -d "$lock" ] && return 1
  printf 'FAIL %s %s\\n' "$lock" "$(printf %s "$err" | tr '\\n' ' ')"; return 0
}
inspect() {
  o=$(head -n1 "$lock/owner" 2>/dev/null)
  # A lock another session made a moment ago has no owner line yet (mkdir, then the line): a run
  # trying all its hosts at once, two of them one machine, would take its own lock for another's.
  i=0
  while [ -z "$o" ] && [ -d "$lock" ] && [ $i -lt 20 ]; do
    sleep 0.05 2>/dev/null || break
    i=$((i + 1)); o=$(head -n1 "$lock/owner" 2>/dev/null)
  done
  [ -n "$o" ] || o=unknown
  set -- $(sed -n 's/^holder //p' "$lock/owner" 2>/dev/null); hp=$1; st=$(alive "$1" "$2")
  now=$(date +%s); mt=$(stat -c %Y "$lock/owner" 2>/dev/null || stat -c %Y "$lock" 2>/dev/null || echo "$now")
  age=$((now - mt))
}
try() {
  take && return
  inspect
  [ "\${o%% *}" = "$run" ] && { echo "HELD $lock"; return; }
  if [ "$st" = gone ] || [ "$age" -gt "$stale" ]; then
    # Re-decide under the guard: a run that broke it a moment ago holds it now.
    exec 8<"$d"
    if ! command -v flock >/dev/null 2>&1 || flock -w 5 8; then inspect; else st=; age=0; fi
    if [ -d "$lock" ] && [ "\${o%% *}" != "$run" ] && { [ "$st" = gone ] || [ "$age" -gt "$stale" ]; }; then
      [ "$st" = alive ] && kill "$hp" 2>/dev/null
      rm -rf "$lock"
      echo "BROKE $st $age $o"
    fi
    take; r=$?
    exec 8<&-
    [ $r = 0 ] && return
    inspect
  fi
  echo "BUSY $lock $age $st $o"
}
release() { mine && rm -rf "$lock"; held=0; }
# The session's end: tp_cleanup stops the driver's ticker, then removes its directory and the lock
# (when this session holds it) in one rm.
finish() {
  if mine; then tp_cleanup "$lock"; else tp_cleanup; fi
  held=0
}
# A refresh appends an empty line to the owner file (its mtime is the lock's age): the shell's own
# redirection, no process; readers look at its first two lines only.
refresh() { echo >>"$lock/owner"; }
# The driver's ticker is a subshell forked at the session's first command, with a copy of $held
# from then: it asks the owner file alone whether this holder (same pid, same start) holds the lock.
tp_tick='owned && refresh'
trap 'finish; exit 0' HUP INT TERM PIPE
while read -r verb; do
  case $verb in
    try) try ;;
    touch) mine && refresh ;;
    release) release; echo RELEASED ;;
    end) break ;;
    ${DRIVER_CASE_ARM}
  esac
done
finish
`;
}

const ERRNO: Record<string, string> = {
  'No such file or directory': 'ENOENT',
  'Permission denied': 'EACCES',
  'Read-only file system': 'EROFS',
  'No space left on device': 'ENOSPC',
  'Not a directory': 'ENOTDIR',
  'Operation not permitted': 'EPERM',
  'Disk quota exceeded': 'EDQUOT',
};

function lockFailure(host: string, path: string, detail: string): LockError {
  const why = Object.keys(ERRNO).find((k) => detail.includes(k));
  const reason = why ? `${why} (${ERRNO[why]})` : detail.trim() || 'unknown error';
  return new LockError(
    `could not create the trustplay lock ${path} on ${host}: ${reason} — check that ${path.replace(/\/[^/]*$/, '') || '/'} exists and is writable (TRUSTPLAY_LOCK_DIR names it)`,
  );
}

function holderText(holder: string, state: string, age: string): string {
  const [run, ...who] = holder.split(' ');
  const life = state === 'alive' ? 'alive' : state === 'gone' ? 'gone' : 'not known whether alive';
  return `${run}${who.length ? ` from ${who.join(' ')}` : ''}, holder ${life}, last seen ${age}s ago`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort(): void {
      clearTimeout(t);
      reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    }
    if (signal?.aborted) return abort();
    signal?.addEventListener('abort', abort, { once: true });
  });
}

async function answer(session: HostSession, host: string, signal?: AbortSignal): Promise<string> {
  const line = await session.nextLine(signal);
  if (line === null)
    throw new LockError(
      `could not take the trustplay lock on ${host}: the lock session ended (is /bin/sh there, and the connection still up?)`,
    );
  return line;
}

/** What a `try` answered: ours now, already ours (this run holds it), or another run's. */
type Attempt = { kind: 'acquired' } | { kind: 'held' } | { kind: 'busy'; path: string; who: string };

/**
 * One host's holder session (see holderScript): takes, gives back and keeps the lock. The session
 * stays open whether or not the lock is held, so giving a lock back to wait for another host in
 * order (acquireHostLocks) costs one line, not a session.
 */
class HolderSession {
  /** Refreshes the lock from the moment it is taken (also while other hosts are waited for). */
  private refresh: ReturnType<typeof setInterval> | undefined;

  private constructor(
    private readonly conn: Connection,
    private readonly session: HostSession,
    private readonly o: LockOptions,
  ) {}

  static async open(conn: Connection, o: LockOptions): Promise<HolderSession> {
    const dir = o.dir ?? process.env['TRUSTPLAY_LOCK_DIR'];
    const carry = conn.carriesCommands === true;
    const session = await conn.session(
      {
        script: holderScript({
          runId: o.runId,
          owner: o.owner ?? 'trustplay',
          staleSec: Math.ceil((o.staleMs ?? 3 * (o.refreshMs ?? 10_000)) / 1000),
          carry,
          ...(dir ? { dir } : {}),
        }),
      },
      carry ? { carry } : {},
    );
    return new HolderSession(conn, session, o);
  }

  /** One `try`, without waiting; a lock that cannot be created at all throws LockError. */
  async attempt(): Promise<Attempt> {
    const host = this.conn.host;
    this.session.send('try');
    let line = await answer(this.session, host, this.o.signal);
    while (line.startsWith('BROKE ')) {
      const [, state = '', age = '', ...holder] = line.split(' ');
      this.o.onNotice?.(
        `${host}: broke the lock of trustplay run ${holderText(holder.join(' '), state, age)}: ${state === 'gone' ? 'its holder is gone' : `it was not refreshed for ${age}s`}`,
      );
      line = await answer(this.session, host, this.o.signal);
    }
    if (line.startsWith('HELD ')) return { kind: 'held' };
    if (line.startsWith('ACQUIRED ')) {
      this.refresh ??= setInterval(() => this.session.send('touch'), this.o.refreshMs ?? 10_000);
      this.refresh.unref();
      return { kind: 'acquired' };
    }
    const fail = /^FAIL (\S+) (.*)$/.exec(line);
    if (fail) throw lockFailure(host, fail[1]!, fail[2]!);
    const busy = /^BUSY (\S+) (\d+) (\S+) (.*)$/.exec(line);
    if (!busy) throw new LockError(`could not take the trustplay lock on ${host}: unexpected answer ${line}`);
    const [, path, age, state, holder] = busy;
    return { kind: 'busy', path: path!, who: holderText(holder!, state!, age!) };
  }

  /** Gives back a lock this session took, keeping the session for a later `try`. */
  async unlock(): Promise<void> {
    this.stopRefresh();
    this.session.send('release');
    for (;;) {
      const line = await answer(this.session, this.conn.host, this.o.signal);
      if (line === 'RELEASED') return;
    }
  }

  /**
   * After `attempt` said ours: the lock's release (refreshed until then). When this run already
   * held it through another session, this one is closed first (a closing session must not be
   * taken for the one carrying the host's commands).
   */
  async keep(a: Attempt): Promise<() => Promise<void>> {
    if (a.kind === 'held') {
      await this.close();
      return async () => undefined;
    }
    let released: Promise<void> | undefined;
    return () =>
      (released ??= (async () => {
        this.stopRefresh();
        // `end`: the lock released and the session's files removed at once, then the session ends.
        this.session.send('end');
        await this.session.close();
      })());
  }

  /** Tries until the lock is ours, waiting with backoff up to `timeoutMs` (HostBusyError then). */
  async wait(first?: Attempt): Promise<Attempt> {
    const timeoutMs = this.o.timeoutMs ?? 60_000;
    const started = Date.now();
    let delay = 250;
    let told = false;
    for (let a = first ?? (await this.attempt()); ; a = await this.attempt()) {
      if (a.kind !== 'busy') return a;
      if (!told) {
        told = true;
        this.o.onWait?.(`waiting for the lock held by trustplay run ${a.who} (up to ${Math.round(timeoutMs / 1000)}s)`);
      }
      const waited = Date.now() - started;
      if (waited >= timeoutMs) {
        throw new HostBusyError(
          `${this.conn.host} is busy: another trustplay run (${a.who}) holds ${a.path}; waited ${Math.round(waited / 1000)}s. If no run is going on, remove it: rm -rf ${a.path}`,
        );
      }
      await sleep(Math.min(delay, timeoutMs - waited), this.o.signal);
      delay = Math.min(delay * 2, 2000);
    }
  }

  close(): Promise<void> {
    this.stopRefresh();
    return this.session.close();
  }

  private stopRefresh(): void {
    clearInterval(this.refresh);
    this.refresh = undefined;
  }
}

/**
 * Takes the host's lock, waiting while another run holds it. Returns a release function; the lock
 * is also released when the connection ends.
 */
export async function acquireHostLock(conn: Connection, o: LockOptions): Promise<() => Promise<void>> {
  const holder = await HolderSession.open(conn, o);
  try {
    return await holder.keep(await holder.wait());
  } catch (e) {
    await holder.close();
    throw e;
  }
}

/** What lockInOrder needs of one lock. */
export interface OrderedLock {
  /** One non-blocking try: true when the lock is ours. */
  attempt(): Promise<boolean>;
  /** Gives back a lock `attempt` took. */
  unlock(): Promise<void>;
  /** Blocks until the lock is ours (or throws: busy too long, stopped). */
  wait(): Promise<void>;
}

/**
 * Takes every lock of `keys` (in their sort order) without ever waiting for one while holding one
 * that sorts after it, so two runs over overlapping fleets cannot each hold what the other waits for
 * (taken freely in parallel, run A held node9 waiting for node2 while run B held node2 waiting for
 * node9: the chaos suite's two concurrent runs). Uncontended, that takes one parallel round of
 * tries, not one round trip per host in turn: every lock is tried at once; if one is busy, the locks
 * after it that were taken are given back, it is waited for, and the rest are tried again the same
 * way. Returns the keys that failed, with why; the others are held.
 */
export async function lockInOrder(keys: string[], lockOf: (key: string) => OrderedLock): Promise<Map<string, Error>> {
  const failed = new Map<string, Error>();
  let pending = [...keys].sort();
  while (pending.length) {
    const tries = await Promise.all(
      pending.map((k) =>
        lockOf(k)
          .attempt()
          .then(
            (ours) => ({ ours }),
            (e: unknown) => ({ error: e as Error }),
          ),
      ),
    );
    tries.forEach((t, i) => 'error' in t && failed.set(pending[i]!, t.error));
    const first = tries.findIndex((t) => 'ours' in t && !t.ours);
    if (first < 0) break;
    const after = pending.slice(first + 1);
    const mine = after.filter((_, i) => {
      const t = tries[first + 1 + i]!;
      return 'ours' in t && t.ours;
    });
    await Promise.all(
      mine.map((k) =>
        lockOf(k)
          .unlock()
          .catch((e: unknown) => failed.set(k, e as Error)),
      ),
    );
    const busy = pending[first]!;
    try {
      await lockOf(busy).wait();
    } catch (e) {
      failed.set(busy, e as Error);
    }
    pending = after.filter((k) => !failed.has(k));
  }
  return failed;
}

/**
 * The host locks of a batch of connected hosts (lockInOrder over holder sessions opened in
 * parallel). Returns each host's release, or why it could not be locked.
 */
export async function acquireHostLocks(
  hosts: Array<{ conn: Connection; options: LockOptions }>,
): Promise<Map<string, (() => Promise<void>) | Error>> {
  const out = new Map<string, (() => Promise<void>) | Error>();
  const holders = new Map<string, { holder: HolderSession; got?: Attempt }>();
  await Promise.all(
    hosts.map(async ({ conn, options }) => {
      try {
        holders.set(conn.host, { holder: await HolderSession.open(conn, options) });
      } catch (e) {
        out.set(conn.host, e as Error);
      }
    }),
  );
  const failed = await lockInOrder([...holders.keys()], (host) => {
    const h = holders.get(host)!;
    return {
      attempt: async () => {
        h.got = await h.holder.attempt();
        return h.got.kind !== 'busy';
      },
      unlock: async () => {
        if (h.got?.kind === 'acquired') await h.holder.unlock();
        delete h.got;
      },
      wait: async () => {
        h.got = await h.holder.wait(h.got);
      },
    };
  });
  await Promise.all(
    [...holders].map(async ([host, h]) => {
      const error = failed.get(host);
      if (error) {
        out.set(host, error);
        await h.holder.close();
      } else out.set(host, await h.holder.keep(h.got!));
    }),
  );
  return out;
}
