import { writeFile } from 'node:fs/promises';

/** What a kubeconfig for the emulator needs. */
export interface KubeconfigOptions {
  /** https://host:port of the API server. */
  server: string;
  /** PEM of the CA that signed the server's certificate (embedded, so the file stands alone). */
  caPem: string;
  /** Bearer token of the user. */
  token: string;
  /** Name of the context, cluster and user; defaults to "lab". */
  context?: string;
  /** Default namespace of the context. */
  namespace?: string;
}

/** Renders a single-context kubeconfig as YAML text (JSON is valid YAML, and needs no quoting rules). */
export function renderKubeconfig(opts: KubeconfigOptions): string {
  const name = opts.context ?? 'lab';
  const context: Record<string, string> = { cluster: name, user: name };
  if (opts.namespace !== undefined) context.namespace = opts.namespace;
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name,
        cluster: { server: opts.server, 'certificate-authority-data': Buffer.from(opts.caPem).toString('base64') },
      },
    ],
    users: [{ name, user: { token: opts.token } }],
    contexts: [{ name, context }],
    'current-context': name,
    preferences: {},
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** Writes a kubeconfig for the emulator at `path`, mode 0600 since it holds a token. */
export async function writeKubeconfig(path: string, opts: KubeconfigOptions): Promise<void> {
  await writeFile(path, renderKubeconfig(opts), { mode: 0o600 });
}
