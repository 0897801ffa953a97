/**
 * How a command ends, through the real CLI: the engine's outcome is the closing line (on stderr in
 * every format, inside the JSON with --format json), the exit code, and the report files, which are
 * written after every run whatever its exit code, invalid input included. (The systemd unit's
 * closing line: test/deploy/systemd-status.test.ts.)
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonReport } from '../../src/report/json.js';
import { trustplay } from '../support/cli.js';

let dir: string;
const env = () => ({ TRUSTPLAY_LOCK_DIR: dir });
const lastLine = (s: string) => s.trim().split('\n').at(-1) ?? '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustplay-outcome-'));
  await writeFile(join(dir, 'creds.json'), '{\n  "auths": {\n    "other.example:5000": { "auth": "eDp5" }\n  }\n}\n');
  // Two hosts nothing listens for (port 1 on loopback refuses at once).
  await writeFile(
    join(dir, 'down.yaml'),
    'hosts:\n  down1: { address: 127.0.0.1, port: 1 }\n  down2: { address: 127.0.0.1, port: 1 }\n',
  );
  await writeFile(join(dir, 'local.yaml'), 'hosts:\n  here: { connection: local }\n');
  await writeFile(
    join(dir, 'good.yaml'),
    `- name: Wipe\n  hosts: all\n  tasks:\n    - name: wipe\n      node.creds.wipe:\n        registry: registry.test:5000\n        paths: ["${dir}/creds.json"]\n        containerd_auth: false\n`,
  );
  await writeFile(
    join(dir, 'broken.yaml'),
    `- name: Wipe\n  hosts: all\n  tasks:\n    - name: wipe\n      node.creds.wipe:\n        registry: registry.test:5000\n        pathz: ["${dir}/creds.json"]\n`,
  );
  await writeFile(
    join(dir, 'maxfail.yaml'),
    '- name: Stop early\n  hosts: all\n  max_fail_percentage: 0\n  tasks:\n    - name: drop\n      image.rmi: { image: "registry.test/app:1" }\n',
  );
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the outcome', () => {
  it('a max_fail_percentage stop caused by unreachable hosts names them in the last line', async () => {
    const r = await trustplay(['run', join(dir, 'maxfail.yaml'), '-i', join(dir, 'down.yaml')], { env: env() });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    for (const out of [r.stdout, r.stderr])
      expect(lastLine(out)).toMatch(
        /^stopped by max_fail_percentage in play "Stop early": unreachable: down1, down2 \(exit 1\) in \d/,
      );
  });

  it('--format json: stdout is one JSON document holding the verdict; the verdict line is on stderr', async () => {
    const r = await trustplay(['check', join(dir, 'good.yaml'), '-i', join(dir, 'local.yaml'), '--format', 'json'], {
      env: env(),
    });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as JsonReport;
    expect(report.outcome).toEqual({ code: 0, reason: 'in desired state: nothing would change', hosts: [] });
    expect(lastLine(r.stderr)).toMatch(/^in desired state: nothing would change in \d/);
  });

  it('jsonl ends with a run-end event carrying the outcome, and the verdict line on stderr', async () => {
    const r = await trustplay(['run', join(dir, 'maxfail.yaml'), '-i', join(dir, 'down.yaml'), '--format', 'jsonl'], {
      env: env(),
    });
    expect(r.code).toBe(1);
    const end = JSON.parse(lastLine(r.stdout)) as { type: string; outcome: { code: number; hosts: string[] } };
    expect(end).toMatchObject({ type: 'run-end', outcome: { code: 1, hosts: ['down1', 'down2'] } });
    expect(lastLine(r.stderr)).toMatch(/unreachable: down1, down2 \(exit 1\)/);
  });
});

describe('--report after every run', () => {
  it('a run stopped by invalid input (exit 3) replaces a green report with one naming the problems', async () => {
    const report = join(dir, 'last-check.json');
    const junit = join(dir, 'last-check.xml');
    const ok = await trustplay(
      ['check', join(dir, 'good.yaml'), '-i', join(dir, 'local.yaml'), '--report', report, '--junit', junit],
      { env: env() },
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect((JSON.parse(readFileSync(report, 'utf8')) as JsonReport).outcome.code).toBe(0);

    const bad = await trustplay(
      ['check', join(dir, 'broken.yaml'), '-i', join(dir, 'local.yaml'), '--report', report, '--junit', junit],
      { env: env() },
    );
    expect(bad.code).toBe(3);
    const written = JSON.parse(readFileSync(report, 'utf8')) as JsonReport;
    expect(written).toMatchObject({ exitCode: 3, outcome: { code: 3 }, check: true, hosts: {} });
    expect(written.outcome.reason).toMatch(/1 problem found; nothing ran\. \(exit 3\)/);
    expect(written.errors).toEqual([
      expect.objectContaining({
        file: join(dir, 'broken.yaml'),
        line: 7,
        message: expect.stringMatching(/unknown key `pathz`.*did you mean `paths`/),
      }),
    ]);
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toMatch(/<testsuite name="input" tests="1" failures="1">/);
    expect(xml).toContain('unknown key `pathz`');
  });

  it('--format json on invalid input still prints one JSON document with the verdict', async () => {
    const r = await trustplay(['run', join(dir, 'broken.yaml'), '-i', join(dir, 'local.yaml'), '--format', 'json'], {
      env: env(),
    });
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout) as JsonReport;
    expect(report.outcome.code).toBe(3);
    expect(report.errors?.[0]?.message).toMatch(/unknown key `pathz`/);
    expect(lastLine(r.stderr)).toMatch(/nothing ran/);
  });
});
