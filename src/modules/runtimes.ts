/**
 * Which container runtimes a node has, one answer for every module that works per runtime:
 * `registry.trust` (which trust to write), `image.pull.verify` and `image.rmi` (which image stores
 * to pull through or clean). Detected once per host per run (kept in `ctx.hostState`), in one
 * remote command plus the containerd probes containerd.tls makes anyway:
 *
 * - containerd: a k3s / RKE2 / microk8s / Bottlerocket node (src/containerd/flavour.ts), a running
 *   containerd (CRI `Version`, else its process: daemon-version.ts) or `containerd` on PATH. A
 *   containerd whose config.toml disables the CRI plugin serves Docker, not Kubernetes: when Docker
 *   Engine is on the node it is left out (Docker Engine's own trust and image store are what its
 *   pulls use).
 * - Docker Engine: dockerd on PATH or the socket /run/docker.sock;
 * - containers/image: podman, buildah, skopeo or crio on PATH (the lists `trustplay facts` uses).
 */
import { readNode, ReadFailed, type NodeRead } from '../connection/read-files.js';
import { criPluginsDisabledIn } from '../containerd/config.js';
import { runningVersionFor } from '../containerd/daemon-version.js';
import { describeFlavour, detectFlavour } from '../containerd/flavour.js';
import {
  CONTAINERS_IMAGE_PROGRAMS,
  DOCKER_SOCKET,
  OTHER_RUNTIMES,
  otherRuntimes,
  programsFound,
  programsPrelude,
} from '../containerd/node-facts.js';
import { criSocketFor } from '../cri/connect.js';
import { TaskError } from '../engine/errors.js';
import type { TaskContext } from '../engine/module.js';

