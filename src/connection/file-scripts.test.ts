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
import { writeFileCommand } from './file-scripts.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function runWrite(path: string, announced: number, stdin: string) {
  const command = writeFileCommand(path, announced);
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
});
