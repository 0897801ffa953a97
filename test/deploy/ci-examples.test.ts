/**
 * The CI examples (deploy/ci: GitHub Actions, GitLab CI, the vault password script) and the
 * pre-commit hook definition: they parse, validate on every push and check on a schedule, and every
 * trustplay command line in them is one the CLI accepts (its own option parser, strict, and its own
 * command list). The hook is checked by the real `pre-commit validate-manifest` and run as
 * pre-commit runs it (entry, args, then the changed files).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { split } from 'shlex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseOptions } from '../../src/cli/options.js';
import { encryptVault } from '../../src/vault/index.js';
import { trustplay } from '../support/cli.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const read = (f: string) => readFileSync(join(REPO, f), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'tp-ci-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let commands: string[] = [];
beforeAll(async () => {
  // The CLI's own command list, from its help.
  const help = await trustplay(['--help']);
  const block = help.stdout.split('\ncommands:\n')[1]!.split('\n\n')[0]!;
  commands = block.split('\n').map((l) => l.trim().split(/[\s:]/)[0]!);
  expect(commands).toEqual(expect.arrayContaining(['run', 'check', 'validate', 'vault']));
});

/** Every `trustplay ...` command line in a script block, each checked against the CLI's options. */
async function trustplayLines(script: string | string[]): Promise<Array<{ command: string; argv: string[] }>> {
  const lines = (Array.isArray(script) ? script : script.split('\n'))
    .map((l) => l.trim())
    .filter((l) => l.startsWith('trustplay '));
  const out = [];
  for (const line of lines) {
    const [, command, ...rest] = split(line);
    expect(commands, line).toContain(command);
    // Strict: an unknown or misspelled option throws here, as it would exit 3 in the pipeline.
    const { positionals, options } = await parseOptions(rest);
    if (command === 'validate' || command === 'check' || command === 'run') {
      expect(positionals.length, line).toBeGreaterThan(0);
      for (const p of positionals) expect(p, line).toMatch(/\.ya?ml$/);
      expect(options.inventory, line).toMatch(/\.ya?ml$/);
      // The vault password comes from the script shipped beside the examples.
      expect(options.vaultPasswordFiles, line).toEqual(['ci/vault-pass.sh']);
    }
    out.push({ command: command!, argv: rest });
  }
  return out;
}

function cronValid(expr: string): boolean {
  return /^(\*|\d+)( (\*|\d+)){4}$/.test(expr) && expr.split(' ').length === 5;
}

describe('GitHub Actions example', () => {
  type Step = { uses?: string; run?: string; env?: Record<string, string> };
  type Job = { if: string; 'runs-on': string | string[]; steps: Step[] };
  const wf = parse(read('deploy/ci/github-actions.yml')) as {
    on: { push: unknown; pull_request: unknown; schedule: Array<{ cron: string }> };
    permissions: Record<string, string>;
    jobs: Record<string, Job>;
  };

  it('validates on every push and pull request, checks on the schedule, read-only token', async () => {
    expect(Object.keys(wf.on)).toEqual(expect.arrayContaining(['push', 'pull_request', 'schedule']));
    expect(wf.on.schedule.every((s) => cronValid(s.cron))).toBe(true);
    expect(wf.permissions).toEqual({ contents: 'read' });
    const byCommand = new Map<string, string>();
    for (const [name, job] of Object.entries(wf.jobs)) {
      for (const step of job.steps) {
        if (!step.run) continue;
        for (const { command } of await trustplayLines(step.run)) {
          byCommand.set(command, name);
          // The vault password reaches the script only through the step's environment, from a secret.
          expect(step.env?.['TRUSTPLAY_VAULT_PASSWORD']).toBe('${{ secrets.TRUSTPLAY_VAULT_PASSWORD }}');
        }
      }
    }
    expect(wf.jobs[byCommand.get('validate')!]!.if).toMatch(/github\.event_name == 'push'/);
    expect(wf.jobs[byCommand.get('check')!]!.if).toMatch(/github\.event_name == 'schedule'/);
  });
});

