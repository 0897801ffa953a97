/**
 * Snapshots tried as an attacker who can write the state dir would (SECURITY.md, issue 13 finding
 * 1 and 7): through the real CLI with `connection: local` on files in a temp dir. An edited,
 * forged, copied or unsigned manifest is refused before anything is written or executed; the state
 * dir is checked like OpenSSH's StrictModes; `snapshots list` marks what fails verification; prune
 * decides before it deletes. The format-1 fixture (written by trustplay before signing) still
 * restores, with --allow-unsigned.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { trustplay } from '../support/cli.js';

const FIXTURE = new URL('../fixtures/snapshots/format-1/', import.meta.url).pathname;
const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
const CREDS =
  '{\n\t"auths": {\n\t\t"registry.test:5000": {\n\t\t\t"auth": "c2VjcmV0OnNlY3JldA=="\n\t\t},\n\t\t"other.example": {}\n\t}\n}\n';

let dir: string;
let state: string;
let creds: string;
let inv: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tp-restore-sec-'));
  state = join(dir, 'state');
  mkdirSync(join(dir, 'node', 'docker'), { recursive: true });
  creds = join(dir, 'node', 'docker', 'config.json');
  writeFileSync(creds, CREDS, { mode: 0o640 });
  inv = join(dir, 'inv.yaml');
  writeFileSync(inv, 'hosts:\n  localhost:\n    connection: local\n');
  writeFileSync(
    join(dir, 'wipe.yaml'),
    `- hosts: localhost\n  tasks:\n    - node.creds.wipe:\n        registry: registry.test:5000\n        containerd_auth: false\n        paths: [${creds}]\n`,
  );
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));
// Each test runs the real CLI three to six times; on a loaded 2-core machine that takes a while.
vi.setConfig({ testTimeout: 120_000 });

const cli = (args: string[], env: Record<string, string> = {}) => trustplay(args, { env, timeoutMs: 60_000 });

/** Runs the wipe (a snapshot of the credential file) and returns the snapshot id. */
async function runWipe(stateDir = state, env: Record<string, string> = {}): Promise<string> {
  const r = await cli(['run', join(dir, 'wipe.yaml'), '-i', inv, '--state-dir', stateDir], env);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const id = /snapshot (\S+) saved/.exec(r.stdout + r.stderr)?.[1];
  expect(id).toBeTruthy();
  return id!;
}

type Doc = {
  version: number;
  mac?: unknown;
  hosts: Record<string, { resources: Array<Record<string, unknown>> }>;
};
const manifestFile = (id: string, s = state) => join(s, 'runs', `${id}.json`);
const readDoc = (id: string, s = state) => JSON.parse(readFileSync(manifestFile(id, s), 'utf8')) as Doc;
const writeDoc = (id: string, doc: Doc, s = state) =>
  writeFileSync(manifestFile(id, s), JSON.stringify(doc, null, 2), { mode: 0o600 });

