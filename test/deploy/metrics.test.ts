/**
 * `--metrics FILE` and the drift alert, checked by Prometheus' own tools: `promtool check metrics`
 * on what the real CLI writes (a green run is in deploy/systemd-status.test.ts, drift on the lab in
 * test/e2e/secrets-output.test.ts), `promtool check rules` and `promtool test rules` on
 * deploy/prometheus/trustplay-alerts.yml (the drift alert fires on a drifted check and only then),
 * and the README shows that same rule.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { prometheusMetrics } from '../../src/report/metrics.js';
import type { JsonReport } from '../../src/report/json.js';
import type { TaskResult } from '../../src/engine/events.js';
import { trustplay } from '../support/cli.js';

const RULES = fileURLToPath(new URL('../../deploy/prometheus/trustplay-alerts.yml', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tp-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function promtool(args: string[], input?: string): { code: number; out: string } {
  const r = spawnSync('promtool', args, { input, encoding: 'utf8', cwd: dir });
  return { code: r.status ?? -1, out: `${r.error?.message ?? ''}${r.stdout}${r.stderr}` };
}

const result = (task: string, status: TaskResult['status'], extra: Partial<TaskResult> = {}): TaskResult => ({
  host: 'node1',
  play: 'fix "the" registry',
  task,
  module: 'containerd.tls',
  status,
  check: true,
  changes: [],
  diffs: [],
  warnings: [],
  durationMs: 12,
  ...extra,
});

describe('--metrics', () => {
  it('is valid exposition text, with label values escaped and repeated task names kept apart', () => {
    const recap = { ok: 1, changed: 1, failed: 0, skipped: 1, unreachable: 0, ignored: 0, verifyFailed: 0 };
    const report: JsonReport = {
      runId: 'r1',
      playbook: 'play\\books/"x".yaml',
      check: true,
      exitCode: 2,
      outcome: { code: 2, reason: 'drift on node1 (exit 2)', hosts: ['node1'] },
      durationMs: 1500,
      hosts: {
        node1: {
          recap,
          tasks: [
            result('trust\nit', 'ok'),
            result('trust\nit', 'changed'),
            result('skipped one', 'skipped'),
            result('restart', 'ok', { handler: true }),
          ],
        },
        node2: { recap, tasks: [result('connect', 'unreachable', { host: 'node2' })] },
      },
    };
    const text = prometheusMetrics(report, 1_700_000_000_000);
    const lint = promtool(['check', 'metrics'], text);
    expect(lint.code, lint.out + text).toBe(0);
    const base = 'playbook="play\\\\books/\\"x\\".yaml",mode="check"';
    expect(text).toContain(
      `trustplay_task_in_sync{${base},host="node1",play="fix \\"the\\" registry",task="trust\\nit"} 1\n`,
    );
    expect(text).toContain(`task="trust\\nit (2)"} 0\n`);
    expect(text).toContain(`task="handler: restart"} 1\n`);
    expect(text).not.toContain('skipped one');
    expect(text).toContain(`trustplay_host_in_sync{${base},host="node1"} 0\n`);
    expect(text).toContain(`trustplay_host_in_sync{${base},host="node2"} 0\n`);
    expect(text).toContain(`trustplay_last_run_timestamp_seconds{${base}} 1700000000\n`);
    expect(text).toContain(`trustplay_run_duration_seconds{${base}} 1.5\n`);
    expect(text).toContain(`trustplay_exit_code{${base}} 2\n`);
  });

  it('a check stopped by a broken playbook writes exit code 3, not the last green figures', async () => {
    const metrics = join(dir, 'broken.prom');
    writeFileSync(metrics, 'trustplay_exit_code{playbook="x",mode="check"} 0\n');
    writeFileSync(join(dir, 'broken.yaml'), '- hosts: all\n  tasks:\n    - containerd.tsl: {}\n');
    const r = await trustplay(['check', join(dir, 'broken.yaml'), '--metrics', metrics]);
    expect(r.code).toBe(3);
    const text = readFileSync(metrics, 'utf8');
    expect(promtool(['check', 'metrics'], text).code).toBe(0);
    expect(text).toMatch(/^trustplay_exit_code\{playbook="[^"]*broken\.yaml",mode="check"\} 3$/m);
    expect(text).not.toContain('trustplay_host_in_sync');
  });
});

describe('the drift alert', () => {
  it('passes promtool check rules', () => {
    const r = promtool(['check', 'rules', RULES]);
    expect(r.code, r.out).toBe(0);
  });

  it('fires on a drifted check and stays quiet on a green one (promtool test rules)', () => {
    const tests = `rule_files:
  - ${RULES}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'trustplay_exit_code{playbook="fix.yaml",mode="check"}'
        values: '2x5'
      - series: 'trustplay_exit_code{playbook="ok.yaml",mode="check"}'
        values: '0x5'
      - series: 'trustplay_exit_code{playbook="fix.yaml",mode="run"}'
        values: '2x5'
      - series: 'trustplay_last_run_timestamp_seconds{playbook="fix.yaml",mode="check"}'
        values: '0x5'
    alert_rule_test:
      - eval_time: 2m
        alertname: TrustplayDrift
        exp_alerts:
          - exp_labels: { severity: warning, playbook: fix.yaml, mode: check }
            exp_annotations:
              summary: "trustplay check of fix.yaml exited 2 (2 = drift, 3 = invalid input, 4 = unreachable)"
              description: "Hosts out of sync: trustplay_host_in_sync{playbook=\\"fix.yaml\\"} == 0. Fix with \`trustplay run fix.yaml\`."
`;
    writeFileSync(join(dir, 'alerts.test.yml'), tests);
    const r = promtool(['test', 'rules', join(dir, 'alerts.test.yml')]);
    expect(r.code, r.out).toBe(0);
  });

  it('is the rule the README shows', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const rules = readFileSync(RULES, 'utf8');
    const drift = /( {6}- alert: TrustplayDrift\n[\s\S]*?)\n {6}#/.exec(rules)![1]!;
    expect(readme).toContain(drift.replace(/^ {6}/gm, ''));
  });
});
