/**
 * applyChanges with the real snapshot store and a real local connection: a file change's
 * compare-and-swap refuses a file edited since gather, and it uses the snapshot's read of the file
 * (made just before, for the same change) instead of reading the file a second time.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Command, ExecOptions, ExecResult, FileStat, WriteOptions } from '../../src/connection/connection.js';
import { LocalConnection } from '../../src/connection/local.js';
import { forgetReadAhead, readAhead, readNode } from '../../src/connection/read-files.js';
import { applyChanges, expectOf } from '../../src/engine/apply.js';
import type { Change } from '../../src/engine/module.js';
import { configBackupKey, type ConfigBackup } from '../../src/engine/restart-backup.js';
import { RunSnapshot, SnapshotStore } from '../../src/snapshots/store.js';
import { taskContext } from '../support/task-context.js';

/** A local connection that records what it is asked: each remote command, file read, write and stat. */
class CountingConnection extends LocalConnection {
  readonly calls: string[] = [];
  override exec(command: Command, options?: ExecOptions): Promise<ExecResult> {
    this.calls.push('exec');
    return super.exec(command, options);
  }
  override readFile(path: string): Promise<Buffer | null> {
    this.calls.push('readFile');
    return super.readFile(path);
  }
  override writeFile(path: string, data: string | Buffer, options?: WriteOptions): Promise<void> {
    this.calls.push('writeFile');
    return super.writeFile(path, data, options);
  }
  override stat(path: string): Promise<FileStat> {
    this.calls.push('stat');
    return super.stat(path);
  }
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tp-apply-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function setup() {
  const conn = new CountingConnection({ host: 'h1' });
  const snapshot = new RunSnapshot(new SnapshotStore(join(dir, 'state')), {
    runId: 'run-1',
    command: 'run pb.yaml',
    playbook: { path: 'pb.yaml', digest: 'd'.repeat(64) },
    inventory: 'inv.yaml',
  });
  return { conn, snapshot, ctx: taskContext({ conn, host: 'h1' }) };
}

function write(path: string, content: string, before: string | null): Change {
  return {
    op: 'file.write',
    path,
    content,
    mode: 0o644,
    expect: expectOf(before),
    summary: `write ${path}`,
  } as Change;
}

describe('applyChanges: compare-and-swap from the snapshot read', () => {
  it('writes a file gathered as absent, and one gathered with content: one read for both, one write each', async () => {
    const { conn, snapshot, ctx } = setup();
    const fresh = join(dir, 'hosts.toml');
    const existing = join(dir, 'config.json');
    writeFileSync(existing, '{"auths":{}}\n', { mode: 0o600 });
    await applyChanges(
      ctx,
      [write(fresh, 'server = "x"\n', null), write(existing, '{}\n', '{"auths":{}}\n')],
      snapshot,
      'node.creds.wipe',
    );
    expect(readFileSync(fresh, 'utf8')).toBe('server = "x"\n');
    expect(readFileSync(existing, 'utf8')).toBe('{}\n');
    expect(statSync(existing).mode & 0o777).toBe(0o644);
    // The snapshot reads both files (bytes, mode, owner) in one command for the task, then each
    // write. No read of its own for the compare-and-swap.
    expect(conn.calls).toEqual(['exec', 'writeFile', 'writeFile']);
    const m = await snapshot.store.readManifest('run-1');
    expect(m.hosts['h1']!.resources.map((r) => [r.kind === 'file' && r.path, r.kind === 'file' && r.exists])).toEqual([
      [fresh, false],
      [existing, true],
    ]);
  });

  it('refuses a file edited on the node since gather, and leaves the edit in place', async () => {
    const { snapshot, ctx } = setup();
    const f = join(dir, 'config.json');
    writeFileSync(f, 'edited by hand\n');
    await expect(applyChanges(ctx, [write(f, 'ours\n', 'as gathered\n')], snapshot, 'node.creds.wipe')).rejects.toThrow(
      `${f} changed on the node while this task ran, so it was not written: run again.`,
    );
    expect(readFileSync(f, 'utf8')).toBe('edited by hand\n');
  });

  it('refuses a file edited after it was read ahead: the snapshot reads the node, never the read-ahead', async () => {
    const { snapshot, ctx, conn } = setup();
    const f = join(dir, 'config.json');
    writeFileSync(f, 'as gathered\n');
    readAhead(conn, [f]);
    await readNode(conn, { files: [join(dir, 'carrier')] });
    expect((await readNode(conn, { files: [f] })).entries.get(f)).toMatchObject({ kind: 'file' });
    writeFileSync(f, 'edited by hand\n');
    await expect(applyChanges(ctx, [write(f, 'ours\n', 'as gathered\n')], snapshot, 'node.creds.wipe')).rejects.toThrow(
      'changed on the node while this task ran',
    );
    expect(readFileSync(f, 'utf8')).toBe('edited by hand\n');
    forgetReadAhead(conn);
  });

  it('refuses a file that appeared on the node after gather saw it absent', async () => {
    const { snapshot, ctx } = setup();
    const f = join(dir, 'hosts.toml');
    writeFileSync(f, 'someone else\n');
    await expect(applyChanges(ctx, [write(f, 'ours\n', null)], snapshot, 'node.creds.wipe')).rejects.toThrow(
      'changed on the node while this task ran',
    );
    expect(readFileSync(f, 'utf8')).toBe('someone else\n');
  });

  it('reads the file again for a second change of it in the run (the snapshot kept the first state only)', async () => {
    const { conn, snapshot, ctx } = setup();
    const f = join(dir, 'config.json');
    writeFileSync(f, 'one\n');
    await applyChanges(ctx, [write(f, 'two\n', 'one\n')], snapshot, 'node.creds.wipe');
    conn.calls.length = 0;
    // The second change expects what the first wrote: the compare-and-swap reads the node now.
    writeFileSync(f, 'three\n');
    await expect(applyChanges(ctx, [write(f, 'four\n', 'two\n')], snapshot, 'node.creds.wipe')).rejects.toThrow(
      'changed on the node while this task ran',
    );
    expect(conn.calls).toEqual(['readFile']);
    expect(readFileSync(f, 'utf8')).toBe('three\n');
  });

  it("keeps a restarted config's backup with the mode and owner the snapshot read (no stat, no second read)", async () => {
    const { conn, snapshot, ctx } = setup();
    const f = join(dir, 'config.toml');
    writeFileSync(f, 'version = 2\n', { mode: 0o640 });
    const restart: Change = {
      op: 'restart.request',
      unit: 'containerd',
      config: f,
      command: 'true',
      health: { timeoutSec: 5 },
    };
    const handlers = await applyChanges(
      ctx,
      [write(f, 'version = 3\n', 'version = 2\n'), restart],
      snapshot,
      'node.creds.wipe',
    );
    expect(handlers).toHaveLength(1);
    const backup = ctx.hostState.get(configBackupKey(f)) as ConfigBackup;
    expect(backup.content?.toString()).toBe('version = 2\n');
    expect(backup.mode).toBe(0o640);
    expect(backup.uid).toBe(statSync(f).uid);
    // The snapshot's read, the pending-restart marker (looked for, then written), the config.
    expect(conn.calls.filter((c) => c === 'stat')).toEqual([]);
    expect(conn.calls.filter((c) => c === 'writeFile')).toHaveLength(2);
    expect(readFileSync(f, 'utf8')).toBe('version = 3\n');
  });

  it('an edit on the node after the read and before the write is not overwritten (the write compares too)', async () => {
    const { conn, snapshot, ctx } = setup();
    const first = join(dir, 'ca.crt');
    const second = join(dir, 'hosts.toml');
    writeFileSync(second, 'as gathered\n');
    // Someone edits hosts.toml while ca.crt is being written: after the task's read of both.
    const racing = Object.assign(Object.create(conn) as CountingConnection, {
      writeFile: async (path: string, data: string | Buffer, options?: WriteOptions) => {
        if (path === first) writeFileSync(second, 'edited meanwhile\n');
        return conn.writeFile(path, data, options);
      },
    });
    const c = { ...ctx, conn: racing };
    await expect(
      applyChanges(
        c,
        [write(first, 'CA\n', null), write(second, 'ours\n', 'as gathered\n')],
        snapshot,
        'node.creds.wipe',
      ),
    ).rejects.toThrow(`${second} changed on the node while this task ran, so it was not written: run again.`);
    expect(readFileSync(first, 'utf8')).toBe('CA\n');
    expect(readFileSync(second, 'utf8')).toBe('edited meanwhile\n');
  });

  it('a removal is refused when the file was edited after the read, on the node and with fs alike', async () => {
    const { conn, snapshot, ctx } = setup();
    const keep = join(dir, 'ca.crt');
    const gone = join(dir, 'old.crt');
    writeFileSync(gone, 'as gathered\n');
    const racing = Object.assign(Object.create(conn) as CountingConnection, {
      writeFile: async (path: string, data: string | Buffer, options?: WriteOptions) => {
        writeFileSync(gone, 'edited meanwhile\n');
        return conn.writeFile(path, data, options);
      },
    });
    const removal = {
      op: 'file.remove',
      path: gone,
      expect: expectOf('as gathered\n'),
      summary: `remove ${gone}`,
    } as Change;
    await expect(
      applyChanges({ ...ctx, conn: racing }, [write(keep, 'CA\n', null), removal], snapshot, 'node.creds.wipe'),
    ).rejects.toThrow(`${gone} changed on the node while this task ran, so it was not removed: run again.`);
    expect(readFileSync(gone, 'utf8')).toBe('edited meanwhile\n');
  });
});