describe('a tampered manifest is refused before anything is written or run', () => {
  const tampers: Array<[string, (d: Doc, victim: string) => void]> = [
    ['changed path (an authorized_keys)', (d, v) => (d.hosts['localhost']!.resources[0]!['path'] = v)],
    ['mode with setuid', (d) => (d.hosts['localhost']!.resources[0]!['mode'] = 0o4755)],
    ['uid', (d) => (d.hosts['localhost']!.resources[0]!['uid'] = 1000)],
    [
      'added resource',
      (d, v) =>
        d.hosts['localhost']!.resources.push({
          ...d.hosts['localhost']!.resources[0]!,
          path: v,
        }),
    ],
    [
      'kubectl field',
      (d, v) =>
        d.hosts['localhost']!.resources.push({
          kind: 'serviceaccount',
          module: 'k8s.sa.clear',
          namespace: 'default',
          name: 'default',
          kubectl: v,
          imagePullSecrets: [],
        }),
    ],
    ['digest traversal', (d) => (d.hosts['localhost']!.resources[0]!['blob'] = '../../../../etc/passwd')],
  ];
  for (const [name, tamper] of tampers) {
    it(name, async () => {
      const id = await runWipe();
      const afterRun = readFileSync(creds);
      const victim = join(dir, 'home', '.ssh', 'authorized_keys');
      const doc = readDoc(id);
      tamper(doc, victim);
      writeDoc(id, doc);
      for (const check of [['--check'], []]) {
        const r = await cli(['restore', id, ...check, '-i', inv, '--state-dir', state]);
        expect(r.code, r.stdout + r.stderr).toBe(3);
        expect(r.stderr).toMatch(/fails verification: its manifest was changed after trustplay wrote it/);
        expect(r.stderr).not.toMatch(/\n\s+at /); // one sentence, no stack trace
      }
      expect(existsSync(victim)).toBe(false);
      expect(readFileSync(creds)).toEqual(afterRun);
      // `snapshots list` marks it instead of failing.
      const list = await cli(['snapshots', 'list', '--state-dir', state]);
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toMatch(new RegExp(`${id}.*UNVERIFIED: snapshot \`${id}\` fails verification`));
    });
  }

  it('an unsigned manifest copied from another state dir: refused, and with --allow-unsigned still held to managed paths', async () => {
    const other = join(dir, 'other-state');
    const id = await runWipe(other);
    mkdirSync(join(state, 'runs'), { recursive: true, mode: 0o700 });
    cpSync(join(other, 'blobs'), join(state, 'blobs'), { recursive: true });
    const doc = readDoc(id, other);
    delete doc.mac;
    doc.version = 1;
    for (const r of doc.hosts['localhost']!.resources) delete r['module'];
    writeDoc(id, doc);
    const r = await cli(['restore', id, '-i', inv, '--state-dir', state]);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(r.stderr).toMatch(/is in format 1, written before snapshots were signed.*--allow-unsigned/);

    const victim = join(dir, 'home', '.ssh', 'authorized_keys');
    doc.hosts['localhost']!.resources[0]!['path'] = victim;
    writeDoc(id, doc);
    const forced = await cli(['restore', id, '--allow-unsigned', '-i', inv, '--state-dir', state]);
    expect(forced.code, forced.stdout + forced.stderr).toBe(3);
    expect(forced.stderr).toMatch(/authorized_keys is not a kind of file trustplay manages/);
    expect(existsSync(victim)).toBe(false);
  });

  it('a signed manifest from another key (a copied state dir, or a lost key) is refused', async () => {
    const id = await runWipe();
    const otherKey = join(dir, 'other.key');
    const r = await cli(['restore', id, '-i', inv, '--state-dir', state, '--snapshot-key', otherKey]);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(r.stderr).toMatch(/cannot be verified: the snapshot key .*other\.key does not exist/);
    expect(existsSync(otherKey)).toBe(false); // reading never creates a key
    writeFileSync(otherKey, 'b'.repeat(64), { mode: 0o600 });
    const again = await cli(['restore', id, '-i', inv, '--state-dir', state], {
      TRUSTPLAY_SNAPSHOT_KEY_FILE: otherKey,
    });
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/was signed with another snapshot key/);
  });

  it('restore --check never runs a program named by an (old-format) manifest', async () => {
    const id = await runWipe();
    const doc = readDoc(id);
    delete doc.mac;
    doc.version = 1;
    for (const r of doc.hosts['localhost']!.resources) delete r['module'];
    const pwned = join(dir, 'pwned');
    const evil = join(dir, 'evil.sh');
    writeFileSync(evil, `#!/bin/sh\ntouch ${pwned}\n`, { mode: 0o755 });
    doc.hosts['localhost']!.resources.push({
      kind: 'serviceaccount',
      namespace: 'default',
      name: 'default',
      kubectl: evil,
      imagePullSecrets: [],
    });
    writeDoc(id, doc);
    const r = await cli(['restore', id, '--check', '--allow-unsigned', '-i', inv, '--state-dir', state], {
      PATH: `${join(dir, 'empty-bin')}:/usr/bin:/bin`,
    });
    expect(r.code, r.stdout + r.stderr).not.toBe(0);
    expect(existsSync(pwned)).toBe(false);
  });
});

describe('the state dir is checked like StrictModes', () => {
  it('a group-writable state dir or a manifest owned by someone else is refused with the fix', async () => {
    const id = await runWipe();
    chmodSync(state, 0o770);
    let r = await cli(['snapshots', 'list', '--state-dir', state]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `snapshot state dir ${state} is writable by its group (mode 0770); fix with: chmod go-w ${state}`,
    );
    r = await cli(['restore', id, '-i', inv, '--state-dir', state]);
    expect(r.code).toBe(3);
    chmodSync(state, 0o700);
    chownSync(manifestFile(id), 1000, 1000);
    r = await cli(['restore', id, '-i', inv, '--state-dir', state]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/is owned by uid 1000, not by you \(uid 0\); fix with: chown 0 /);
  });

  it('a manifest or blob that is a symlink is never followed', async () => {
    const id = await runWipe();
    const blob = readdirSync(join(state, 'blobs', 'sha256'))[0]!;
    const p = join(state, 'blobs', 'sha256', blob);
    const elsewhere = join(dir, 'elsewhere');
    cpSync(p, elsewhere);
    rmSync(p);
    const { symlinkSync } = await import('node:fs');
    symlinkSync(elsewhere, p);
    const r = await cli(['restore', id, '-i', inv, '--state-dir', state]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/is a symbolic link; trustplay never follows links in its state dir/);
  });
});

