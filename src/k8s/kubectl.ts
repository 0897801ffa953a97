/**
 * kubectl on the target host, through its connection (never this machine's kubectl for an SSH
 * host): read ServiceAccounts and namespaces as JSON, and write `imagePullSecrets` with a
 * resourceVersion precondition so a concurrent edit is never overwritten.
 *
 * The write is a JSON merge patch carrying `metadata.resourceVersion`: the API server treats it as
 * a precondition and answers 409 Conflict when the object changed since it was read (the same
 * mechanism `kubectl edit` relies on), and only `imagePullSecrets` is sent, so no other field of
 * the account can be clobbered. On a conflict the caller's `update` is re-run on a fresh read.
 */
import type { Connection } from '../connection/connection.js';
import { describeExit } from '../connection/exit-codes.js';
import { quoteArgv } from '../connection/shell-quote.js';
import type { Failure, TaskErrorKind } from '../engine/errors.js';
import type { Resource } from '../engine/module.js';
import { apiListNamespaces, apiPatchPullSecrets, apiReadServiceAccounts } from './service-accounts-api.js';

/** A kubectl failure: one sentence in `message`, kubectl's stderr in `detail`. */
export class KubectlError extends Error implements Failure {
  constructor(
    message: string,
    readonly kind: Extract<TaskErrorKind, 'refused' | 'command'> = 'command',
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'KubectlError';
  }
}

/** Where kubectl finds the cluster: the same for the module's reads, its writes and the snapshot. */
export interface KubeTarget {
  kubeconfig?: string;
  context?: string;
  /** kubectl binary on the host (default `kubectl`). */
  kubectl?: string;
}

/**
 * The serviceaccount resource a change declares. `kubectl` rides along (the engine's Resource type
 * has no field for it) so the snapshot reads the account with the same binary as the module.
 */
export type ServiceAccountResource = Extract<Resource, { kind: 'serviceaccount' }> & { kubectl?: string };

/** A ServiceAccount as read: its pull secret names and the version the write is conditioned on. */
export interface ServiceAccountState {
  namespace: string;
  name: string;
  resourceVersion: string;
  imagePullSecrets: string[];
}

/** Bounded: each retry follows a fresh read, so only a hot loop of concurrent writers exhausts it. */
export const MAX_WRITE_ATTEMPTS = 5;

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** kubectl's argv prefix for a target (binary, kubeconfig, context). */
export function kubectlArgv(t: KubeTarget): string[] {
  return [
    t.kubectl ?? 'kubectl',
    ...(t.kubeconfig ? ['--kubeconfig', t.kubeconfig] : []),
    ...(t.context ? ['--context', t.context] : []),
  ];
}

/** Refuses names that are not Kubernetes object names before they reach a command line. */
export function assertObjectName(what: string, name: string): void {
  if (!NAME.test(name) || name.length > 253)
    throw new KubectlError(
      `${what} \`${name}\` is not a valid Kubernetes name (lowercase letters, digits, '-' and '.')`,
      'refused',
    );
}

function firstLine(s: string): string {
  return (
    s
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l && !/^(W|I)\d{4} /.test(l)) ?? ''
  ).slice(0, 300);
}

function commandError(host: string, argv: string[], code: number, stderr: string, what: string): KubectlError {
  const err = firstLine(stderr);
  const hint = code === 127 ? ` (is kubectl installed on ${host}, or set the module's \`kubectl\` argument)` : '';
  return new KubectlError(
    `${what} on ${host} failed: \`${quoteArgv(argv)}\` ended with ${describeExit(code)}${hint}${err ? `; kubectl said: ${err}` : ''}`,
    'command',
    stderr.trim(),
  );
}

const isNotFound = (stderr: string) => /\(NotFound\)|not found/i.test(stderr);
const isConflict = (stderr: string) => /\(Conflict\)|the object has been modified/i.test(stderr);

/** Names of a raw imagePullSecrets list (entries without a name are kept as ''). */
function secretNames(v: unknown): string[] {
  return Array.isArray(v)
    ? v.map((e) =>
        e && typeof e === 'object' && typeof (e as { name?: unknown }).name === 'string'
          ? (e as { name: string }).name
          : '',
      )
    : [];
}

function parseServiceAccount(text: string, namespace: string, name: string): ServiceAccountState {
  const sa = JSON.parse(text) as { metadata?: { resourceVersion?: string }; imagePullSecrets?: unknown };
  return {
    namespace,
    name,
    resourceVersion: sa.metadata?.resourceVersion ?? '',
    imagePullSecrets: secretNames(sa.imagePullSecrets),
  };
}

/** The namespace's existence and the account in it; `null` when missing. */
export type ReadResult = { namespace: string; name: string } & (
  { status: 'ok'; sa: ServiceAccountState } | { status: 'no-namespace' } | { status: 'no-account' }
);

/**
 * Reads several accounts in ONE remote command: for each namespace, `kubectl get sa -o json`, and
 * when that says NotFound, `kubectl get namespace` to tell a missing namespace from a missing account
 * (a get of an account in a missing namespace is a plain NotFound on a real API server).
 */
