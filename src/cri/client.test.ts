import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect as netConnect, createServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Connection, FileStat } from '../connection/connection.js';
import { readNode } from '../connection/read-files.js';
import type { TaskContext } from '../engine/module.js';
import { criScope, criSocketFor, withCri } from './connect.js';
import {
  CRI_LOADER_OPTIONS,
  CriError,
  cleanUnavailable,
  createCriClient,
  crictlEndpoint,
  endpointToPath,
  resolveCriSocket,
  CRI_SOCKET_READS,
  waitForCri,
} from './client.js';
import { CRI_IMAGE_DESCRIPTOR } from './proto/cri-image-descriptor.js';

let dir: string;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tp-cri-unit-'));
});

afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
  await rm(dir, { recursive: true, force: true });
});

/**
 * A host whose filesystem is `root` on this machine: only what resolveCriSocket reads is real. Its
 * one command (the file reader, src/connection/read-files.ts) runs for real here with every
 * absolute path argument moved under `root`, and the paths it reports moved back.
 */
function hostAt(root: string): Connection {
  const unused = (): never => {
    throw new Error('not used by resolveCriSocket');
  };
  return {
    host: 'node-a',
    kind: 'local',
    connect: async () => undefined,
    async exec(command) {
      const argv = (command as { argv: string[] }).argv;
      const moved = argv.map((a, i) => (i > 3 && a.startsWith('/') ? join(root, a) : a));
      const r = spawnSync(moved[0]!, moved.slice(1));
      return {
        code: r.status ?? 1,
        stdout: Buffer.from(r.stdout.toString('utf8').replaceAll(`=${root}/`, '=/')),
        stderr: r.stderr,
      };
    },
    writeFile: unused,
    remove: unused,
    openUnixSocket: unused,
    openTcp: unused,
    session: unused,
    close: async () => undefined,
    async readFile(path) {
      return readFile(join(root, path)).catch(() => null);
    },
    async stat(path): Promise<FileStat> {
      const st = await stat(join(root, path)).catch(() => null);
      return st
        ? { exists: true, isFile: st.isFile(), isDirectory: st.isDirectory(), mode: st.mode & 0o7777 }
        : { exists: false };
    },
  };
}

async function listenUnix(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const server: NetServer = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
}

describe('endpointToPath and crictlEndpoint', () => {
  it('accepts the unix endpoint spellings crictl accepts', () => {
    expect(endpointToPath('unix:///run/containerd/containerd.sock', 'x')).toBe('/run/containerd/containerd.sock');
    expect(endpointToPath('unix:/run/k3s/containerd/containerd.sock', 'x')).toBe('/run/k3s/containerd/containerd.sock');
    expect(endpointToPath('/run/crio/crio.sock', 'x')).toBe('/run/crio/crio.sock');
  });

  it('refuses a TCP endpoint with a sentence naming where it came from', () => {
    expect(() => endpointToPath('tcp://10.0.0.1:1234', '/etc/crictl.yaml on node-a')).toThrow(
      /^\/etc\/crictl\.yaml on node-a names "tcp:\/\/10\.0\.0\.1:1234", which is not a unix socket/,
    );
  });

  it('prefers image-endpoint, then runtime-endpoint, and shrugs at broken YAML', () => {
    expect(crictlEndpoint('runtime-endpoint: unix:///a.sock\nimage-endpoint: unix:///b.sock\n')).toBe('unix:///b.sock');
    expect(crictlEndpoint('runtime-endpoint: unix:///a.sock\ntimeout: 2\n')).toBe('unix:///a.sock');
    expect(crictlEndpoint('image-endpoint: ""\nruntime-endpoint: unix:///a.sock\n')).toBe('unix:///a.sock');
    expect(crictlEndpoint('debug: true\n')).toBeUndefined();
    expect(crictlEndpoint('runtime-endpoint: [unclosed\n')).toBeUndefined();
  });
});

