/**
 * `trustplay restore`: a snapshot turned into an in-memory playbook of two internal modules,
 * `snapshot.file.restore` and `snapshot.sa.restore`, run by the ordinary engine. So a restore gets
 * reporting, check mode, diffs, parallel hosts and its own snapshot (a restore can be undone) from
 * the same code paths as a run, and a containerd config.toml it puts back goes through the verified
 * restart handler (restart, wait for the CRI, roll back if containerd does not come back).
 *
 * Every blob is read and checked against its digest before the playbook is built: a damaged
 * snapshot is refused while nothing has been written anywhere.
 */
import { createHash } from 'node:crypto';
import { LinkRefused, readNode } from '../connection/read-files.js';
import { expectOf, sha256 } from '../engine/apply.js';
import { TaskError } from '../engine/errors.js';
import {
  defineModule,
  type AnyModule,
  type Change,
  type RestartRequest,
  type ServiceAccountPatch,
} from '../engine/module.js';
import { readServiceAccounts, type KubeTarget, type ReadResult } from '../k8s/kubectl.js';
import { containerdHostSettings, restartCommandFor, type ContainerdHostSettings } from '../containerd/host-settings.js';
import type { Playbook, Task } from '../playbook/playbook.js';
import { fileDiff } from '../secrets/index.js';
import type { Manifest, SavedFile, SavedServiceAccount, SnapshotStore } from './store.js';

export const FILE_RESTORE_MODULE = 'snapshot.file.restore';
export const SA_RESTORE_MODULE = 'snapshot.sa.restore';

/** A snapshot ready to restore: its manifest, the hosts chosen, and every blob they need, verified. */
export interface LoadedSnapshot {
  manifest: Manifest;
  manifestPath: string;
  hosts: string[];
  blobs: Map<string, Buffer>;
}

