/**
 * The verified containerd restart: the internal handler a `restart.request` operation schedules
 * (containerd.tls, node.creds.wipe, restore). It restarts containerd, waits for the CRI socket to
 * answer, and when it does not, puts the config.toml that was there before this run's change back,
 * restarts again and fails the host with both errors: a node is never left with a config that
 * containerd rejects.
 */
import type { Connection } from '../connection/connection.js';
import { ConnectionError, connectionLost } from '../connection/errors.js';
import { describeExit } from '../connection/exit-codes.js';
import {
  createCriClientFor,
  DEFAULT_CRI_SOCKETS,
  resolveCriSocket,
  waitForCri,
  type CriImageClient,
} from '../cri/client.js';
import { TaskError } from '../engine/errors.js';
import { defineModule, type ArgsOf, type Change, type RestartRequest, type TaskContext } from '../engine/module.js';
import { configBackupKey, pendingMarkerPath, recordRestart, type ConfigBackup } from '../engine/restart-backup.js';
import { defined } from '../defined.js';

/** The internal module name the engine looks up in the registry. */
export const CONTAINERD_RESTART_MODULE = 'containerd.restart';

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['config_file', 'restart_command', 'restart_timeout'],
  properties: {
    config_file: { type: 'string', minLength: 1 },
    service: { type: 'string', minLength: 1 },
    companions: { type: 'array', items: { type: 'string', minLength: 1 } },
    restart_command: { type: 'string', minLength: 1 },
    socket: { type: 'string', minLength: 1 },
    restart_timeout: { type: 'integer', minimum: 1 },
  },
} as const;

/** Arguments of the internal handler. */
export type ContainerdRestartArgs = ArgsOf<typeof schema>;

/**
 * The verified restart a module's config.toml change asks for, from the module's own arguments;
 * `service` names the unit that runs containerd when it is not containerd's own (k3s, rke2-server).
 */
export function restartRequestFor(args: {
  config_file: string;
  restart_command: string;
  socket?: string;
  restart_timeout: number;
  service?: string | undefined;
}): RestartRequest {
  return {
    op: 'restart.request',
    unit: 'containerd',
    ...(args.service !== undefined ? { service: args.service } : {}),
    config: args.config_file,
    command: args.restart_command,
    health: { ...defined({ socket: args.socket }), timeoutSec: args.restart_timeout },
  };
}

/**
 * Once the config containerd runs is settled (restarted or rolled back, health check passed):
 * records what it runs with, then removes the pending marker.
 */
async function settled(ctx: TaskContext, args: ContainerdRestartArgs, socket: string): Promise<void> {
  const configFile = args.config_file;
  for (const f of [configFile, ...(args.companions ?? [])]) ctx.hostState.delete(configBackupKey(f));
  await recordRestart(ctx, configFile, socket);
  try {
    await ctx.conn.remove(pendingMarkerPath(configFile));
  } catch (e) {
    ctx.warn(
      `could not remove ${pendingMarkerPath(configFile)} (${(e as Error).message}): the next run will restart containerd once more to be sure`,
    );
  }
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

/**
 * A CRI that answers `Version` is not yet one kubelet can use: containerd 2.x serves the CRI API
 * once the plugin is loaded, while its runtime may still report RuntimeReady=false (the CRI plugin
 * loaded but not ready). NetworkReady is not required: a node without its CNI yet is still a node
 * whose config works. Polls until `deadline`; resolves with the reason when it never got ready.
 */
async function runtimeReady(client: CriImageClient, socket: string, deadline: number): Promise<string | null> {
  let last: string;
  for (;;) {
    try {
      const ready = (await client.status(false, 5000)).conditions.find((c) => c.type === 'RuntimeReady');
      // A runtime that reports no RuntimeReady condition at all predates it: Version answering is all it says.
      if (!ready || ready.status) return null;
      last = `RuntimeReady is false${ready.reason ? ` (${ready.reason}${ready.message ? `: ${ready.message}` : ''})` : ''}`;
    } catch (e) {
      last = `Status failed: ${(e as Error).message}`;
    }
    if (Date.now() + 250 >= deadline)
      return `the CRI at ${socket} answers but is not ready (${last}): containerd's CRI plugin loaded without a working runtime, see containerd's log`;
    await new Promise((r) => setTimeout(r, 250));
  }
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
  const deadline = Date.now() + timeoutMs;
  let flaps = 0;
  try {
    for (;;) {
      try {
        await waitForCri(client, Math.max(1, deadline - Date.now()));
      } catch (e) {
        // waitForCri's message already names the socket, the bound and the last error.
        return flaps
          ? crashLoop(command, socket, flaps, timeoutSec, (e as Error).message)
          : `after \`${command}\`, ${(e as Error).message}`;
      }
      // The full window every time, even past the deadline: a window cut short by the deadline
      // (down to 0 ms) let a crash-looping containerd that answered once, late, pass as healthy.
      const gone = await staysUp(client, SETTLE_MS);
      if (gone === null) return await runtimeReady(client, socket, Date.now() + timeoutMs);
      flaps++;
      if (Date.now() >= deadline) return crashLoop(command, socket, flaps, timeoutSec, gone);
    }
  } finally {
    await client.close().catch(() => undefined);
  }
}

/**
 * How long containerd must keep answering after it first does. A daemon that crash-loops (up, then
 * killed by a fault its new config causes, then started again by its supervisor) answers now and
 * then; one answer is not health. systemd's Type=notify for containerd has the same blind spot.
 */
const SETTLE_MS = 2000;

/** Polls the CRI for `ms`; null while it keeps answering, else the error of the first poll that failed. */
async function staysUp(client: CriImageClient, ms: number): Promise<string | null> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      await client.version(1000);
    } catch (e) {
      return (e as Error).message;
    }
    if (Date.now() >= until) return null;
    await new Promise((r) => setTimeout(r, 200));
  }
}

