/**
 * The file-write rules every connection keeps (src/connection/file-scripts.ts, local.ts), checked
 * the same way for the local connection and over SSH: a link at a managed path is refused (no read,
 * no write, no chown, no remove) and its target stays untouched; a parent directory that others
 * can write or own is refused with the fix in the message.
 */
import { chmod, chown, lstat, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { FileOperationError } from '../../src/connection/errors.js';

async function failure(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FileOperationError);
  return err as Error;
}

/** `dir` must exist on the connection's host and be visible here (local, or sshd on this machine). */
export async function expectManagedLinksRefused(conn: Connection, dir: string): Promise<void> {
  const target = join(dir, 'passwd');
  await writeFile(target, 'root:x:0:0::/root:/bin/sh\n');
  await chmod(target, 0o644);
  const link = join(dir, 'hosts.toml');
  await symlink(target, link);
  for (const op of [
    () => conn.readFile(link),
    () => conn.writeFile(link, 'pwned'),
    () => conn.writeFile(link, 'pwned', { mode: 0o4777, uid: 1000, gid: 1000 }),
    () => conn.remove(link),
  ]) {
    expect((await failure(op())).message).toContain(`${link} is a symbolic link: trustplay never reads, writes`);
  }
  expect(await readFile(target, 'utf8')).toBe('root:x:0:0::/root:/bin/sh\n');
  const st = await stat(target);
  expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o644, 0, 0]);
  expect((await lstat(link)).isSymbolicLink()).toBe(true);

  const open = join(dir, 'open');
  await mkdir(open);
  await chmod(open, 0o777);
  expect((await failure(conn.writeFile(join(open, 'a.toml'), 'x'))).message).toContain(`fix with: chmod go-w ${open}`);
  const owned = join(dir, 'owned');
  await mkdir(owned);
  await chown(owned, 1000, 1000);
  expect((await failure(conn.writeFile(join(owned, 'a.toml'), 'x'))).message).toContain(
    `fix with: chown root ${owned}`,
  );
}
