/**
 * ServiceAccount reads and writes through the API client instead of kubectl on the host: what
 * `trustplay agent` uses (its pod's service account, the connection's `kube`), with the same
 * results as src/k8s/kubectl.ts — a missing namespace told from a missing account, and the write a
 * JSON merge patch of `imagePullSecrets` carrying the resourceVersion it was computed from, so a
 * concurrent edit makes it 409 (the caller re-reads), never overwritten.
 *
 * RBAC this needs: `get` on serviceaccounts and namespaces, `patch` on serviceaccounts, and `list`
 * on namespaces for `namespace: all`.
 */
import { apiMessage, type KubeClient } from './api.js';
import { KubectlError, type ReadResult, type ServiceAccountState } from './kubectl.js';

const saPath = (ns: string, name: string): string =>
  `/api/v1/namespaces/${encodeURIComponent(ns)}/serviceaccounts/${encodeURIComponent(name)}`;

function apiError(what: string, reply: { code: number; body: Record<string, unknown> | undefined }): KubectlError {
  const hint = reply.code === 403 ? " (the agent's ServiceAccount lacks the RBAC rule for it)" : '';
  return new KubectlError(`${what} through the API failed: ${apiMessage(reply)}${hint}`, 'command');
}

function stateOf(body: Record<string, unknown> | undefined, namespace: string, name: string): ServiceAccountState {
  const metadata = body?.metadata as { resourceVersion?: string } | undefined;
  const list = body?.imagePullSecrets;
  return {
    namespace,
    name,
    resourceVersion: metadata?.resourceVersion ?? '',
    imagePullSecrets: Array.isArray(list)
      ? list.map((e) => (typeof (e as { name?: unknown })?.name === 'string' ? (e as { name: string }).name : ''))
      : [],
  };
}

/** The accounts, one GET each (and a GET of the namespace where the account is not found). */
export async function apiReadServiceAccounts(
  api: KubeClient,
  namespaces: string[],
  name: string,
): Promise<ReadResult[]> {
  return Promise.all(
    namespaces.map(async (ns): Promise<ReadResult> => {
      const got = await api.get(saPath(ns, name));
      if (got.code === 200) return { namespace: ns, name, status: 'ok', sa: stateOf(got.body, ns, name) };
      if (got.code !== 404) throw apiError(`reading service account ${ns}/${name}`, got);
      const nsGot = await api.get(`/api/v1/namespaces/${encodeURIComponent(ns)}`);
      if (nsGot.code === 404) return { namespace: ns, name, status: 'no-namespace' };
      if (nsGot.code !== 200) throw apiError(`reading namespace ${ns}`, nsGot);
      return { namespace: ns, name, status: 'no-account' };
    }),
  );
}

/** Every namespace's name, sorted. */
export async function apiListNamespaces(api: KubeClient): Promise<string[]> {
  const got = await api.get('/api/v1/namespaces');
  if (got.code !== 200) throw apiError('listing namespaces', got);
  const items = (got.body?.items ?? []) as Array<{ metadata?: { name?: string } }>;
  return items
    .map((i) => i.metadata?.name ?? '')
    .filter(Boolean)
    .sort();
}

/** One conditioned write of the list: written, or `conflict` (the account changed since `sa` was read). */
export async function apiPatchPullSecrets(
  api: KubeClient,
  sa: ServiceAccountState,
  next: string[],
): Promise<'written' | 'conflict'> {
  const patch = {
    metadata: { resourceVersion: sa.resourceVersion },
    imagePullSecrets: next.length ? next.map((name) => ({ name })) : null,
  };
  const res = await api.patch(saPath(sa.namespace, sa.name), patch, 'merge');
  if (res.code === 200) return 'written';
  if (res.code === 409) return 'conflict';
  throw apiError(`updating service account ${sa.namespace}/${sa.name}`, res);
}
