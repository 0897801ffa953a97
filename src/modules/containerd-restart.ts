/**
 * The verified containerd restart: an internal handler that config.toml-changing modules notify
 * (containerd.tls, node.creds.wipe, restore). It restarts containerd, waits for the CRI socket to
 * answer, and when it does not, puts the config.toml that was there before this run's change back,
 * restarts again and fails the host with both errors: a node is never left with a config that
 * containerd rejects.
 */
import type { Connection } from '../connection/connection.js';
import { describeExit } from '../connection/exit-codes.js';
import { createCriClientFor, DEFAULT_CRI_SOCKETS, resolveCriSocket, waitForCri } from '../cri/client.js';
import {
  TaskError,
  defineModule,
  type ArgsOf,
  type Change,
  type HandlerRequest,
  type TaskContext,
} from '../engine/module.js';

/** The internal module name the engine looks up in the registry. */
export const CONTAINERD_RESTART_MODULE = 'containerd.restart';

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['config_file', 'restart_command', 'timeout_sec'],
  properties: {
    config_file: { type: 'string', minLength: 1 },
    restart_command: { type: 'string', minLength: 1 },
    socket: { type: 'string', minLength: 1 },
    timeout_sec: { type: 'integer', minimum: 1 },
  },
} as const;

/** Arguments of the internal handler. */
export type ContainerdRestartArgs = ArgsOf<typeof schema>;

/** What a rollback puts back: the bytes (null = the file did not exist) with mode and owner. */
export interface ConfigBackup {
  content: Buffer | null;
  mode?: number;
  uid?: number;
  gid?: number;
}

/** The hostState key under which a config.toml backup lives. */
export function configBackupKey(configFile: string): string {
  return `containerd.backup:${configFile}`;
}

/**
 * The node-side record of a config.toml written by trustplay whose verified restart has not
 * finished: the config before the change (to roll back to), kept next to the file until the restart
 * succeeds or is rolled back. A run that dies in between (kill -9, a lost connection, a second
 * Ctrl-C) leaves it, and the next run of any module that edits config.toml finishes that change
 * first: restart with the health check, or put the earlier config back.
 */
export function pendingMarkerPath(configFile: string): string {
  return `${configFile}.trustplay-pending`;
}

interface PendingMarker {
  trustplay: 'pending-restart';
  /** The config before the change, base64; null when there was none. */
  previous: string | null;
  mode?: number;
  uid?: number;
  gid?: number;
}

function backupFromMarker(text: string): ConfigBackup | null {
  try {
    const m = JSON.parse(text) as Partial<PendingMarker>;
    if (m.trustplay !== 'pending-restart' || (m.previous !== null && typeof m.previous !== 'string')) return null;
    return {
      content: m.previous === null ? null : Buffer.from(m.previous, 'base64'),
      ...(typeof m.mode === 'number' ? { mode: m.mode } : {}),
      ...(typeof m.uid === 'number' ? { uid: m.uid } : {}),
      ...(typeof m.gid === 'number' ? { gid: m.gid } : {}),
    };
  } catch {
    return null;
  }
}

/** The rollback target recorded by a pending marker's content (read by a module's gather). */
export function parsePendingMarker(host: string, configFile: string, text: string): ConfigBackup {
  const backup = backupFromMarker(text);
  if (!backup)
    throw new TaskError(
      `${host}: ${pendingMarkerPath(configFile)} is not a record trustplay can read, so it cannot tell whether an earlier run left containerd unrestarted: check containerd on ${host}, then remove that file.`,
      'refused',
    );
  return backup;
}

/** An interrupted change of trustplay's own on a node, read from its marker (null: none). */
export async function readPendingRestart(conn: Connection, configFile: string): Promise<ConfigBackup | null> {
  const text = await conn.readFile(pendingMarkerPath(configFile));
  return text === null ? null : parsePendingMarker(conn.host, configFile, text.toString('utf8'));
}

/**
 * Records config.toml as it was before a change, for the handler's rollback, in this run and on
 * the node (the pending marker, written before the change). Only the first record counts: when two
 * tasks edit the file before the handler runs, or an earlier run was interrupted after its edit, the
 * content to roll back to is the one before the first edit. A successful restart clears both.
 */