/** Reads every blob the chosen hosts need and checks its digest; throws one sentence naming the first bad one. */
export async function loadSnapshotForRestore(
  store: SnapshotStore,
  manifest: Manifest,
  hosts: string[],
): Promise<LoadedSnapshot> {
  const blobs = new Map<string, Buffer>();
  for (const h of hosts) {
    for (const r of manifest.hosts[h]?.resources ?? []) {
      if (r.kind !== 'file' || !r.exists) continue;
      if (!r.blob) throw new Error(`snapshot \`${manifest.runId}\` is damaged: ${h}:${r.path} has no content digest`);
      if (blobs.has(r.blob)) continue;
      let data: Buffer;
      try {
        data = await store.getBlob(r.blob);
      } catch (e) {
        const why =
          (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'its content blob is missing' : (e as Error).message;
        throw new Error(`snapshot \`${manifest.runId}\` cannot restore ${h}:${r.path}: ${why}; nothing was changed`, {
          cause: e,
        });
      }
      if (r.size !== undefined && data.length !== r.size)
        throw new Error(
          `snapshot \`${manifest.runId}\` is damaged: ${h}:${r.path} should be ${r.size} bytes, its blob has ${data.length}; nothing was changed`,
        );
      blobs.set(r.blob, data);
    }
  }
  return { manifest, manifestPath: store.manifestPath(manifest.runId), hosts, blobs };
}

/** True for containerd's main config (a change to it needs a verified restart). */
export function isContainerdConfig(path: string, configFile?: string): boolean {
  return configFile !== undefined ? path === configFile : /\/containerd\/config\.toml$/.test(path);
}

interface CurrentFile {
  exists: boolean;
  content: Buffer | null;
  mode?: number;
  uid?: number;
  gid?: number;
}

const octal = (m: number | undefined) => (m === undefined ? '?' : m.toString(8).padStart(4, '0'));

/** What restore takes from the current inventory, never from the manifest (commands are not data). */
/** Bits restore never puts back: setuid, setgid, sticky, and write for others. */
const UNSAFE_MODE_BITS = 0o7002;

/** The mode restore writes: the saved one without the unsafe bits (undefined stays undefined). */
export function safeRestoreMode(mode: number | undefined): number | undefined {
  return mode === undefined ? undefined : mode & 0o7777 & ~UNSAFE_MODE_BITS;
}

/** The containerd restart restoring `saved` needs, if any: recorded (format 2) or by path (format 1). */
function restartFor(saved: SavedFile, s: ContainerdHostSettings): RestartRequest | undefined {
  const configFile =
    saved.restart?.configFile ?? (isContainerdConfig(saved.path, s.configFile) ? saved.path : undefined);
  if (configFile !== saved.path) return undefined;
  const socket = s.socket ?? saved.restart?.socket;
  return {
    op: 'restart.request',
    unit: 'containerd',
    config: saved.path,
    command: restartCommandFor(s, saved.path),
    health: { ...(socket ? { socket } : {}), timeoutSec: s.restartTimeout },
  };
}

/**
 * The changes that put one file back (none when it already is as saved), with the verified restart
 * a containerd config needs: pure, exported for tests. The engine compares the file with what
 * gather saw before writing and keeps the config's backup for the restart's rollback.
 */
export function planFileRestore(
  saved: SavedFile,
  current: CurrentFile,
  blob: Buffer | undefined,
  settings: ContainerdHostSettings,
): Change[] {
  const restart = restartFor(saved, settings);
  const expect = expectOf(current.exists ? current.content : null);
  if (!saved.exists) {
    if (!current.exists) return [];
    return [
      {
        op: 'file.remove',
        summary: `remove ${saved.path} (it did not exist before)`,
        path: saved.path,
        expect,
        diff: fileDiff(saved.path, current.content, null),
      },
      ...(restart ? [restart] : []),
    ];
  }
  if (!blob) throw new TaskError(`snapshot has no content for ${saved.path}`, 'refused');
  const mode = safeRestoreMode(saved.mode);
  const sameContent = current.exists && current.content !== null && sha256(current.content) === saved.blob;
  const sameMeta = current.mode === mode && current.uid === saved.uid && current.gid === saved.gid;
  if (sameContent && sameMeta) return [];
  const what = !current.exists ? 'recreate' : sameContent ? `reset mode/owner of` : 'restore';
  const metaNote = sameMeta
    ? ''
    : ` (mode ${octal(current.mode)} ${current.uid ?? '?'}:${current.gid ?? '?'} -> ${octal(mode)} ${saved.uid ?? '?'}:${saved.gid ?? '?'})`;
  const dropped =
    mode !== saved.mode
      ? ` (saved mode ${octal(saved.mode)}: setuid/setgid/sticky and world-write are never restored)`
      : '';
  return [
    {
      op: 'file.write',
      summary: `${what} ${saved.path}${metaNote}${dropped}`,
      path: saved.path,
      content: blob,
      // Owner and mode go with the content onto the temp file that is renamed into place: they are
      // only ever applied to the file this restore just wrote, never through a path swapped since.
      mode,
      ...(saved.uid !== undefined && saved.gid !== undefined ? { owner: { uid: saved.uid, gid: saved.gid } } : {}),
      expect,
      diff: fileDiff(saved.path, current.exists ? current.content : null, blob),
    },
    ...(restart && !sameContent ? [restart] : []),
  ];
}

/** Where to reach the account: cluster data from the manifest, the kubectl binary from the inventory. */
function targetOf(sa: SavedServiceAccount, kubectl: string | undefined): KubeTarget {
  return {
    ...(sa.kubeconfig ? { kubeconfig: sa.kubeconfig } : {}),
    ...(sa.context ? { context: sa.context } : {}),
    ...(kubectl ? { kubectl } : {}),
  };
}

const sameList = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The change that puts one account's pull secrets back, or null when they already are (pure; exported for tests). */
export function planSaRestore(
  saved: SavedServiceAccount,
  current: ReadResult,
  kubectl?: string,
): ServiceAccountPatch | null {
  const id = `${saved.namespace}/${saved.name}`;
  if (saved.imagePullSecrets === null) return null;
  if (current.status !== 'ok') {
    throw new TaskError(
      `cannot restore serviceaccount ${id}: ${current.status === 'no-namespace' ? `namespace \`${saved.namespace}\` no longer exists` : 'the account no longer exists'}; recreate it, then run the restore again`,
      'refused',
    );
  }
  const want = saved.imagePullSecrets.map((s) => s.name);
  if (sameList(current.sa.imagePullSecrets, want)) return null;
  const list = (n: string[]) => (n.length ? n.join('\n') + '\n' : '(none)\n');
  return {
    op: 'serviceaccount.patch',
    summary: `set imagePullSecrets of serviceaccount ${id} back to ${want.length ? want.join(', ') : '(none)'}`,
    namespace: saved.namespace,
    name: saved.name,
    ...targetOf(saved, kubectl),
    resourceVersion: current.sa.resourceVersion,
    imagePullSecrets: current.sa.imagePullSecrets,
    set: want,
    diff: {
      target: `serviceaccount ${id} imagePullSecrets`,
      before: list(current.sa.imagePullSecrets),
      after: list(want),
    },
  };
}

/** The kubectl binary on the host: the `kubectl` inventory variable, else kubectl on the PATH. */
function kubectlOf(v: Record<string, unknown>): string | undefined {
  return typeof v['kubectl'] === 'string' && v['kubectl'] ? v['kubectl'] : undefined;
}

/** The two internal modules, bound to one loaded snapshot. */
export function restoreModules(loaded: LoadedSnapshot): Record<string, AnyModule> {
  const hostEntry = (host: string) => loaded.manifest.hosts[host] ?? { facts: {}, resources: [] };

  // Bound to one snapshot, so they take no arguments of their own.
  const schema = { type: 'object', additionalProperties: false, properties: {} } as const;

  const fileModule = defineModule({
    name: FILE_RESTORE_MODULE,
    schema,
    internal: true,
    description: 'Put files back as a snapshot saved them (content, mode, owner; absent ones removed).',
    async gather(ctx): Promise<Array<{ saved: SavedFile; current: CurrentFile }>> {
      const files = hostEntry(ctx.host).resources.filter((r): r is SavedFile => r.kind === 'file');
      // Every saved file in one round trip.
      const read = await readNode(ctx.conn, { files: files.map((f) => f.path) });
      return files.map((saved) => {
        const e = read.entries.get(saved.path) ?? { kind: 'absent' as const, path: saved.path };
        if (e.kind === 'absent') return { saved, current: { exists: false, content: null } };
        if (e.kind === 'link') throw new TaskError(`${ctx.host}: ${new LinkRefused(saved.path).message}`, 'refused');
        if (e.kind !== 'file')
          throw new TaskError(
            `${saved.path} on ${ctx.host} is no longer a regular file; move it away, then run the restore again`,
            'refused',
          );
        return { saved, current: { exists: true, content: e.content, mode: e.mode, uid: e.uid, gid: e.gid } };
      });
    },
    plan(_args, observed, ctx) {
      const restart = containerdHostSettings(ctx.vars);
      return observed.flatMap(({ saved, current }) =>
        planFileRestore(saved, current, saved.blob ? loaded.blobs.get(saved.blob) : undefined, restart),
      );
    },
  });

  const saModule = defineModule({
    name: SA_RESTORE_MODULE,
    schema,
    internal: true,
    description: "Put ServiceAccounts' imagePullSecrets back as a snapshot saved them.",
    async gather(ctx): Promise<Array<{ saved: SavedServiceAccount; current: ReadResult }>> {
      const saved = hostEntry(ctx.host).resources.filter(
        (r): r is SavedServiceAccount => r.kind === 'serviceaccount' && r.imagePullSecrets !== null,
      );
      const out = [];
      for (const s of saved) {
        const [current] = await readServiceAccounts(ctx.conn, targetOf(s, kubectlOf(ctx.vars)), [s.namespace], s.name);
        out.push({ saved: s, current: current! });
      }
      return out;
    },
    plan(_args, observed, ctx) {
      return observed.flatMap(({ saved, current }) => planSaRestore(saved, current, kubectlOf(ctx.vars)) ?? []);
    },
  });

  return { [FILE_RESTORE_MODULE]: fileModule, [SA_RESTORE_MODULE]: saModule };
}

/** The in-memory playbook: one play over the chosen hosts, files first, then ServiceAccounts. */
export function restorePlaybook(loaded: LoadedSnapshot): Playbook {
  const loc = { file: loaded.manifestPath, line: 0, col: 0 };
  const task = (name: string, module: string): Task => ({
    name,
    module,
    args: {},
    when: [],
    tags: [],
    notify: [],
    ignoreErrors: false,
    runOnce: false,
    loc,
  });
  const has = (kind: 'file' | 'serviceaccount') =>
    loaded.hosts.some((h) => loaded.manifest.hosts[h]?.resources.some((r) => r.kind === kind));
  const tasks = [
    ...(has('file') ? [task('Put saved files back', FILE_RESTORE_MODULE)] : []),
    ...(has('serviceaccount') ? [task("Put ServiceAccounts' imagePullSecrets back", SA_RESTORE_MODULE)] : []),
  ];
  return {
    file: loaded.manifestPath,
    digest: createHash('sha256').update(JSON.stringify(loaded.manifest)).digest('hex'),
    plays: [
      {
        name: `Restore snapshot ${loaded.manifest.runId}`,
        hosts: loaded.hosts.join(':'),
        vars: {},
        tasks,
        handlers: [],
        loc,
      },
    ],
  };
}