export async function readServiceAccounts(
  conn: Connection,
  t: KubeTarget,
  namespaces: string[],
  name: string,
): Promise<ReadResult[]> {
  assertObjectName('service account', name);
  for (const ns of namespaces) assertObjectName('namespace', ns);
  if (conn.kube !== undefined) return apiReadServiceAccounts(conn.kube, namespaces, name);
  const k = quoteArgv(kubectlArgv(t));
  const q = (s: string) => quoteArgv([s]);
  // Each record: a marker line, then kubectl's JSON (stdout) or error (stderr folded in after a marker).
  const script = namespaces
    .map(
      (ns) => `out=$(${k} get serviceaccount ${q(name)} -n ${q(ns)} -o json 2>"$e"); c=$?
printf '\\n@@tp-sa %s %s\\n' ${q(ns)} "$c"
if [ "$c" = 0 ]; then printf '%s\\n' "$out"; else cat "$e"; if grep -q NotFound "$e"; then ${k} get namespace ${q(ns)} -o name >/dev/null 2>&1; printf '\\n@@tp-ns %s\\n' "$?"; fi; fi`,
    )
    .join('\n');
  const res = await conn.exec({ script: `e=$(mktemp) || exit 1\ntrap 'rm -f "$e"' EXIT\n${script}\n` });
  const out = res.stdout.toString();
  const parts = out.split(/\n@@tp-sa /).slice(1);
  if (parts.length !== namespaces.length)
    throw commandError(
      conn.host,
      kubectlArgv(t),
      res.code,
      res.stderr.toString() || out,
      `reading service account \`${name}\``,
    );
  return parts.map((part, i) => {
    const ns = namespaces[i]!;
    const nl = part.indexOf('\n');
    const [, codeText = '1'] = part.slice(0, nl).split(' ');
    const body = part.slice(nl + 1);
    const code = Number(codeText);
    if (code === 0) {
      try {
        return { namespace: ns, name, status: 'ok', sa: parseServiceAccount(body, ns, name) };
      } catch {
        throw new KubectlError(
          `kubectl on ${conn.host} printed something that is not a ServiceAccount for ${ns}/${name}`,
          'command',
          body.slice(0, 500),
        );
      }
    }
    const nsMark = /\n@@tp-ns (\d+)/.exec(body);
    const stderr = body.replace(/\n@@tp-ns \d+[\s\S]*$/, '');
    if (nsMark && isNotFound(stderr))
      return { namespace: ns, name, status: nsMark[1] === '0' ? 'no-account' : 'no-namespace' };
    throw commandError(
      conn.host,
      [...kubectlArgv(t), 'get', 'serviceaccount', name, '-n', ns, '-o', 'json'],
      code,
      stderr,
      `reading service account ${ns}/${name}`,
    );
  });
}

/** Every namespace's name (for `namespace: all`). */
export async function listNamespaces(conn: Connection, t: KubeTarget): Promise<string[]> {
  if (conn.kube !== undefined) return apiListNamespaces(conn.kube);
  const argv = [...kubectlArgv(t), 'get', 'namespaces', '-o', 'json'];
  const res = await conn.exec({ argv });
  if (res.code !== 0) throw commandError(conn.host, argv, res.code, res.stderr.toString(), 'listing namespaces');
  const list = JSON.parse(res.stdout.toString()) as { items?: Array<{ metadata?: { name?: string } }> };
  return (list.items ?? [])
    .map((i) => i.metadata?.name ?? '')
    .filter(Boolean)
    .sort();
}

/** One account's pull secrets for the snapshot (null: the account does not exist). */
export async function readPullSecrets(
  conn: Connection,
  r: ServiceAccountResource,
): Promise<Array<{ name: string }> | null> {
  const [res] = await readServiceAccounts(conn, r, [r.namespace], r.name);
  if (!res || res.status !== 'ok') return null;
  return res.sa.imagePullSecrets.map((n) => ({ name: n }));
}

/** What an update wants done to the freshly read pull secrets: the new list, or null for "nothing to do". */
export type PullSecretUpdate = (current: string[]) => string[] | null;

/**
 * Writes `update(current)` conditioned on the resourceVersion it was computed from; on 409 re-reads
 * and re-runs `update` (at most MAX_WRITE_ATTEMPTS writes). `first` is the state already read.
 * Returns the list written, or null when a fresh read showed nothing left to do.
 */
export async function writePullSecrets(
  conn: Connection,
  t: KubeTarget,
  first: ServiceAccountState,
  update: PullSecretUpdate,
): Promise<{ written: string[] | null; attempts: number }> {
  let sa = first;
  for (let attempt = 1; ; attempt++) {
    const next = update(sa.imagePullSecrets);
    if (next === null) return { written: null, attempts: attempt - 1 };
    let stderr = '';
    if (conn.kube !== undefined) {
      if ((await apiPatchPullSecrets(conn.kube, sa, next)) === 'written') return { written: next, attempts: attempt };
    } else {
      const patch = {
        metadata: { resourceVersion: sa.resourceVersion },
        imagePullSecrets: next.length ? next.map((name) => ({ name })) : null,
      };
      const argv = [
        ...kubectlArgv(t),
        'patch',
        'serviceaccount',
        sa.name,
        '-n',
        sa.namespace,
        '--type',
        'merge',
        '-p',
        JSON.stringify(patch),
        '-o',
        'name',
      ];
      const res = await conn.exec({ argv });
      if (res.code === 0) return { written: next, attempts: attempt };
      stderr = res.stderr.toString();
      if (!isConflict(stderr))
        throw commandError(conn.host, argv, res.code, stderr, `updating service account ${sa.namespace}/${sa.name}`);
    }
    if (attempt >= MAX_WRITE_ATTEMPTS) {
      throw new KubectlError(
        `service account ${sa.namespace}/${sa.name} on ${conn.host} kept changing under trustplay (${attempt} conflicting writes); nothing was overwritten: run again when the other writer is done`,
        'command',
        stderr.trim(),
      );
    }
    const [fresh] = await readServiceAccounts(conn, t, [sa.namespace], sa.name);
    if (!fresh || fresh.status !== 'ok')
      throw new KubectlError(
        `service account ${sa.namespace}/${sa.name} disappeared on ${conn.host} while trustplay was updating it`,
        'command',
      );
    sa = fresh.sa;
  }
}
