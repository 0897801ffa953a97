/** Helpers for the snapshot/restore e2e suites: the real CLI as a child process, and the lab emulator's control paths. */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { Lab } from '../lab/lab.js';

export { trustplay, type CliRun } from '../support/cli.js';

/** A call to the emulator's /_lab control paths with the admin token (this machine, not a node). */
export function labControl<T>(lab: Lab, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const kube = lab.kube;
  if (!kube) throw new Error('the lab has no Kubernetes API emulator');
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      `${kube.url}/_lab/${path}`,
      {
        method,
        ca: readFileSync(lab.ca),
        headers: {
          Authorization: `Bearer ${kube.tokens.admin}`,
          ...(payload ? { 'Content-Type': 'application/json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          (res.statusCode ?? 0) >= 300
            ? reject(new Error(`/_lab/${path}: ${res.statusCode} ${text}`))
            : resolve(JSON.parse(text) as T),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

type LabState = {
  revision: number;
  namespaces: Record<
    string,
    {
      serviceAccounts: Record<
        string,
        { imagePullSecrets?: Array<{ name: string }>; metadata: { resourceVersion: string } }
      >;
    }
  >;
};

/** A ServiceAccount's pull secret names as the emulator holds them. */
export async function pullSecrets(lab: Lab, ns: string, name = 'default'): Promise<string[]> {
  const s = await labControl<LabState>(lab, 'GET', 'state');
  const sa = s.namespaces[ns]?.serviceAccounts[name];
  if (!sa) throw new Error(`no serviceaccount ${ns}/${name} in the emulator`);
  return (sa.imagePullSecrets ?? []).map((x) => x.name);
}

/** Sets a ServiceAccount's pull secrets directly in the emulator (test setup / reset). */
export async function setPullSecrets(lab: Lab, ns: string, names: string[], name = 'default'): Promise<void> {
  await labControl(lab, 'POST', 'mutate', { namespace: ns, name, imagePullSecrets: names });
}

/** Requests the emulator saw, oldest first. */
export function kubeRequests(lab: Lab): Promise<Array<{ method: string; path: string; code: number; body?: unknown }>> {
  return labControl(lab, 'GET', 'requests');
}
