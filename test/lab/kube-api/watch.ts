/**
 * Watch (`GET …?watch=1`) on the agent's kinds (resources.ts), streamed as kube-apiserver streams
 * it: one JSON event per line, `{"type":"ADDED"|"MODIFIED"|"DELETED","object":{…}}`. From a
 * `resourceVersion`, first every committed write after it (replayed from the write log, which this
 * emulator never compacts), then each write as it commits; without one, the objects as they are
 * now (ADDED), then the writes. The stream ends after `timeoutSeconds` (the real server's default
 * is 30-60 minutes) or when the client goes away.
 */
import type { ServerResponse } from 'node:http';
import type { JsonObject } from './json-patch.js';
import { meta } from './objects.js';
import type { ResourceKind, ResourceStore, WriteRecord } from './resources.js';

const TYPE: Record<WriteRecord['verb'], string> = {
  create: 'ADDED',
  update: 'MODIFIED',
  patch: 'MODIFIED',
  delete: 'DELETED',
};

/** Streams the watch on `res` until it times out or the client closes it. */
export function serveWatch(
  res: ServerResponse,
  store: ResourceStore,
  k: ResourceKind,
  namespace: string | undefined,
  selects: (o: JsonObject) => boolean,
  since: string | undefined,
  timeoutSeconds: number,
): void {
  const matches = (w: WriteRecord): boolean =>
    w.resource === k.resource && (namespace === undefined || w.namespace === namespace) && selects(w.object);
  const send = (type: string, object: JsonObject): void => void res.write(`${JSON.stringify({ type, object })}\n`);
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
  if (since === undefined || since === '' || since === '0') {
    for (const o of store.list(k, namespace).filter(selects)) send('ADDED', o);
  } else {
    const from = Number(since);
    for (const w of store.writes)
      if (matches(w) && Number(meta(w.object).resourceVersion) > from) send(TYPE[w.verb], w.object);
  }
  const listener = (w: WriteRecord): void => {
    if (matches(w)) send(TYPE[w.verb], w.object);
  };
  store.listeners.add(listener);
  const end = (): void => {
    clearTimeout(timer);
    store.listeners.delete(listener);
    res.end();
  };
  const timer = setTimeout(end, timeoutSeconds * 1000);
  res.on('close', end);
}
