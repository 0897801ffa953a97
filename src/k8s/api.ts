/**
 * The Kubernetes API as the node agent and `fleet status` reach it: JSON over HTTPS with a bearer
 * token, from the pod's service account (in-cluster) or a kubeconfig's token user. Answers are
 * values (`{ code, body }`); only a connection that fails throws.
 *
 * Not @kubernetes/client-node: the agent makes six kinds of calls (get a ConfigMap, get/create/
 * update a Lease, patch a Node's status, create an Event, list Nodes), and that client brings its
 * own HTTP stack, websockets and OIDC plugins into an image that should hold little besides
 * Node.js. Client certificates and exec credential plugins are not supported: say so when met.
 */
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { parse as parseYaml } from 'yaml';
import { ExitCode, ExitError } from '../cli/exit-codes.js';

/** Where the API is and how to authenticate. */
export interface KubeAccess {
  server: string;
  caPem?: string;
  token: string;
}

/** One answer: the HTTP status and the parsed JSON body (undefined when not JSON). */
export interface KubeReply {
  code: number;
  body: Record<string, unknown> | undefined;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** No way to reach the API from here (not in a pod, no service account token, no such kubeconfig): invalid input, exit 3. */
export class NoKubeAccess extends ExitError {
  constructor(message: string) {
    super(ExitCode.Invalid, message);
    this.name = 'NoKubeAccess';
  }
}

/** The pod's service account, as client-go's in-cluster config reads it. */
export async function inClusterAccess(env: NodeJS.ProcessEnv = process.env, dir = SA_DIR): Promise<KubeAccess> {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    throw new NoKubeAccess(
      'not running in a pod (KUBERNETES_SERVICE_HOST/PORT unset): pass --kubeconfig FILE to reach the API from elsewhere',
    );
  const [token, caPem] = await Promise.all([readFile(`${dir}/token`, 'utf8'), readFile(`${dir}/ca.crt`, 'utf8')]).catch(
    (e: NodeJS.ErrnoException) => {
      throw new NoKubeAccess(
        `the pod's service account token cannot be read (${e.code ?? e.message} on ${e.path ?? dir}): is automountServiceAccountToken off for the agent's ServiceAccount or pod?`,
      );
    },
  );
  return { server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, caPem, token: token.trim() };
}

/** The current context of a kubeconfig (a token user; a CA by file or data). */
export async function kubeconfigAccess(file: string): Promise<KubeAccess> {
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new NoKubeAccess(`cannot read the kubeconfig ${file}: ${e.code ?? e.message}`);
  });
  const doc = parseYaml(text) as Record<string, unknown> | null;
  const named = (list: unknown, name: unknown): Record<string, unknown> | undefined => {
    if (!Array.isArray(list)) return undefined;
    const entry = (list as Record<string, unknown>[]).find((e) => e.name === name);
    return entry;
  };
  const ctxName = doc?.['current-context'];
  const ctx = named(doc?.contexts, ctxName)?.context as Record<string, unknown> | undefined;
  if (ctx === undefined) throw new Error(`${file}: no current context`);
  const cluster = named(doc?.clusters, ctx.cluster)?.cluster as Record<string, unknown> | undefined;
  const user = named(doc?.users, ctx.user)?.user as Record<string, unknown> | undefined;
  if (typeof cluster?.server !== 'string') throw new Error(`${file}: the current context's cluster has no server`);
  let token = typeof user?.token === 'string' ? user.token : undefined;
  if (token === undefined && typeof user?.tokenFile === 'string')
    token = (await readFile(user.tokenFile, 'utf8')).trim();
  if (token === undefined)
    throw new Error(
      `${file}: the current context's user has no token (client certificates and exec plugins are not supported)`,
    );
  let caPem: string | undefined;
  if (typeof cluster['certificate-authority-data'] === 'string')
    caPem = Buffer.from(cluster['certificate-authority-data'], 'base64').toString('utf8');
  else if (typeof cluster['certificate-authority'] === 'string')
    caPem = await readFile(cluster['certificate-authority'], 'utf8');
  return { server: cluster.server.replace(/\/+$/, ''), token, ...(caPem !== undefined ? { caPem } : {}) };
}