/** The runtimes trustplay knows, in the order modules work through them. */
export const RUNTIMES = ['containerd', 'docker', 'containers'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** A task's `runtimes` argument: `auto` or an explicit list. */
export type RuntimesWanted = 'auto' | readonly Runtime[];

/** The `runtimes` argument's schema, with the module's own description. */
export function runtimesArg(description: string) {
  return {
    description,
    default: 'auto',
    anyOf: [
      { type: 'string', enum: ['auto'] },
      {
        type: 'array',
        items: { type: 'string', enum: RUNTIMES },
        minItems: 1,
        uniqueItems: true,
      },
    ],
  } as const;
}

/** What says each runtime is on the node (empty: not found). */
export interface RuntimeEvidence {
  containerd: string[];
  /** containerd's config.toml disables the CRI plugin (these ids): it serves Docker, not Kubernetes. */
  containerdCriDisabled: string[];
  /** Only `containerd` on PATH says containerd is there: no daemon runs and no flavour was found. */
  containerdStopped?: boolean;
  docker: string[];
  containers: string[];
}

/** What each runtime's absence means, as a task's failure names it. */
export const LOOKED_FOR: Record<Runtime, string> = {
  containerd:
    'containerd: a k3s/RKE2/microk8s/Bottlerocket node, a running containerd (CRI Version or its process) or `containerd` on PATH',
  docker: `Docker Engine: dockerd on PATH or the socket ${DOCKER_SOCKET}`,
  containers: `containers/image: ${CONTAINERS_IMAGE_PROGRAMS.join(', ')} on PATH`,
};

/**
 * The runtimes to work on (in order) and notes for the report, from what the node has and the
 * task's `runtimes`. Throws the task's failure when there is none or a listed runtime is missing;
 * `nothing` says what the task cannot do then ("registry.trust has nothing to configure here").
 * Pure (exported for tests).
 */
export function selectRuntimes(
  host: string,
  found: RuntimeEvidence,
  wanted: RuntimesWanted,
  nothing: string,
): { runtimes: Runtime[]; notes: string[] } {
  const notes: string[] = [];
  if (wanted !== 'auto') {
    const missing = RUNTIMES.filter((r) => wanted.includes(r) && found[r].length === 0);
    if (missing.length > 0)
      throw new TaskError(
        `${host}: runtimes lists ${missing.join(', ')}, which this node does not have (looked for ${missing.map((r) => LOOKED_FOR[r]).join('; ')}).`,
        'refused',
      );
    return { runtimes: RUNTIMES.filter((r) => wanted.includes(r)), notes };
  }
  const others = found.docker.length > 0 || found.containers.length > 0;
  const runtimes = RUNTIMES.filter((r) => found[r].length > 0).filter((r) => {
    if (r !== 'containerd') return true;
    if (found.containerdCriDisabled.length > 0 && found.docker.length > 0) {
      notes.push(
        `containerd left out: its config.toml disables the CRI plugin (${found.containerdCriDisabled.join(', ')}), so it serves Docker Engine, not Kubernetes, and Docker Engine's trust is the one its pulls use`,
      );
      return false;
    }
    // An installed containerd no daemon runs from pulls nothing; where another runtime is there,
    // that one is the node's (a podman or CRI-O host with the containerd package lying around).
    // Alone, it stays in, and the module says what is wrong with it.
    if (found.containerdStopped && others) {
      notes.push(
        `containerd left out: it is installed (${found.containerd.join(', ')}) but no containerd daemon runs, so no pull goes through it (once it runs, the next run covers it too)`,
      );
      return false;
    }
    return true;
  });
  if (runtimes.length === 0)
    throw new TaskError(
      `${host}: no container runtime found (looked for ${RUNTIMES.map((r) => LOOKED_FOR[r]).join('; ')}): ${nothing}.`,
      'refused',
    );
  return { runtimes, notes };
}

const CACHE_KEY = 'runtimes.evidence';

/**
 * Reads what says each runtime is there (one remote command, plus containerd's cached probes),
 * once per host and containerd config file per run: a run's tasks do not install runtimes.
 */
export async function detectRuntimes(ctx: TaskContext, configFile: string): Promise<RuntimeEvidence> {
  const key = `${CACHE_KEY}:${configFile}`;
  const cached = ctx.hostState.get(key) as RuntimeEvidence | undefined;
  if (cached) return cached;
  let read: NodeRead;
  try {
    read = await readNode(ctx.conn, {
      prelude: programsPrelude([...OTHER_RUNTIMES.flatMap((r) => r.programs), 'containerd']),
      files: [DOCKER_SOCKET, configFile],
      maxFileBytes: 1024 * 1024,
    });
  } catch (e) {
    if (!(e instanceof ReadFailed)) throw e;
    throw new TaskError(`${ctx.host}: could not look for container runtimes (${e.why})`, 'command');
  }
  const others = otherRuntimes(read);
  const found: RuntimeEvidence = {
    containerd: [],
    containerdCriDisabled: [],
    docker: others.find((r) => r.runtime === 'docker')?.evidence ?? [],
    containers: others.find((r) => r.runtime === 'containers/image')?.evidence ?? [],
  };
  const flavour = await detectFlavour(ctx.conn, ctx.hostState);
  if (flavour.kind !== 'containerd') found.containerd.push(describeFlavour(flavour));
  else {
    const running = await runningVersionFor(ctx, () => criSocketFor(ctx), null);
    if (running) found.containerd.push(`containerd ${running.version.major}.${running.version.minor} running`);
    const onPath = programsFound(read).get('containerd');
    if (onPath !== undefined) found.containerd.push(`containerd at ${onPath}`);
    if (!running && onPath !== undefined) found.containerdStopped = true;
    const config = read.entries.get(configFile);
    if (found.containerd.length > 0 && config?.kind === 'file')
      found.containerdCriDisabled = criPluginsDisabledIn(config.content.toString('utf8'));
  }
  ctx.hostState.set(key, found);
  return found;
}

/** Which programs of containers/image the node has, by name (from the same detection's evidence). */
export function containersPrograms(found: RuntimeEvidence): string[] {
  return CONTAINERS_IMAGE_PROGRAMS.filter((p) => found.containers.some((e) => e.startsWith(`${p} `)));
}
