import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../cli/exit-codes.js';
import { inClusterAccess, kubeconfigAccess, NoKubeAccess } from './api.js';

describe('reaching the API: what cannot be reached is invalid input (exit 3) with its reason, not an internal error', () => {
  it('outside a pod', async () => {
    const e = await inClusterAccess({}).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NoKubeAccess);
    expect((e as NoKubeAccess).code).toBe(ExitCode.Invalid);
    expect((e as Error).message).toMatch(/not running in a pod .*pass --kubeconfig FILE/);
  });
  it('in a pod without a mounted service account token', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-sa-'));
    try {
      const e = await inClusterAccess(
        { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' },
        dir,
      ).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(NoKubeAccess);
      expect((e as Error).message).toMatch(
        /service account token cannot be read \(ENOENT .*automountServiceAccountToken/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('with a kubeconfig that is not there', async () => {
    const e = await kubeconfigAccess('/nonexistent/kubeconfig').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NoKubeAccess);
    expect((e as Error).message).toBe('cannot read the kubeconfig /nonexistent/kubeconfig: ENOENT');
  });
});
