/**
 * "The running containerd lags config.toml": what every module whose change needs a restart
 * (containerd.tls, node.creds.wipe) checks after planning nothing, so that a change written by a
 * run that died before its restart, or by someone else's hand, is put in effect by the next run
 * whoever made it (DECISIONS: decided on the registry settings, never on mtimes alone).
 *
 * The signal, per version: containerd 1.6 and 1.7 report what they loaded in their CRI `Status`
 * (daemon-config.ts); 2.x does not, and there trustplay's record of the config it last restarted
 * containerd with (restart-backup.ts) is compared with the file, as long as the daemon running is
 * still the one that record describes (its CRI socket's inode and mtime).
 */
import type { Connection } from '../connection/connection.js';
import { sha256 } from '../engine/apply.js';
import type { Change, RestartRequest } from '../engine/module.js';
import { fileIds, parseRestartRecord } from '../engine/restart-backup.js';

/**
 * Whether the daemon running is the one trustplay's restart record describes, when the file moved
 * on from that record: `same`, or restarted since (by someone else) after the file's last edit (so
 * it runs the file) or before it (what it loaded cannot be told).
 */
export type RecordDaemon = 'same' | 'restarted-after-edit' | 'restarted-before-edit';

/** RecordDaemon for a node (one command, only when the file no longer matches the record). */
export async function recordedDaemon(
  conn: Connection,
  recordText: string | undefined,
  configFile: string,
  config: Buffer | string | null,
): Promise<RecordDaemon | undefined> {
  const record = parseRestartRecord(recordText);
  if (!record?.socket || config === null) return undefined;
  if (record.sha256 === sha256(config)) return undefined;
  const [socketId, configId] = await fileIds(conn, [record.socket.path, configFile]);
  if (socketId === record.socket.id) return 'same';
  const started = Number(socketId?.split(' ')[1]);
  const edited = Number(configId?.split(' ')[1]);
  return Number.isFinite(started) && Number.isFinite(edited) && edited <= started
    ? 'restarted-after-edit'
    : 'restarted-before-edit';
}

/**
 * What a restart record says the running daemon loaded, when the file moved on from it: `{ config }`
 * (the text it was started with); `unknown` when someone else restarted containerd before the file's
 * last edit; null when the daemon runs the file (no record, the same content, or restarted since).
 */
export function recordedConfig(
  recordText: string | undefined,
  config: Buffer | string | null,
  daemon: RecordDaemon | undefined,
): { config: string | null } | 'unknown' | null {
  const record = parseRestartRecord(recordText);
  if (!record || config === null || record.sha256 === sha256(config)) return null;
  if (daemon === 'restarted-after-edit') return null;
  if (daemon === 'restarted-before-edit') return 'unknown';
  return { config: record.config?.toString('utf8') ?? null };
}

/** The changes for a daemon that lags the file: a report line saying why, and the verified restart. */
export function lagRestart(summary: string, request: RestartRequest): Change[] {
  return [
    {
      // Custom: nothing is written; the change is the restart the request below asks for, and this
      // entry is what the report shows for it.
      op: 'custom',
      summary,
      resources: [],
      apply: () => Promise.resolve(),
    },
    request,
  ];
}
