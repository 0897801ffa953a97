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

describe('inventory', () => {
  it('a typo inside a host entry names the unknown key and suggests the near one', async () => {
    const bad = join(dir, 'typo-inv.yaml');
    await writeFile(bad, 'hosts:\n  node1: { address: 10.0.0.1 }\n  node2:\n    adress: 10.0.0.2\n    user: root\n');
    const r = await trustplay(['validate', await playbook('ok.yaml', rmiTask('')), '-i', bad]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `${bad}:4:5: inventory: unknown key \`adress\` in \`hosts.node2\` (did you mean \`address\`?)`,
    );
    expect(r.stderr).not.toMatch(/wrong shape/);
    expect(r.stderr).toMatch(/^1 problem found/m);
  });
});

describe('validate --format json', () => {
  it('emits the problems as JSON: file, line, col, severity, message', async () => {
    const pb = await playbook(
      'json.yaml',
      `- hosts: all\n  tasks:\n    - image.rmi: { image: "{{ nope }}" }\n      when: registry = "x"\n`,
    );
    const r = await trustplay(['validate', pb, '-i', inv(), '--format', 'json']);
    expect(r.code).toBe(3);
    const out = JSON.parse(r.stdout) as { valid: boolean; problems: Array<Record<string, unknown>> };
    expect(out.valid).toBe(false);
    expect(out.problems).toEqual([
      expect.objectContaining({
        file: pb,
        line: 3,
        col: 27,
        severity: 'error',
        message: expect.stringMatching(/undefined variable `nope`/),
      }),
      expect.objectContaining({
        file: pb,
        line: 4,
        col: 22,
        severity: 'error',
        message: expect.stringMatching(/single `=`/),
      }),
    ]);
    for (const p of out.problems) expect(Object.keys(p).sort()).toEqual(['col', 'file', 'line', 'message', 'severity']);
    const ok = await trustplay(['validate', await playbook('ok.yaml', rmiTask('')), '-i', inv(), '--format', 'json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ valid: true, plays: 1, hosts: 1, tasks: 1, problems: [] });
  });
});

describe('YAML 1.1 booleans in a YAML 1.2 playbook', () => {
  it('warns where a yes/no/on/off word is used as a string in a boolean place, and still validates', async () => {
    const pb = await playbook(
      'yaml11.yaml',
      `- hosts: all\n  vars:\n    flag: no\n    quoted: "no"\n  tasks:\n    - image.rmi: { image: "{{ registry }}/x:1" }\n      when: flag and not quoted\n    - image.rmi: { image: "{{ registry }}/y:1" }\n      when: off\n`,
    );
    const r = await trustplay(['validate', pb, '-i', inv()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/valid — .*, 2 warnings/);
    expect(r.stderr).toContain(
      `${pb}:3:11: warning: \`flag: no\` is the string "no", which \`when: flag and not quoted\` tests as true`,
    );
    expect(r.stderr).toContain(`${pb}:9:13: warning: \`when: off\` is not a boolean`);
    expect(r.stderr).not.toMatch(/quoted: /);
    const json = JSON.parse((await trustplay(['validate', pb, '-i', inv(), '--format', 'json'])).stdout) as {
      problems: Array<{ severity: string; line: number }>;
    };
    expect(json.problems.map((p) => [p.line, p.severity])).toEqual([
      [3, 'warning'],
      [9, 'warning'],
    ]);
    // Where the schema wants true/false, the word is an error that says how to write it.
    const strict = await playbook('yaml11-strict.yaml', rmiTask('      ignore_errors: yes\n'));
    const s = await trustplay(['validate', strict, '-i', inv()]);
    expect(s.code).toBe(3);
    expect(s.stderr).toMatch(
      /`ignore_errors` must be true or false, not the string "yes"; playbooks are YAML 1.2, where `yes` is a string: write true/,
    );
  });
});
