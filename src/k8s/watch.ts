/**
 * The agent's ConfigMap watch: `GET …/configmaps?watch=1&fieldSelector=metadata.name=NAME&
 * resourceVersion=RV`, one long-lived request per agent, as the kubelet watches the ConfigMaps its
 * pods mount. Chosen over polling: a poll every P seconds costs every node a GET of the whole
 * ConfigMap (the CA and playbook, a few KB) per period whether or not anything changed, N/P
 * requests a second for N nodes (1000 nodes every 5 s: 200/s on the API server); a watch costs one
 * open stream per node and one event per change, and sees the change as soon as it is committed.
 *
 * The stream is reopened from the last resourceVersion it saw when the server ends it (its
 * timeout), after a connection error (with a pause), and from scratch after a 410 Gone (the
 * version was compacted away): then the current object comes as ADDED, and its version tells
 * whether it changed.
 */
import type { KubeClient } from './api.js';
import { pause } from './pause.js';

/** How long one watch request lasts before it is reopened (the server may end it sooner). */
const WATCH_SECONDS = 300;

/** Pause before reopening after an error, so a broken API server is not hammered. */
const RETRY_MS = 5000;

/**
 * Watches one ConfigMap from `fromRv` until `signal` aborts, calling `onChange(rv)` for every
 * committed version other than `current()` (the version the last pass read).
 */
export async function watchConfigMap(
  api: KubeClient,
  namespace: string,
  name: string,
  fromRv: string,
  current: () => string,
  onChange: (rv: string) => void,
  signal: AbortSignal,
  log: (line: string) => void,
): Promise<void> {
  let rv: string | undefined = fromRv;
  const base = `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`;
  while (!signal.aborted) {
    const query = new URLSearchParams({
      watch: '1',
      fieldSelector: `metadata.name=${name}`,
      timeoutSeconds: String(WATCH_SECONDS),
      ...(rv !== undefined ? { resourceVersion: rv } : {}),
    });
    let gone = false;
    const code = await api
      .stream(
        `${base}?${query.toString()}`,
        (line) => {
          let event: { type?: string; object?: { metadata?: { resourceVersion?: string }; code?: number } };
          try {
            event = JSON.parse(line) as typeof event;
          } catch {
            return;
          }
          if (event.type === 'ERROR') {
            gone = event.object?.code === 410;
            return;
          }
          const seen = event.object?.metadata?.resourceVersion;
          if (seen === undefined) return;
          rv = seen;
          if (seen !== current()) onChange(seen);
        },
        signal,
      )
      .catch((e: unknown) => {
        if (!signal.aborted)
          log(`watching ConfigMap ${namespace}/${name}: ${e instanceof Error ? e.message : String(e)}`);
        return 0;
      });
    if (signal.aborted) return;
    if (gone || code === 410) {
      rv = undefined;
      continue;
    }
    if (code !== 200) {
      if (code !== 0) log(`watching ConfigMap ${namespace}/${name}: HTTP ${code}; again in ${RETRY_MS / 1000} s`);
      await pause(RETRY_MS, signal);
    }
  }
}
