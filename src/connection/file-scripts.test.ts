/**
 * The node-side write script run by a real `sh`: a controller that dies mid-write (kill -9, a lost
 * connection) closes the script's stdin early, and `cat` then ends with only a prefix of the content.
 * That prefix must never be renamed over the managed file.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import type { WriteOptions } from './connection.js';
import { FileChangedError } from './errors.js';
import { CHANGED, fileError, removeCommand, writeFileCommand } from './file-scripts.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function runWrite(path: string, announced: number, stdin: string, options: WriteOptions = {}) {
  const command = writeFileCommand(path, announced, options);
  if (!('argv' in command)) throw new Error('writeFileCommand returns an argv command');
  const [cmd, ...args] = command.argv;
  return spawnSync(cmd!, args, { input: stdin });
}

describe('writeFileCommand', () => {
  it('keeps the old content when stdin ends before the announced length (controller died mid-write)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tp-write-'));
    dirs.push(dir);
    const file = join(dir, 'config.toml');
    writeFileSync(file, 'version = 2\n');
    const full = 'version = 2\n[plugins]\nconfig_path = "/etc/containerd/certs.d"\n';
    const res = runWrite(file, Buffer.byteLength(full), full.slice(0, 20));
    expect(res.status).toBe(1);
    expect(res.stderr.toString()).toContain(`arrived incomplete (20 of ${Buffer.byteLength(full)} bytes`);
    expect(readFileSync(file, 'utf8')).toBe('version = 2\n');
    expect(readdirSync(dir)).toEqual(['config.toml']); // no temp file left behind
  });

  it('writes the content when all of it arrives', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tp-write-'));
    dirs.push(dir);
    const file = join(dir, 'hosts.toml');
    const full = 'server = "https://registry.test:5000"\n';
    const res = runWrite(file, Buffer.byteLength(full), full);
    expect(res.status).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(full);
  });

  it('compare-and-swap: writes only over what was read, else exits CHANGED and leaves the file as it is', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tp-write-'));
    dirs.push(dir);
    const file = join(dir, 'config.json');
    const sha = (t: string) => createHash('sha256').update(t).digest('hex');
    // Expected absent, but someone created it.
    writeFileSync(file, 'someone else\n');
    let res = runWrite(file, 5, 'ours\n', { expect: { absent: true } });
    expect(res.status).toBe(CHANGED);
    expect(readFileSync(file, 'utf8')).toBe('someone else\n');
    // Expected the bytes read, but they were edited since.
    res = runWrite(file, 5, 'ours\n', { expect: { sha256: sha('as read\n') } });
    expect(res.status).toBe(CHANGED);
    expect(res.stderr.toString()).toContain('its content is not what was read');
    expect(readFileSync(file, 'utf8')).toBe('someone else\n');
    const err = fileError('h1', 'write', file, { code: res.status!, stdout: res.stdout, stderr: res.stderr });
    expect(err).toBeInstanceOf(FileChangedError);
    expect(err.message).toBe(
      `h1: ${file} changed on the node while this task ran, so it was not written: run again. (its content is not what was read)`,
    );
    // Expected content, and the file is gone.
    const gone = join(dir, 'gone.json');
    res = runWrite(gone, 5, 'ours\n', { expect: { sha256: sha('x') } });
    expect(res.status).toBe(CHANGED);
    expect(readdirSync(dir).sort()).toEqual(['config.json']);
    // Still what was read: written.
    res = runWrite(file, 5, 'ours\n', { expect: { sha256: sha('someone else\n') } });
    expect(res.status).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('ours\n');
    res = runWrite(gone, 5, 'ours\n', { expect: { absent: true } });
    expect(res.status).toBe(0);
    expect(readFileSync(gone, 'utf8')).toBe('ours\n');
  });

  it('compare-and-swap removal: removes only what was read, else exits CHANGED and keeps the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tp-remove-'));
    dirs.push(dir);
    const file = join(dir, 'hosts.toml');
    const sha = (t: string) => createHash('sha256').update(t).digest('hex');
    const remove = (expect?: Parameters<typeof removeCommand>[1]) => {
      const command = removeCommand(file, expect);
      if (!('argv' in command)) throw new Error('removeCommand returns an argv command');
      const [cmd, ...args] = command.argv;
      return spawnSync(cmd!, args);
    };
    writeFileSync(file, 'edited\n');
    let res = remove({ sha256: sha('as read\n') });
    expect(res.status).toBe(CHANGED);
    expect(readFileSync(file, 'utf8')).toBe('edited\n');
    const err = fileError('h1', 'remove', file, { code: res.status!, stdout: res.stdout, stderr: res.stderr });
    expect(err).toBeInstanceOf(FileChangedError);
    expect(err.message).toMatch(/changed on the node while this task ran, so it was not removed: run again\./);
    res = remove({ absent: true });
    expect(res.status).toBe(CHANGED);
    res = remove({ sha256: sha('edited\n') });
    expect(res.status).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
    // No expectation: as before, absent is fine.
    expect(remove().status).toBe(0);
  });
});
