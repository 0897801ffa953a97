/**
 * Handlers a host is owed: a task that notifies them changed the host, and the run ended (Ctrl-C,
 * kill -9, a lost connection, a later task failing) before they ran. Without a record the next run
 * finds the task already done ("ok"), notifies nothing, and the handler never runs. So a run notes
 * the notification on the node before the notifying task's changes are applied, and removes it once
 * the handler has run; a later run of the play finds the note and runs the handler (check reports
 * it as drift).
 *
 * The note lives in the same node directory as the host lock (TRUSTPLAY_LOCK_DIR, else /run), as
 * `trustplay.handlers`: JSON, 0600. It is keyed by play name and handler name, which is how a
 * playbook names a handler.
 *
 * /run is cleared by a reboot, and the note with it, on purpose: what a handler owes is work for the
 * daemons of this boot, and after a reboot every daemon started from the files as they are, so a
 * restart owed is moot, and a note kept on disk would fire a handler for a change long since in
 * effect (or months later, for a run nobody remembers). A note lost must never hide a needed
 * restart, and it cannot: the containerd restart a module's config change needs is not a note
 * handler. It is the pending marker beside config.toml (on disk, it survives the reboot) and, when
 * that is gone too, the daemon-lag check every such module runs at gather (containerd/daemon-lag.ts:
 * the daemon's own registry settings on 1.x, trustplay's restart record on 2.x), which finds a daemon
 * that lags its file whoever or whatever left it so. What a lost note can drop is a handler that is
 * not a restart: fix-registry's "Drop the cached image" (image.rmi). That is acceptable there: the
 * verify play's CRI pull resolves the image against the registry every time, cached or not, so the
 * proof that the trust works still runs.
 */
import type { Connection } from '../connection/connection.js';
import { nodeRunDir } from './lock.js';

/** One owed handler. */
export interface PendingHandler {
  play: string;
  handler: string;
  /** The run that made the change which notified it. */
  run: string;
}

interface Note {
  trustplay: 'pending-handlers';
  handlers: PendingHandler[];
}

/** Where the note lives on a node. */
export function pendingHandlersPath(): string {
  return `${nodeRunDir()}/trustplay.handlers`;
}

/** The handlers owed on a host (an unreadable note counts as none: it cannot say what is owed). */
export async function readPendingHandlers(conn: Connection): Promise<PendingHandler[]> {
  const text = await conn.readFile(pendingHandlersPath());
  if (text === null) return [];
  try {
    const note = JSON.parse(text.toString('utf8')) as Partial<Note>;
    if (note.trustplay !== 'pending-handlers' || !Array.isArray(note.handlers)) return [];
    return note.handlers.filter(
      (h): h is PendingHandler =>
        typeof h?.play === 'string' && typeof h.handler === 'string' && typeof h.run === 'string',
    );
  } catch {
    return [];
  }
}

const key = (h: Pick<PendingHandler, 'play' | 'handler'>) => `${h.play}\0${h.handler}`;

/** Adds `add` to and removes `remove` from the note; removes the file when nothing is owed. */
export async function updatePendingHandlers(
  conn: Connection,
  change: { add?: PendingHandler[]; remove?: Pick<PendingHandler, 'play' | 'handler'>[] },
): Promise<void> {
  const gone = new Set((change.remove ?? []).map(key));
  const now = new Map<string, PendingHandler>();
  for (const h of await readPendingHandlers(conn)) if (!gone.has(key(h))) now.set(key(h), h);
  for (const h of change.add ?? []) if (!now.has(key(h))) now.set(key(h), h);
  if (now.size === 0) {
    await conn.remove(pendingHandlersPath());
    return;
  }
  const note: Note = { trustplay: 'pending-handlers', handlers: [...now.values()] };
  await conn.writeFile(pendingHandlersPath(), JSON.stringify(note) + '\n', { mode: 0o600 });
}
