/**
 * containers/image on a lab node (Debian's skopeo; podman, buildah and CRI-O pull through the same
 * library): each node gets its own /etc/containers, a copy of this machine's (registries.conf,
 * policy.json as the containers-common package ships them) bind-mounted in the node's namespace,
 * so certs.d and registries.conf are per node and nothing a test writes reaches this machine's.
 * Nothing runs: skopeo is a command, run in the node when a test pulls.
 */
import { cpSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { run } from './procs.js';

/** This machine's /etc/containers, the mount point; absent when no containers/image package is installed. */
const ETC_CONTAINERS = '/etc/containers';

/** Whether nodes can have their own /etc/containers here (skopeo or containers-common installed). */
export function containersImageAvailable(): boolean {
  return existsSync(ETC_CONTAINERS) && existsSync('/usr/bin/skopeo');
}

/** Gives `node` its own copy of /etc/containers (no-op where this machine has none); returns its directory here. */
export async function ownEtcContainers(node: { nsPid: number; root: string }): Promise<string | undefined> {
  if (!existsSync(ETC_CONTAINERS)) return undefined;
  const etcDir = path.join(node.root, 'etc-containers');
  mkdirSync(etcDir, { recursive: true, mode: 0o755 });
  cpSync(ETC_CONTAINERS, etcDir, { recursive: true, preserveTimestamps: true });
  await run('nsenter', ['-t', String(node.nsPid), '-m', '--', 'mount', '--bind', etcDir, ETC_CONTAINERS]);
  return etcDir;
}
