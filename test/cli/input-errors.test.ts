/**
 * Mistakes a person makes on the command line or in a playbook, through the real CLI: each is
 * caught before anything runs (exit 3), located, and says what to do; none answers green.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trustplay } from '../support/cli.js';

let dir: string;
const inv = () => join(dir, 'inv.yaml');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustplay-input-'));
  await writeFile(inv(), 'vars:\n  registry: registry.test:5443\nhosts:\n  w1: { address: 127.0.0.11 }\n');
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function playbook(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

const rmiTask = (extra: string) =>
  `- hosts: all\n  tasks:\n    - name: drop\n      image.rmi: { image: "{{ registry }}/app:1" }\n${extra}`;

describe('when: conditions are read at load time', () => {
  it.each([
    ['registry = "x"', 5, 22, /a single `=` is not a comparison: write `==`/],
    ['registry ==', 5, 24, /unexpected end/],
    ['registry is defind', 5, 25, /only `is defined`.*\(did you mean `defined`\?\)/],
  ])('`when: %s` is a located error from validate, run and check', async (cond, line, col, message) => {
    const pb = await playbook(`when-${line}-${col}.yaml`, rmiTask(`      when: ${cond}\n`));
    for (const cmd of ['validate', 'check', 'run']) {
      const r = await trustplay([cmd, pb, '-i', inv()]);
      expect(r.code, `${cmd}: ${r.stderr}`).toBe(3);
      expect(r.stderr).toContain(`${pb}:${line}:${col}: `);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/nothing ran/);
    }
  });
});

describe('every problem of a playbook at once', () => {
  it('an undefined variable does not hide a bad notify in the same task', async () => {
    const pb = await playbook(
      'many.yaml',
      `- hosts: all\n  tasks:\n    - name: drop\n      image.rmi: { image: "{{ nope }}" }\n      notify: Restat\n  handlers:\n    - name: Restart\n      image.rmi: { image: "{{ registry }}/x:1" }\n`,
    );
    const r = await trustplay(['validate', pb, '-i', inv()]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${pb}:4:`);
    expect(r.stderr).toMatch(/undefined variable `nope`/);
    expect(r.stderr).toContain(
      `${pb}:5:15: notify: no handler named \`Restat\` in this play (did you mean \`Restart\`?)`,
    );
    expect(r.stderr).toMatch(/2 problems found/);
  });
});

describe('templates', () => {
  it('a filter is said to be unsupported, not advised as a -e variable', async () => {
    const pb = await playbook(
      'filter.yaml',
      `- hosts: all\n  tasks:\n    - image.rmi: { image: "{{ registry | upper }}" }\n`,
    );
    const r = await trustplay(['validate', pb, '-i', inv()]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `${pb}:3:27: image.rmi: \`{{ registry | upper }}\`: filters (\`| upper\`) are not supported`,
    );
    expect(r.stderr).not.toMatch(/-e /);
  });
});

describe('command line', () => {
  it('-e refuses a variable name that is not a name', async () => {
    const r = await trustplay(['validate', await playbook('ok.yaml', rmiTask('')), '-i', inv(), '-e', 'a b=c']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^-e: `a b` is not a variable name/);
  });

  it('an option typo gets a suggestion, as a command typo does', async () => {
    const r = await trustplay(['validate', await playbook('ok.yaml', rmiTask('')), '-i', inv(), '--limt', 'w1']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^unknown option `--limt` \(did you mean `--limit`\?\)/);
    const cmd = await trustplay(['valdate']);
    expect(cmd.stderr).toMatch(/did you mean `validate`/);
  });

  it('a tag that is on no task is exit 3 with a sentence saying so, for run and check too', async () => {
    const pb = await playbook('tags.yaml', rmiTask('      tags: [images]\n'));
    for (const cmd of ['validate', 'check', 'run']) {
      const r = await trustplay([cmd, pb, '-i', inv(), '-t', 'imgaes']);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(
        /^--tags: tag `imgaes` is on no task of the playbook \(did you mean `images`\?\); tags: images/,
      );
      expect(r.stdout).not.toMatch(/desired state/);
    }
    const skip = await trustplay(['validate', pb, '-i', inv(), '--skip-tags', 'nosuch']);
    expect(skip.code).toBe(3);
    expect(skip.stderr).toMatch(/--skip-tags: tag `nosuch` is on no task/);
    const ok = await trustplay(['validate', pb, '-i', inv(), '-t', 'images']);
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe('after a run', () => {
  it('the undo hint is a command that works: it names the --state-dir the run used', async () => {
    const creds = join(dir, 'config.json');
    await writeFile(creds, JSON.stringify({ auths: { 'registry.test:5443': { auth: 'eDp5' } } }));
    const local = join(dir, 'local.yaml');
    await writeFile(local, 'hosts:\n  here: { connection: local }\n');
    const pb = await playbook(
      'wipe.yaml',
      `- hosts: all\n  tasks:\n    - node.creds.wipe:\n        registry: registry.test:5443\n        paths: ["${creds}"]\n        containerd_auth: false\n`,
    );
    const state = join(dir, 'state dir');
    const env = { TRUSTPLAY_LOCK_DIR: dir };
    const r = await trustplay(['run', pb, '-i', local, '--state-dir', state], { env });
    expect(r.code, r.stderr).toBe(0);
    const hint = /undo with: (trustplay restore .*)\)$/m.exec(r.stderr)?.[1];
    expect(hint).toMatch(/^trustplay restore \S+ --state-dir '.*state dir'$/);
    // Run the hint as printed (through a shell, as a person pastes it): it finds the snapshot.
    const { execFileSync } = await import('node:child_process');
    const argv = execFileSync('sh', ['-c', `printf '%s\\n' ${hint!.replace(/^trustplay /, '')}`])
      .toString()
      .trimEnd()
      .split('\n');
    const undo = await trustplay([...argv, '-i', local], { env });
    expect(undo.code, undo.stderr).toBe(0);
    expect(JSON.parse(await (await import('node:fs/promises')).readFile(creds, 'utf8'))).toEqual({
      auths: { 'registry.test:5443': { auth: 'eDp5' } },
    });
  });
});