export async function rememberConfigBackup(
  ctx: TaskContext,
  configFile: string,
  previous: Buffer | null,
  meta: { mode?: number; uid?: number; gid?: number } = {},
): Promise<void> {
  const key = configBackupKey(configFile);
  if (ctx.hostState.has(key)) return;
  const earlier = await readPendingRestart(ctx.conn, configFile);
  const backup: ConfigBackup = earlier ?? { content: previous === null ? null : Buffer.from(previous), ...meta };
  if (!earlier) {
    const marker: PendingMarker = {
      trustplay: 'pending-restart',
      previous: backup.content === null ? null : backup.content.toString('base64'),
      ...meta,
    };
    // 0600: config.toml may hold registry credentials.
    await ctx.conn.writeFile(pendingMarkerPath(configFile), JSON.stringify(marker) + '\n', { mode: 0o600 });
  }
  ctx.hostState.set(key, backup);
}

/**
 * The change that finishes an interrupted change found by `readPendingRestart`: the verified
 * restart (health check, rollback to the config before the interrupted change). Modules that edit
 * config.toml put it first in their plan, so it runs before anything new.
 */
export function finishPendingRestart(
  pending: ConfigBackup,
  request: { configFile: string; restartCommand: string; socket?: string; timeoutSec: number },
): Change {
  return {
    summary: `finish the change an interrupted trustplay run left: ${request.configFile} was written but containerd was not restarted — restart it with the health check (the earlier config goes back if containerd does not come back)`,
    resources: [],
    notify: [containerdRestartRequest(request)],
    apply: (ctx) => {
      const key = configBackupKey(request.configFile);
      if (!ctx.hostState.has(key)) ctx.hostState.set(key, pending);
      return Promise.resolve();
    },
  };
}

/**
 * A config.toml-editing module's plan with any interrupted change of trustplay's own finished first
 * (DECISIONS: interrupted changes and the CRI pre-flight), even when the config it left is one the
 * module would refuse to edit: then only the finish is planned, and the refusal is a warning.
 */
export function afterPendingRestart(
  ctx: Pick<TaskContext, 'warn'>,
  pending: ConfigBackup | undefined,
  request: { configFile: string; restartCommand: string; socket?: string; timeoutSec: number },
  plan: () => Change[],
): Change[] {
  const finish = pending ? [finishPendingRestart(pending, request)] : [];
  try {
    return [...finish, ...plan()];
  } catch (e) {
    if (!finish.length || !(e instanceof TaskError)) throw e;
    ctx.warn(`${e.message} — finishing the interrupted change first; run again afterwards`);
    return finish;
  }
}

/** Removes the pending marker once the config containerd runs is settled (restarted or rolled back). */
async function settled(ctx: TaskContext, configFile: string): Promise<void> {
  ctx.hostState.delete(configBackupKey(configFile));
  try {
    await ctx.conn.remove(pendingMarkerPath(configFile));
  } catch (e) {
    ctx.warn(
      `could not remove ${pendingMarkerPath(configFile)} (${(e as Error).message}): the next run will restart containerd once more to be sure`,
    );
  }
}

/** The handler request a config.toml-changing change attaches as `notify`. */
export function containerdRestartRequest(o: {
  configFile: string;
  restartCommand: string;
  socket?: string;
  timeoutSec: number;
}): HandlerRequest {
  return {
    id: `containerd.restart ${o.configFile}`,
    name: 'Restart containerd (verified)',
    module: CONTAINERD_RESTART_MODULE,
    args: {
      config_file: o.configFile,
      restart_command: o.restartCommand,
      ...(o.socket !== undefined ? { socket: o.socket } : {}),
      timeout_sec: o.timeoutSec,
    },
  };
}

/**
 * The lines of a failed restart worth a person's time: the first (systemctl's "Job for ... failed")
 * and the last ones that say what went wrong (containerd's own "failed to load TOML: ..."), not its
 * info-level chatter.
 */
export function trimmed(b: Buffer): string {
  const lines = b
    .toString('utf8')
    .trim()
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (lines.length === 0) return '';
  const telling = lines
    .slice(1)
    .filter(
      (l) => /error|fail|fatal|invalid|expect|denied|not found|no such/i.test(l) && !/level=(info|debug)/.test(l),
    );
  const picked = [lines[0] as string, ...telling.slice(-2)];
  if (picked.length === 1 && lines.length > 1) picked.push(lines[lines.length - 1] as string);
  const text = picked.join('; ');
  return text.length > 500 ? `${text.slice(0, 497)}...` : text;
}

