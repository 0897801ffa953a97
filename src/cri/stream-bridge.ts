import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';

/** A private unix socket on the controller whose every connection is piped to a fresh stream. */
export interface StreamBridge {
  /** Path of the local socket to hand to a client that only speaks to sockets (grpc-js). */
  readonly socketPath: string;
  /** The last error `openStream` failed with, so a caller can explain a dropped connection. */
  readonly lastOpenError: Error | undefined;
  close(): Promise<void>;
}

/**
 * The bridges' directory, one for all the bridges open at a time (issue 21: it was one directory
 * per host, a mkdtemp and an rmdir per host, ~1.5 % of the controller's CPU on a 1,000-host check).
 * mkdtemp creates it 0700: only this user can connect to a socket inside, which matters because the
 * far end is a root-owned containerd socket. Removed when its last bridge closes.
 */
let shared: { dir: Promise<string>; users: number; next: number } | undefined;

async function takeDir(): Promise<{ dir: string; name: string; release: () => Promise<void> }> {
  const s = (shared ??= { dir: mkdtemp(join(tmpdir(), 'trustplay-cri-')), users: 0, next: 0 });
  s.users++;
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    if (--s.users > 0) return;
    if (shared === s) shared = undefined;
    const dir = await s.dir.catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  };
  try {
    return { dir: await s.dir, name: `cri-${s.next++}.sock`, release };
  } catch (err) {
    await release();
    throw err;
  }
}

/**
 * Listens on `<the bridges' 0700 temp dir>/cri-N.sock` and pipes each accepted connection to a new
 * `openStream()` (e.g. an SSH `direct-streamlocal@openssh.com` channel).
 */
export async function openStreamBridge(openStream: () => Promise<Duplex>): Promise<StreamBridge> {
  const { dir, name, release } = await takeDir();
  const socketPath = join(dir, name);
  const live = new Set<Duplex>();
  let lastOpenError: Error | undefined;

  const server: Server = createServer((local: Socket) => {
    live.add(local);
    local.once('close', () => live.delete(local));
    local.on('error', () => local.destroy());
    openStream().then(
      (remote) => {
        if (local.destroyed) {
          remote.destroy();
          return;
        }
        lastOpenError = undefined;
        live.add(remote);
        const teardown = (): void => {
          local.destroy();
          remote.destroy();
        };
        remote.once('close', () => {
          live.delete(remote);
          teardown();
        });
        remote.on('error', (err: Error) => {
          // A relay that could not reach the socket ends its stream with why.
          lastOpenError = err;
          teardown();
        });
        local.once('close', teardown);
        local.pipe(remote);
        remote.pipe(local);
      },
      (err: unknown) => {
        lastOpenError = err instanceof Error ? err : new Error(String(err));
        local.destroy();
      },
    );
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await release();
    throw err;
  }

  let closed: Promise<void> | undefined;
  return {
    socketPath,
    get lastOpenError() {
      return lastOpenError;
    },
    close() {
      closed ??= (async () => {
        for (const stream of live) stream.destroy();
        // Closing a listening unix socket removes its file.
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await release();
      })();
      return closed;
    },
  };
}
