/**
 * A lock per host, so a scheduled `check` and a manual `run` never interleave on one node. The lock
 * is a directory created atomically with mkdir on the node (`/run/trustplay.lock`, or under /tmp
 * when /run is not writable), holding the owner's run id; the owner refreshes it while it runs and
 * removes it on exit. A lock not refreshed for `staleMs` is broken (its owner died). A second run
 * waits up to `timeoutMs`, then reports the host busy naming the holder.
 */
import type { Connection } from '../connection/connection.js';
import { quote } from '../connection/shell-quote.js';

export interface LockOptions {
  runId: string;
  /** How long to wait for a busy host (default 60 s). */
  timeoutMs?: number;
  /** A lock older than this (not refreshed) is broken (default 5 min). */
  staleMs?: number;
  /** Directory for the lock (default: TRUSTPLAY_LOCK_DIR, else /run, falling back to /tmp). */
  dir?: string;
  /** Who we are, for the busy message. */
  owner?: string;
}

/** The node-side directory for trustplay's lock and caches (tmpfs): TRUSTPLAY_LOCK_DIR or /run. */
export function nodeRunDir(): string {
  return process.env['TRUSTPLAY_LOCK_DIR'] ?? '/run';
}

export class HostBusyError extends Error {
  override readonly name = 'HostBusyError';
}

function script(o: Required<Pick<LockOptions, 'runId'>> & { dir?: string; owner: string; staleSec: number }): string {
  return [
    o.dir ? `d=${quote(o.dir)}` : 'd=/run; [ -d "$d" ] && [ -w "$d" ] || d=/tmp',
    'lock="$d/trustplay.lock"',
    `me=${quote(`${o.runId} ${o.owner}`)}`,
    'try() { if mkdir "$lock" 2>/dev/null; then printf "%s\\n" "$me" > "$lock/owner"; echo "ACQUIRED $lock"; exit 0; fi; }',
    'try',
    // Two inventory hosts can be one machine (local connections, aliases): our own run already holds it.
    `[ "$(head -n1 "$lock/owner" 2>/dev/null | cut -d' ' -f1)" = ${quote(o.runId)} ] && { echo "HELD $lock"; exit 0; }`,
    // Stale: the owner file was not refreshed for staleSec (its run died): break it once and retry.
    'now=$(date +%s); mt=$(stat -c %Y "$lock/owner" 2>/dev/null || stat -c %Y "$lock" 2>/dev/null || echo "$now")',
    `if [ $((now - mt)) -gt ${o.staleSec} ]; then rm -rf "$lock"; try; fi`,
    'printf "BUSY %s %s " "$lock" $((now - mt)); cat "$lock/owner" 2>/dev/null || echo unknown',
  ].join('\n');
}

/** Takes the host's lock, waiting while another run holds it. Returns a release function. */
export async function acquireHostLock(conn: Connection, o: LockOptions): Promise<() => Promise<void>> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  const staleMs = o.staleMs ?? 300_000;
  const owner = o.owner ?? 'trustplay';
  const dir = o.dir ?? process.env['TRUSTPLAY_LOCK_DIR'];
  const deadline = Date.now() + timeoutMs;
  let delay = 250;
  for (;;) {
    const r = await conn.exec({
      script: script({ runId: o.runId, owner, staleSec: Math.ceil(staleMs / 1000), ...(dir ? { dir } : {}) }),
    });
    const out = r.stdout.toString().trim();
    if (r.code === 0 && /^HELD /m.test(out)) return async () => undefined;
    const acquired = /^ACQUIRED (.+)$/m.exec(out);
    if (r.code === 0 && acquired) {
      const path = acquired[1]!;
      const refresh = setInterval(
        () => {
          void conn
            .exec({
              script: `[ "$(head -n1 ${quote(`${path}/owner`)} | cut -d' ' -f1)" = ${quote(o.runId)} ] && touch ${quote(`${path}/owner`)}`,
            })
            .catch(() => undefined);
        },
        Math.max(1000, Math.floor(staleMs / 3)),
      );
      refresh.unref();
      return async () => {
        clearInterval(refresh);
        await conn.exec({
          script: `[ "$(head -n1 ${quote(`${path}/owner`)} 2>/dev/null | cut -d' ' -f1)" = ${quote(o.runId)} ] && rm -rf ${quote(path)}; true`,
        });
      };
    }
    const busy = /^BUSY (\S+) (\d+) (.*)$/m.exec(out);
    if (!busy)
      throw new Error(
        `could not take the trustplay lock on ${conn.host}: ${r.stderr.toString().trim() || out || `exit ${r.code}`}`,
      );
    if (Date.now() + delay > deadline) {
      const [, path, age, holder] = busy;
      const [holderRun, ...who] = (holder ?? '').split(' ');
      throw new HostBusyError(
        `${conn.host} is busy: another trustplay run (${holderRun}${who.length ? ` from ${who.join(' ')}` : ''}, last seen ${age}s ago) holds ${path}; waited ${Math.round(timeoutMs / 1000)}s. If no run is going on, remove it: rm -rf ${path}`,
      );
    }
    await new Promise((res) => setTimeout(res, delay));
    delay = Math.min(delay * 2, 2000);
  }
}
