/**
 * `k8s.sa.clear` (seed step 2, made safe): removes imagePullSecrets from a ServiceAccount in one or
 * more namespaces with kubectl on the target host. Each change is a `serviceaccount.patch`: the
 * engine saves the account's pull secrets to the run's snapshot first (so `trustplay restore` can put
 * them back) and writes conditioned on the resourceVersion gather read (see src/k8s/kubectl.ts).
 *
 * Decisions:
 *  - Only the names the plan showed are removed. If another writer adds a secret between our read
 *    and our write, the write conflicts, we re-read, and the newcomer survives: the diff the operator
 *    saw is exactly what happens.
 *  - A namespace or account named explicitly that does not exist fails the task before anything is
 *    changed, naming every missing item at once: a typo in a namespace list should not leave the
 *    cluster half-done. With `namespace: all`, namespaces without the account are skipped.
 */
import { TaskError } from '../engine/errors.js';
import { defineModule, type ArgsOf, type Change, type TaskContext } from '../engine/module.js';
import { listNamespaces, readServiceAccounts, type KubeTarget, type ReadResult } from '../k8s/kubectl.js';

const schema = {
  type: 'object',
  title: 'k8s.sa.clear',
  description:
    "Remove imagePullSecrets (all, or the named ones) from a ServiceAccount in one or more namespaces with kubectl on the target host (step 2 of the fix: drop stale pull secrets). The previous value goes to the run's snapshot so `trustplay restore` puts it back.",
  additionalProperties: false,
  required: ['namespace'],
  properties: {
    namespace: {
      description: 'A namespace, a list of namespaces, or `all` for every namespace.',
      anyOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
      ],
    },
    service_account: {
      type: 'string',
      minLength: 1,
      default: 'default',
      description: 'ServiceAccount name.',
    },
    secrets: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      description: 'Names of the pull secrets to remove; default: all of them.',
    },
    kubeconfig: {
      type: 'string',
      minLength: 1,
      description: "Path of the kubeconfig on the target host (default: kubectl's own default).",
      'x-file': 'target',
    },
    context: { type: 'string', minLength: 1, description: 'kubeconfig context to use.' },
    kubectl: { type: 'string', minLength: 1, default: 'kubectl', description: 'kubectl binary on the target host.' },
  },
} as const;

/** Arguments of `k8s.sa.clear` as the engine hands them over (schema defaults filled in). */
export type K8sSaClearArgs = ArgsOf<typeof schema>;

/** What gather saw: every requested account, and whether `all` namespaces were asked for. */
export interface SaClearObserved {
  all: boolean;
  accounts: ReadResult[];
}

/** The kubectl target of the task's arguments (shared by reads, writes and the snapshot). */
export function targetOf(args: Pick<K8sSaClearArgs, 'kubeconfig' | 'context' | 'kubectl'>): KubeTarget {
  return {
    ...(args.kubeconfig ? { kubeconfig: args.kubeconfig } : {}),
    ...(args.context ? { context: args.context } : {}),
    ...(args.kubectl ? { kubectl: args.kubectl } : {}),
  };
}

function listText(names: string[]): string {
  return names.length ? names.join('\n') + '\n' : '(none)\n';
}

/** The pure part: which secrets leave which accounts. `apply` is bound to a connection later. */
export function planClear(
  args: K8sSaClearArgs,
  observed: SaClearObserved,
): Array<{ account: Extract<ReadResult, { status: 'ok' }>; remove: string[]; keep: string[] }> {
  if (!observed.all) {
    const missing = observed.accounts.flatMap((a) =>
      a.status === 'no-namespace'
        ? [`namespace \`${a.namespace}\` does not exist`]
        : a.status === 'no-account'
          ? [`service account \`${a.name}\` does not exist in namespace \`${a.namespace}\``]
          : [],
    );
    if (missing.length)
      throw new TaskError(
        `${missing.join('; ')}: nothing was changed; fix the namespace list or create the account`,
        'refused',
      );
  }
  const wanted = args.secrets ? new Set(args.secrets) : undefined;
  const out = [];
  for (const a of observed.accounts) {
    if (a.status !== 'ok') continue;
    const current = a.sa.imagePullSecrets;
    const remove = current.filter((n) => !wanted || wanted.has(n));
    if (!remove.length) continue;
    out.push({ account: a, remove, keep: current.filter((n) => !remove.includes(n)) });
  }
  return out;
}

export default defineModule({
  schema,
  name: 'k8s.sa.clear',
  description:
    'Remove imagePullSecrets from a ServiceAccount in one or more namespaces (kubectl on the host; saved to the snapshot first).',

  async gather(ctx: TaskContext, args: K8sSaClearArgs): Promise<SaClearObserved> {
    const t = targetOf(args);
    const all = args.namespace === 'all';
    const namespaces = all
      ? await listNamespaces(ctx.conn, t)
      : [...new Set(typeof args.namespace === 'string' ? [args.namespace] : args.namespace)];
    const accounts = namespaces.length ? await readServiceAccounts(ctx.conn, t, namespaces, args.service_account) : [];
    return { all, accounts };
  },

  plan(args, observed): Change[] {
    const t = targetOf(args);
    return planClear(args, observed).map(({ account, remove, keep }) => {
      const { namespace, name, resourceVersion, imagePullSecrets } = account.sa;
      return {
        op: 'serviceaccount.patch',
        summary: `remove imagePullSecrets ${remove.join(', ')} from serviceaccount ${namespace}/${name}`,
        namespace,
        name,
        ...t,
        resourceVersion,
        imagePullSecrets,
        remove,
        // Secret NAMES only: they are references, not credentials.
        diff: {
          target: `serviceaccount ${namespace}/${name} imagePullSecrets`,
          before: listText(imagePullSecrets),
          after: listText(keep),
        },
      };
    });
  },
});
