/**
 * The verified restart's bookkeeping and its loud failure path on a real local connection: the
 * first backup wins, and when containerd never comes back the previous config.toml is still put
 * back byte-for-byte with its mode. (The rollback that brings containerd back runs in the lab:
 * test/e2e/containerd-tls.test.ts.)
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, describe, expect, it } from 'vitest';
import { taskContext } from '../../test/support/task-context.js';
import { CRI_LOADER_OPTIONS } from '../cri/client.js';
import { CRI_IMAGE_DESCRIPTOR } from '../cri/proto/cri-image-descriptor.js';
import { TaskError } from '../engine/errors.js';
import { resourcesOf, restartHandler } from '../engine/apply.js';
import {
  configBackupKey,
  pendingMarkerPath,
  readPendingRestart,
  rememberCompanionBackup,
  rememberConfigBackup,
  type ConfigBackup,
} from '../engine/restart-backup.js';
import containerdRestart, { verifiedRestart } from './containerd-restart.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-restart-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const context = () => taskContext();

describe('containerd.restart', () => {
  it('keeps the first backup of a restart cycle, on the node too (the pending marker, 0600)', async () => {
    const ctx = context();
    const a = path.join(dir, 'a.toml');
    const b = path.join(dir, 'b.toml');
    await rememberConfigBackup(ctx, a, Buffer.from('first'), { mode: 0o600 });
    await rememberConfigBackup(ctx, a, Buffer.from('second'));
    await rememberConfigBackup(ctx, b, null);
    const backup = ctx.hostState.get(configBackupKey(a)) as ConfigBackup;
    expect(backup.content?.toString()).toBe('first');
    expect(backup.mode).toBe(0o600);
    expect((ctx.hostState.get(configBackupKey(b)) as ConfigBackup).content).toBeNull();
    expect(JSON.parse(readFileSync(pendingMarkerPath(a), 'utf8'))).toEqual({
      trustplay: 'pending-restart',
      previous: Buffer.from('first').toString('base64'),
      mode: 0o600,
    });
    expect(statSync(pendingMarkerPath(a)).mode & 0o777).toBe(0o600);
    // A later run (a new context) that finds the marker rolls back to the config before the
    // interrupted change, not to the one it sees now.
    const later = context();
    expect(await readPendingRestart(later.conn, a)).toMatchObject({ content: Buffer.from('first'), mode: 0o600 });
    await rememberConfigBackup(later, a, Buffer.from('written by the interrupted run'));
    expect((later.hostState.get(configBackupKey(a)) as ConfigBackup).content?.toString()).toBe('first');
    // An unreadable marker is refused with what to do, never guessed at.
    writeFileSync(pendingMarkerPath(b), 'garbage');
    await expect(readPendingRestart(later.conn, b)).rejects.toThrow(/is not a record trustplay can read/);
  });

  it('builds one handler request per config file, deduplicated by id', () => {
    const a = restartHandler({
      op: 'restart.request',
      unit: 'containerd',
      config: '/etc/containerd/config.toml',
      command: 'systemctl restart containerd',
      health: { timeoutSec: 60 },
    });
    const b = restartHandler({
      op: 'restart.request',
      unit: 'containerd',
      config: '/etc/containerd/config.toml',
      command: 'systemctl restart containerd',
      health: { socket: '/run/x.sock', timeoutSec: 5 },
    });
    expect(a.id).toBe(b.id);
    expect(a).toMatchObject({
      module: 'containerd.restart',
      name: 'Restart containerd (verified)',
      args: { config_file: '/etc/containerd/config.toml', restart_timeout: 60 },
    });
    expect(a.args).not.toHaveProperty('socket');
    expect(b.args).toMatchObject({ socket: '/run/x.sock' });
  });

  it('plans one restart change with no resources (config.toml was saved by the notifying change)', async () => {
    const changes = await containerdRestart.plan(
      { config_file: '/c', restart_command: 'true', restart_timeout: 3 },
      null,
      context(),
    );
    expect(changes).toHaveLength(1);
    expect(resourcesOf(changes[0]!)).toEqual([]);
    expect(changes[0]!.op === 'custom' && changes[0]!.summary).toContain('restart containerd');
  });

  it('puts the previous config back with its mode and fails loudly when containerd never comes back', async () => {
    const file = path.join(dir, 'config.toml');
    writeFileSync(file, 'version = 2\n# broken by a change\n', { mode: 0o600 });
    const ctx = context();
    await rememberConfigBackup(ctx, file, Buffer.from('version = 2\n# the good one\n'), { mode: 0o640 });
    const counter = path.join(dir, 'restarts');
    const err = await verifiedRestart(ctx, {
      config_file: file,
      restart_command: `echo x >> ${counter}; echo "Job for containerd.service failed" >&2; exit 1`,
      socket: path.join(dir, 'no.sock'),
      restart_timeout: 2,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    const msg = (err as TaskError).message;
    expect(msg).toMatch(
      /^ROLLBACK FAILED: containerd did not come back after the config change \(`echo .*` failed \(exit 1: failed\): Job for containerd.service failed\)/,
    );
    expect(msg).toContain('was restored but containerd still does not answer');
    expect(readFileSync(file, 'utf8')).toBe('version = 2\n# the good one\n');
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(readFileSync(counter, 'utf8')).toBe('x\nx\n');
    // containerd is still down: the marker stays, so the next run tries again.
    expect(readFileSync(pendingMarkerPath(file), 'utf8')).toContain('pending-restart');
  });

  it('removes a config.toml that did not exist before the change', async () => {
    const file = path.join(dir, 'created.toml');
    writeFileSync(file, 'version = 2\n');
    const ctx = context();
    await rememberConfigBackup(ctx, file, null);
    await expect(
      verifiedRestart(ctx, {
        config_file: file,
        restart_command: 'exit 3',
        socket: path.join(dir, 'no.sock'),
        restart_timeout: 1,
      }),
    ).rejects.toThrow(/ROLLBACK FAILED/);
    expect(() => statSync(file)).toThrow(/ENOENT/);
  });

  it('says nothing was rolled back when no backup was recorded', async () => {
    await expect(
      verifiedRestart(context(), {
        config_file: path.join(dir, 'x.toml'),
        restart_command: 'exit 1',
        socket: path.join(dir, 'no.sock'),
        restart_timeout: 1,
      }),
    ).rejects.toThrow(/no earlier .*x\.toml was recorded in this run, so nothing was rolled back/);
  });
});

/**
 * A real grpc-js CRI server on a unix socket whose Version answers only while `up(msSinceStart)`
 * says so: a containerd that its supervisor keeps restarting, seen from the CRI.
 */
