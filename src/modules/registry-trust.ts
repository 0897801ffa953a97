/**
 * `registry.trust`: one task that makes every registry client a node has trust a registry, so a
 * playbook for a mixed fleet (containerd / k3s / RKE2 nodes, Docker Engine hosts, podman / CRI-O
 * hosts) is written once.
 *
 * gather: detects the node's runtimes, then runs each one's own module's gather (`containerd.tls`,
 *         `docker.tls`, `containers.tls`) with the task's arguments, its schema defaults filled in
 *         the way the engine fills them (resolveArgs).
 * plan:   each of those modules' own plan, concatenated in a fixed order (containerd, docker,
 *         containers). Nothing of their logic is repeated here: snapshots, diffs, check mode and
 *         containerd's verified restart all come from their changes.
 *
 * Detection (`runtimes: auto`), in one remote command plus the containerd probes containerd.tls
 * makes anyway (kept in the run's memory, so its gather does not repeat them):
 * - containerd: a k3s / RKE2 / microk8s / Bottlerocket node (src/containerd/flavour.ts), a running
 *   containerd (CRI `Version`, else its process: daemon-version.ts) or `containerd` on PATH. A
 *   containerd whose config.toml disables the CRI plugin serves Docker, not Kubernetes: when Docker
 *   Engine is on the node it is left out (Docker Engine's own trust is what its pulls use); without
 *   Docker Engine, containerd.tls refuses it with its reason.
 * - Docker Engine: dockerd on PATH or the socket /run/docker.sock;
 * - containers/image: podman, buildah, skopeo or crio on PATH (the lists `trustplay facts` uses).
 *
 * Green means checked: a node with none of them fails the task, naming what was looked for; with
 * an explicit `runtimes` list, a listed runtime the node does not have fails it by name. Warnings
 * and failures of each runtime's module come prefixed with the runtime.
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
import { defineModule, type AnyModule, type ArgsOf, type Change, type TaskContext } from '../engine/module.js';
import { registryArg } from '../playbook/schema/args-common.js';
import { certsDirMaterialProps } from './certs-dir.js';
import containerdTls from './containerd-tls.js';
import containersTls from './containers-tls.js';
import dockerTls from './docker-tls.js';

/** The runtimes registry.trust knows, in the order it plans them. */
export const RUNTIMES = ['containerd', 'docker', 'containers'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** Each runtime's own module. */
const MODULES: Record<Runtime, AnyModule> = {
  containerd: containerdTls as unknown as AnyModule,
  docker: dockerTls as unknown as AnyModule,
  containers: containersTls as unknown as AnyModule,
};

const material = certsDirMaterialProps();

const schema = {
  type: 'object',
  title: 'registry.trust',
  description:
    "Make every registry client a node has trust a registry's TLS: containerd (and k3s/RKE2), Docker Engine and containers/image (podman, buildah, skopeo, CRI-O), each through its own module (containerd.tls, docker.tls, containers.tls).",
  additionalProperties: false,
  required: ['registry'],
  properties: {
    registry: registryArg,
    ...material,
    ca: {
      ...material.ca,
      description:
        "The registry's CA certificate: a PEM file path on the controller, or inline PEM. Each runtime's module writes it where that runtime reads it (containerd: certs.d/<registry>/hosts.toml + ca.crt; Docker Engine and containers/image: certs.d/<registry>/ca.crt). A list (old and new CA together) is written as one bundle everywhere, for a CA rotation without an outage.",
    },
    state: {
      ...material.state,
      description:
        '`absent` removes, on each runtime, what its module wrote for the registry (containerd.tls, docker.tls, containers.tls with `state: absent`).',
    },
    runtimes: {
      description:
        '`auto`: every runtime detected on the node (a node with none fails). Or a list of `containerd`, `docker`, `containers` (containers/image): exactly those, and a listed runtime the node does not have fails the task.',
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
    },
  },
  'x-together': [['client_cert', 'client_key']],
} as const;

/** Arguments of `registry.trust` as the engine hands them over (schema defaults filled in). */
export type RegistryTrustArgs = ArgsOf<typeof schema>;

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

/** What each runtime's absence means, as the task's failure names it. */
const LOOKED_FOR: Record<Runtime, string> = {
  containerd:
    'containerd: a k3s/RKE2/microk8s/Bottlerocket node, a running containerd (CRI Version or its process) or `containerd` on PATH',
  docker: `Docker Engine: dockerd on PATH or the socket ${DOCKER_SOCKET}`,
  containers: `containers/image: ${CONTAINERS_IMAGE_PROGRAMS.join(', ')} on PATH`,
};

/**
 * The runtimes to fix (in plan order) and notes for the report, from what the node has and the
 * task's `runtimes`. Throws the task's failure when there is nothing to fix or a listed runtime is
 * missing. Pure (exported for tests).
 */
export function selectRuntimes(
  host: string,
  found: RuntimeEvidence,
  wanted: RegistryTrustArgs['runtimes'],
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
    // Alone, it stays in, and containerd.tls says what is wrong with it.
    if (found.containerdStopped && others) {
      notes.push(
        `containerd left out: it is installed (${found.containerd.join(', ')}) but no containerd daemon runs, so no pull goes through it (once it runs, the next run trusts the registry there too)`,
      );
      return false;
    }
    return true;
  });
  if (runtimes.length === 0)
    throw new TaskError(
      `${host}: no container runtime found (looked for ${RUNTIMES.map((r) => LOOKED_FOR[r]).join('; ')}): registry.trust has nothing to configure here.`,
      'refused',
    );
  return { runtimes, notes };
}

