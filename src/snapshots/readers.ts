/** Reading resources that are not files for the snapshot (ServiceAccounts through kubectl on the host). */
import type { Connection } from '../connection/connection.js';
import type { Resource } from '../engine/module.js';

export async function readServiceAccountForSnapshot(
  conn: Connection,
  r: Extract<Resource, { kind: 'serviceaccount' }>,
): Promise<Array<{ name: string }> | null> {
  const argv = ['kubectl', ...(r.kubeconfig ? ['--kubeconfig', r.kubeconfig] : []), ...(r.context ? ['--context', r.context] : []), 'get', 'serviceaccount', r.name, '-n', r.namespace, '-o', 'json'];
  const res = await conn.exec({ argv });
  if (res.code !== 0) {
    const err = res.stderr.toString().trim();
    if (/NotFound/.test(err)) return null;
    throw new Error(`kubectl get serviceaccount ${r.namespace}/${r.name} failed (exit ${res.code}): ${err.split('\n')[0]}`);
  }
  const sa = JSON.parse(res.stdout.toString()) as { imagePullSecrets?: Array<{ name: string }> };
  return sa.imagePullSecrets ?? [];
}
