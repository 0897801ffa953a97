/**
 * k8s.sa.clear against the lab's Kubernetes API emulator, with the real kubectl run on node1 over
 * SSH (the master's kubeconfig lives there), driven through the real CLI: removal, idempotence,
 * check mode, restore, a concurrent edit between read and write, and a missing namespace.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { kubeRequests, labControl, pullSecrets, setPullSecrets, trustplay } from '../snapshots/cli.js';

describeLab('k8s.sa.clear on the lab (real kubectl on node1, API emulator)', () => {
  const handle = useLab({ nodes: 1 });
  let dir: string;
  let stateDir: string;
  const playbook = (name: string, args: Record<string, unknown>): string => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      `- hosts: masters\n  tasks:\n    - name: ${name}\n      k8s.sa.clear: ${JSON.stringify({ kubeconfig: '{{ kubeconfig }}', ...args })}\n`,
    );
    return file;
  };
  const run = (file: string, ...extra: string[]) =>
    trustplay(['run', file, '-i', handle.lab.inventoryPath, '--state-dir', stateDir, ...extra]);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tp-k8s-'));
    stateDir = join(dir, 'state');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('check mode shows the secret names that would go and changes nothing', async () => {
    const r = await run(playbook('clear-check', { namespace: ['default', 'aegis'] }), '--check', '--diff');
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toContain(
      'remove imagePullSecrets registry-test-pull, other-registry-pull from serviceaccount default/default',
    );
    expect(r.stdout).toContain('remove imagePullSecrets registry-test-pull from serviceaccount aegis/default');
    expect(await pullSecrets(handle.lab, 'default')).toEqual(['registry-test-pull', 'other-registry-pull']);
  });

  let runId = '';
  it('removes the pull secrets, saves them to the snapshot first, and a second run is ok', async () => {
    const file = playbook('clear', { namespace: ['default', 'aegis'] });
    const r = await run(file);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await pullSecrets(handle.lab, 'default')).toEqual([]);
    expect(await pullSecrets(handle.lab, 'aegis')).toEqual([]);
    // Another account in the same namespace is not touched.
    expect(await pullSecrets(handle.lab, 'aegis', 'installer')).toEqual(['registry-test-pull']);
    runId = /snapshot (\S+) saved/.exec(r.stderr)?.[1] ?? '';
    expect(runId).not.toBe('');
    const manifest = JSON.parse(readFileSync(join(stateDir, 'runs', `${runId}.json`), 'utf8')) as {
      hosts: Record<string, { resources: unknown[] }>;
    };
    expect(manifest.hosts['node1']?.resources).toEqual([
      {
        kind: 'serviceaccount',
        module: 'k8s.sa.clear',
        namespace: 'default',
        name: 'default',
        kubeconfig: '/root/.kube/config',
        imagePullSecrets: [{ name: 'registry-test-pull' }, { name: 'other-registry-pull' }],
      },
      {
        kind: 'serviceaccount',
        module: 'k8s.sa.clear',
        namespace: 'aegis',
        name: 'default',
        kubeconfig: '/root/.kube/config',
        imagePullSecrets: [{ name: 'registry-test-pull' }],
      },
    ]);
    const again = await run(file, '--detailed-exitcode');
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).not.toMatch(/remove imagePullSecrets/);
  });

  it('restore puts the pull secrets back (and the show lists names, not values)', async () => {
    const show = await trustplay(['snapshots', 'show', runId, '--state-dir', stateDir]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(
      'serviceaccount default/default  imagePullSecrets: registry-test-pull, other-registry-pull',
    );
    const r = await trustplay(['restore', runId, '--state-dir', stateDir, '-i', handle.lab.inventoryPath]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await pullSecrets(handle.lab, 'default')).toEqual(['registry-test-pull', 'other-registry-pull']);
    expect(await pullSecrets(handle.lab, 'aegis')).toEqual(['registry-test-pull']);
  });

  it('a concurrent edit between the read and the write is not lost: the write conflicts, is re-read and retried', async () => {
    await setPullSecrets(handle.lab, 'default', ['registry-test-pull', 'other-registry-pull']);
    const before = (await kubeRequests(handle.lab)).length;
    // The emulator applies this edit just before trustplay's write, as another writer racing it would.
    await labControl(handle.lab, 'POST', 'on-next-write', {
      namespace: 'default',
      name: 'default',
      imagePullSecrets: ['registry-test-pull', 'other-registry-pull', 'added-concurrently'],
    });
    const r = await run(playbook('clear-named', { namespace: 'default', secrets: ['registry-test-pull'] }));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await pullSecrets(handle.lab, 'default')).toEqual(['other-registry-pull', 'added-concurrently']);
    const writes = (await kubeRequests(handle.lab))
      .slice(before)
      .filter((q) => q.method === 'PATCH' && q.path === '/api/v1/namespaces/default/serviceaccounts/default');
    expect(writes.map((w) => w.code)).toEqual([409, 200]);
  });

  it('a missing namespace is a clear error naming it, and nothing is changed', async () => {
    await setPullSecrets(handle.lab, 'default', ['registry-test-pull']);
    const r = await run(playbook('clear-missing', { namespace: ['default', 'no-such-ns'] }));
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain('namespace `no-such-ns` does not exist');
    expect(await pullSecrets(handle.lab, 'default')).toEqual(['registry-test-pull']);
  });

  it('namespace: all clears the account everywhere it has secrets', async () => {
    const r = await run(playbook('clear-all', { namespace: 'all' }));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await pullSecrets(handle.lab, 'default')).toEqual([]);
    expect(await pullSecrets(handle.lab, 'aegis')).toEqual([]);
  });
});
