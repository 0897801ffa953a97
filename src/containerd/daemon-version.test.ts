import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { LocalConnection } from '../connection/index.js';
import { CRI_LOADER_OPTIONS } from '../cri/client.js';
import { CRI_IMAGE_DESCRIPTOR } from '../cri/proto/cri-image-descriptor.js';
import {
  criNotServingState,
  describeVersionSource,
  parseContainerdVersion,
  parseVersionWord,
  pathMismatchWarning,
} from './daemon-version.js';

describe('the running containerd version', () => {
  it('parses what the CRI reports (v-prefixed, Debian and +unknown builds) and `containerd --version` lines', () => {
    expect(parseVersionWord('v2.1.9')).toMatchObject({ major: 2, minor: 1 });
    expect(parseVersionWord('2.1.9+unknown')).toMatchObject({ major: 2, minor: 1 });
    expect(parseVersionWord('1.6.20~ds1')).toMatchObject({ major: 1, minor: 6 });
    expect(parseVersionWord('not-a-version')).toBeNull();
    expect(parseContainerdVersion('containerd github.com/containerd/containerd/v2 2.1.9+unknown ')).toMatchObject({
      major: 2,
      minor: 1,
    });
  });

  it('warns only when PATH’s containerd is another major.minor than the running daemon', () => {
    const running = {
      version: { raw: 'containerd 2.1.9', major: 2, minor: 1 },
      source: { kind: 'cri', socket: '/s' },
    } as const;
    expect(pathMismatchWarning(running, { raw: 'x', major: 1, minor: 6 }, 'n1')).toBe(
      'n1: the running containerd is 2.1 (the running daemon (CRI Version on /s)) but `containerd` on PATH is 1.6; trustplay follows the running daemon (k3s, RKE2 and upgrades in progress differ like this).',
    );
    expect(pathMismatchWarning(running, { raw: 'x', major: 2, minor: 1 }, 'n1')).toBeUndefined();
    expect(pathMismatchWarning(running, null, 'n1')).toBeUndefined();
    expect(
      pathMismatchWarning({ ...running, source: { kind: 'path' } }, { raw: 'x', major: 1, minor: 6 }, 'n1'),
    ).toBeUndefined();
    expect(describeVersionSource({ kind: 'process', pid: 42, exe: '/usr/bin/containerd' })).toBe(
      "the running daemon's executable (pid 42, /usr/bin/containerd)",
    );
  });
});

describe("the CRI's state when the first Version read failed", () => {
  /** A real grpc-js CRI on a unix socket whose Version names `runtimeName`. */
  async function fakeCri(path: string, runtimeName: string): Promise<grpc.Server> {
    const server = new grpc.Server();
    const def = protoLoader.fromJSON(
      CRI_IMAGE_DESCRIPTOR as Parameters<typeof protoLoader.fromJSON>[0],
      CRI_LOADER_OPTIONS,
    );
    server.addService(def['runtime.v1.RuntimeService'] as grpc.ServiceDefinition, {
      Version: (_call: unknown, cb: grpc.sendUnaryData<object>) =>
        cb(null, { version: '0.1.0', runtimeName, runtimeVersion: '1.7.24', runtimeApiVersion: 'v1' }),
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${path}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())),
    );
    return server;
  }

  it('a socket that answers as containerd on the second read is serving (the first was only slow): no refusal; another runtime is named', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tp-cri-state-'));
    const servers: grpc.Server[] = [];
    const conn = new LocalConnection({ host: 'localhost' });
    try {
      servers.push(await fakeCri(join(dir, 'containerd.sock'), 'containerd'));
      servers.push(await fakeCri(join(dir, 'crio.sock'), 'cri-o'));
      expect(await criNotServingState(conn, [join(dir, 'containerd.sock')], null)).toBeUndefined();
      expect(await criNotServingState(conn, [join(dir, 'crio.sock')], null)).toBe(
        `${join(dir, 'crio.sock')} is served by cri-o 1.7.24, not containerd; no containerd process runs`,
      );
    } finally {
      for (const s of servers) await new Promise<void>((r) => s.tryShutdown(() => r()));
      await conn.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
