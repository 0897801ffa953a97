import { describe, expect, it } from 'vitest';
import { TaskError } from '../engine/errors.js';
import { resourcesOf } from '../engine/apply.js';
import { reported, type Change } from '../engine/module.js';
import type { ReadResult } from '../k8s/kubectl.js';
import type { K8sSaClearArgs } from './k8s-sa-clear.js';
import k8sSaClear, { planClear } from './k8s-sa-clear.js';

const ok = (namespace: string, names: string[], rv = '7'): ReadResult => ({
  namespace,
  name: 'default',
  status: 'ok',
  sa: { namespace, name: 'default', resourceVersion: rv, imagePullSecrets: names },
});
const args = (a: Partial<K8sSaClearArgs> = {}): K8sSaClearArgs =>
  ({ namespace: 'default', service_account: 'default', kubectl: 'kubectl', ...a }) as K8sSaClearArgs;

describe('k8s.sa.clear plan', () => {
  it('removes every pull secret by default, one change per account that has any', () => {
    const changes = k8sSaClear.plan(
      args({ namespace: ['default', 'aegis', 'empty'], kubeconfig: '/root/.kube/config' }),
      { all: false, accounts: [ok('default', ['a', 'b']), ok('aegis', ['a']), ok('empty', [])] },
      undefined as never,
    ) as Change[];
    const shown = reported(changes);
    expect(shown).toHaveLength(changes.length);
    expect(shown.map((c) => c.summary)).toEqual([
      'remove imagePullSecrets a, b from serviceaccount default/default',
      'remove imagePullSecrets a from serviceaccount aegis/default',
    ]);
    const first = shown[0]!;
    expect(resourcesOf(first)).toEqual([
      {
        kind: 'serviceaccount',
        namespace: 'default',
        name: 'default',
        kubeconfig: '/root/.kube/config',
        kubectl: 'kubectl',
      },
    ]);
    expect(first.diff).toMatchObject({ before: 'a\nb\n', after: '(none)\n' });
  });

  it('removes only the named secrets and keeps the order of the rest', () => {
    expect(
      planClear(args({ secrets: ['b', 'zz'] }), { all: false, accounts: [ok('default', ['a', 'b', 'c'])] }),
    ).toMatchObject([{ remove: ['b'], keep: ['a', 'c'] }]);
    expect(planClear(args({ secrets: ['zz'] }), { all: false, accounts: [ok('default', ['a'])] })).toEqual([]);
  });

  it('names every missing namespace and account at once and changes nothing', () => {
    const observed = {
      all: false,
      accounts: [
        ok('default', ['a']),
        { namespace: 'nope', name: 'default', status: 'no-namespace' as const },
        { namespace: 'aegis', name: 'default', status: 'no-account' as const },
      ],
    };
    let err: unknown;
    try {
      planClear(args({ namespace: ['default', 'nope', 'aegis'] }), observed);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).message).toBe(
      'namespace `nope` does not exist; service account `default` does not exist in namespace `aegis`: nothing was changed; fix the namespace list or create the account',
    );
    expect((err as TaskError).kind).toBe('refused');
  });

  it('with namespace: all, skips namespaces without the account', () => {
    expect(
      planClear(args({ namespace: 'all' }), {
        all: true,
        accounts: [ok('default', ['a']), { namespace: 'x', name: 'default', status: 'no-account' }],
      }),
    ).toHaveLength(1);
  });
});
