/**
 * Ansible Vault compatibility both ways, against the real `ansible-vault` (Debian ansible-core) and
 * the real trustplay CLI: what ansible-vault encrypts (files, format 1.1 and 1.2 with a vault id,
 * `encrypt_string` values inline in a playbook) trustplay reads; what trustplay encrypts,
 * ansible-vault and ansible read. A wrong password, a tampered HMAC and a missing vault id are one
 * sentence and exit 3, with nothing decrypted on any output.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { trustplay, type CliRun } from '../support/cli.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tp-vault-'));
const f = (name: string) => join(dir, name);
const PLAIN = 'registry_password: s3cret-vault-value-9931\nregistry_user: ci-bot\nnote: "ünïcode ✓"\n';
const SECRET = 's3cret-vault-value-9931';
writeFileSync(f('pw'), 'correct horse battery\n', { mode: 0o600 });
writeFileSync(f('pw-prod'), 'prod-password-77\n', { mode: 0o600 });
writeFileSync(f('pw-wrong'), 'not the password\n', { mode: 0o600 });

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** ansible-vault with its config isolated from this machine's (no ansible.cfg, no vault env). */
function ansibleVault(args: string[], input?: string): string {
  return execFileSync('ansible-vault', args, {
    cwd: dir,
    input,
    env: { PATH: process.env['PATH'] ?? '', HOME: dir, ANSIBLE_CONFIG: f('none.cfg') },
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** trustplay with stdin (encrypt_string reads its value there). */
function trustplayWithInput(args: string[], input: string): CliRun {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: REPO,
    input,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', CI: '' },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const oneSentence = (r: CliRun) => {
  expect(r.code, r.stdout + r.stderr).toBe(3);
  expect(r.stdout).toBe('');
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr + r.stdout).not.toContain(SECRET);
};

/** The same vault text with one hex digit of its HMAC changed. */
function tamperHmac(vaultText: string): string {
  const [header, ...body] = vaultText.trim().split('\n');
  const inner = Buffer.from(body.join(''), 'hex').toString('latin1').split('\n');
  const mac = inner[1]!;
  inner[1] = (mac[0] === '0' ? '1' : '0') + mac.slice(1);
  const hex = Buffer.from(inner.join('\n'), 'latin1').toString('hex');
  return [header, ...(hex.match(/.{1,80}/g) ?? [])].join('\n') + '\n';
}

describe('files ansible-vault encrypts, trustplay reads', () => {
  it('format 1.1 (default id) and 1.2 (vault id) with --vault-password-file and --vault-id', async () => {
    writeFileSync(f('a11.yml'), PLAIN);
    ansibleVault(['encrypt', '--vault-password-file', 'pw', 'a11.yml']);
    expect(readFileSync(f('a11.yml'), 'utf8')).toMatch(/^\$ANSIBLE_VAULT;1\.1;AES256\n/);
    writeFileSync(f('a12.yml'), PLAIN);
    ansibleVault(['encrypt', '--vault-id', 'prod@pw-prod', 'a12.yml']);
    expect(readFileSync(f('a12.yml'), 'utf8')).toMatch(/^\$ANSIBLE_VAULT;1\.2;AES256;prod\n/);

    const v11 = await trustplay(['vault', 'view', f('a11.yml'), '--vault-password-file', f('pw')]);
    expect(v11.code, v11.stderr).toBe(0);
    expect(v11.stdout).toBe(PLAIN);
    // The vault id's password is tried first; a password for another id is tried too, as Ansible does.
    const v12 = await trustplay([
      'vault',
      'view',
      f('a12.yml'),
      '--vault-id',
      `dev@${f('pw')}`,
      '--vault-id',
      `prod@${f('pw-prod')}`,
    ]);
    expect(v12.code, v12.stderr).toBe(0);
    expect(v12.stdout).toBe(PLAIN);
  });

  it('decrypt writes the plaintext only where asked: in place, or to --output', async () => {
    writeFileSync(f('d.yml'), PLAIN);
    ansibleVault(['encrypt', '--vault-password-file', 'pw', 'd.yml']);
    const out = await trustplay([
      'vault',
      'decrypt',
      f('d.yml'),
      '--output',
      f('d.plain'),
      '--vault-password-file',
      f('pw'),
    ]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toBe('');
    expect(readFileSync(f('d.plain'), 'utf8')).toBe(PLAIN);
    expect(readFileSync(f('d.yml'), 'utf8')).toMatch(/^\$ANSIBLE_VAULT/);
    const inPlace = await trustplay(['vault', 'decrypt', f('d.yml'), '--vault-password-file', f('pw')]);
    expect(inPlace.code, inPlace.stderr).toBe(0);
    expect(readFileSync(f('d.yml'), 'utf8')).toBe(PLAIN);
  });

  it('inline encrypt_string values in a playbook are decrypted when it loads', async () => {
    const block = ansibleVault(['encrypt_string', '--vault-id', 'prod@pw-prod', '--name', 'pull_setting', SECRET]);
    const pb = [
      '- hosts: localhost',
      '  vars:',
      ...block
        .trimEnd()
        .split('\n')
        .map((l) => `    ${l}`),
      '  tasks:',
      // `retries` must be a number: the error about the decrypted string proves it was decrypted,
      // and must describe it without quoting it.
      '    - image.pull.verify: { image: "registry.test/lab/hello:1", retries: "{{ pull_setting }}" }',
      '',
    ].join('\n');
    writeFileSync(f('inline.yaml'), pb);
    const r = await trustplay(['validate', f('inline.yaml'), '--vault-id', `prod@${f('pw-prod')}`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('`retries` must be an integer, not a string');
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    // In an inventory, under a name that says nothing of secrets: `inventory` hides it all the same.
    writeFileSync(
      f('inline-inv.yml'),
      [
        'all:',
        '  hosts:',
        '    n1:',
        ...block
          .trimEnd()
          .split('\n')
          .map((l) => `      ${l}`),
        '',
      ].join('\n'),
    );
    const inv = await trustplay([
      'inventory',
      '-i',
      f('inline-inv.yml'),
      '--host',
      'n1',
      '--vault-id',
      `prod@${f('pw-prod')}`,
    ]);
    expect(inv.code, inv.stderr).toBe(0);
    expect(JSON.parse(inv.stdout)).toEqual({ pull_setting: '<secret, not shown>' });
    const missing = await trustplay(['validate', f('inline.yaml')]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(
      /inline\.yaml:3:\d+: this `!vault` value is vault-encrypted \(vault id `prod`\) and no vault password was given/,
    );
  });
});

describe('what trustplay encrypts, ansible-vault reads', () => {
  it('vault encrypt: 1.1 with the default id, 1.2 with --vault-id LABEL@FILE', async () => {
    writeFileSync(f('t11.yml'), PLAIN);
    const e11 = await trustplay(['vault', 'encrypt', f('t11.yml'), '--vault-password-file', f('pw')]);
    expect(e11.code, e11.stderr).toBe(0);
    expect(readFileSync(f('t11.yml'), 'utf8')).toMatch(
      /^\$ANSIBLE_VAULT;1\.1;AES256\n([0-9a-f]{80}\n)+[0-9a-f]{1,80}\n$/,
    );
    expect(ansibleVault(['view', '--vault-password-file', 'pw', 't11.yml'])).toBe(PLAIN);

    writeFileSync(f('t12.yml'), PLAIN);
    const e12 = await trustplay(['vault', 'encrypt', f('t12.yml'), '--vault-id', `prod@${f('pw-prod')}`]);
    expect(e12.code, e12.stderr).toBe(0);
    expect(readFileSync(f('t12.yml'), 'utf8')).toMatch(/^\$ANSIBLE_VAULT;1\.2;AES256;prod\n/);
    expect(ansibleVault(['view', '--vault-id', 'prod@pw-prod', 't12.yml'])).toBe(PLAIN);
  });

  it('vault encrypt_string (value on stdin) is read by ansible as a variable', async () => {
    const r = trustplayWithInput(
      ['vault', 'encrypt_string', '--name', 'pull_setting', '--vault-id', `prod@${f('pw-prod')}`],
      `${SECRET}\n`,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^pull_setting: !vault \|\n {10}\$ANSIBLE_VAULT;1\.2;AES256;prod\n/);
    expect(r.stdout).not.toContain(SECRET);
    writeFileSync(f('vars.yml'), r.stdout);
    const out = execFileSync(
      'ansible',
      [
        'localhost',
        '-c',
        'local',
        '-i',
        'localhost,',
        '-m',
        'debug',
        '-a',
        'var=pull_setting',
        '-e',
        '@vars.yml',
        '--vault-id',
        'prod@pw-prod',
      ],
      {
        cwd: dir,
        encoding: 'utf8',
        env: { PATH: process.env['PATH'] ?? '', HOME: dir, ANSIBLE_CONFIG: f('none.cfg') },
      },
    );
    expect(out).toContain(`"pull_setting": "${SECRET}"`);
  });
});

describe('vault errors: one sentence, exit 3, nothing decrypted printed', () => {
  writeFileSync(f('e.yml'), PLAIN);
  ansibleVault(['encrypt', '--vault-id', 'prod@pw-prod', 'e.yml']);
  const text = readFileSync(f('e.yml'), 'utf8');
  writeFileSync(f('tampered.yml'), tamperHmac(text));

  it('wrong password', async () => {
    const r = await trustplay(['vault', 'view', f('e.yml'), '--vault-id', `prod@${f('pw-wrong')}`]);
    oneSentence(r);
    expect(r.stderr).toMatch(
      /e\.yml cannot be decrypted with the vault password of `prod`: the password is wrong or the data was changed/,
    );
  });

  it('tampered HMAC, with the right password', async () => {
    // The ciphertext is intact: only the HMAC check stands between the data and a decryption.
    expect(ansibleVault(['view', '--vault-id', 'prod@pw-prod', 'e.yml'])).toBe(PLAIN);
    const r = await trustplay(['vault', 'view', f('tampered.yml'), '--vault-id', `prod@${f('pw-prod')}`]);
    oneSentence(r);
    expect(r.stderr).toMatch(/HMAC does not match/);
  });

  it('missing vault id', async () => {
    const r = await trustplay(['vault', 'view', f('e.yml'), '--vault-id', `dev@${f('pw')}`]);
    oneSentence(r);
    expect(r.stderr).toMatch(
      /is encrypted for vault id `prod` and no password was given for it .*add --vault-id prod@FILE/,
    );
  });

  it('no password at all, an unreadable password file', async () => {
    oneSentence(await trustplay(['vault', 'view', f('e.yml')]));
    const nofile = await trustplay(['vault', 'view', f('e.yml'), '--vault-password-file', f('nope')]);
    oneSentence(nofile);
    expect(nofile.stderr).toContain('no such file');
  });

  it('a whole vault-encrypted inventory with the wrong password: located, exit 3', async () => {
    writeFileSync(f('inv.yml'), 'all:\n  hosts:\n    n1:\n      registry_password: s3cret-vault-value-9931\n');
    ansibleVault(['encrypt', '--vault-password-file', 'pw', 'inv.yml']);
    writeFileSync(f('pb.yaml'), '- hosts: all\n  tasks:\n    - image.rmi: { image: "r.test/x:1" }\n');
    const r = await trustplay(['validate', f('pb.yaml'), '-i', f('inv.yml'), '--vault-password-file', f('pw-wrong')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('inv.yml: this vault-encrypted file cannot be decrypted');
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    const ok = await trustplay(['validate', f('pb.yaml'), '-i', f('inv.yml'), '--vault-password-file', f('pw')]);
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe('password sources', () => {
  it('an executable password file is run; a -client script is asked for its vault id', async () => {
    writeFileSync(f('e2.yml'), PLAIN);
    ansibleVault(['encrypt', '--vault-id', 'prod@pw-prod', 'e2.yml']);
    writeFileSync(f('pass.sh'), '#!/bin/sh\nprintf "%s\\n" "$VAULT_PASS"\n', { mode: 0o700 });
    writeFileSync(
      f('store-client.sh'),
      '#!/bin/sh\n[ "$1" = --vault-id ] && [ "$2" = prod ] && printf "prod-password-77\\n" || exit 2\n',
      { mode: 0o700 },
    );
    chmodSync(f('pass.sh'), 0o700);
    const script = await trustplay(['vault', 'view', f('e2.yml'), '--vault-id', `prod@${f('pass.sh')}`], {
      env: { VAULT_PASS: 'prod-password-77' },
    });
    expect(script.code, script.stderr).toBe(0);
    expect(script.stdout).toBe(PLAIN);
    const client = await trustplay(['vault', 'view', f('e2.yml'), '--vault-id', `prod@${f('store-client.sh')}`]);
    expect(client.code, client.stderr).toBe(0);
    expect(client.stdout).toBe(PLAIN);
  });

  it('--ask-vault-password reads the password on a terminal, and refuses without one', async () => {
    writeFileSync(f('e3.yml'), PLAIN);
    ansibleVault(['encrypt', '--vault-password-file', 'pw', 'e3.yml']);
    // script(1) gives the CLI a real pseudo-terminal; the password is typed into it.
    const cmd = `${process.execPath} --import tsx src/cli/main.ts vault view ${f('e3.yml')} --ask-vault-password`;
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], {
      cwd: REPO,
      input: 'correct horse battery\r',
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Vault password: ');
    expect(r.stdout).toContain('registry_user: ci-bot');
    // Echo is off once the prompt is shown (script(1) types ahead, so the terminal echoed it before).
    expect(r.stdout.slice(r.stdout.indexOf('Vault password: '))).not.toContain('correct horse battery');
    const noTty = await trustplay(['vault', 'view', f('e3.yml'), '--ask-vault-password']);
    oneSentence(noTty);
    expect(noTty.stderr).toContain('needs a terminal');
  });
});
