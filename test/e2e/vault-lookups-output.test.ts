/**
 * Values from an Ansible Vault, an env lookup and a file lookup are secrets on every output path,
 * through the real CLI on the lab, whatever the variable or argument that holds them:
 * - an inline `!vault` value (made by the real `ansible-vault encrypt_string`): the image to pull;
 * - a vault-encrypted file (the real `ansible-vault encrypt`) read by `lookup('file')`: the
 *   registry password;
 * - `lookup('env')`: the registry user;
 * - a plain `lookup('file')`: the CA that containerd.tls writes (its diff carries it).
 * The pull from the basic-auth registry succeeding proves the values were decrypted and read.
 * Searched: human (plain and -v), json, jsonl, --report, --junit, --diff, --metrics, `snapshots
 * show` and every file of the state dir (the snapshot manifest and its blobs).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { trustplay, type CliRun } from '../support/cli.js';
import { jsonReport, scratchDir } from '../fixtures/image-modules/run-cli.js';

describeLab('vault and lookup values never reach an output path (lab)', () => {
  const env = useLab({ nodes: 1 });
  let dir: string;
  let pb: string;
  let secrets: Record<string, string>;
  const outputs: Array<[string, string]> = [];
  const state = () => path.join(dir, 'state');
  const cli = async (what: string, args: string[]): Promise<CliRun> => {
    const r = await trustplay(
      [
        ...args,
        '-i',
        env.lab.inventoryPath,
        '--vault-password-file',
        path.join(dir, 'vault-pass'),
        '--state-dir',
        state(),
      ],
      { env: { TP_E2E_PULL_USER: secrets['env lookup']! }, timeoutMs: 240_000 },
    );
    outputs.push([what, r.stdout + r.stderr]);
    return r;
  };
  const file = (what: string, f: string) => outputs.push([what, readFileSync(f, 'utf8')]);

  beforeAll(() => {
    dir = scratchDir('tp-vault-e2e-');
    const auth = env.lab.registries.auth;
    const caPem = readFileSync(env.lab.ca, 'utf8');
    secrets = {
      'inline !vault': env.lab.image.authRef,
      'vault-encrypted file': auth.auth!.password,
      'env lookup': auth.auth!.username,
      // A line of the CA's body: what a diff of ca.crt would show.
      'file lookup': caPem.trim().split('\n')[3]!,
    };
    writeFileSync(path.join(dir, 'vault-pass'), 'e2e-vault-password\n', { mode: 0o600 });
    writeFileSync(path.join(dir, 'ca.pem'), caPem);
    writeFileSync(path.join(dir, 'registry-password'), `${auth.auth!.password}\n`);
    const ansible = { cwd: dir, encoding: 'utf8' as const, env: { PATH: process.env['PATH'] ?? '', HOME: dir } };
    execFileSync('ansible-vault', ['encrypt', '--vault-password-file', 'vault-pass', 'registry-password'], ansible);
    const inline = execFileSync(
      'ansible-vault',
      ['encrypt_string', '--vault-password-file', 'vault-pass', '--name', 'pull_image', env.lab.image.authRef],
      ansible,
    );
    pb = path.join(dir, 'site.yaml');
    const playHead = [
      '- hosts: all',
      '  vars:',
      ...inline
        .trimEnd()
        .split('\n')
        .map((l) => `    ${l}`),
      '    pull_from: "{{ pull_image }}"',
      '  tasks:',
    ];
    writeFileSync(
      pb,
      [
        ...playHead,
        '    - name: trust the auth registry',
        `      containerd.tls: { registry: "${auth.host}", ca: "{{ lookup('file', 'ca.pem') }}" }`,
        // The pull in its own play: containerd restarts (a handler) at the end of the first.
        ...playHead,
        '    - name: pull with the vaulted credentials',
        '      image.pull.verify:',
        '        image: "{{ pull_from }}"',
        '        auth:',
        `          username: "{{ lookup('env', 'TP_E2E_PULL_USER') }}"`,
        `          password: "{{ lookup('file', 'registry-password') }}"`,
        '',
      ].join('\n'),
    );
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    'check (drift), run, then check (in sync), in every format, and nothing shows a value',
    { timeout: 600_000 },
    async () => {
      for (const extra of [[], ['-v'], ['--format', 'jsonl']]) {
        const r = await cli(`check --diff ${extra.join(' ')}`, ['check', pb, '--diff', ...extra]);
        expect(r.code, r.stdout + r.stderr).toBe(2);
      }
      // The CA reached the diff, masked as a whole.
      expect(outputs[0]![1]).toContain('********');
      const report = path.join(dir, 'report.json');
      const junit = path.join(dir, 'junit.xml');
      const metrics = path.join(dir, 'trustplay.prom');
      const files = ['--report', report, '--junit', junit, '--metrics', metrics];
      const check = await cli('check --format json', ['check', pb, '--diff', '--format', 'json', ...files]);
      expect(check.code, check.stderr).toBe(2);
      for (const [what, f] of [
        ['--report', report],
        ['--junit', junit],
        ['--metrics', metrics],
      ] as const)
        file(`check ${what}`, f);
      expect(readFileSync(metrics, 'utf8')).toMatch(/^trustplay_host_in_sync\{[^}]*host="node1"\} 0$/m);

      const run = await cli('run --format json', ['run', pb, '--diff', '--format', 'json', ...files]);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      for (const [what, f] of [
        ['--report', report],
        ['--junit', junit],
        ['--metrics', metrics],
      ] as const)
        file(`run ${what}`, f);
      // Decrypted and read for real: the basic-auth registry let the pull through.
      const pull = jsonReport(run).hosts['node1']!.tasks.find((t) => t.task === 'pull with the vaulted credentials')!;
      expect(pull.status, JSON.stringify(pull)).toBe('ok');
      await cli('run (human)', ['run', pb, '--diff']);
      const again = await cli('check (in sync)', ['check', pb, '-v', ...files]);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      file('in-sync --metrics', metrics);
      const lint = execFileSync('promtool', ['check', 'metrics'], { input: readFileSync(metrics) });
      expect(lint.toString()).toBe('');
      expect(readFileSync(metrics, 'utf8')).toMatch(/^trustplay_host_in_sync\{[^}]*host="node1"\} 1$/m);

      const id = jsonReport(run).runId;
      await cli('snapshots show', ['snapshots', 'show', id]);
      const walk = (d: string): string[] =>
        readdirSync(d).flatMap((n) => {
          const p = path.join(d, n);
          return statSync(p).isDirectory() ? walk(p) : [p];
        });
      const stateFiles = walk(state());
      expect(stateFiles.some((f) => f.includes(id))).toBe(true);
      for (const f of stateFiles) file(`state file ${path.relative(state(), f)}`, f);

      for (const [what, text] of outputs)
        for (const [origin, value] of Object.entries(secrets))
          expect(text.includes(value), `${what} shows the ${origin} value`).toBe(false);
    },
  );
});
