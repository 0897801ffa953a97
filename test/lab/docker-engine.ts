/**
 * Docker Engine on a lab node (Debian `docker.io`, dockerd 20.10 here): dockerd runs inside the
 * node's mount namespace, beside the node's containerd, with everything of its own under the
 * node's directories:
 *
 *   dockerd --data-root /var/lib/docker --exec-root /run/docker-exec --pidfile /run/docker.pid
 *           -H unix:///run/docker.sock --containerd /run/containerd/containerd.sock
 *           --storage-driver vfs --iptables=false --ip6tables=false --bridge=none
 *
 * (/var/lib and /run are the node's own; nodes share this machine's network namespace, so no
 * bridge and no iptables rules; vfs needs no overlay support inside the namespace.) The node's
 * /etc/docker is its own directory bind-mounted in the namespace (this machine's /etc/docker,
 * made by docker-registry, is the mount point), so certs.d and daemon.json are per node.
 *
 * The registry: dockerd counts a registry whose name resolves into 127.0.0.0/8 as insecure and
 * verifies nothing, so a Docker node's /etc/hosts maps registry.test to ::1 only, where the lab
 * serves the main registry a second time (registry.ts `startIpv6Registry`): the pull then fails
 * with the real `x509: certificate signed by unknown authority`. The node's containerd pulls from
 * the same name and port on ::1 and behaves as on the other nodes.
 */
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { run, startDetached, waitFor } from './procs.js';

/** What a Docker Engine node records (lab.json, `LabNode.docker`). */
export interface LabDocker {
  /** The Engine API socket as the node sees it. */
  socket: string;
  /** The same socket from this machine. */
  hostSocket: string;
  /** dockerd's pid when the lab came up. */
  pid: number;
  /** The node's /etc/docker on this machine. */
  etcDir: string;
  log: string;
}

/** dockerd's options in a node (see the file comment). */
export const DOCKERD_ARGS = [
  '--data-root',
  '/var/lib/docker',
  '--exec-root',
  '/run/docker-exec',
  '--pidfile',
  '/run/docker.pid',
  '-H',
  'unix:///run/docker.sock',
  '--containerd',
  '/run/containerd/containerd.sock',
  '--storage-driver',
  'vfs',
  '--iptables=false',
  '--ip6tables=false',
  '--bridge=none',
];

/**
 * The lines of a Docker node's /etc/hosts: the lab's, with `registryHost` moved from 127.0.0.1 to
 * ::1 (see the file comment).
 */
export function dockerHostsLines(lines: string[], registryHost: string): string[] {
  const out = lines.map((l) =>
    l.startsWith('127.0.0.1 ')
      ? l
          .split(' ')
          .filter((w) => w !== registryHost)
          .join(' ')
      : l,
  );
  return [...out, `::1 ${registryHost}`];
}

/**
 * Gives every node its own, empty /etc/docker (`<node>/etc-docker` bind-mounted in its namespace),
 * Docker Engine or not: whatever a test writes there never reaches this machine's /etc/docker.
 */
export async function ownEtcDocker(node: { nsPid: number; root: string }): Promise<string> {
  const etcDir = path.join(node.root, 'etc-docker');
  mkdirSync(etcDir, { recursive: true, mode: 0o755 });
  await run('nsenter', ['-t', String(node.nsPid), '-m', '--', 'mount', '--bind', etcDir, '/etc/docker']);
  return etcDir;
}

/** Starts dockerd in the node (its own /etc/docker already mounted, `ownEtcDocker`); `runDir`: the node's /run here. */
export async function startDockerd(
  node: { name: string; nsPid: number; root: string },
  runDir: string,
  track: (pid: number, comm: string, what: string) => void,
): Promise<LabDocker> {
  const etcDir = path.join(node.root, 'etc-docker');
  const log = path.join(node.root, 'dockerd.log');
  const pid = startDetached(
    'nsenter',
    ['-t', String(node.nsPid), '-m', '--', '/usr/sbin/dockerd', ...DOCKERD_ARGS],
    log,
  );
  track(pid, 'dockerd', `dockerd of ${node.name}`);
  const hostSocket = path.join(runDir, 'docker.sock');
  await waitFor(`dockerd on ${node.name} (see ${log})`, () => ping(hostSocket), 30_000);
  return { socket: '/run/docker.sock', hostSocket, pid, etcDir, log };
}

/** True when the Engine API answers `GET /_ping` on `socket`. */
function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: socket, path: '/_ping', timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}