describe('an untampered snapshot restores, and the snapshot key', () => {
  it('is created 0600 outside the state dir on first use and restore puts the file back', async () => {
    const keyFile = join(dir, 'conf', 'trustplay', 'snapshot.key');
    const env = { TRUSTPLAY_SNAPSHOT_KEY_FILE: keyFile };
    const id = await runWipe(state, env);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readdirSync(state).sort()).toEqual(['blobs', 'runs']);
    const r = await cli(['restore', id, '-i', inv, '--state-dir', state], env);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(readFileSync(creds, 'utf8')).toBe(CREDS);
    expect(statSync(creds).mode & 0o7777).toBe(0o640);
    chmodSync(keyFile, 0o644);
    const loose = await cli(['restore', id, '-i', inv, '--state-dir', state], env);
    expect(loose.code).toBe(3);
    expect(loose.stderr).toContain(`fix with: chmod 600 ${keyFile}`);
  });
});

describe('format 1 (before signing) still restores, only with --allow-unsigned', () => {
  it('restores the committed fixture written by trustplay 0.1.0', async () => {
    const id = readdirSync(join(FIXTURE, 'state', 'runs'))[0]!.replace(/\.json$/, '');
    cpSync(join(FIXTURE, 'state'), state, { recursive: true });
    chmodSync(state, 0o700);
    const text = readFileSync(join(FIXTURE, 'state', 'runs', `${id}.json`), 'utf8').replaceAll('@ROOT@', dir);
    writeFileSync(manifestFile(id), text, { mode: 0o600 });
    const after = readFileSync(join(FIXTURE, 'node', 'config.json.after'));
    mkdirSync(join(dir, 'node', 'kubelet'), { recursive: true });
    writeFileSync(creds, after, { mode: 0o600 });
    writeFileSync(join(dir, 'node', 'kubelet', 'config.json'), after, { mode: 0o644 });

    const list = await cli(['snapshots', 'list', '--state-dir', state]);
    expect(list.stdout).toMatch(/UNSIGNED format 1: restore needs --allow-unsigned/);
    const refused = await cli(['restore', id, '-i', inv, '--state-dir', state]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/--allow-unsigned/);
    const noInv = await cli(['restore', id, '--allow-unsigned', '--state-dir', state]);
    expect(noInv.code).toBe(3);
    expect(noInv.stderr).toMatch(/the inventory it names is not used: pass the inventory with -i/);

    const r = await cli(['restore', id, '--allow-unsigned', '-i', inv, '--state-dir', state]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: snapshot .* is unsigned/);
    const blob = readdirSync(join(FIXTURE, 'state', 'blobs', 'sha256'))[0]!;
    for (const [f, mode] of [
      [creds, 0o640],
      [join(dir, 'node', 'kubelet', 'config.json'), 0o600],
    ] as const) {
      expect(sha(readFileSync(f))).toBe(blob);
      expect(statSync(f).mode & 0o7777).toBe(mode);
    }
  });
});

describe('snapshots prune', () => {
  async function three(): Promise<string[]> {
    const ids = [];
    for (let i = 0; i < 3; i++) {
      writeFileSync(creds, CREDS);
      ids.push(await runWipe());
    }
    return ids;
  }

  it('refuses an empty, non-numeric or zero --keep and removes nothing; --all removes everything', async () => {
    const ids = await three();
    for (const keep of ['', 'abc', '-1', '0', '1.5']) {
      const r = await cli(['snapshots', 'prune', `--keep=${keep}`, '--state-dir', state]);
      expect(r.code, `--keep ${JSON.stringify(keep)}: ${r.stdout}${r.stderr}`).toBe(3);
      expect(r.stderr).toMatch(/--all/);
    }
    expect(readdirSync(join(state, 'runs')).length).toBe(3);
    const both = await cli(['snapshots', 'prune', '--keep', '1', '--all', '--state-dir', state]);
    expect(both.code).toBe(3);
    const all = await cli(['snapshots', 'prune', '--all', '--state-dir', state]);
    expect(all.code, all.stderr).toBe(0);
    expect(readdirSync(join(state, 'runs'))).toEqual([]);
    expect(readdirSync(join(state, 'blobs', 'sha256'))).toEqual([]);
    expect(ids.length).toBe(3);
  });

  it('a badly named or damaged file in runs/ does not stop prune half-way', async () => {
    const ids = await three();
    writeFileSync(join(state, 'runs', 'bad name.json'), '{', { mode: 0o600 });
    writeFileSync(join(state, 'runs', 'broken.json'), '{"version":2}', { mode: 0o600 });
    const r = await cli(['snapshots', 'prune', '--keep', '1', '--state-dir', state]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // The newest good one is kept; unreadable files are left for a person to look at, and the blobs
    // they might need stay.
    expect(readdirSync(join(state, 'runs')).sort()).toEqual(['bad name.json', 'broken.json', `${ids[2]}.json`].sort());
    expect(r.stdout).toMatch(/blobs were not pruned: snapshot .* cannot be read/);
    const show = await cli(['restore', ids[2]!, '--check', '-i', inv, '--state-dir', state]);
    expect(show.code, show.stdout + show.stderr).toBe(2);
  });
});