describe('resolveCriSocket', () => {
  it('takes the configured socket over everything else', async () => {
    await mkdir(join(dir, 'etc'));
    await writeFile(join(dir, 'etc/crictl.yaml'), 'runtime-endpoint: unix:///run/other.sock\n');
    expect(await resolveCriSocket(hostAt(dir), 'unix:///custom/cri.sock')).toBe('/custom/cri.sock');
  });

  it("uses the node's /etc/crictl.yaml next", async () => {
    await mkdir(join(dir, 'etc'));
    await writeFile(join(dir, 'etc/crictl.yaml'), 'runtime-endpoint: unix:///run/k3s/containerd/containerd.sock\n');
    expect(await resolveCriSocket(hostAt(dir))).toBe('/run/k3s/containerd/containerd.sock');
  });

  it('falls back to the first well-known socket that exists, skipping plain files', async () => {
    await mkdir(join(dir, 'run/containerd'), { recursive: true });
    await writeFile(join(dir, 'run/containerd/containerd.sock'), 'not a socket');
    await listenUnix(join(dir, 'run/k3s/containerd/containerd.sock'));
    expect(await resolveCriSocket(hostAt(dir))).toBe('/run/k3s/containerd/containerd.sock');
  });

  it('asks `answers` when given and skips sockets that do not answer', async () => {
    await listenUnix(join(dir, 'run/containerd/containerd.sock'));
    await listenUnix(join(dir, 'run/k3s/containerd/containerd.sock'));
    const asked: string[] = [];
    const got = await resolveCriSocket(hostAt(dir), undefined, async (p) => {
      asked.push(p);
      return p.includes('k3s');
    });
    expect(got).toBe('/run/k3s/containerd/containerd.sock');
    expect(asked).toEqual(['/run/containerd/containerd.sock', '/run/k3s/containerd/containerd.sock']);
  });

  it('decides on the entries a gather read with its own files (CRI_SOCKET_READS): no command of its own, the same answer', async () => {
    await mkdir(join(dir, 'etc'));
    await writeFile(join(dir, 'etc/crictl.yaml'), 'image-endpoint: unix:///run/k3s/containerd/containerd.sock\n');
    await listenUnix(join(dir, 'run/containerd/containerd.sock'));
    const seen = (await readNode(hostAt(dir), { files: ['/etc/other.conf', ...CRI_SOCKET_READS] })).entries;
    const noCommands: Connection = {
      ...hostAt(dir),
      exec: () => Promise.reject(new Error('a command was run')),
    };
    expect(await resolveCriSocket(noCommands, undefined, undefined, seen)).toBe('/run/k3s/containerd/containerd.sock');
    expect(await resolveCriSocket(hostAt(dir))).toBe('/run/k3s/containerd/containerd.sock');
    // Without crictl.yaml: the socket found in the same entries.
    await rm(join(dir, 'etc/crictl.yaml'));
    const again = (await readNode(hostAt(dir), { files: [...CRI_SOCKET_READS] })).entries;
    expect(await resolveCriSocket(noCommands, undefined, undefined, again)).toBe('/run/containerd/containerd.sock');
    // Entries that lack one of the paths are not enough: it reads them itself.
    const partial = new Map([...again].filter(([p]) => p !== '/etc/crictl.yaml'));
    await expect(resolveCriSocket(noCommands, undefined, undefined, partial)).rejects.toThrow('a command was run');
  });

  it('says what it tried when nothing is there', async () => {
    await expect(resolveCriSocket(hostAt(dir))).rejects.toThrow(
      /^no CRI socket found on node-a \(tried \/run\/containerd\/containerd\.sock, \/run\/k3s\/containerd\/containerd\.sock and \/etc\/crictl\.yaml\)/,
    );
  });
});

describe('cleanUnavailable', () => {
  it("keeps the cause from grpc-js' connection message", () => {
    expect(
      cleanUnavailable('No connection established. Last error: Error: connect ENOENT /x.sock. Resolution note: '),
    ).toBe('connect ENOENT /x.sock');
    expect(
      cleanUnavailable(
        'No connection established. Last error: connect ECONNREFUSED /x.sock (2026-01-01T00:00:00.000Z)',
      ),
    ).toBe('connect ECONNREFUSED /x.sock');
    expect(cleanUnavailable('Connection dropped')).toBe('Connection dropped');
  });
});

