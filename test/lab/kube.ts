/**
 * Optional lab step: runs the Kubernetes API emulator (test/lab/kube-api/main.ts, written
 * separately) as its own process with a lab-signed certificate, and writes kubeconfigs for it:
 * one for this machine and one as node1's `/root/.kube/config` (the master's).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LabPki } from './certs.js';
import type { LabNode } from './node.js';
import { renderKubeconfig } from './kube-api/kubeconfig.js';
import { processName, startDetached, tcpAnswers, waitFor } from './procs.js';

/** The running emulator as recorded in lab.json. */
export interface LabKube {
  /** https://127.0.0.1:<port> (from this machine); nodes use https://kube.test:<port>. */
  url: string;
  port: number;
  pid: number;
  /** Bearer tokens (test secrets): `admin` may do everything, `readonly` only reads. */
  tokens: { admin: string; readonly: string };
  hostKubeconfig: string;
  /** Path of the master's kubeconfig inside node1. */
  nodeKubeconfig: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The cluster as the seed found it: the default ServiceAccount carries a stale pull secret for
 * the registry (seed step 2 removes it), alongside one for another registry.
 */
export const SEED = {
  default: { serviceAccounts: { default: { imagePullSecrets: ['registry-test-pull', 'other-registry-pull'] } } },
  'kube-system': { serviceAccounts: { default: {} } },
  aegis: {
    serviceAccounts: {
      default: { imagePullSecrets: ['registry-test-pull'] },
      installer: { imagePullSecrets: ['registry-test-pull'] },
    },
  },
};

/** Starts the emulator, or logs why it was skipped and returns undefined. */
export async function startKube(opts: {
  dir: string;
  port: number;
  pki: LabPki;
  node1: LabNode | undefined;
  track: (pid: number, comm: string, what: string) => void;
  log: (s: string) => void;
}): Promise<LabKube | undefined> {
  if (!existsSync(path.join(here, 'kube-api', 'main.ts'))) {
    opts.log('kube-api emulator skipped: test/lab/kube-api/main.ts is not there');
    return undefined;
  }
  const entry = path.join(here, 'kube-api', 'main.ts');
  const dir = path.join(opts.dir, 'kube');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tokens = { admin: randomBytes(16).toString('hex'), readonly: randomBytes(16).toString('hex') };
  const optionsFile = path.join(dir, 'options.json');
  writeFileSync(
    optionsFile,
    JSON.stringify({
      port: opts.port,
      certFile: opts.pki.kube.cert,
      keyFile: opts.pki.kube.key,
      caFile: opts.pki.ca.cert,
      tokens: { [tokens.admin]: 'admin', [tokens.readonly]: 'readonly' },
      namespaces: SEED,
    }),
    { mode: 0o600 },
  );
  const log = path.join(dir, 'kube-api.log');
  const tsx = import.meta.resolve('tsx');
  const pid = startDetached(process.execPath, ['--import', tsx, entry, '--config', optionsFile], log);
  opts.track(pid, processName(pid) ?? 'node', 'kube-api emulator');
  const t0 = Date.now();
  await waitFor(
    `kube-api emulator on 127.0.0.1:${opts.port} (see ${log})`,
    async () => {
      if (processName(pid) === undefined)
        throw new Error(readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' | '));
      return tcpAnswers('127.0.0.1', opts.port);
    },
    20_000,
  );
  const caPem = readFileSync(opts.pki.ca.cert, 'utf8');
  const hostKubeconfig = path.join(dir, 'kubeconfig');
  writeFileSync(
    hostKubeconfig,
    renderKubeconfig({ server: `https://127.0.0.1:${opts.port}`, caPem, token: tokens.admin }),
    { mode: 0o600 },
  );
  const nodeKubeconfig = '/root/.kube/config';
  if (opts.node1) {
    const kubeDir = path.join(opts.node1.files['/root'], '.kube');
    mkdirSync(kubeDir, { recursive: true, mode: 0o700 });
    writeFileSync(
      path.join(kubeDir, 'config'),
      renderKubeconfig({ server: `https://kube.test:${opts.port}`, caPem, token: tokens.admin }),
      {
        mode: 0o600,
      },
    );
  }
  opts.log(`kube-api emulator up on port ${opts.port} after ${Date.now() - t0} ms`);
  return { url: `https://127.0.0.1:${opts.port}`, port: opts.port, pid, tokens, hostKubeconfig, nodeKubeconfig };
}
