/**
 * Reading resources that are not files for the snapshot. ServiceAccounts are read with the same
 * kubectl invocation as k8s.sa.clear's own read (src/k8s/kubectl.ts), so both see the same object.
 */
import type { Connection } from '../connection/connection.js';
import type { Resource } from '../engine/module.js';
import { readPullSecrets, type ServiceAccountResource } from '../k8s/kubectl.js';

/** A ServiceAccount's pull secrets on a host, or null when the account does not exist. */
export async function readServiceAccountForSnapshot(
  conn: Connection,
  r: Extract<Resource, { kind: 'serviceaccount' }>,
): Promise<Array<{ name: string }> | null> {
  return readPullSecrets(conn, r as ServiceAccountResource);
}