/** A real grpc-js server on a unix socket, serving RuntimeService only when `withCri`. */
async function startGrpcServer(path: string, withCri: boolean): Promise<grpc.Server> {
  const server = new grpc.Server();
  if (withCri) {
    const def = protoLoader.fromJSON(
      CRI_IMAGE_DESCRIPTOR as Parameters<typeof protoLoader.fromJSON>[0],
      CRI_LOADER_OPTIONS,
    );
    server.addService(def['runtime.v1.RuntimeService'] as grpc.ServiceDefinition, {
      Version: (_call: unknown, cb: grpc.sendUnaryData<object>) =>
        cb(null, { version: '0.1.0', runtimeName: 'fake-cri', runtimeVersion: '9.9', runtimeApiVersion: 'v1' }),
    });
  }
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${path}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  cleanups.push(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  return server;
}

describe('waitForCri and CriError', () => {
  it('names the socket and the cause when nothing listens', async () => {
    const client = createCriClient(join(dir, 'absent.sock'));
    cleanups.push(() => client.close());
    const err = await client.listImages().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CriError);
    expect((err as CriError).message).toBe(
      `cannot reach containerd's CRI socket ${join(dir, 'absent.sock')}: connect ENOENT ${join(dir, 'absent.sock')}`,
    );
  });

  it('waits for a socket that comes up later', async () => {
    const path = join(dir, 'later.sock');
    const waiting = waitForCri(path, 20_000);
    setTimeout(() => void startGrpcServer(path, true), 400);
    await expect(waiting).resolves.toEqual({ runtimeName: 'fake-cri', runtimeVersion: '9.9', runtimeApiVersion: 'v1' });
  });

  it('gives up at once when the socket answers without the CRI (plugin disabled or broken config)', async () => {
    const path = join(dir, 'nocri.sock');
    await startGrpcServer(path, false);
    const err = await waitForCri(path, 60_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CriError);
    expect((err as CriError).code).toBe(grpc.status.UNIMPLEMENTED);
    expect((err as CriError).message).toContain('does not serve the CRI');
  });

  it('fails after the timeout with the last error when the socket never appears', async () => {
    const path = join(dir, 'never.sock');
    await expect(waitForCri(path, 600)).rejects.toThrow(
      `the CRI at ${path} did not answer within 600 ms (last error: connect ENOENT ${path})`,
    );
  });
});

describe('criScope', () => {
  /** A node at `dir` whose sockets are reached as over SSH (a bridge per client); `opened` counts the streams. */
  function streamed(): { conn: Connection; opened: string[]; streams: Socket[] } {
    const opened: string[] = [];
    const streams: Socket[] = [];
    const conn: Connection = {
      ...hostAt(dir),
      async openUnixSocket(path) {
        opened.push(path);
        const s = netConnect(join(dir, path));
        streams.push(s);
        return s;
      },
    };
    return { conn, opened, streams };
  }
  const contextOf = (conn: Connection): TaskContext => ({
    conn,
    host: 'node-a',
    vars: {},
    check: false,
    warn: () => undefined,
    fact: () => undefined,
    hostState: new Map(),
  });

  it('serves a task’s CRI calls on the probe that found the socket, and closes it when the scope ends', async () => {
    await mkdir(join(dir, 'run/containerd'), { recursive: true });
    await startGrpcServer(join(dir, 'run/containerd/containerd.sock'), true);
    const inScope = streamed();
    const ctx = contextOf(inScope.conn);
    const answer = await criScope(ctx, async () => {
      expect(await criSocketFor(ctx)).toBe('/run/containerd/containerd.sock');
      const v = await withCri(ctx, undefined, (cri) => cri.version());
      // Still open for the rest of the scope.
      expect(inScope.streams.map((st) => st.destroyed)).toEqual([false]);
      return v;
    });
    expect(answer.runtimeName).toBe('fake-cri');
    expect(inScope.opened).toEqual(['/run/containerd/containerd.sock']);
    expect(inScope.streams.map((st) => st.destroyed)).toEqual([true]);

    // Outside a scope: the probe is closed and the call opens its own client, as before.
    const alone = streamed();
    const ctx2 = contextOf(alone.conn);
    await criSocketFor(ctx2);
    await withCri(ctx2, undefined, (cri) => cri.version());
    expect(alone.opened).toEqual(['/run/containerd/containerd.sock', '/run/containerd/containerd.sock']);
    expect(alone.streams.map((st) => st.destroyed)).toEqual([true, true]);
  });

  it('a kept client’s view is cancelled by the call’s own signal, and the client outlives it', async () => {
    await mkdir(join(dir, 'run/containerd'), { recursive: true });
    await startGrpcServer(join(dir, 'run/containerd/containerd.sock'), true);
    const { conn } = streamed();
    const abort = new AbortController();
    const ctx = { ...contextOf(conn), signal: abort.signal };
    await criScope(ctx, async () => {
      await criSocketFor(ctx);
      abort.abort(new Error('interrupted by SIGINT'));
      await expect(withCri(ctx, undefined, (cri) => cri.version())).rejects.toThrow('interrupted by SIGINT');
      // `finish`: not cancelled, on the same kept client.
      expect((await withCri(ctx, undefined, (cri) => cri.version(), { finish: true })).runtimeName).toBe('fake-cri');
    });
  });
});
