/**
 * Mistakes a person makes on the command line or in a playbook, through the real CLI: each is
 * caught before anything runs (exit 3), located, and says what to do; none answers green.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

describe('every problem of a task at once', () => {
  it('two undefined variables and a bad static argument in one task are three located errors', async () => {
    const pb = await playbook(
      'task-many.yaml',
      `- hosts: all\n  tasks:\n    - containerd.tls:\n        registry: "{{ nope }}"\n        style: "{{ nope2 }}"\n        restart_timeout: 0\n`,
    );
    const r = await trustplay(['validate', pb, '-i', inv()]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${pb}:4:19: containerd.tls: undefined variable \`nope\``);
    expect(r.stderr).toContain(`${pb}:5:16: containerd.tls: undefined variable \`nope2\``);
    expect(r.stderr).toContain(`${pb}:6:26: containerd.tls: \`restart_timeout\` must be >= 1, not number 0`);
    expect(r.stderr).toMatch(/^3 problems found/m);
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

describe('controller-side files are checked at validation', () => {
  const repoCa = fileURLToPath(new URL('../../playbooks/example-ca.pem', import.meta.url));
  const caTask = (ca: string, extra = '') =>
    `- hosts: all\n  tasks:\n    - containerd.tls:\n        registry: "{{ registry }}"\n        ca: ${ca}\n${extra}`;

  it('a CA that does not exist is a located error, given by -e or by the shipped example inventory', async () => {
    const pb = await playbook('ca-var.yaml', caTask('"{{ registry_ca }}"'));
    const r = await trustplay(['validate', pb, '-i', inv(), '-e', 'registry_ca=/nonexistent.pem']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `${pb}:5:13: containerd.tls: \`ca\` (\`{{ registry_ca }}\`) file /nonexistent.pem does not exist on the controller`,
    );
    for (const cmd of ['check', 'run']) {
      const c = await trustplay([cmd, pb, '-i', inv(), '-e', 'registry_ca=/nonexistent.pem']);
      expect(c.code).toBe(3);
      expect(c.stderr).toMatch(/nothing ran/);
    }
    // The example inventory as it shipped named ./registry-ca.pem, which does not exist beside it.
    const example = readFileSync(fileURLToPath(new URL('../../inventory.example.yaml', import.meta.url)), 'utf8');
    const copy = join(dir, 'inventory.example.yaml');
    await writeFile(copy, example.replace(/registry_ca: .*/, 'registry_ca: ./registry-ca.pem'));
    const shipped = await trustplay(['validate', 'playbooks/fix-registry.yaml', '-i', copy]);
    expect(shipped.code).toBe(3);
    expect(shipped.stderr).toContain(`file ${join(dir, 'registry-ca.pem')} does not exist on the controller`);
    const now = await trustplay(['validate', 'playbooks/fix-registry.yaml', '-i', 'inventory.example.yaml']);
    expect(now.code, now.stderr).toBe(0);
  });

  it('relative paths resolve against the file that names them, not the working directory', async () => {
    const sub = join(dir, 'site');
    await mkdir(join(sub, 'certs'), { recursive: true });
    await copyFile(repoCa, join(sub, 'certs', 'ca.pem'));
    // The inventory names ./certs/ca.pem beside itself; the CLI runs from the repository.
    const siteInv = join(sub, 'inventory.yaml');
    await writeFile(
      siteInv,
      'vars:\n  registry: registry.test:5443\n  registry_ca: ./certs/ca.pem\nhosts:\n  w1: { address: 127.0.0.11 }\n',
    );
    const pb = await playbook('ca-from-inventory.yaml', caTask('"{{ registry_ca }}"'));
    const r = await trustplay(['validate', pb, '-i', siteInv]);
    expect(r.code, r.stderr).toBe(0);
    // A literal path in the playbook resolves against the playbook's directory.
    const pbSub = join(sub, 'literal.yaml');
    await writeFile(pbSub, caTask('certs/ca.pem'));
    expect((await trustplay(['validate', pbSub, '-i', inv()])).code).toBe(0);
    const pbElsewhere = await playbook('literal.yaml', caTask('certs/ca.pem'));
    const missing = await trustplay(['validate', pbElsewhere, '-i', inv()]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain(`file ${join(dir, 'certs/ca.pem')} does not exist`);
  });

  it('a list of CAs (a rotation): each item resolves against the playbook and a bad one is located at its item', async () => {
    const sub = join(dir, 'rotation');
    await mkdir(join(sub, 'certs'), { recursive: true });
    await copyFile(repoCa, join(sub, 'certs', 'old.pem'));
    await copyFile(repoCa, join(sub, 'certs', 'new.pem'));
    const ok = join(sub, 'both.yaml');
    await writeFile(ok, caTask('\n          - certs/old.pem\n          - certs/new.pem'));
    const r = await trustplay(['validate', ok, '-i', inv()]);
    expect(r.code, r.stderr).toBe(0);
    const bad = join(sub, 'one-missing.yaml');
    await writeFile(bad, caTask('\n          - certs/old.pem\n          - certs/next.pem'));
    const m = await trustplay(['validate', bad, '-i', inv()]);
    expect(m.code).toBe(3);
    expect(m.stderr).toContain(
      `${bad}:7:13: containerd.tls: \`ca[1]\` file ${join(sub, 'certs/next.pem')} does not exist on the controller`,
    );
  });

  it('a CA that is not a PEM certificate, or is a private key, is a located error that never shows the key', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const keyFile = join(dir, 'key.pem');
    await writeFile(keyFile, keyPem);
    const both = join(dir, 'both.pem');
    await writeFile(both, readFileSync(repoCa, 'utf8') + keyPem);
    const der = join(dir, 'ca.der');
    await writeFile(der, Buffer.from([0x30, 0x82, 0x01, 0x0a, 0x02]));
    const cases: Array<[string, RegExp]> = [
      [keyFile, /`ca` file .*key\.pem is a private key, not a certificate/],
      [both, /`ca` file .*both\.pem also holds a private key: give a file with the certificate only/],
      [der, /`ca` file .*ca\.der is not a PEM certificate/],
      [dir, /`ca` file .* is a directory on the controller/],
    ];
    for (const [ca, message] of cases) {
      const r = await trustplay(['validate', await playbook('bad-ca.yaml', caTask(JSON.stringify(ca))), '-i', inv()]);
      expect(r.code, ca).toBe(3);
      expect(r.stderr).toMatch(/bad-ca\.yaml:5:13: containerd\.tls: /);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toContain(keyPem.split('\n')[1]!);
    }
    // Client certificate and key: the key must be a private key, the certificate a certificate.
    const pair = await playbook(
      'client.yaml',
      `- hosts: all\n  tasks:\n    - containerd.tls:\n        registry: "{{ registry }}"\n        client_cert: ${JSON.stringify(keyFile)}\n        client_key: ${JSON.stringify(repoCa)}\n`,
    );
    const r = await trustplay(['validate', pair, '-i', inv()]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/client\.yaml:5:22: containerd\.tls: `client_cert` file .* is a private key/);
    expect(r.stderr).toMatch(
      /client\.yaml:6:21: containerd\.tls: `client_key` file .*example-ca\.pem is not a PEM private key/,
    );
    // An inline key that is not a key: named by position, its text shown nowhere (nor in the source line).
    const inline = await playbook(
      'client-inline.yaml',
      `- hosts: all\n  tasks:\n    - containerd.tls:\n        registry: "{{ registry }}"\n        client_cert: ${JSON.stringify(repoCa)}\n        client_key: "-----BEGIN PRIVATE KEY-----\\nc2VjcmV0LWtleS1tYXRlcmlhbA==\\n-----END PRIVATE KEY-----"\n`,
    );
    const i = await trustplay(['validate', inline, '-i', inv()]);
    expect(i.code).toBe(3);
    expect(i.stderr).toMatch(
      /client-inline\.yaml:6:21: containerd\.tls: the inline `client_key` is not a PEM private key/,
    );
    expect(i.stderr).not.toContain('c2VjcmV0LWtleS1tYXRlcmlhbA');
    const good = await playbook(
      'client-ok.yaml',
      `- hosts: all\n  tasks:\n    - containerd.tls:\n        registry: "{{ registry }}"\n        client_cert: ${JSON.stringify(repoCa)}\n        client_key: ${JSON.stringify(keyFile)}\n`,
    );
    const ok = await trustplay(['validate', good, '-i', inv()]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('a kubeconfig given as a local path is checked when the host is this machine', async () => {
    const local = join(dir, 'local-inv.yaml');
    await writeFile(local, 'hosts:\n  here: { connection: local }\n  there: { address: 127.0.0.12 }\n');
    const sa = (hosts: string) =>
      `- hosts: ${hosts}\n  tasks:\n    - k8s.sa.clear:\n        namespace: default\n        kubeconfig: /nonexistent/admin.conf\n`;
    const r = await trustplay(['validate', await playbook('sa-local.yaml', sa('here')), '-i', local]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /sa-local\.yaml:5:21: k8s\.sa\.clear: `kubeconfig` file \/nonexistent\/admin\.conf does not exist on this machine \(the host is a local connection\)/,
    );
    // On an SSH host the kubeconfig lives on the node: not the controller's business.
    const remote = await trustplay(['validate', await playbook('sa-remote.yaml', sa('there')), '-i', local]);
    expect(remote.code, remote.stderr).toBe(0);
  });
});

describe('-e and --format values', () => {
  it('-e without a name never echoes what was given (it may be a bare secret); --format typos get a suggestion', async () => {
    const pb = await playbook('ok.yaml', rmiTask(''));
    const r = await trustplay(['validate', pb, '-i', inv(), '-e', 'registry=x', '-e', 'ghp_s3cr3tvalue']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^-e expects NAME=VALUE, but the second -e \(15 characters, not shown\) has no name/);
    expect(r.stderr).not.toContain('ghp_s3cr3tvalue');
    const eqFirst = await trustplay(['validate', pb, '-i', inv(), '-e', '$TOKEN=hunter2']);
    expect(eqFirst.code).toBe(3);
    expect(eqFirst.stderr).not.toMatch(/hunter2|TOKEN/);
    const f = await trustplay(['validate', pb, '-i', inv(), '--format', 'jsn']);
    expect(f.code).toBe(3);
    expect(f.stderr).toMatch(/--format must be human, json or jsonl, not `jsn` \(did you mean `json`\?\)/);
  });
});