/**
 * The arguments a runtime's module gets from the task's (before its defaults): the registry, the
 * material and `state`, which all three modules take under the same names.
 */
export function moduleArgsFor(args: RegistryTrustArgs): Record<string, unknown> {
  const out: Record<string, unknown> = { registry: args.registry, state: args.state };
  for (const k of ['ca', 'client_cert', 'client_key'] as const) if (args[k] !== undefined) out[k] = args[k];
  return out;
}

/** A context whose warnings are prefixed with the runtime. */
function runtimeContext(ctx: TaskContext, runtime: Runtime): TaskContext {
  return { ...ctx, warn: (m) => ctx.warn(`${runtime}: ${m}`) };
}

/** A runtime module's failure, named by the runtime (after the host when the message starts with it). */
function named(e: unknown, runtime: Runtime, host: string): unknown {
  if (!(e instanceof TaskError)) return e;
  const m = e.message.startsWith(`${host}: `)
    ? `${host}: ${runtime}: ${e.message.slice(host.length + 2)}`
    : `${runtime}: ${e.message}`;
  return new TaskError(m, e.kind, e.detail);
}

/** One runtime's part: its module's arguments (defaults filled) and what its gather saw. */
interface Part {
  runtime: Runtime;
  args: Record<string, unknown>;
  observed: unknown;
}

/** What `registry.trust` gathered. */
export interface RegistryTrustObserved {
  found: RuntimeEvidence;
  notes: string[];
  parts: Part[];
}

/** Reads what says each runtime is there (one remote command, plus containerd's cached probes). */
async function detectRuntimes(ctx: TaskContext, configFile: string): Promise<RuntimeEvidence> {
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
  return found;
}

/** The `registry.trust` module. */
export default defineModule({
  schema,
  name: 'registry.trust',
  description:
    "Make every runtime a node has trust a registry's TLS (containerd/k3s/RKE2, Docker Engine, containers/image): detects them and applies containerd.tls, docker.tls and containers.tls for each.",
  async gather(ctx, args) {
    // Imported here: the argument validators import the module list, which imports this file.
    const { resolveArgs } = await import('../engine/args.js');
    const raw = moduleArgsFor(args);
    const argsOf = (runtime: Runtime): Record<string, unknown> =>
      resolveArgs(MODULES[runtime].name, MODULES[runtime].schema, raw, ctx.vars);
    const containerdArgs = argsOf('containerd');
    const found = await detectRuntimes(ctx, String(containerdArgs['config_file']));
    const { runtimes, notes } = selectRuntimes(ctx.host, found, args.runtimes);
    ctx.fact('registry.trust', { runtimes, evidence: found, ...(notes.length ? { notes } : {}) });
    const parts: Part[] = [];
    for (const runtime of runtimes) {
      const a = runtime === 'containerd' ? containerdArgs : argsOf(runtime);
      try {
        parts.push({ runtime, args: a, observed: await MODULES[runtime].gather(runtimeContext(ctx, runtime), a) });
      } catch (e) {
        throw named(e, runtime, ctx.host);
      }
    }
    return { found, notes, parts };
  },
  async plan(_args, observed, ctx) {
    const changes: Change[] = [];
    for (const part of observed.parts) {
      try {
        changes.push(
          ...(await MODULES[part.runtime].plan(part.args, part.observed, runtimeContext(ctx, part.runtime))),
        );
      } catch (e) {
        throw named(e, part.runtime, ctx.host);
      }
    }
    return changes;
  },
  result(observed) {
    return {
      runtimes: observed.parts.map((p) => p.runtime),
      ...(observed.notes.length ? { notes: observed.notes } : {}),
    };
  },
});
