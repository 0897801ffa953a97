/**
 * The engine over real OpenSSH on loopback: several hosts at 127.0.0.x, key auth, a known_hosts
 * file written by the test. Files the test modules write land in a temp dir this test owns (the
 * sshd namespaces share /tmp with this machine), so the results are checked on disk.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, makeKeyPair, startSshd, sshdUnavailable, type Sshd } from '../support/sshd.js';
import { inventoryFrom, runText } from '../support/engine-harness.js';

const unavailable = sshdUnavailable();
if (unavailable && process.env['CI'] === 'true') throw new Error(`engine SSH tests cannot run in CI: ${unavailable}`);

describe.skipIf(Boolean(unavailable))(`engine over real sshd${unavailable ? ` (not run: ${unavailable})` : ''}`, () => {
  const servers: Sshd[] = [];
  let dir: string;
  let known: string;
  let closedPort: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trustplay-engine-'));
    for (const i of [1, 2, 3, 4]) servers.push(await startSshd({ address: `127.0.0.${20 + i}` }));
    known = join(dir, 'known_hosts');
    await writeFile(known, (await Promise.all(servers.map((s) => readFile(s.knownHosts, 'utf8')))).join(''));
    closedPort = await freePort('127.0.0.29');
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function inventory(extra = '', knownHosts = known): string {
    const hosts = servers
      .map(
        (s, i) => `  h${i + 1}: { address: ${s.address}, port: ${s.port}, user: root, identity_file: ${s.clientKey} }`,
      )
      .join('\n');
    return `ssh: { known_hosts: ${knownHosts} }\nvars: { dir: ${dir} }\nhosts:\n${hosts}\n${extra}`;
  }

  const sha = async (p: string) =>
    createHash('sha256')
      .update(await readFile(p))
      .digest('hex');

  it('runs hosts in parallel, one connection each, and converges', async () => {
    const pb = `
- hosts: all
  tasks:
    - name: write a file
      test.file: { path: "{{ dir }}/{{ inventory_hostname }}/a.txt", content: "hello {{ inventory_hostname }}\\n" }
    - name: write another
      test.file: { path: "{{ dir }}/{{ inventory_hostname }}/b.txt", content: "b\\n", mode: 384 }
`;
    const first = await runText(pb, inventoryFrom(inventory()));
    expect(first.exitCode, first.text).toBe(0);
    for (const h of ['h1', 'h2', 'h3', 'h4']) {
      expect(await readFile(join(dir, h, 'a.txt'), 'utf8')).toBe(`hello ${h}\n`);
      expect((await stat(join(dir, h, 'b.txt'))).mode & 0o777).toBe(0o600);
      expect(first.result.recap[h]).toMatchObject({ changed: 2, ok: 0, failed: 0 });
    }
    // Parallel: every host started before any host finished.
    const starts = first.events.flatMap((e, i) => (e.type === 'host-start' ? [i] : []));
    const firstEnd = first.events.findIndex((e) => e.type === 'host-end');
    expect(Math.max(...starts)).toBeLessThan(firstEnd);
    // One TCP connection per host for the whole run: sshd logs one accepted login per connection.
    for (const s of servers) expect(s.log().match(/Accepted publickey/g)?.length).toBe(1);

    const second = await runText(pb, inventoryFrom(inventory()));
    expect(second.exitCode).toBe(0);
    for (const h of ['h1', 'h2', 'h3', 'h4']) expect(second.result.recap[h]).toMatchObject({ changed: 0, ok: 2 });
  });

  it('an unreachable host gives exit 4 while the others complete', async () => {
    const pb = `- hosts: all\n  tasks:\n    - test.file: { path: "{{ dir }}/{{ inventory_hostname }}/u.txt", content: "u" }\n`;
    const r = await runText(
      pb,
      inventoryFrom(
        inventory(
          `  down: { address: 127.0.0.29, port: ${closedPort}, user: root, identity_file: ${servers[0]!.clientKey} }\n`,
        ).replace('hosts:\n', 'hosts:\n'),
      ),
    );
    expect(r.exitCode, r.text).toBe(4);
    expect(r.result.recap['down']).toMatchObject({ unreachable: 1 });
    expect(r.text).toMatch(/down \| UNREACHABLE \| .*connection refused/);
    for (const h of ['h1', 'h2', 'h3', 'h4']) expect(await readFile(join(dir, h, 'u.txt'), 'utf8')).toBe('u');
  });

  it('refuses an unknown host key and a changed one, naming the fingerprint', async () => {
    const partial = join(dir, 'partial_known_hosts');
    await writeFile(partial, await readFile(servers[0]!.knownHosts, 'utf8'));
    const pb = `- hosts: all\n  tasks:\n    - test.file: { path: "{{ dir }}/{{ inventory_hostname }}/k.txt", content: "k" }\n`;
    const unknown = await runText(pb, inventoryFrom(inventory('', partial)));
    expect(unknown.exitCode).toBe(4);
    expect(unknown.result.recap['h1']).toMatchObject({ changed: 1 });
    expect(unknown.result.recap['h2']).toMatchObject({ unreachable: 1 });
    expect(unknown.text).toMatch(/h2 \| UNREACHABLE \| .*SHA256:[A-Za-z0-9+/]{43}/);
    // A changed key: h2's entry replaced by h3's key.
    const h3Key = (await readFile(servers[2]!.knownHosts, 'utf8')).trim().split(' ').slice(1).join(' ');
    const changed = join(dir, 'changed_known_hosts');
    await writeFile(
      changed,
      (await readFile(known, 'utf8'))
        .split('\n')
        .map((l) =>
          l.startsWith(`[${servers[1]!.address}]:${servers[1]!.port} `)
            ? `[${servers[1]!.address}]:${servers[1]!.port} ${h3Key}`
            : l,
        )
        .join('\n'),
    );
    const before = await sha(changed);
    const r = await runText(pb, inventoryFrom(inventory('', changed)), { acceptNewHostKeys: true });
    expect(r.result.recap['h2']).toMatchObject({ unreachable: 1 });
    expect(r.text).toMatch(/h2 \| UNREACHABLE \| .*(changed|CHANGED)/);
    expect(await sha(changed)).toBe(before);
  });

  it('a failing task fails only its host; the others finish', async () => {
    const pb = `
- hosts: all
  tasks:
    - test.fail: { message: "boom on {{ inventory_hostname }}" }
      when: inventory_hostname == "h2"
    - test.file: { path: "{{ dir }}/{{ inventory_hostname }}/f.txt", content: "f" }
`;
    const r = await runText(pb, inventoryFrom(inventory()));
    expect(r.exitCode).toBe(1);
    expect(r.result.recap['h2']).toMatchObject({ failed: 1, changed: 0 });
    expect(r.text).toMatch(/h2 \| FAILED \| test.fail\n\s+\|\s+boom on h2/);
    for (const h of ['h1', 'h3', 'h4']) expect(r.result.recap[h]).toMatchObject({ skipped: 1, changed: 1, failed: 0 });
    await expect(stat(join(dir, 'h2', 'f.txt'))).rejects.toThrow();
  });

  it('serial batches run in order', async () => {
    const pb = `- hosts: all\n  serial: [1, 2]\n  tasks:\n    - test.file: { path: "{{ dir }}/{{ inventory_hostname }}/s.txt", content: "s" }\n`;
    const r = await runText(pb, inventoryFrom(inventory()));
    expect(r.exitCode).toBe(0);
    const seq = r.events.flatMap((e) =>
      e.type === 'host-start' ? [`start ${e.host}`] : e.type === 'host-end' ? [`end ${e.host}`] : [],
    );
    // Batch 1 = [h1]; batch 2 = [h2, h3]; batch 3 = [h4] (the last size repeats).
    expect(seq.indexOf('end h1')).toBeLessThan(seq.indexOf('start h2'));
    expect(seq.indexOf('end h2')).toBeLessThan(seq.indexOf('start h4'));
    expect(seq.indexOf('end h3')).toBeLessThan(seq.indexOf('start h4'));
    expect(seq.indexOf('start h3')).toBeLessThan(seq.indexOf('end h2'));
  });

  it('handlers run once per host, and only when notified', async () => {
    const pb = `
- hosts: all
  tasks:
    - test.file: { path: "{{ dir }}/{{ inventory_hostname }}/n1.txt", content: "1" }
      notify: count
    - test.file: { path: "{{ dir }}/{{ inventory_hostname }}/n2.txt", content: "2" }
      notify: count
  handlers:
    - name: count
      test.append: { path: "{{ dir }}/{{ inventory_hostname }}/handler.log", line: ran }
`;
    await runText(pb, inventoryFrom(inventory()));
    await runText(pb, inventoryFrom(inventory()));
    for (const h of ['h1', 'h2', 'h3', 'h4']) expect(await readFile(join(dir, h, 'handler.log'), 'utf8')).toBe('ran\n');
  });

  it('check mode changes nothing on disk and reports drift (exit 2)', async () => {
    const pb = `- hosts: all\n  tasks:\n    - test.file: { path: "{{ dir }}/{{ inventory_hostname }}/a.txt", content: "changed content" }\n`;
    const before = await Promise.all(['h1', 'h2', 'h3', 'h4'].map((h) => sha(join(dir, h, 'a.txt'))));
    const r = await runText(pb, inventoryFrom(inventory()), { check: true, diff: true });
    expect(r.exitCode).toBe(2);
    expect(await Promise.all(['h1', 'h2', 'h3', 'h4'].map((h) => sha(join(dir, h, 'a.txt'))))).toEqual(before);
    expect(r.text).toMatch(/h1 \| would change \| test.file/);
    expect(r.text).toMatch(/^-hello h1$/m);
    expect(r.text).toMatch(/^\+changed content$/m);
    expect(await readdir(r.stateDir)).toEqual([]); // no snapshot for a run that changed nothing
  });

  it('json and jsonl output parse and match the recap; secrets are masked', async () => {
    const pb = `- hosts: all\n  tasks:\n    - test.file: { path: "{{ dir }}/{{ inventory_hostname }}/j.txt", content: "token s3cr3t-value", secret: "s3cr3t-value" }\n`;
    const r = await runText(pb, inventoryFrom(inventory()), { diff: true });
    expect(r.exitCode).toBe(0);
    for (const [h, v] of Object.entries(r.json.hosts)) {
      expect(v.recap).toEqual(r.result.recap[h]);
      expect(v.tasks.map((t) => t.status)).toEqual(['changed']);
    }
    const lines = r.jsonl
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; result?: { host: string; status: string }; recap?: unknown });
    expect(lines[0]!.type).toBe('run-start');
    expect(lines.at(-1)!.type).toBe('run-end');
    expect(lines.at(-1)!.recap).toEqual(r.result.recap);
    expect(lines.filter((l) => l.type === 'task-result').length).toBe(4);
    for (const out of [r.text, r.jsonl, JSON.stringify(r.json)]) {
      expect(out).not.toContain('s3cr3t-value');
      expect(out).toContain('********');
    }
  });

  it("the identity file's passphrase is one of the run's secrets: masked in every output", async () => {
    const passphrase = 'pass-phrase-7Q4z';
    const key = await makeKeyPair(join(dir, 'locked_ed25519'), 'ed25519', passphrase);
    await appendFile(servers[0]!.authorizedKeys, await readFile(`${key}.pub`));
    process.env['TP_ENGINE_PASSPHRASE'] = passphrase;
    try {
      const s = servers[0]!;
      const inv = `ssh: { known_hosts: ${known} }\nvars: { dir: ${dir} }\nhosts:\n  h1: { address: ${s.address}, port: ${s.port}, user: root, identity_file: ${key}, identity_passphrase_env: TP_ENGINE_PASSPHRASE }\n`;
      // A file whose content holds the passphrase (shown by --diff), and a failure naming it.
      const pb = `- hosts: all\n  tasks:\n    - test.file: { path: "{{ dir }}/pp/note.txt", content: "reused ${passphrase} here" }\n    - test.fail: { message: "could not use ${passphrase}" }\n`;
      const r = await runText(pb, inventoryFrom(inv), { diff: true });
      // The connection was made with the key the passphrase opens: the file was written over SSH.
      expect(await readFile(join(dir, 'pp', 'note.txt'), 'utf8')).toBe(`reused ${passphrase} here`);
      expect(r.exitCode, r.text).toBe(1);
      for (const out of [r.text, r.jsonl, JSON.stringify(r.json)]) {
        expect(out).not.toContain(passphrase);
        expect(out).toContain('could not use ********');
      }
    } finally {
      delete process.env['TP_ENGINE_PASSPHRASE'];
    }
  });

  it('snapshots every file before changing it', async () => {
    await mkdir(join(dir, 'h1'), { recursive: true });
    await appendFile(join(dir, 'h1', 'a.txt'), 'extra\n');
    const before = await readFile(join(dir, 'h1', 'a.txt'));
    const pb = `- hosts: h1\n  tasks:\n    - test.file: { path: "{{ dir }}/h1/a.txt", content: "new" }\n`;
    const r = await runText(pb, inventoryFrom(inventory()));
    expect(r.exitCode, r.text).toBe(0);
    const runs = await readdir(join(r.stateDir, 'runs'));
    expect(runs.length).toBe(1);
    const manifest = JSON.parse(await readFile(join(r.stateDir, 'runs', runs[0]!), 'utf8')) as {
      hosts: Record<string, { resources: Array<{ path: string; blob: string }> }>;
    };
    const saved = manifest.hosts['h1']!.resources[0]!;
    expect(saved.path).toBe(join(dir, 'h1', 'a.txt'));
    expect(await readFile(join(r.stateDir, 'blobs', 'sha256', saved.blob))).toEqual(before);
    expect((await stat(join(r.stateDir, 'runs', runs[0]!))).mode & 0o777).toBe(0o600);
    expect((await stat(r.stateDir)).mode & 0o777).toBe(0o700);
  });
});