/** Runs the restart command and waits for the CRI; resolves with an error sentence, or null when containerd answers. */
async function restartAndWait(
  conn: Connection,
  command: string,
  socket: string,
  timeoutSec: number,
): Promise<string | null> {
  const timeoutMs = timeoutSec * 1000;
  const r = await conn.exec({ script: command }, { timeoutMs });
  if (r.code !== 0) {
    const err = trimmed(r.stderr) || trimmed(r.stdout);
    return `\`${command}\` failed (${r.timedOut ? `timed out after ${timeoutSec} s` : describeExit(r.code, r.signal)})${err ? `: ${err}` : ''}`;
  }
  let client;
  try {
    client = await createCriClientFor(conn, socket);
  } catch (e) {
    return `cannot reach ${socket}: ${(e as Error).message}`;
  }
  try {
    await waitForCri(client, timeoutMs);
    return null;
  } catch (e) {
    // waitForCri's message already names the socket, the bound and the last error.
    return `after \`${command}\`, ${(e as Error).message}`;
  } finally {
    await client.close().catch(() => undefined);
  }
}

/** The socket to health-check: the task's, the host's `cri_socket` variable, crictl.yaml, the well-known ones. */
async function healthSocket(ctx: TaskContext, args: ContainerdRestartArgs): Promise<string> {
  if (args.socket) return args.socket;
  const fromVars = ctx.vars['cri_socket'];
  if (typeof fromVars === 'string' && fromVars !== '') return fromVars;
  try {
    return await resolveCriSocket(ctx.conn);
  } catch {
    // containerd was not running before the restart, so no socket exists yet; after a successful
    // restart the first well-known one is where it appears.
    return DEFAULT_CRI_SOCKETS[0];
  }
}

async function restoreBackup(conn: Connection, configFile: string, backup: ConfigBackup): Promise<void> {
  if (backup.content === null) {
    await conn.remove(configFile);
    return;
  }
  await conn.writeFile(configFile, backup.content, {
    ...(backup.mode !== undefined ? { mode: backup.mode } : {}),
    ...(backup.uid !== undefined ? { uid: backup.uid } : {}),
    ...(backup.gid !== undefined ? { gid: backup.gid } : {}),
  });
}

/** Restart, verify, and on failure roll config.toml back; throws TaskError with every error in one message. */
export async function verifiedRestart(ctx: TaskContext, args: ContainerdRestartArgs): Promise<void> {
  // Resolve before restarting: while containerd runs its socket exists, which is what the lookup checks.
  const socket = await healthSocket(ctx, args);
  const first = await restartAndWait(ctx.conn, args.restart_command, socket, args.timeout_sec);
  const key = configBackupKey(args.config_file);
  const backup = ctx.hostState.get(key) as ConfigBackup | undefined;
  if (first === null) {
    await settled(ctx, args.config_file);
    return;
  }
  if (!backup) {
    throw new TaskError(
      `containerd did not come back after the restart (${first}); no earlier ${args.config_file} was recorded in this run, so nothing was rolled back: fix containerd on ${ctx.host} by hand.`,
      'command',
    );
  }
  try {
    await restoreBackup(ctx.conn, args.config_file, backup);
  } catch (e) {
    throw new TaskError(
      `ROLLBACK FAILED: containerd did not come back after the config change (${first}), and putting the previous ${args.config_file} back failed too (${(e as Error).message}); ${ctx.host} is left with the new config and containerd is down: restore the file from the run's snapshot (trustplay restore) now.`,
      'command',
    );
  }
  const second = await restartAndWait(ctx.conn, args.restart_command, socket, args.timeout_sec);
  if (second === null) {
    await settled(ctx, args.config_file);
    throw new TaskError(
      `containerd did not come back after the config change (${first}); the previous ${args.config_file} was restored and containerd restarted (it answers on ${socket}).`,
      'command',
    );
  }
  throw new TaskError(
    `ROLLBACK FAILED: containerd did not come back after the config change (${first}); the previous ${args.config_file} was restored but containerd still does not answer (${second}): ${ctx.host} has no working container runtime, look at containerd's log now.`,
    'command',
  );
}

/** The internal handler module, registered as `containerd.restart`. */
export default defineModule({
  name: CONTAINERD_RESTART_MODULE,
  schema,
  internal: true,
  description:
    'Restart containerd, wait for its CRI socket, and roll config.toml back if it does not come back (internal handler).',
  gather() {
    return Promise.resolve(null);
  },
  plan(args): Change[] {
    return [
      {
        summary: `restart containerd (\`${args.restart_command}\`) and wait up to ${args.timeout_sec} s for the CRI socket`,
        // config.toml was saved by the change that notified this handler; a rollback only puts that back.
        resources: [],
        apply: (ctx) => verifiedRestart(ctx, args),
      },
    ];
  },
});
