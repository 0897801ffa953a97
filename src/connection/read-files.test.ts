/** The one host reader against real files through a local connection, and its framing. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { LocalConnection } from './local.js';
import { forgetReadAhead, namesIn, parseNodeRead, readAhead, readNode, ReadFailed } from './read-files.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-read-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const conn = new LocalConnection({ host: 'localhost' });

it('reads files, directories and trees in one command, never through a link', async () => {
  const certs = path.join(dir, 'certs d', 'reg*one');
  mkdirSync(certs, { recursive: true });
  // Content that looks like the format's own records comes back byte for byte.
  writeFileSync(path.join(certs, 'hosts.toml'), 'server = "x"\n@@end\n@@file L2V0Yy9wYXNzd2Q= 644 0 0 1\n');
  writeFileSync(path.join(certs, 'ca.crt'), 'CA');
  symlinkSync('/etc/passwd', path.join(certs, 'client.key'));
  writeFileSync(path.join(dir, 'big'), Buffer.alloc(3000));
  writeFileSync(path.join(dir, '.hidden'), Buffer.from([0, 255, 10]), { mode: 0o600 });
  symlinkSync('/etc/shadow', path.join(dir, 'shadow'));
  let calls = 0;
  const counting = Object.assign(Object.create(conn) as LocalConnection, {
    exec: (...a: Parameters<LocalConnection['exec']>) => (calls++, conn.exec(...a)),
  });
  const r = await readNode(counting, {
    files: [path.join(dir, 'shadow'), path.join(dir, 'nope'), path.join(dir, '.hidden')],
    dirs: [dir, path.join(dir, 'missing')],
    trees: [path.join(dir, 'certs d')],
    treeContent: 'hosts.toml',
    maxFileBytes: 1000,
  });
  expect(calls).toBe(1);
  const at = (p: string) => r.entries.get(path.join(dir, p));
  expect(at('shadow')).toEqual({ kind: 'link', path: path.join(dir, 'shadow') });
  expect(at('nope')?.kind).toBe('absent');
  expect(at('missing')?.kind).toBe('absent');
  expect(at('.hidden')).toMatchObject({ kind: 'file', content: Buffer.from([0, 255, 10]), mode: 0o600, size: 3 });
  expect(at('big')).toMatchObject({ kind: 'meta', big: true, size: 3000 });
  // In a tree only the named file's content is read; a link is reported, never followed.
  expect(at('certs d/reg*one/hosts.toml')).toMatchObject({
    kind: 'file',
    content: Buffer.from('server = "x"\n@@end\n@@file L2V0Yy9wYXNzd2Q= 644 0 0 1\n'),
  });
  expect(at('certs d/reg*one/ca.crt')).toMatchObject({ kind: 'meta', big: false, size: 2 });
  expect(at('certs d/reg*one/client.key')?.kind).toBe('link');
  expect(namesIn(r, path.join(dir, 'certs d'))).toEqual(['reg*one']);
  expect(namesIn(r, dir)).toEqual(['.hidden', 'big', 'certs d', 'missing', 'nope', 'shadow']);
});

it('stats every regular file of a read with one process, whatever their number', async () => {
  const many = path.join(dir, 'many');
  mkdirSync(many);
  for (let i = 0; i < 12; i++)
    writeFileSync(path.join(many, `f${i}`), `content ${i}\n`, { mode: 0o600 + (i % 2) * 0o40 });
  const log = path.join(dir, 'stat-calls');
  // A shell function named stat, defined by the prelude, is found before the program: it counts.
  const r = await readNode(conn, {
    prelude: `stat() { echo call >>'${log}'; command stat "$@"; }`,
    files: [path.join(many, 'f0'), path.join(dir, 'nope')],
    dirs: [many],
  });
  expect(readFileSync(log, 'utf8')).toBe('call\n');
  for (let i = 0; i < 12; i++)
    expect(r.entries.get(path.join(many, `f${i}`))).toMatchObject({
      kind: 'file',
      content: Buffer.from(`content ${i}\n`),
      mode: 0o600 + (i % 2) * 0o40,
      size: `content ${i}\n`.length,
    });
  expect(r.entries.get(path.join(dir, 'nope'))?.kind).toBe('absent');
});

it('runs a prelude in the same command; its records come back in the same format', async () => {
  const r = await readNode(conn, {
    prelude: 'echo "@@probe $1 $(b64 "$2")"; printf \'two\\nlines\' | base64',
    preludeArgs: ['a', 'b c'],
    files: [path.join(dir, 'nope')],
  });
  expect(r.records).toEqual([{ tag: 'probe', fields: ['a', 'YiBj'], content: Buffer.from('two\nlines') }]);
  expect(r.entries.get(path.join(dir, 'nope'))?.kind).toBe('absent');
});

it('a plain path comes back as itself, any other in base64: both read back the same', async () => {
  const odd = ['=eq', 'new\nline', 'tab\tand space', 'ünï', "quote'"];
  for (const name of odd) writeFileSync(path.join(dir, name), name);
  const r = await readNode(conn, { files: odd.map((n) => path.join(dir, n)) });
  for (const name of odd)
    expect(r.entries.get(path.join(dir, name))).toMatchObject({ kind: 'file', content: Buffer.from(name) });
  expect(
    parseNodeRead('@@absent =/etc/containerd/certs.d/registry.test:5000\n@@end\n').entries.keys().next().value,
  ).toBe('/etc/containerd/certs.d/registry.test:5000');
  expect(parseNodeRead('@@absent PWVx\n@@end\n').entries.keys().next().value).toBe('=eq');
});

it('refuses output cut short, and a failing command names the host and the exit', async () => {
  expect(() => parseNodeRead('@@absent L2E=\n')).toThrow(/end marker/);
  const failing = Object.assign(Object.create(conn) as LocalConnection, {
    exec: () => Promise.resolve({ code: 3, stdout: Buffer.from(''), stderr: Buffer.from('base64: read error') }),
  });
  const e = await readNode(failing, { files: ['/x'] }).catch((err: unknown) => err);
  expect(e).toBeInstanceOf(ReadFailed);
  expect((e as Error).message).toMatch(/^localhost: reading files failed \(exit 3.*base64: read error\)$/);
});

it('reads ahead: registered files ride with the next read, later files-only reads of them need no command', async () => {
  const ra = path.join(dir, 'ahead');
  mkdirSync(path.join(ra, 'listed'), { recursive: true });
  writeFileSync(path.join(ra, 'a'), 'A');
  writeFileSync(path.join(ra, 'listed', 'x'), 'X');
  let calls = 0;
  const host = Object.assign(Object.create(conn) as LocalConnection, {
    exec: (...a: Parameters<LocalConnection['exec']>) => (calls++, conn.exec(...a)),
  });
  const a = path.join(ra, 'a');
  const b = path.join(ra, 'b');
  const x = path.join(ra, 'listed', 'x');
  readAhead(host, [a, b, x]);
  // The carrier lists `listed/`: x would show in its listing, so x waits; a and b ride along,
  // and the carrier's answer holds only what it asked for.
  const carrier = await readNode(host, { files: [path.join(ra, 'c')], dirs: [path.join(ra, 'listed')] });
  expect(calls).toBe(1);
  expect([...carrier.entries.keys()].sort()).toEqual([path.join(ra, 'c'), path.join(ra, 'listed'), x].sort());
  // Seen ahead: no command, the same entries a read of its own gives.
  writeFileSync(a, 'changed behind our back');
  const seen = await readNode(host, { files: [a, b] });
  expect(calls).toBe(1);
  expect(seen.entries.get(a)).toMatchObject({ kind: 'file', content: Buffer.from('A') });
  expect(seen.entries.get(b)?.kind).toBe('absent');
  // One path not seen (x waited), or a read with more than files: asked of the host.
  expect((await readNode(host, { files: [a, x] })).entries.get(x)).toMatchObject({ content: Buffer.from('X') });
  expect(calls).toBe(2);
  // Forgotten (the engine does so before any change): the host is asked again, and tells the truth.
  forgetReadAhead(host);
  expect((await readNode(host, { files: [a] })).entries.get(a)).toMatchObject({
    content: Buffer.from('changed behind our back'),
  });
  expect(calls).toBe(3);
});

it('reads ahead: a directory registered with a trailing slash rides along; a later read of it (and files seen) needs no command', async () => {
  const ra = path.join(dir, 'ahead-dirs');
  const d = path.join(ra, 'conf.d');
  mkdirSync(path.join(d, 'sub'), { recursive: true });
  writeFileSync(path.join(d, 'a.conf'), 'A');
  writeFileSync(path.join(d, 'sub', 'deep.conf'), 'D');
  writeFileSync(path.join(ra, 'main.conf'), 'M');
  let calls = 0;
  const host = Object.assign(Object.create(conn) as LocalConnection, {
    exec: (...a: Parameters<LocalConnection['exec']>) => (calls++, conn.exec(...a)),
  });
  const main = path.join(ra, 'main.conf');
  const gone = path.join(ra, 'absent.d');
  readAhead(host, [main, `${d}/`, `${gone}/`]);
  // A carrier with a size limit (as containerd's facts read has): the directory rides with it.
  const carrier = await readNode(host, { files: [path.join(ra, 'carrier')], maxFileBytes: 4 });
  expect(calls).toBe(1);
  // The carrier's answer holds only what it asked for.
  expect([...carrier.entries.keys()]).toEqual([path.join(ra, 'carrier')]);
  writeFileSync(path.join(d, 'a.conf'), 'changed behind our back');
  // No limit asked, but every file came whole: answered from what rode along.
  const seen = await readNode(host, { files: [main], dirs: [d, `${gone}/`] });
  expect(calls).toBe(1);
  expect([...seen.entries.keys()].sort()).toEqual([main, d, path.join(d, 'a.conf'), gone].sort());
  expect(seen.entries.get(path.join(d, 'a.conf'))).toMatchObject({ kind: 'file', content: Buffer.from('A') });
  expect(seen.entries.get(gone)?.kind).toBe('absent');
  // A task writes a file in the directory: the listing is forgotten, the host asked, the truth told.
  forgetReadAhead(host, [path.join(d, 'b.conf')]);
  writeFileSync(path.join(d, 'b.conf'), 'B');
  const after = await readNode(host, { dirs: [d] });
  expect(calls).toBe(2);
  expect(after.entries.get(path.join(d, 'b.conf'))).toMatchObject({ content: Buffer.from('B') });
  expect(after.entries.get(path.join(d, 'a.conf'))).toMatchObject({ content: Buffer.from('changed behind our back') });
  // The file read ahead beside it still answers.
  expect((await readNode(host, { files: [main] })).entries.get(main)).toMatchObject({ content: Buffer.from('M') });
  expect(calls).toBe(2);
  forgetReadAhead(host);
});

it('reads ahead: a listing with a file too big for its limit answers only a read with that limit', async () => {
  const d = path.join(dir, 'ahead-big.d');
  mkdirSync(d, { recursive: true });
  writeFileSync(path.join(d, 'small.conf'), 'S');
  writeFileSync(path.join(d, 'big.conf'), 'B'.repeat(10));
  let calls = 0;
  const host = Object.assign(Object.create(conn) as LocalConnection, {
    exec: (...a: Parameters<LocalConnection['exec']>) => (calls++, conn.exec(...a)),
  });
  readAhead(host, [`${d}/`]);
  await readNode(host, { files: [path.join(dir, 'carrier')], maxFileBytes: 4 });
  expect(calls).toBe(1);
  expect((await readNode(host, { dirs: [d], maxFileBytes: 4 })).entries.get(path.join(d, 'big.conf'))).toMatchObject({
    kind: 'meta',
    big: true,
  });
  expect(calls).toBe(1);
  // Without a limit big.conf's content is wanted, and it did not ride along: the host is asked.
  expect((await readNode(host, { dirs: [d] })).entries.get(path.join(d, 'big.conf'))).toMatchObject({
    kind: 'file',
    content: Buffer.from('B'.repeat(10)),
  });
  expect(calls).toBe(2);
  forgetReadAhead(host);
});

it('reads ahead: a carrier that fails leaves the later reads to ask for themselves', async () => {
  const a = path.join(dir, 'ahead-fail');
  writeFileSync(a, 'A');
  let calls = 0;
  const host = Object.assign(Object.create(conn) as LocalConnection, {
    exec: async (...args: Parameters<LocalConnection['exec']>) =>
      ++calls === 1 ? { code: 1, stdout: Buffer.alloc(0), stderr: Buffer.from('boom') } : conn.exec(...args),
  });
  readAhead(host, [a]);
  await expect(readNode(host, { files: [path.join(dir, 'other')] })).rejects.toBeInstanceOf(ReadFailed);
  expect((await readNode(host, { files: [a] })).entries.get(a)).toMatchObject({ content: Buffer.from('A') });
  expect(calls).toBe(2);
});

it('reads ahead: forgetting the paths a task wrote keeps the rest; a fresh read always asks the host', async () => {
  const ra = path.join(dir, 'ahead-partial');
  mkdirSync(ra, { recursive: true });
  writeFileSync(path.join(ra, 'docker.json'), 'D');
  let calls = 0;
  const host = Object.assign(Object.create(conn) as LocalConnection, {
    exec: (...a: Parameters<LocalConnection['exec']>) => (calls++, conn.exec(...a)),
  });
  const docker = path.join(ra, 'docker.json');
  const certsDir = path.join(ra, 'certs.d', 'r.test');
  const hosts = path.join(certsDir, 'hosts.toml');
  readAhead(host, [docker, certsDir, hosts]);
  await readNode(host, { files: [path.join(ra, 'carrier')] });
  expect(calls).toBe(1);
  // A task writes hosts.toml (creating its directory): those two are asked again, docker.json is not.
  mkdirSync(certsDir, { recursive: true });
  writeFileSync(hosts, 'server = "https://r.test"\n');
  forgetReadAhead(host, [hosts]);
  expect((await readNode(host, { files: [docker] })).entries.get(docker)).toMatchObject({ content: Buffer.from('D') });
  expect(calls).toBe(1);
  expect((await readNode(host, { files: [certsDir] })).entries.get(certsDir)?.kind).toBe('dir');
  expect(calls).toBe(2);
  expect((await readNode(host, { files: [hosts] })).entries.get(hosts)?.kind).toBe('file');
  expect(calls).toBe(3);
  // A fresh read (the snapshot's, before a change) asks the host even for a file read ahead.
  writeFileSync(docker, 'changed');
  expect((await readNode(host, { files: [docker], fresh: true })).entries.get(docker)).toMatchObject({
    content: Buffer.from('changed'),
  });
  expect(calls).toBe(4);
  forgetReadAhead(host);
});