function crashLoop(command: string, socket: string, flaps: number, timeoutSec: number, last: string): string {
  return `after \`${command}\`, containerd answered on ${socket} but did not stay up: it stopped answering ${flaps} time${flaps === 1 ? '' : 's'} within ${timeoutSec} s (crash-looping; last error: ${last})`;
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
  await conn.writeFile(configFile, backup.content, defined({ mode: backup.mode, uid: backup.uid, gid: backup.gid }));
}

/**
 * Puts back the config and every companion file this run wrote before the restart (a companion
 * absent before is removed); throws with the files that could not be put back.
 */
async function rollBack(ctx: TaskContext, args: ContainerdRestartArgs, backup: ConfigBackup): Promise<void> {
  await restoreBackup(ctx.conn, args.config_file, backup);
  const failed: string[] = [];
  for (const f of args.companions ?? []) {
    const b = ctx.hostState.get(configBackupKey(f)) as ConfigBackup | undefined;
    if (!b) continue;
    try {
      await restoreBackup(ctx.conn, f, b);
    } catch (e) {
      failed.push(`${f}: ${(e as Error).message}`);
    }
  }
  if (failed.length) throw new Error(`the files written with it were not all put back (${failed.join('; ')})`);
}

/** Restart, verify, and on failure roll config.toml back; throws TaskError with every error in one message. */
export async function verifiedRestart(ctx: TaskContext, args: ContainerdRestartArgs): Promise<void> {
  // Resolve before restarting: while containerd runs its socket exists, which is what the lookup checks.
  const socket = await healthSocket(ctx, args);
  const service = args.service ?? 'containerd';
  const first = await restartAndWait(ctx.conn, args.restart_command, socket, args.restart_timeout);
  const key = configBackupKey(args.config_file);
  const backup = ctx.hostState.get(key) as ConfigBackup | undefined;
  if (first === null) {
    await settled(ctx, args, socket);
    return;
  }
  // The health check failed because the connection did, not containerd: nothing can be told or rolled
  // back over it. The pending marker stays, and the next run finishes the change.
  const lost = await connectionLost(ctx.conn);
  if (lost)
    throw new ConnectionError(
      lost.kind,
      lost.host,
      `${lost.message} (during the health check after \`${args.restart_command}\`: whether ${service} came back is unknown, and ${args.config_file} was not rolled back; the next run finishes the change)`,
      { cause: lost },
    );
  if (!backup) {
    throw new TaskError(
      `${service} did not come back after the restart (${first}); no earlier ${args.config_file} was recorded in this run, so nothing was rolled back: fix ${service} on ${ctx.host} by hand.`,
      'command',
    );
  }
  const also = (args.companions ?? []).filter((f) => ctx.hostState.has(configBackupKey(f)));
  const restored = `the previous ${args.config_file} was restored${also.length ? ` (and ${also.join(', ')} put back as before this run)` : ''}`;
  try {
    await rollBack(ctx, args, backup);
  } catch (e) {
    throw new TaskError(
      `ROLLBACK FAILED: ${service} did not come back after the config change (${first}), and putting the previous ${args.config_file} back failed too (${(e as Error).message}); ${ctx.host} is left with the new config and ${service} is down: restore the file from the run's snapshot (trustplay restore) now.`,
      'command',
    );
  }
  const second = await restartAndWait(ctx.conn, args.restart_command, socket, args.restart_timeout);
  if (second === null) {
    await settled(ctx, args, socket);
    throw new TaskError(
      `${service} did not come back after the config change (${first}); ${restored} and ${service} restarted (it answers on ${socket}).`,
      'command',
    );
  }
  throw new TaskError(
    `ROLLBACK FAILED: ${service} did not come back after the config change (${first}); ${restored} but containerd still does not answer (${second}): ${ctx.host} has no working container runtime, look at ${service}'s log now.`,
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
        // Custom: this is what a `restart.request` operation becomes, the one place that restarts a
        // unit, health-checks it and rolls its config back; no generic operation describes that.
        op: 'custom',
        summary: `restart ${args.service ?? 'containerd'} (\`${args.restart_command}\`) and wait up to ${args.restart_timeout} s for the CRI socket`,
        // config.toml was saved by the change that requested this restart; a rollback only puts that back.
        resources: [],
        apply: (ctx) => verifiedRestart(ctx, args),
      },
    ];
  },
});
