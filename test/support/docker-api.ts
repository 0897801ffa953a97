/** The Docker Engine API over a node's unix socket, for tests: pull and remove an image (no docker CLI). */
import http from 'node:http';
import { splitReference } from '../../src/images/reference.js';

/** One API call: status and body text. */
function call(
  socket: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, method, path, timeout: 60_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Pulls `ref` through POST /images/create: '' on success, else dockerd's error message (a refusal
 * before the stream starts is `{"message"}`, a failure during it an `{"error"}` line).
 * `fresh` removes the image first so the registry is really asked.
 */
export async function dockerPull(socket: string, ref: string, opts: { fresh?: boolean } = {}): Promise<string> {
  if (opts.fresh) await dockerRemove(socket, ref);
  const { repo, tag } = splitReference(ref);
  const r = await call(
    socket,
    'POST',
    `/images/create?fromImage=${encodeURIComponent(repo)}&tag=${encodeURIComponent(tag)}`,
  );
  if (r.status !== 200) return (JSON.parse(r.body) as { message?: string }).message ?? r.body;
  for (const line of r.body.split('\n')) {
    if (!line.trim()) continue;
    const m = JSON.parse(line) as { error?: string };
    if (m.error) return m.error;
  }
  return '';
}

/** Removes `ref` from dockerd's image store (absent is fine). */
export async function dockerRemove(socket: string, ref: string): Promise<void> {
  const r = await call(socket, 'DELETE', `/images/${encodeURIComponent(ref)}?force=1`);
  if (r.status !== 200 && r.status !== 404) throw new Error(`DELETE /images/${ref}: ${r.status} ${r.body}`);
}

/** The Engine's version as GET /version reports it. */
export async function dockerVersion(socket: string): Promise<string> {
  const r = await call(socket, 'GET', '/version');
  return (JSON.parse(r.body) as { Version: string }).Version;
}
