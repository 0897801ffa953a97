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
import { TaskError } from '../engine/errors.js';
import { defineModule, type AnyModule, type ArgsOf, type Change, type TaskContext } from '../engine/module.js';
import { registryArg } from '../playbook/schema/args-common.js';
import { certsDirMaterialProps } from './certs-dir.js';
import containerdTls from './containerd-tls.js';
import containersTls from './containers-tls.js';
import dockerTls from './docker-tls.js';
import {
  detectRuntimes,
  LOOKED_FOR,
  RUNTIMES,
  runtimesArg,
  selectRuntimes as selectFrom,
  type Runtime,
  type RuntimeEvidence,
} from './runtimes.js';
import { warmCri } from '../cri/client.js';

export { LOOKED_FOR, RUNTIMES, type Runtime, type RuntimeEvidence };

/** The runtimes registry.trust configures on a node (runtimes.ts `selectRuntimes`). */
export function selectRuntimes(
  host: string,
  found: RuntimeEvidence,
  wanted: RegistryTrustArgs['runtimes'],
): { runtimes: Runtime[]; notes: string[] } {
  return selectFrom(host, found, wanted, 'registry.trust has nothing to configure here');
}

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
    runtimes: runtimesArg(
      '`auto`: every runtime detected on the node (a node with none fails). Or a list of `containerd`, `docker`, `containers` (containers/image): exactly those, and a listed runtime the node does not have fails the task.',
    ),
  },
  'x-together': [['client_cert', 'client_key']],
} as const;

/** Arguments of `registry.trust` as the engine hands them over (schema defaults filled in). */
export type RegistryTrustArgs = ArgsOf<typeof schema>;

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

/** The `registry.trust` module. */
export default defineModule({
  schema,
  name: 'registry.trust',
  warm: warmCri,
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
