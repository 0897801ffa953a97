/**
 * How modules reach a host's CRI: the socket is resolved once per host per run (it costs two
 * remote commands, ~24 ms over SSH) and kept in `ctx.hostState`; a client is opened for one step
 * and always closed before the step returns.
 *
 * Why not keep the client open for the run: over SSH it is a local bridge socket plus channels on
 * the host's connection, and the engine closes connections at run end without telling modules, so
 * a cached client would outlive its connection (a listening bridge keeps the process alive).
 * Measured against a lab node over SSH: opening a client and making one call takes ~7 ms, a call
 * on a reused client ~2 ms, so a fresh client per step costs ~5 ms per task: cheap enough.
 */
import { TaskError } from '../engine/errors.js';
import type { TaskContext } from '../engine/module.js';
import type { NodeEntry } from '../connection/read-files.js';
import {
  CRI_SOCKET_READS,
  CriError,
  createCriClientFor,
  rememberCriVersion,
  resolveCriSocket,
  type CriImageClient,
} from './client.js';

const SOCKET_KEY = 'cri.socket';

/** How long a default socket may take to answer `Version` before the next default is tried. */
const PROBE_TIMEOUT_MS = 3000;

/**
 * The host's CRI socket: the task's `socket`, else the host's `cri_socket` variable, else
 * /etc/crictl.yaml, else the first well-known socket that answers; cached for the run. `read`:
 * the `criSocketReads` paths as a gather just read them (no command of its own then).
 */
export async function criSocketFor(
  ctx: TaskContext,
  configured?: string,
  read?: ReadonlyMap<string, NodeEntry>,
): Promise<string> {
  const explicit = explicitSocket(ctx, configured);
  const key = explicit === undefined ? SOCKET_KEY : `${SOCKET_KEY}:${explicit}`;
  const cached = ctx.hostState.get(key);
  if (typeof cached === 'string') return cached;
  let socket: string;
  try {
    socket = await resolveCriSocket(
      ctx.conn,
      explicit,
      async (candidate) => {
        const probe = await createCriClientFor(ctx.conn, candidate);
        let kept = false;
        try {
          rememberCriVersion(ctx.conn, candidate, await probe.version(PROBE_TIMEOUT_MS));
          kept = keep(ctx, candidate, probe);
          return true;
        } catch {
          return false;
        } finally {
          if (!kept) await probe.close();
        }
      },
      read,
    );
  } catch (err) {
    if (err instanceof TaskError) throw err;
    throw new TaskError((err as Error).message, 'command');
  }
  ctx.hostState.set(key, socket);
  return socket;
}

function explicitSocket(ctx: TaskContext, configured?: string): string | undefined {
  return configured ?? (typeof ctx.vars['cri_socket'] === 'string' ? ctx.vars['cri_socket'] : undefined);
}

/**
 * The paths `criSocketFor` would read on the node to find the socket (none when it is configured
 * or already known this run): a gather reads them with its own files and hands the entries over.
 */
export function criSocketReads(ctx: TaskContext, configured?: string): readonly string[] {
  if (explicitSocket(ctx, configured) !== undefined) return [];
  return typeof ctx.hostState.get(SOCKET_KEY) === 'string' ? [] : CRI_SOCKET_READS;
}

/**
 * Runs `fn` with a CRI client for the task's host, closed when `fn` settles. Its calls are cancelled
 * by the run's interruption (the first Ctrl-C stops a long pull at once, rejecting with the
 * `Interrupted`), unless `finish`: a change in flight (an image removal) completes.
 */
export async function withCri<T>(
  ctx: TaskContext,
  configured: string | undefined,
  fn: (cri: CriImageClient, socket: string) => Promise<T>,
  opts: { finish?: boolean } = {},
): Promise<T> {
  const socket = await criSocketFor(ctx, configured);
  const signal = !opts.finish ? ctx.signal : undefined;
  const scoped = scopes.get(ctx)?.get(socket)?.withSignal?.(signal);
  const cri = scoped ?? (await createCriClientFor(ctx.conn, socket, signal ? { signal } : {}));
  try {
    return await fn(cri, socket);
  } finally {
    await cri.close();
  }
}

/**
 * Clients kept for the rest of a `criScope`, by task context and socket: the probe that found the
 * socket serves the calls after it (each client is a bridge socket, an SSH forward and an HTTP/2
 * connection: ~5 ms, and a round trip).
 */
const scopes = new WeakMap<TaskContext, Map<string, CriImageClient>>();

function keep(ctx: TaskContext, socket: string, client: CriImageClient): boolean {
  const scope = scopes.get(ctx);
  if (!scope || scope.has(socket) || !client.withSignal) return false;
  scope.set(socket, client);
  return true;
}

/**
 * Runs `fn` (a gather: reads only, no restart in between) with one CRI client per socket for the
 * task: the probe that finds the socket stays open for the task's `withCri` calls, and every kept
 * client is closed when `fn` settles. Outside a scope each call opens its own client, as before.
 */
export async function criScope<T>(ctx: TaskContext, fn: () => Promise<T>): Promise<T> {
  if (scopes.has(ctx)) return fn();
  const scope = new Map<string, CriImageClient>();
  scopes.set(ctx, scope);
  try {
    return await fn();
  } finally {
    scopes.delete(ctx);
    await Promise.all([...scope.values()].map((c) => c.close().catch(() => undefined)));
  }
}

/** A CRI call failure as a TaskError ('command'): the client's message already names the socket and the cause. */
export function criTaskError(err: unknown): TaskError {
  if (err instanceof TaskError) return err;
  if (err instanceof CriError) return new TaskError(err.message, 'command', err.details);
  return new TaskError(err instanceof Error ? err.message : String(err), 'command');
}
