/**
 * The Docker Engine API, spoken over a host's unix socket through its connection (SSH stream-local
 * forwarding, the relay under become, or a direct connect locally: `conn.openUnixSocket`, as the
 * CRI client does). Only what image.pull.verify and image.rmi need: ping, pull, inspect, remove.
 * No docker CLI on the node is needed or used; each request is one HTTP/1.1 exchange on its own
 * stream (`Connection: close`).
 *
 * Errors: a refused request answers `{"message": ...}` with a non-2xx status; a pull that fails
 * after it started answers 200 and ends its JSON-lines progress stream with `{"error": ...}`. Both
 * texts are dockerd's own (e.g. `Get "https://reg:5000/v2/": x509: certificate signed by unknown
 * authority`), which classify.ts reads as it reads containerd's.
 */
import http from 'node:http';
import type { Connection } from '../connection/connection.js';
import { splitReference } from '../images/reference.js';

/** The socket Docker Engine listens on by default. */
export const DOCKER_API_SOCKET = '/run/docker.sock';

/** The Engine API could not be asked (socket missing, daemon down, stream refused, timeout) or refused what was asked. */
export class EngineError extends Error {}

/** What dockerd answered to one request. */
interface Answer {
  status: number;
  body: string;
}

/** One request over a fresh stream to `socket` on the host. */
async function request(
  conn: Connection,
  socket: string,
  method: 'GET' | 'POST' | 'DELETE' | 'HEAD',
  path: string,
  opts: { headers?: Record<string, string>; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<Answer> {
  let stream;
  try {
    stream = await conn.openUnixSocket(socket);
  } catch (e) {
    throw new EngineError(`cannot reach Docker Engine's socket ${socket}: ${(e as Error).message}`);
  }
  return new Promise<Answer>((resolve, reject) => {
    const req = http.request(
      {
        method,
        path,
        host: 'docker',
        headers: { Connection: 'close', ...opts.headers },
        createConnection: () => stream as unknown as import('node:net').Socket,
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(
            () => req.destroy(new EngineError(`${method} ${path} took over ${opts.timeoutMs} ms`)),
            opts.timeoutMs,
          )
        : undefined;
    req.on('close', () => clearTimeout(timer));
    req.on('error', (e) =>
      reject(
        e instanceof EngineError || e.name === 'AbortError'
          ? e
          : new EngineError(`Docker Engine on ${socket} did not answer ${method} ${path}: ${e.message}`),
      ),
    );
    req.end();
  });
}

/** dockerd's message in an error answer (`{"message": ...}`), else the body. */
function messageOf(a: Answer): string {
  try {
    const m = (JSON.parse(a.body) as { message?: unknown }).message;
    if (typeof m === 'string') return m;
  } catch {
    // not JSON: the body as it came
  }
  return a.body.trim() || `HTTP ${a.status}`;
}

/** True when Docker Engine answers `GET /_ping` on `socket`. */
export async function enginePing(conn: Connection, socket: string, timeoutMs = 3000): Promise<boolean> {
  try {
    return (await request(conn, socket, 'GET', '/_ping', { timeoutMs })).status === 200;
  } catch {
    return false;
  }
}

/** Registry credentials as the X-Registry-Auth header carries them (base64url JSON). */
export interface EngineAuth {
  username?: string;
  password?: string;
  identitytoken?: string;
}

/** The X-Registry-Auth header's value for `auth` (a secret of the run: the caller marks it). */
export function registryAuthHeader(auth: EngineAuth): string {
  return Buffer.from(JSON.stringify(auth)).toString('base64url');
}

/**
 * The error of a pull's answer: '' when it worked, else dockerd's text (a refusal's message, or the
 * progress stream's last `error`). Pure (exported for tests).
 */
export function pullError(a: Answer): string {
  if (a.status < 200 || a.status >= 300) return messageOf(a);
  let error = '';
  for (const line of a.body.split('\n')) {
    if (!line.trim()) continue;
    try {
      const m = JSON.parse(line) as { error?: unknown };
      if (typeof m.error === 'string') error = m.error;
    } catch {
      return `unreadable answer from Docker Engine: ${line.slice(0, 200)}`;
    }
  }
  return error;
}

/** Pulls `ref` (POST /images/create); '' on success, else dockerd's error text. */
export async function enginePull(
  conn: Connection,
  socket: string,
  ref: string,
  opts: { auth?: EngineAuth; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<string> {
  const { repo, tag } = splitReference(ref);
  const answer = await request(
    conn,
    socket,
    'POST',
    `/images/create?fromImage=${encodeURIComponent(repo)}&tag=${encodeURIComponent(tag)}`,
    {
      ...(opts.auth ? { headers: { 'X-Registry-Auth': registryAuthHeader(opts.auth) } } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    },
  );
  return pullError(answer);
}

/** An image in dockerd's store, as GET /images/{name}/json reports it. */
export interface EngineImage {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: number;
}

/** The image `ref` names in dockerd's store, or null when it has none. */
export async function engineImage(conn: Connection, socket: string, ref: string): Promise<EngineImage | null> {
  const a = await request(conn, socket, 'GET', `/images/${encodeURIComponent(ref)}/json`, { timeoutMs: 30_000 });
  if (a.status === 404) return null;
  if (a.status !== 200) throw new EngineError(`Docker Engine refused to inspect ${ref}: ${messageOf(a)}`);
  const j = JSON.parse(a.body) as {
    Id?: string;
    RepoTags?: string[] | null;
    RepoDigests?: string[] | null;
    Size?: number;
  };
  return { id: j.Id ?? '', repoTags: j.RepoTags ?? [], repoDigests: j.RepoDigests ?? [], size: j.Size ?? 0 };
}

/**
 * Removes image `id` with all its tags (DELETE /images/{id}?force=1, as `docker rmi -f` does);
 * absent is fine. An image a container uses is still removed from the tags (dockerd keeps its
 * layers while the container lives), as the CRI's RemoveImage does.
 */
export async function engineRemove(conn: Connection, socket: string, id: string): Promise<void> {
  const a = await request(conn, socket, 'DELETE', `/images/${encodeURIComponent(id)}?force=1`, {
    timeoutMs: 60_000,
  });
  if (a.status === 200 || a.status === 404) return;
  throw new EngineError(`Docker Engine refused to remove image ${id}: ${messageOf(a)}`);
}
