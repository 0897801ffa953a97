/** The one-command gather against real files through a local connection, and the version parser on real outputs. */
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { LocalConnection } from '../connection/local.js';
import { macOf } from '../snapshots/key.js';
import {
  gatherContainerdFacts,
  gatherContainerdFactsWith,
  parseContainerdVersion,
  saveContainerdVersions,
} from './facts.js';
import { detectFlavour, flavourFromRecords } from './flavour.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-facts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const conn = new LocalConnection({ host: 'localhost' });

/** A local connection that keeps every command's stdout. */
function recording(host: string): { conn: LocalConnection; outputs: string[] } {
  const outputs: string[] = [];
  const c = new LocalConnection({ host });
  const exec = c.exec.bind(c);
  c.exec = async (...a: Parameters<typeof exec>) => {
    const r = await exec(...a);
    outputs.push(r.stdout.toString());
    return r;
  };
  return { conn: c, outputs };
}

describe('containerd facts', () => {
  it('parses the version lines of containerd 1.6 (Debian), 1.7 (containerd.io) and 2.x', () => {
    expect(
      parseContainerdVersion('containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3'),
    ).toMatchObject({ major: 1, minor: 6 });
    expect(
      parseContainerdVersion('containerd containerd.io 1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da'),
    ).toMatchObject({ major: 1, minor: 7 });
    expect(
      parseContainerdVersion(
        'containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7193e4e490e9fbdc236c0e811ccaba3376',
      ),
    ).toMatchObject({ major: 2, minor: 1 });
    expect(parseContainerdVersion('containerd: command not found')).toBeNull();
  });

  it('asks containerd for its version once per host and binary, keeping the answer in memory, not on the node', async () => {
    const { conn: counting, outputs } = recording('version-probe');
    const opts = { configFile: path.join(dir, 'none.toml'), configPath: path.join(dir, 'certs.d') };
    const before = readdirSync(dir);
    const first = await gatherContainerdFacts(counting, opts);
    expect(first.version?.major).toBe(1);
    expect(outputs[0]).toMatch(/^@@version 1 \d+:\d+:\d+:\d+$/m);
    // The second gather sees the same binary and does not run it, with the same answer.
    const second = await gatherContainerdFacts(counting, opts);
    expect(outputs[1]).toMatch(/^@@version same$/m);
    expect(second.version).toEqual(first.version);
    // Another host is asked on its own.
    await gatherContainerdFacts(new LocalConnection({ host: 'other-host' }), opts);
    expect(readdirSync(dir)).toEqual(before);
  });

  it("keeps the versions between runs in the controller's state dir, signed: the next run does not ask again", async () => {
    const cache = path.join(dir, 'state', 'cache', 'containerd-versions.json');
    const key = { file: 'test', id: 'k', secret: Buffer.from('a test key of thirty-two bytes!!') };
    const mac = (doc: unknown): string => macOf(key, doc);
    const { conn: host, outputs } = recording('kept-host');
    const opts = { configFile: path.join(dir, 'none.toml'), configPath: path.join(dir, 'certs.d') };
    const first = await gatherContainerdFacts(host, opts);
    expect(outputs[0]).toMatch(/^@@version 1 /m);
    await saveContainerdVersions(cache, mac);
    const kept = JSON.parse(readFileSync(cache, 'utf8')) as {
      entries: Record<string, { key: string; raw: string }>;
      mac: string;
    };
    expect(kept.entries['kept-host']?.raw).toBe(first.version?.raw);
    expect(statSync(cache).mode & 0o777).toBe(0o600);
    // Another run (this process's memory forgotten: a fresh module instance) loads the file and
    // sees the same binary: `containerd --version` does not run.
    const fresh = async (): Promise<typeof import('./facts.js')> => {
      vi.resetModules();
      return (await import('./facts.js')) as typeof import('./facts.js');
    };
    let facts = await fresh();
    await facts.loadContainerdVersions(cache, mac);
    const second = await facts.gatherContainerdFacts(host, opts);
    expect(outputs[1]).toMatch(/^@@version same$/m);
    expect(second.version).toEqual(first.version);
    // An entry changed in the file (a valid version line, even) breaks the MAC: nothing is
    // believed, and the binary is asked again.
    const other = first.version!.raw.replace(/\b1\.\d+\.\d+/, '2.1.0');
    writeFileSync(
      cache,
      JSON.stringify({ ...kept, entries: { 'kept-host': { ...kept.entries['kept-host'], raw: other } } }),
    );
    facts = await fresh();
    await facts.loadContainerdVersions(cache, mac);
    await facts.gatherContainerdFacts(host, opts);
    expect(outputs[2]).toMatch(/^@@version 1 /m);
    // So is a file signed with another key.
    writeFileSync(cache, JSON.stringify(kept));
    facts = await fresh();
    await facts.loadContainerdVersions(cache, (doc) =>
      macOf({ file: 'other', id: 'x', secret: Buffer.from('another key') }, doc),
    );
    await facts.gatherContainerdFacts(host, opts);
    expect(outputs[3]).toMatch(/^@@version 1 /m);
    // A missing or broken file is an empty cache, never an error.
    await facts.loadContainerdVersions(path.join(dir, 'no-such-file.json'), mac);
    writeFileSync(cache, '{not json');
    await facts.loadContainerdVersions(cache, mac);
  });

  it('reads config.toml (content, mode, owner) and every file of the registry directory in one command', async () => {
    const cfg = path.join(dir, 'config.toml');
    writeFileSync(cfg, 'version = 2\n# ünïcode and "quotes" $(not run)\n', { mode: 0o640 });
    chmodSync(cfg, 0o640);
    const hosts = path.join(dir, 'certs.d', 'registry.test:5000');
    mkdirSync(hosts, { recursive: true });
    writeFileSync(path.join(hosts, 'hosts.toml'), 'server = "https://registry.test:5000"\n');
    writeFileSync(path.join(hosts, 'client key.pem'), Buffer.from([0, 1, 2, 255]), { mode: 0o600 });
    chmodSync(path.join(hosts, 'client key.pem'), 0o600);
    mkdirSync(path.join(hosts, 'subdir'));
    const f = await gatherContainerdFacts(conn, {
      configFile: cfg,
      configPath: path.join(dir, 'certs.d/'),
      registry: 'registry.test:5000',
    });
    expect(f.version?.major).toBe(1);
    const text = 'version = 2\n# ünïcode and "quotes" $(not run)\n';
    expect(f.config).toEqual({
      exists: true,
      text,
      content: Buffer.from(text),
      mode: 0o640,
      uid: process.getuid?.(),
      gid: process.getgid?.(),
    });
    expect(f.hostsDir.path).toBe(hosts);
    expect(f.hostsDir.exists).toBe(true);
    expect(Object.keys(f.hostsDir.files).sort()).toEqual(['client key.pem', 'hosts.toml']);
    expect(f.hostsDir.files['client key.pem']).toMatchObject({ content: Buffer.from([0, 1, 2, 255]), mode: 0o600 });
  });

  it('reports a missing config.toml and host directory', async () => {
    const f = await gatherContainerdFacts(conn, {
      configFile: path.join(dir, 'nope.toml'),
      configPath: path.join(dir, 'none'),
      registry: 'r.test',
    });
    expect(f.config).toEqual({ exists: false, text: null });
    expect(f.hostsDir).toEqual({ path: path.join(dir, 'none', 'r.test'), exists: false, files: {} });
    expect(f.extraDirs).toEqual({});
  });

  it('learns the flavour and reads other files in the same command, the flavour as the standalone detection says', async () => {
    const cfg = path.join(dir, 'flavour-config.toml');
    writeFileSync(cfg, 'version = 2\n');
    const other = path.join(dir, 'crictl.yaml');
    writeFileSync(other, 'runtime-endpoint: unix:///x.sock\n');
    const { conn: host, outputs } = recording('flavour-host');
    const got = await gatherContainerdFactsWith(
      host,
      { configFile: cfg, configPath: path.join(dir, 'certs.d'), registry: 'r.test' },
      { flavour: true, files: [other, path.join(dir, 'absent.sock')] },
    );
    expect(outputs).toHaveLength(1);
    expect(got.facts.config.text).toBe('version = 2\n');
    expect(got.read.entries.get(other)).toMatchObject({
      kind: 'file',
      content: Buffer.from('runtime-endpoint: unix:///x.sock\n'),
    });
    expect(got.read.entries.get(path.join(dir, 'absent.sock'))?.kind).toBe('absent');
    // The same findings as the detection's own command on this machine (os-release, units, files).
    expect(got.flavour).toEqual(await detectFlavour(conn));
    expect(got.read.records.filter((r) => r.tag === 'flavour').map((r) => r.fields[0])).toContain('os');
    // Findings as records decide as lines do; without the `os` finding the detection did not run.
    expect(
      flavourFromRecords([
        { tag: 'flavour', fields: ['os', 'debian'] },
        { tag: 'flavour', fields: ['k3s', 'header'] },
      ])?.kind,
    ).toBe('k3s');
    expect(flavourFromRecords([{ tag: 'version', fields: ['same'] }])).toBeUndefined();
    // Not asked: no flavour, and no detection in the command.
    const plain = await gatherContainerdFactsWith(host, { configFile: cfg, configPath: dir }, {});
    expect(plain.flavour).toBeUndefined();
    expect(plain.read.records.some((r) => r.tag === 'flavour')).toBe(false);
    expect(outputs).toHaveLength(2);
  });

  it('reads extra directories in the same command', async () => {
    const a = path.join(dir, 'extra', 'a');
    mkdirSync(a, { recursive: true });
    writeFileSync(path.join(a, 'hosts.toml'), 'x');
    const f = await gatherContainerdFacts(conn, {
      configFile: path.join(dir, 'nope.toml'),
      configPath: dir,
      extraDirs: [a, path.join(dir, 'extra', 'b')],
    });
    expect(f.hostsDir.path).toBe('');
    expect(f.extraDirs[a]?.files['hosts.toml']?.content.toString()).toBe('x');
    expect(f.extraDirs[path.join(dir, 'extra', 'b')]?.exists).toBe(false);
  });

  it('refuses a link at config.toml or at a name it manages, skips other links, and refuses a big file', async () => {
    const d = path.join(dir, 'links');
    const hosts = path.join(d, 'certs.d', 'r.test');
    mkdirSync(hosts, { recursive: true });
    symlinkSync('/etc/passwd', path.join(d, 'config.toml'));
    const opts = { configFile: path.join(d, 'config.toml'), configPath: path.join(d, 'certs.d'), registry: 'r.test' };
    await expect(gatherContainerdFacts(conn, opts)).rejects.toThrow(/config\.toml is a symbolic link/);
    rmSync(path.join(d, 'config.toml'));
    symlinkSync('/etc/passwd', path.join(hosts, 'notes.txt'));
    expect(Object.keys((await gatherContainerdFacts(conn, opts)).hostsDir.files)).toEqual([]);
    symlinkSync('/etc/passwd', path.join(hosts, 'ca.crt'));
    await expect(gatherContainerdFacts(conn, opts)).rejects.toThrow(/ca\.crt is a symbolic link/);
    rmSync(path.join(hosts, 'ca.crt'));
    writeFileSync(path.join(hosts, 'image.tar'), Buffer.alloc(1024 * 1024 + 1));
    await expect(gatherContainerdFacts(conn, opts)).rejects.toThrow(/image\.tar is 1048577 bytes, too big/);
  });
});
