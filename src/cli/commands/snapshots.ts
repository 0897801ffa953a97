/**
 * `trustplay snapshots list | show ID | prune --keep N`. Shows what was saved (paths, modes, owners,
 * sizes, ServiceAccount pull secret names) and never any saved content: snapshots hold credentials.
 */
import { ExitCode, ExitError } from '../exit-codes.js';
import type { Options } from '../options.js';
import type { Manifest, SnapshotEntry } from '../../snapshots/store.js';

const USAGE =
  'usage: trustplay snapshots list | show ID | prune --keep N | prune --all  [--state-dir DIR] [--snapshot-key FILE] [--format json]';

function hostsOf(m: Manifest): string[] {
  return Object.keys(m.hosts).filter((h) => (m.hosts[h]?.resources.length ?? 0) > 0);
}

function resourceCount(m: Manifest): number {
  return Object.values(m.hosts).reduce((n, h) => n + h.resources.length, 0);
}

function summary(e: SnapshotEntry) {
  if (!e.manifest) return { id: e.runId, time: e.time, verified: false, damaged: e.error };
  const m = e.manifest;
  return {
    id: m.runId,
    time: m.time,
    command: m.command,
    hosts: hostsOf(m),
    resources: resourceCount(m),
    complete: m.complete,
    verified: !e.unsigned,
    ...(e.unsigned ? { unsigned: true } : {}),
    ...(m.interrupted ? { interrupted: m.interrupted['signal'] } : {}),
  };
}

function pad(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** `show` without content: per host, each saved resource's metadata. */
export function describeManifest(m: Manifest): string {
  const lines = [
    `snapshot ${m.runId}`,
    `  time:      ${m.time}`,
    `  command:   ${m.command}`,
    ...(m.playbook ? [`  playbook:  ${m.playbook.path} (sha256 ${m.playbook.digest.slice(0, 12)})`] : []),
    ...(m.inventory ? [`  inventory: ${m.inventory}`] : []),
    `  signature: ${m.version === 1 ? 'none (format 1, written before snapshots were signed: restore needs --allow-unsigned)' : 'verified'}`,
    `  complete:  ${m.complete ? (m.interrupted ? `yes, interrupted by ${String(m.interrupted['signal'])} (everything it changed is saved below)` : 'yes') : 'no (the run was interrupted or is still going: what it saved so far is below)'}`,
  ];
  for (const [host, h] of Object.entries(m.hosts)) {
    lines.push(`${host}:`);
    const facts = Object.keys(h.facts);
    if (facts.length) lines.push(`  facts: ${facts.join(', ')}`);
    if (!h.resources.length) lines.push('  (nothing saved)');
    for (const r of h.resources) {
      if (r.kind === 'file') {
        lines.push(
          r.exists
            ? `  file ${r.path}  mode ${(r.mode ?? 0).toString(8).padStart(4, '0')}  owner ${r.uid ?? '?'}:${r.gid ?? '?'}  ${r.size ?? '?'} bytes  sha256 ${(r.blob ?? '').slice(0, 12)}`
            : `  file ${r.path}  (did not exist: restore removes it)`,
        );
      } else {
        const where = [r.kubeconfig ? `kubeconfig ${r.kubeconfig}` : '', r.context ? `context ${r.context}` : '']
          .filter(Boolean)
          .join(', ');
        const names =
          r.imagePullSecrets === null
            ? '(account did not exist)'
            : r.imagePullSecrets.length
              ? r.imagePullSecrets.map((s) => s.name).join(', ')
              : '(none)';
        lines.push(
          `  serviceaccount ${r.namespace}/${r.name}  imagePullSecrets: ${names}${where ? `  (${where})` : ''}`,
        );
      }
    }
  }
  return lines.join('\n') + '\n';
}

/** A store call whose failure (permissions, verification) is bad input: exit 3, one sentence. */
async function storeCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new ExitError(ExitCode.Invalid, (e as Error).message);
  }
}

export async function snapshotsCommand(positionals: string[], options: Options): Promise<number> {
  const { SnapshotStore } = await import('../../snapshots/store.js');
  const store = new SnapshotStore(options.stateDir, options.snapshotKey ? { keyFile: options.snapshotKey } : {});
  const [sub, ...rest] = positionals;
  const json = options.format === 'json';
  switch (sub) {
    case 'list':
    case undefined: {
      const entries = await storeCall(() => store.list());
      if (json) {
        process.stdout.write(JSON.stringify(entries.map(summary), null, 2) + '\n');
        return ExitCode.Ok;
      }
      if (!entries.length) {
        process.stdout.write(`no snapshots in ${store.dir}\n`);
        return ExitCode.Ok;
      }
      const rows = [['ID', 'TIME', 'COMMAND', 'HOSTS', 'RESOURCES', 'COMPLETE']];
      for (const e of entries) {
        const s = summary(e);
        if ('damaged' in s) rows.push([s.id, s.time, `UNVERIFIED: ${s.damaged ?? ''}`, '', '', '']);
        else
          rows.push([
            s.id,
            s.time,
            s.unsigned ? `${s.command} (UNSIGNED format 1: restore needs --allow-unsigned)` : s.command,
            s.hosts.join(',') || '-',
            String(s.resources),
            s.complete ? 'yes' : 'no',
          ]);
      }
      process.stdout.write(pad(rows));
      return ExitCode.Ok;
    }
    case 'show': {
      const id = rest[0];
      if (!id || rest.length > 1) throw new ExitError(ExitCode.Invalid, USAGE);
      // `show` is how a person checks an unsigned old-format snapshot before --allow-unsigned.
      const m = await storeCall(() => store.readManifest(id, { allowUnsigned: true }));
      if (json) {
        // The manifest holds metadata only (content lives in blobs), so it is safe to print as is.
        process.stdout.write(JSON.stringify(m, null, 2) + '\n');
      } else process.stdout.write(describeManifest(m));
      return ExitCode.Ok;
    }
    case 'prune': {
      if ((options.keep === undefined) === !options.all || rest.length)
        throw new ExitError(
          ExitCode.Invalid,
          `snapshots prune needs either --keep N (how many of the newest snapshots to keep) or --all; ${USAGE}`,
        );
      if (options.keep === 0)
        throw new ExitError(
          ExitCode.Invalid,
          '--keep 0 would remove every snapshot: say so with `snapshots prune --all` instead; nothing was removed',
        );
      const r = await storeCall(() => store.prune(options.all ? 'all' : options.keep!));
      if (json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else {
        process.stdout.write(
          `removed ${r.removedSnapshots.length} snapshot${r.removedSnapshots.length === 1 ? '' : 's'} and ${r.removedBlobs} unreferenced blob${r.removedBlobs === 1 ? '' : 's'} (${r.freedBytes} bytes); ${options.all ? 'kept none (--all)' : `kept the ${options.keep} newest`}\n`,
        );
        if (r.blobsKeptBecause) process.stdout.write(`blobs were not pruned: ${r.blobsKeptBecause}\n`);
      }
      return ExitCode.Ok;
    }
    default:
      throw new ExitError(ExitCode.Invalid, `unknown snapshots subcommand \`${sub}\`; ${USAGE}`);
  }
}
