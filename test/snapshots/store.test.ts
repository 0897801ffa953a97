/**
 * The snapshot store on a real filesystem with a real local connection: what a run saves, how it
 * survives a crash mid-run, permissions, damaged content, listing and pruning.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalConnection } from '../../src/connection/local.js';
import { planFileRestore } from '../../src/snapshots/restore.js';
import { RunSnapshot, SnapshotStore, type Manifest } from '../../src/snapshots/store.js';

let dir: string;
let state: string;
let store: SnapshotStore;
const conn = new LocalConnection({ host: 'h1' });
const mode = (p: string) => statSync(p).mode & 0o777;
const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
/** node.creds.wipe saves docker-format *.json credential files: the kind of file these tests save. */
const WIPE = { module: 'node.creds.wipe' };

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tp-store-'));
  state = join(dir, 'state');
  store = new SnapshotStore(state);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function snap(runId: string): RunSnapshot {
  return new RunSnapshot(store, {
    runId,
    command: `run pb-${runId}.yaml`,
    playbook: { path: 'pb.yaml', digest: 'd'.repeat(64) },
    inventory: 'inv.yaml',
  });
}

describe('RunSnapshot', () => {
  it('saves files with content, mode and owner, and absent files as absent; first prior state wins', async () => {
    const f = join(dir, 'config.json');
    const original = '{"auths":{"r":{"auth":"c2VjcmV0LXZhbHVl"}}}';
    writeFileSync(f, original, { mode: 0o640 });
    const s = snap('run-1');
    await s.save(
      'h1',
      conn,
      [
        { kind: 'file', path: f },
        { kind: 'file', path: join(dir, 'missing.json') },
      ],
      WIPE,
    );
    writeFileSync(f, 'changed');
    await s.save('h1', conn, [{ kind: 'file', path: f }], WIPE);
    s.facts('h1', { containerd: '1.6.20' });
    await s.complete();
    const m = await store.readManifest('run-1');
    expect(m.complete).toBe(true);
    expect(m.hosts['h1']!.resources).toEqual([
      {
        kind: 'file',
        module: 'node.creds.wipe',
        path: f,
        exists: true,
        blob: sha(original),
        size: original.length,
        mode: 0o640,
        uid: 0,
        gid: 0,
      },
      { kind: 'file', module: 'node.creds.wipe', path: join(dir, 'missing.json'), exists: false },
    ]);
    // Content lives in blobs only: the manifest never holds it.
    expect(readFileSync(store.manifestPath('run-1'), 'utf8')).not.toContain('c2VjcmV0LXZhbHVl');
    expect(
      (
        await store.getBlob(m.hosts['h1']!.resources[0]!.kind === 'file' ? m.hosts['h1']!.resources[0]!.blob! : '')
      ).toString(),
    ).toContain('c2VjcmV0LXZhbHVl');
  });

  it('state dir and its directories are 0700, manifests and blobs 0600, even when the dir existed looser', async () => {
    await store.init();
    for (const d of [state, join(state, 'runs'), join(state, 'blobs', 'sha256')]) chmodSync(d, 0o755);
    const f = join(dir, 'a.json');
    writeFileSync(f, 'x', { mode: 0o644 });
    const s = snap('run-perm');
    await s.save('h1', conn, [{ kind: 'file', path: f }], WIPE);
    for (const d of [state, join(state, 'runs'), join(state, 'blobs'), join(state, 'blobs', 'sha256')])
      expect(mode(d)).toBe(0o700);
    expect(mode(store.manifestPath('run-perm'))).toBe(0o600);
    expect(mode(store.blobPath(sha('x')))).toBe(0o600);
  });

  it('a crash mid-run leaves a readable, incomplete manifest of what was saved so far, and no temp files', async () => {
    const files = Array.from({ length: 5 }, (_, i) => join(dir, `f${i}.json`));
    for (const f of files) writeFileSync(f, f);
    const s = snap('run-crash');
    // Hosts save in parallel; every save rewrites the manifest atomically.
    await Promise.all(files.slice(0, 3).map((f, i) => s.save(`h${i}`, conn, [{ kind: 'file', path: f }], WIPE)));
    // "Crash": never call complete(). A reader in another process sees a whole manifest.
    const m = JSON.parse(readFileSync(store.manifestPath('run-crash'), 'utf8')) as Manifest;
    expect(m.complete).toBe(false);
    expect(Object.keys(m.hosts).sort()).toEqual(['h0', 'h1', 'h2']);
    expect(readdirSync(join(state, 'runs'))).toEqual(['run-crash.json']);
    expect(readdirSync(join(state, 'blobs', 'sha256')).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expect((await store.list())[0]).toMatchObject({ runId: 'run-crash', manifest: { complete: false } });
  });

  it('a run that saves nothing leaves nothing', async () => {
    const s = snap('run-empty');
    await s.complete();
    expect(s.exists).toBe(false);
    expect(await store.list()).toEqual([]);
  });
});

describe('SnapshotStore', () => {
  it('refuses a damaged blob and a damaged manifest with one sentence each', async () => {
    await store.init();
    const d = await store.putBlob(Buffer.from('original'));
    writeFileSync(store.blobPath(d), 'tampered');
    await expect(store.getBlob(d)).rejects.toThrow(/is damaged \(its content hashes to/);
    writeFileSync(join(state, 'runs', 'bad.json'), '{"version":1,', { mode: 0o600 });
    await expect(store.readManifest('bad')).rejects.toThrow(
      'snapshot `bad` is damaged: its manifest is not valid JSON',
    );
    await expect(store.readManifest('nope')).rejects.toThrow(/no snapshot `nope`/);
    await expect(store.readManifest('../etc/passwd')).rejects.toThrow(/invalid snapshot id/);
    expect((await store.list()).find((e) => e.runId === 'bad')?.error).toMatch(/not valid JSON/);
  });

  it('prune keeps the N newest snapshots and only the blobs they reference', async () => {
    const shared = join(dir, 'shared.json');
    writeFileSync(shared, 'shared content');
    for (const [i, id] of ['r1', 'r2', 'r3'].entries()) {
      const own = join(dir, `${id}.json`);
      writeFileSync(own, `own content of ${id}`);
      const s = snap(id);
      await s.save(
        'h1',
        conn,
        [
          { kind: 'file', path: shared },
          { kind: 'file', path: own },
        ],
        WIPE,
      );
      await s.complete();
      // Manifests order by their recorded time.
      const m = await store.readManifest(id);
      m.time = `2024-01-0${i + 1}T00:00:00.000Z`;
      await store.writeManifest(m);
    }
    writeFileSync(join(state, 'runs', 'r0.json.tmp-abc'), 'partial');
    const r = await store.prune(1);
    expect(r.removedSnapshots.sort()).toEqual(['r1', 'r2']);
    expect(r.removedBlobs).toBe(2);
    expect(readdirSync(join(state, 'runs'))).toEqual(['r3.json']);
    expect(readdirSync(join(state, 'blobs', 'sha256')).sort()).toEqual(
      [sha('own content of r3'), sha('shared content')].sort(),
    );
    // Still restorable after prune.
    expect((await store.getBlob(sha('shared content'))).toString()).toBe('shared content');
    await expect(store.prune(0)).rejects.toThrow(/to remove every snapshot use --all/);
    expect((await store.prune('all')).removedBlobs).toBe(2);
    expect(readdirSync(join(state, 'blobs', 'sha256'))).toEqual([]);
  });
});

describe('planFileRestore', () => {
  const restart = { restartCommand: 'systemctl restart containerd', restartTimeout: 60 };
  const saved = {
    kind: 'file' as const,
    path: '/etc/containerd/config.toml',
    exists: true,
    blob: sha('old'),
    size: 3,
    mode: 0o644,
    uid: 0,
    gid: 0,
  };
  it('is a no-op when content, mode and owner match', () => {
    expect(
      planFileRestore(
        saved,
        { exists: true, content: Buffer.from('old'), mode: 0o644, uid: 0, gid: 0 },
        Buffer.from('old'),
        restart,
      ),
    ).toEqual([]);
  });
  it('restores content and notifies the verified containerd restart for config.toml', () => {
    const [c, r, ...rest] = planFileRestore(
      saved,
      { exists: true, content: Buffer.from('new'), mode: 0o644, uid: 0, gid: 0 },
      Buffer.from('old'),
      restart,
    );
    expect(rest).toEqual([]);
    expect(c?.op === 'file.write' && c.summary).toBe('restore /etc/containerd/config.toml');
    expect(r).toMatchObject({ op: 'restart.request', unit: 'containerd', config: '/etc/containerd/config.toml' });
    expect(c?.op === 'file.write' && c.diff).toEqual({
      target: '/etc/containerd/config.toml',
      before: 'new',
      after: 'old',
    });
  });
  it('only resets mode for a same-content file, without a restart', () => {
    const changes = planFileRestore(
      saved,
      { exists: true, content: Buffer.from('old'), mode: 0o600, uid: 0, gid: 0 },
      Buffer.from('old'),
      restart,
    );
    expect(changes.map((c) => c.op)).toEqual(['file.write']);
    expect(changes[0]?.op === 'file.write' && changes[0].summary).toBe(
      'reset mode/owner of /etc/containerd/config.toml (mode 0600 0:0 -> 0644 0:0)',
    );
  });
  it('removes a file that did not exist before', () => {
    const [c] = planFileRestore(
      { kind: 'file', path: '/etc/containerd/certs.d/r/hosts.toml', exists: false },
      { exists: true, content: Buffer.from('x') },
      undefined,
      restart,
    );
    expect(c?.op === 'file.remove' && c.summary).toBe(
      'remove /etc/containerd/certs.d/r/hosts.toml (it did not exist before)',
    );
    expect(
      planFileRestore(
        { kind: 'file', path: '/x', exists: false },
        { exists: false, content: null },
        undefined,
        restart,
      ),
    ).toEqual([]);
  });
});