async function flappingCri(
  socket: string,
  up: (ms: number) => boolean,
  ready: () => object = () => ({ type: 'RuntimeReady', status: true }),
): Promise<() => Promise<void>> {
  const def = protoLoader.fromJSON(
    CRI_IMAGE_DESCRIPTOR as Parameters<typeof protoLoader.fromJSON>[0],
    CRI_LOADER_OPTIONS,
  );
  const start = Date.now();
  const server = new grpc.Server();
  const down = { code: grpc.status.UNAVAILABLE, details: 'connect ECONNREFUSED (containerd restarting)' };
  server.addService(def['runtime.v1.RuntimeService'] as grpc.ServiceDefinition, {
    Version: (_call: unknown, cb: grpc.sendUnaryData<object>) =>
      up(Date.now() - start)
        ? cb(null, { version: '0.1.0', runtimeName: 'containerd', runtimeVersion: '9.9', runtimeApiVersion: 'v1' })
        : cb(down),
    Status: (_call: unknown, cb: grpc.sendUnaryData<object>) =>
      up(Date.now() - start)
        ? cb(null, { status: { conditions: [ready(), { type: 'NetworkReady', status: false }] } })
        : cb(down),
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  return () => new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
}

describe('containerd.restart health check', () => {
  // Chaos seed 30 found this: the stay-up window was cut to what was left of restart_timeout, so a
  // containerd that first answered just before the deadline was polled once and passed, while its
  // supervisor was about to kill it again. Here containerd first answers at 1.5 s of a 2 s timeout,
  // dies at 2.4 s and is back at 3.0 s: a crash loop, which the full window must see.
  it('does not pass a crash-looping containerd that first answers just before the deadline', async () => {
    const socket = path.join(dir, 'flapping.sock');
    const stop = await flappingCri(socket, (ms) => (ms >= 1500 && ms < 2400) || ms >= 3000);
    try {
      const err = await verifiedRestart(context(), {
        config_file: path.join(dir, 'flap.toml'),
        restart_command: 'true',
        socket,
        restart_timeout: 2,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TaskError);
      expect((err as TaskError).message).toMatch(
        /containerd did not come back after the restart \(after `true`, containerd answered on .*flapping\.sock but did not stay up: it stopped answering 1 time within 2 s \(crash-looping; last error: /,
      );
    } finally {
      await stop();
    }
  });

  // No real containerd can be put in this state (test/e2e/containerd-versions.test.ts shows why:
  // its CRI hard-codes RuntimeReady=true), so a CRI server stands in: its runtime is ready only
  // while config.toml is the good one, as a runtime broken by the new config would be.
  it('rolls back a config whose CRI answers but reports RuntimeReady=false, with the files written with it, and names the reason', async () => {
    const socket = path.join(dir, 'not-ready.sock');
    const file = path.join(dir, 'not-ready.toml');
    const ca = path.join(dir, 'tls', 'ca.crt');
    const other = path.join(dir, 'tls', 'other.crt');
    (await import('node:fs')).mkdirSync(path.dirname(ca), { recursive: true });
    const good = 'version = 2\n# good\n';
    writeFileSync(file, 'version = 2\n# runtime broken\n', { mode: 0o600 });
    writeFileSync(ca, 'NEW CA\n');
    writeFileSync(other, 'NEW\n');
    const ctx = context();
    await rememberConfigBackup(ctx, file, Buffer.from(good), { mode: 0o600 });
    await rememberCompanionBackup(ctx, ca, null);
    writeFileSync(other, 'OLD\n');
    chmodSync(other, 0o640);
    await rememberCompanionBackup(ctx, other, Buffer.from('OLD\n'));
    writeFileSync(other, 'NEW\n');
    chmodSync(other, 0o600);
    const stop = await flappingCri(
      socket,
      () => true,
      () =>
        readFileSync(file, 'utf8') === good
          ? { type: 'RuntimeReady', status: true }
          : { type: 'RuntimeReady', status: false, reason: 'NoRuntime', message: 'runc not found' },
    );
    try {
      const err = await verifiedRestart(ctx, {
        config_file: file,
        service: 'k3s',
        companions: [ca, other],
        restart_command: 'true',
        socket,
        restart_timeout: 1,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TaskError);
      expect((err as TaskError).message).toBe(
        `k3s did not come back after the config change (the CRI at ${socket} answers but is not ready (RuntimeReady is false (NoRuntime: runc not found)): containerd's CRI plugin loaded without a working runtime, see containerd's log); the previous ${file} was restored (and ${ca}, ${other} put back as before this run) and k3s restarted (it answers on ${socket}).`,
      );
      expect(readFileSync(file, 'utf8')).toBe(good);
      expect(() => statSync(ca)).toThrow(/ENOENT/);
      expect(readFileSync(other, 'utf8')).toBe('OLD\n');
      expect(statSync(other).mode & 0o777).toBe(0o640);
      expect(ctx.hostState.has(configBackupKey(ca))).toBe(false);
    } finally {
      await stop();
    }
  });

  it('passes a containerd that comes up late and stays up', async () => {
    const socket = path.join(dir, 'late.sock');
    const stop = await flappingCri(socket, (ms) => ms >= 1200);
    try {
      await expect(
        verifiedRestart(context(), {
          config_file: path.join(dir, 'late.toml'),
          restart_command: 'true',
          socket,
          restart_timeout: 2,
        }),
      ).resolves.toBeUndefined();
    } finally {
      await stop();
    }
  });
});

describe('restart error text', () => {
  it("keeps systemctl's first line and containerd's error, not its info chatter", async () => {
    const { trimmed } = await import('./containerd-restart.js');
    const out = Buffer.from(
      'Job for containerd.service failed because the control process exited with error code.\nSee "/run/lab/containerd.log" for details:\ntime="x" level=info msg="Stop CRI service"\ntime="x" level=info msg="Stop CRI service"\ncontainerd: failed to load TOML: /etc/containerd/config.toml: (246, 6): was expecting token =\n',
    );
    expect(trimmed(out)).toBe(
      'Job for containerd.service failed because the control process exited with error code.; containerd: failed to load TOML: /etc/containerd/config.toml: (246, 6): was expecting token =',
    );
    expect(trimmed(Buffer.from('only line\n'))).toBe('only line');
    expect(trimmed(Buffer.from('first\nsecond\nlast\n'))).toBe('first; last');
  });
});