/** A small JSON client for the API server. */
export class KubeClient {
  /** Requests made, by method (the agent's API load, for the bench). */
  readonly counts: Record<string, number> = {};

  constructor(private readonly access: KubeAccess) {}

  get(path: string): Promise<KubeReply> {
    return this.send('GET', path);
  }

  post(path: string, body: unknown): Promise<KubeReply> {
    return this.send('POST', path, body);
  }

  put(path: string, body: unknown): Promise<KubeReply> {
    return this.send('PUT', path, body);
  }

  /** A strategic merge patch (what kubectl patch sends by default for built-in kinds), or a JSON merge patch. */
  patch(path: string, body: unknown, type: 'strategic' | 'merge' = 'strategic'): Promise<KubeReply> {
    return this.send(
      'PATCH',
      path,
      body,
      type === 'merge' ? 'application/merge-patch+json' : 'application/strategic-merge-patch+json',
    );
  }

  /**
   * A streaming GET (a watch): `onLine` gets each line of the body as it arrives; resolves with
   * the HTTP status when the server ends the response (or at once, with it, when it is not 200),
   * or when `signal` aborts (then 0).
   */
  stream(path: string, onLine: (line: string) => void, signal: AbortSignal): Promise<number> {
    this.counts.WATCH = (this.counts.WATCH ?? 0) + 1;
    // The agent's watch reconnects on one signal for days: the listener goes with its request.
    let abort = (): void => undefined;
    return new Promise<number>((resolve, reject) => {
      const req = request(
        `${this.access.server}${path}`,
        {
          method: 'GET',
          ...(this.access.caPem !== undefined ? { ca: this.access.caPem } : {}),
          headers: {
            Authorization: `Bearer ${this.access.token}`,
            Accept: 'application/json',
            'User-Agent': 'trustplay-agent',
          },
        },
        (res) => {
          const code = res.statusCode ?? 0;
          let rest = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (code !== 200) return;
            rest += chunk;
            let nl: number;
            while ((nl = rest.indexOf('\n')) >= 0) {
              const line = rest.slice(0, nl).trim();
              rest = rest.slice(nl + 1);
              if (line !== '') onLine(line);
            }
          });
          res.on('end', () => resolve(code));
          res.on('error', (err) => (signal.aborted ? resolve(0) : reject(err)));
        },
      );
      abort = (): void => {
        req.destroy();
        resolve(0);
      };
      if (signal.aborted) abort();
      signal.addEventListener('abort', abort, { once: true });
      req.on('error', (err) =>
        signal.aborted ? resolve(0) : reject(new Error(`watch ${this.access.server}${path}: ${err.message}`)),
      );
      req.end();
    }).finally(() => signal.removeEventListener('abort', abort));
  }

  private send(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<KubeReply> {
    this.counts[method] = (this.counts[method] ?? 0) + 1;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.access.server}${path}`,
        {
          method,
          ...(this.access.caPem !== undefined ? { ca: this.access.caPem } : {}),
          headers: {
            Authorization: `Bearer ${this.access.token}`,
            Accept: 'application/json',
            'User-Agent': 'trustplay-agent',
            ...(payload !== undefined
              ? { 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(payload)) }
              : {}),
          },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            let parsed: Record<string, unknown> | undefined;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
            } catch {
              parsed = undefined;
            }
            resolve({ code: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer from the API server in 30 s`)));
      req.on('error', (err) => reject(new Error(`${method} ${this.access.server}${path}: ${err.message}`)));
      req.end(payload);
    });
  }
}

/** The API's message of a failed answer, for one-sentence errors. */
export function apiMessage(reply: KubeReply): string {
  const m = reply.body?.message;
  return `HTTP ${reply.code}${typeof m === 'string' ? `: ${m}` : ''}`;
}
