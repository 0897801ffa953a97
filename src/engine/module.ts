/**
 * The module contract. Every task module is three steps, pyinfra-style:
 *
 *  1. `gather(ctx, args)` reads the state the module needs from the host, ideally in one remote
 *     command. It never changes anything.
 *  2. `plan(args, observed, ctx)` is pure: it compares desired with observed state and returns the
 *     list of changes. An empty list means the host is already right (`ok`). Whether a task
 *     "changed" is derived from this list, never set by hand.
 *     Changes are data (operations: `file.write`, `file.remove`, `serviceaccount.patch`, ...).
 *  3. The engine applies them in one place (src/engine/apply.ts): it saves what each operation
 *     touches to the run's snapshot first (no snapshot, no change), compares files against what
 *     gather saw, keeps the config backup a verified restart rolls back to, and schedules restarts.
 *  4. `verify(ctx, args, observed)`, optional, runs after apply: a module that only observes does
 *     its work there (image.pull.verify pulls). In check mode it runs only when the module sets `verifyInCheck`.
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
      /** The kubectl binary the module uses, so the snapshot reads the account the same way. */
      kubectl?: string;
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

/** A handler the engine schedules: run once per host after the play's tasks, deduplicated by `id`. */
export interface HandlerRequest {
  id: string;
  /** A playbook handler name, or an internal handler module with its args. */
  name?: string;
  module?: string;
  args?: Record<string, unknown>;
}

/** What gather saw of a file, for compare-and-swap: its content's sha256 (hex), or that it was absent. */
export type FileExpect = { sha256: string } | { absent: true };

interface Described {
  /** One line, no secret values: "write /etc/containerd/certs.d/registry.test/hosts.toml". */
  summary: string;
  diff?: Diff;
}

/** Writes a file atomically (temp file, fsync, rename), creating missing parent directories. */
export interface FileWrite extends Described {
  op: 'file.write';
  path: string;
  content: Buffer | string;
  /** Permission bits; omitted: an existing file keeps its mode, a new one gets 0644. */
  mode?: number;
  /** Owner; omitted: an existing file keeps its owner. */
  owner?: { uid: number; gid: number };
  /** Refuse to write when the file is no longer what gather saw. */
  expect?: FileExpect;
}

/** Removes a file (absent is fine). */
export interface FileRemove extends Described {
  op: 'file.remove';
  path: string;
  expect?: FileExpect;
}

/** Removes a directory only when it is empty (what trustplay created and emptied). */
export interface DirRemove extends Described {
  op: 'dir.remove';
  path: string;
}

/** Sets a ServiceAccount's imagePullSecrets, conditioned on the resourceVersion gather read. */
export interface ServiceAccountPatch extends Described {
  op: 'serviceaccount.patch';
  namespace: string;
  name: string;
  kubeconfig?: string;
  context?: string;
  kubectl?: string;
  /** The version and pull secrets gather read; a conflict re-reads and re-applies `remove` / `set`. */
  resourceVersion: string;
  imagePullSecrets: string[];
  /** Remove these names (others, even ones added meanwhile, stay) ... */
  remove?: string[];
  /** ... or set exactly this list. */
  set?: string[];
}

/** Removes an image (every tag) from the node's CRI image store. */
export interface ImageRemove extends Described {
  op: 'image.remove';
  /** The image id as its runtime reports it. */
  id: string;
  /** Whose image store: containerd's CRI (absent), Docker Engine's API, or podman's containers-storage. */
  runtime?: 'docker' | 'containers';
  socket?: string;
}

/**
 * Asks for a verified restart of `unit` after the play's tasks (once per host): restart, wait for
 * the health check, and roll `config` back if it fails. Writes to `config` in the same plan get
 * their backup kept for that rollback. Not a change by itself, so it has no summary.
 */
export interface RestartRequest {
  op: 'restart.request';
  unit: 'containerd';
  /** The service a person knows the restart by (`k3s`, `rke2-server`); containerd when absent. */
  service?: string;
  config: string;
  /**
   * Files the same plan writes with `config` (k3s's CA beside registries.yaml): a rollback puts
   * them back too. Kept for this run only; an interrupted run's marker rolls back `config` alone.
   */
  companions?: string[];
  command: string;
  health: { socket?: string; timeoutSec: number };
}

/**
 * An action no generic operation describes; a module using one says why in a comment. The engine
 * still saves `resources` first.
 */
export interface CustomOp extends Described {
  op: 'custom';
  resources: Resource[];
  apply(ctx: TaskContext): Promise<void>;
}

/** One difference between desired and observed state, as data the engine applies. */
export type Change = FileWrite | FileRemove | DirRemove | ServiceAccountPatch | ImageRemove | RestartRequest | CustomOp;

/** The changes a report lists (a restart request is carried out, and reported, by its handler). */
export function reported(changes: readonly Change[]): Exclude<Change, RestartRequest>[] {
  return changes.filter((c): c is Exclude<Change, RestartRequest> => c.op !== 'restart.request');
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
  /** `--expiry-warning`: warn about certificates the task trusts (or is served) that expire within this many days. */
  expiryWarningDays?: number;
  /** Marks a value (e.g. a key read from a file, a derived credential) as a secret of the run: masked in every output. */
  secret?(value: string): void;
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
  /**
   * Loads what the module's first gather will need (the CRI client's libraries), called while the
   * run's SSH handshakes are in flight: the controller is idle then, and busy when the gathers start.
   */
  warm?: () => Promise<unknown>;
  /**
   * `verify` may run in check mode: it changes nothing a later run depends on (image.pull.verify's
   * pull leaves the image in the node's cache, which the README says `check` may do).
   */
  verifyInCheck?: boolean;
  /**
   * Files `gather` will read, from its arguments alone (a directory it reads as `dirs` does, with a
   * trailing `/`): the engine asks for them with the host's first read of the play (one remote
   * command less per host), and `readNode` answers the gather from what that read saw while nothing
   * was changed on the host since (src/connection/read-files.ts).
   */
  readsAhead?(args: Record<string, unknown>): string[];
  gather(ctx: TaskContext, args: Args): Promise<Observed>;
  plan(args: Args, observed: Observed, ctx: TaskContext): Change[] | Promise<Change[]>;
  /**
   * Runs after apply (in check mode only with `verifyInCheck`, and only when nothing would change): where a module that observes does
   * its work, e.g. a pull. Throws a TaskError('verification') when what it sees is wrong; returns
   * extra output for the report.
   */
  verify?(ctx: TaskContext, args: Args, observed: Observed): Promise<Record<string, unknown> | void>;
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