describe('GitLab CI example', () => {
  type Job = { stage: string; rules: Array<{ if: string }>; script: string[] };
  const ci = parse(read('deploy/ci/gitlab-ci.yml')) as Record<string, unknown> & { stages: string[] };

  it('validates on push and merge requests, checks on a pipeline schedule', async () => {
    const jobs = Object.entries(ci).filter(
      ([k, v]) => !['stages', 'default'].includes(k) && typeof v === 'object',
    ) as Array<[string, Job]>;
    const byCommand = new Map<string, Job>();
    for (const [, job] of jobs) {
      expect(ci.stages).toContain(job.stage);
      for (const { command } of await trustplayLines(job.script)) byCommand.set(command, job);
    }
    expect(byCommand.get('validate')!.rules[0]!.if).toMatch(/\$CI_PIPELINE_SOURCE == "push"/);
    expect(byCommand.get('check')!.rules[0]!.if).toBe('$CI_PIPELINE_SOURCE == "schedule"');
  });
});

describe('the vault password script of the examples', () => {
  it('is executable, and hands the CI secret to trustplay in memory', async () => {
    const script = join(REPO, 'deploy/ci/vault-pass.sh');
    expect(statSync(script).mode & 0o111).not.toBe(0);
    const block = encryptVault(Buffer.from('ci-vault-value-5521'), Buffer.from('ci-pass'), 'default');
    writeFileSync(
      join(dir, 'pb.yaml'),
      `- hosts: all\n  vars:\n    v: !vault |\n${block.trimEnd().replace(/^/gm, '      ')}\n  tasks:\n    - image.rmi: { image: "{{ v }}" }\n`,
    );
    writeFileSync(join(dir, 'inv.yaml'), 'all:\n  hosts:\n    n1:\n');
    const ok = await trustplay(
      ['validate', join(dir, 'pb.yaml'), '-i', join(dir, 'inv.yaml'), '--vault-password-file', script],
      {
        env: { TRUSTPLAY_VAULT_PASSWORD: 'ci-pass' },
      },
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout + ok.stderr).not.toContain('ci-vault-value-5521');
    const unset = await trustplay(['validate', join(dir, 'pb.yaml'), '--vault-password-file', script], {
      env: { TRUSTPLAY_VAULT_PASSWORD: '' },
    });
    expect(unset.code).toBe(3);
    expect(unset.stderr).toContain('TRUSTPLAY_VAULT_PASSWORD is not set');
  });
});

describe('pre-commit hook', () => {
  const hooks = parse(read('.pre-commit-hooks.yaml')) as Array<{
    id: string;
    entry: string;
    language: string;
    files: string;
  }>;

  it('is a manifest pre-commit accepts', () => {
    const r = spawnSync('pre-commit', ['validate-manifest', '.pre-commit-hooks.yaml'], { cwd: REPO, encoding: 'utf8' });
    expect(r.status, `${r.error?.message ?? ''}${r.stdout}${r.stderr}`).toBe(0);
    expect(hooks.map((h) => h.id)).toEqual(['trustplay-validate']);
  });

  it('run as pre-commit runs it (entry, args, the changed files): blocks a broken playbook, passes good ones', async () => {
    const hook = hooks[0]!;
    const [bin, ...entry] = split(hook.entry);
    expect(bin).toBe('trustplay');
    const good = join(dir, 'playbooks-good.yaml');
    const good2 = join(dir, 'playbooks-good2.yaml');
    const bad = join(dir, 'playbooks-bad.yaml');
    writeFileSync(good, '- hosts: localhost\n  tasks:\n    - image.rmi: { image: "r.test/x:1" }\n');
    writeFileSync(good2, '- hosts: localhost\n  tasks:\n    - image.rmi: { image: "r.test/y:1" }\n');
    writeFileSync(bad, '- hosts: localhost\n  tasks:\n    - image.rmii: { image: "r.test/x:1" }\n');
    expect(new RegExp(hook.files).test('playbooks/fix-registry.yaml')).toBe(true);
    const pass = await trustplay([...entry, good, good2]);
    expect(pass.code, pass.stderr).toBe(0);
    expect(pass.stdout.match(/: valid — /g)).toHaveLength(2);
    const fail = await trustplay([...entry, good, bad]);
    expect(fail.code).toBe(3);
    expect(fail.stderr).toMatch(/playbooks-bad\.yaml:3:7: unknown module or task key `image\.rmii`/);
  });
});
