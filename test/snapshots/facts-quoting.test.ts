/**
 * `facts` passes every path to the node as a positional parameter (issue 13, finding 9): a certs.d
 * path with glob characters or spaces, as a node's own config.toml may name, is one literal path,
 * never expanded by the node's shell into other directories.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { LocalConnection } from '../../src/connection/local.js';
import { gatherNodeFacts } from '../../src/containerd/node-facts.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tp-facts-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('a certs.d path with a glob or a space is one literal directory', async () => {
  for (const d of ['certs-a', 'certs-b', 'certs d']) {
    mkdirSync(join(dir, d, 'registry.test'), { recursive: true });
    writeFileSync(join(dir, d, 'registry.test', 'hosts.toml'), 'server = "https://registry.test"\n');
  }
  const conn = new LocalConnection();
  const glob = await gatherNodeFacts(conn, {
    configFile: join(dir, 'missing.toml'),
    configPath: join(dir, 'certs-*'),
    criSocket: join(dir, 'no.sock'),
  });
  expect(glob.certs_d).toEqual([]);
  const spaced = await gatherNodeFacts(conn, {
    configFile: join(dir, 'missing.toml'),
    configPath: join(dir, 'certs d'),
    criSocket: join(dir, 'no.sock'),
  });
  expect(spaced.certs_d.map((c) => [c.dir, c.registry])).toEqual([[join(dir, 'certs d'), 'registry.test']]);
  // A config_path written with a trailing slash lists the same directories.
  const slashed = await gatherNodeFacts(conn, {
    configFile: join(dir, 'missing.toml'),
    configPath: join(dir, 'certs d') + '/',
    criSocket: join(dir, 'no.sock'),
  });
  expect(slashed.certs_d.map((c) => c.registry)).toEqual(['registry.test']);
});
