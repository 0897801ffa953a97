/**
 * The module contract. Every task module is three steps, pyinfra-style:
 *
 *  1. `gather(ctx, args)` reads the state the module needs from the host, ideally in one remote
 *     command. It never changes anything.
 *  2. `plan(args, observed, ctx)` is pure: it compares desired with observed state and returns the
 *     list of changes. An empty list means the host is already right (`ok`). Whether a task
 *     "changed" is derived from this list, never set by hand.
 *  3. The engine applies each change in order with `change.apply(ctx)`, after saving every resource
 *     the change declares in `resources` to the run's snapshot (no snapshot, no change).
 *
 * In check mode the engine stops after step 2 and reports the changes (`would change`) with their
 * diffs. Failures are values: `gather`/`plan` throw a `TaskError` with a one-sentence message.
 */
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import type { Connection } from '../connection/connection.js';

/** A thing a change touches, saved to the snapshot before the change is applied. */
export type Resource =
  | { kind: 'file'; path: string }
  | {
      kind: 'serviceaccount';
      namespace: string;
      name: string;
      kubeconfig?: string;
      context?: string;
    };

/**
 * Before/after text of one change, as it is: the engine masks it (src/secrets) by the target's
 * format (JSON, TOML, PEM keys) and the run's secret values before any output sees it.
 */
export interface Diff {
  /** What the diff is about, e.g. a file path or `sa default/default`. */
  target: string;
  before: string;
  after: string;
  /** The whole content is a secret (a private key): output shows only its size. */
  secret?: boolean;
}

/** A handler a change asks for: run once per host after the play's tasks, deduplicated by `id`. */
export interface HandlerRequest {
  id: string;
  /** A playbook handler name, or an internal handler module with its args. */
  name?: string;
  module?: string;
  args?: Record<string, unknown>;
}

/** One difference between desired and observed state, and how to remove it. */
export interface Change {
  /** One line, no secret values: "write /etc/containerd/certs.d/registry.test/hosts.toml". */
  summary: string;
  resources: Resource[];
  diff?: Diff;
  /** Handlers to run after the play when this change is applied. */
  notify?: HandlerRequest[];
  apply(ctx: TaskContext): Promise<void>;
}

/** What a module gets from the engine for one task on one host. */
export interface TaskContext {
  conn: Connection;
  /** Inventory name of the host. */
  host: string;
  /** Variables in scope (inventory < host < play < extra vars), already interpolated into args. */
  vars: Record<string, unknown>;
  /** True in check mode: plan only, apply nothing. */
  check: boolean;
  /** Warnings shown in the run output (e.g. insecure settings). */
  warn(message: string): void;
  /** Facts for the snapshot manifest (no secret values). */
  fact(key: string, value: unknown): void;
  /** Per-host state shared by tasks and handlers of one run (e.g. config backups for rollback). */
  hostState: Map<string, unknown>;
  /** Aborted when the run is cancelled. */
  signal?: AbortSignal;
  /** Marks a value (e.g. a key read from a file, a derived credential) as a secret of the run: masked in every output. */
  secret?(value: string): void;
}

/** Why a task failed, for exit codes and messages. */
export type TaskErrorKind =
  /** The module's own verification failed (image.pull.verify): drift in check mode. */
  | 'verification'
  /** Arguments or node state the module refuses (e.g. a config containerd would reject). */
  | 'refused'
  /** A command or I/O on the host failed. */
  | 'command'
  /** The host could not be reached. */
  | 'unreachable';

/** A failure a person can act on: one sentence in `message`, detail (raw output) in `detail`. */
export class TaskError extends Error {
  constructor(
    message: string,
    readonly kind: TaskErrorKind = 'command',
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'TaskError';
  }
}

/** A module's arguments as the engine hands them over: validated, schema defaults filled in. */
export type ArgsOf<S extends JSONSchema> = FromSchema<S, { keepDefaultedPropertiesOptional: false }>;

/**
 * A task module: one file, one object (see `defineModule`). `Args` are the validated
 * (schema-defaulted) arguments.
 */
export interface Module<Args = Record<string, unknown>, Observed = unknown> {
  /** The key a playbook task uses, e.g. `containerd.tls`. */
  name: string;
  /** One line for `--help` and docs. */
  description: string;
  /** JSON Schema of the arguments: validation, editor completion, README tables and `Args`. */
  schema: Readonly<Record<string, unknown>>;
  /** Scheduled by the engine itself (handlers, restore, facts), never named in a playbook. */
  internal?: boolean;
  /** Runs even in check mode because it only reads (image.pull.verify). */
  readOnly?: boolean;
  gather(ctx: TaskContext, args: Args): Promise<Observed>;
  plan(args: Args, observed: Observed, ctx: TaskContext): Change[] | Promise<Change[]>;
  /** Extra output for the report (e.g. resolved image digest). */
  result?(observed: Observed): Record<string, unknown>;
}

/** Any module, its argument and observation types erased: what the registry and the engine hold. */
// Method syntax in `Module` makes a typed module assignable here without a cast.
export type AnyModule = Module<Record<string, unknown>, unknown>;

/** A module as its file defines it: the schema's literal type kept, so `Args` derive from it. */
// NoInfer: S comes from `schema` alone; inferring it back through FromSchema from the callbacks'
// parameter types is what makes the compiler give up ("excessively deep").
export type ModuleDefinition<S extends JSONSchema, Observed> = Module<NoInfer<ArgsOf<S>>, Observed> & { schema: S };

/**
 * Defines a module: its argument type is derived from `schema` (json-schema-to-ts), so the schema
 * is the one source of truth for validation, docs and the code that reads the arguments.
 */
export function defineModule<const S extends JSONSchema & Readonly<Record<string, unknown>>, Observed>(
  def: ModuleDefinition<S, Observed>,
): ModuleDefinition<S, Observed> {
  return def;
}
