/**
 * No secret reaches any output path, through the real CLI on the lab: a node's config.toml holds
 * registry passwords in every TOML string form (basic, literal, multi-line basic, multi-line
 * literal) and short ones (3 characters, 1 character), its docker config.json a short auth; a
 * `node.creds.wipe all: true` shows all of them in its diffs. Human (plain and -v), json, jsonl,
 * --report, --junit, the run itself and the restore diffs are searched for every value.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LabNode } from '../lab/lab.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { inNode } from '../support/lab-node.js';
import { jsonReport, runCli, scratchDir, writePlaybook } from '../fixtures/image-modules/run-cli.js';
import { waitForCri } from '../../src/cri/client.js';

const criConfigs = (node: LabNode): string =>
  node.containerd.version.startsWith('2.')
    ? 'plugins."io.containerd.cri.v1.images".registry.configs'
    : 'plugins."io.containerd.grpc.v1.cri".registry.configs';

const SECRETS = {
  basic: 'basic-pw-2290',
  multiBasic: 'ML-basic-pw-7731',
  literal: 'literal-pw-5521',
  multiLiteral: 'ML-literal-pw-9917',
  short: 'q#Z',
  one: '§',
  jsonShort: 'k@%',
};

describeLab('secrets never reach an output path (lab)', () => {
  const env = useLab({ nodes: 1 });
  let dir: string;
  let pb: string;
  const node = () => env.lab.nodes[0]!;
  const state = () => ['--state-dir', path.join(dir, 'state')];
  const inv = () => ['-i', env.lab.inventoryPath];
  const noSecrets = (what: string, text: string): void => {
    for (const [form, value] of Object.entries(SECRETS))
      expect(text, `${what}: the ${form} secret`).not.toContain(value);
  };

  beforeAll(async () => {
    dir = scratchDir('tp-secrets-e2e-');
    const c = criConfigs(node());
    const auth = (host: string, password: string) => [
      `[${c}."${host}".auth]`,
      '  username = "ci-bot"',
      `  password = ${password}`,
      '',
    ];
    const extra = [
      '',
      ...auth('basic.example', `"${SECRETS.basic}"`),
      // Multi-line strings really spanning lines (TOML trims the newline after the opening quotes).
      ...auth('mlb.example', `"""\n${SECRETS.multiBasic}"""`),
      ...auth('lit.example', `'${SECRETS.literal}'`),
      ...auth('mll.example', `'''\n${SECRETS.multiLiteral}'''`),
      ...auth('short.example', `"${SECRETS.short}"`),
      ...auth('one.example', `"${SECRETS.one}"`),
    ].join('\n');
    const r = await inNode(node(), 'cat >> /etc/containerd/config.toml && systemctl restart containerd', extra);
    expect(r.code, r.stderr).toBe(0);
    await waitForCri(node().hostSocket, 20_000);
    writeFileSync(
      path.join(node().files['/root'], '.docker', 'config.json'),
      `{\n\t"auths": {\n\t\t"short.example": {\n\t\t\t"auth": "${SECRETS.jsonShort}"\n\t\t}\n\t}\n}\n`,
    );
    pb = writePlaybook(
      dir,
      [
        '- hosts: all',
        '  tasks:',
        // containerd.tls edits config.toml too: its diff carries the whole file, auth tables included.
        '    - name: trust',
        '      containerd.tls: { registry: "{{ registry }}", ca: "{{ registry_ca }}" }',
        '    - name: wipe every credential',
        '      node.creds.wipe: { registry: "{{ registry }}", all: true }',
        '',
      ].join('\n'),
    );
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('check --diff: human (plain and -v), json, jsonl, --report and --junit show the mask, never a value', async () => {
    for (const extra of [[], ['-v'], ['--format', 'jsonl']]) {
      const r = await runCli(['check', pb, ...inv(), '--diff', ...extra, ...state()]);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      noSecrets(`check ${extra.join(' ')}`, r.stdout + r.stderr);
      expect(r.stdout).toContain('********');
    }
    const report = path.join(dir, 'report.json');
    const junit = path.join(dir, 'junit.xml');
    const r = await runCli([
      'check',
      pb,
      ...inv(),
      '--diff',
      '--format',
      'json',
      '--report',
      report,
      '--junit',
      junit,
      ...state(),
    ]);
    expect(r.code, r.stderr).toBe(2);
    noSecrets('check --format json', r.stdout + r.stderr);
    noSecrets('--report', readFileSync(report, 'utf8'));
    noSecrets('--junit', readFileSync(junit, 'utf8'));
    // Every string form is masked in place, keys and quoting kept.
    const diff = JSON.stringify(jsonReport(r).hosts);
    for (const masked of [
      'password = \\"********\\"',
      'password = \\"\\"\\"********\\"\\"\\"',
      "password = '********'",
      "password = '''********'''",
      '\\"auth\\": \\"********\\"',
    ])
      expect(diff).toContain(masked);
  });

  it('the run and the restore diffs of its snapshot show no value either', async () => {
    const run = await runCli(['run', pb, ...inv(), '--diff', '--format', 'json', ...state()]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    noSecrets('run --diff', run.stdout + run.stderr);
    const id = jsonReport(run).runId;
    await waitForCri(node().hostSocket, 20_000);
    for (const format of ['human', 'json']) {
      const r = await runCli(['restore', id, ...inv(), '--check', '--diff', '--format', format, ...state()]);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      noSecrets(`restore --check --diff --format ${format}`, r.stdout + r.stderr);
      expect(r.stdout).toContain('********');
    }
  });
});
