/** The scheduling files in deploy/ parse, and the command each one runs is a valid trustplay check. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseOptions } from '../../src/cli/options.js';

const read = (f: string) => readFileSync(new URL(`../../deploy/${f}`, import.meta.url), 'utf8');

/** systemd unit files: sections of key=value lines. */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section = '';
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) return;
    const sec = /^\[([A-Za-z]+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!;
      out[section] ??= {};
      return;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv || !section) throw new Error(`line ${i + 1} is not key=value inside a section: ${raw}`);
    (out[section]![kv[1]!] ??= []).push(kv[2]!);
  });
  return out;
}

/** A valid `trustplay check PLAYBOOK ...` command line. */
async function expectValidCheck(argv: string[]): Promise<import('../../src/cli/options.js').Options> {
  expect(argv[0]).toMatch(/(^|\/)trustplay$/);
  expect(argv[1]).toBe('check');
  const { positionals, options } = await parseOptions(argv.slice(2));
  expect(positionals).toHaveLength(1);
  expect(positionals[0]).toMatch(/\.ya?ml$/);
  expect(options.inventory).toMatch(/\.ya?ml$/);
  // Every scheduled check feeds the drift alert (deploy/prometheus/trustplay-alerts.yml): a file
  // for node_exporter, or a Pushgateway job.
  if (options.metricsPush === undefined) expect(options.metrics).toMatch(/\.prom$/);
  else expect(options.metricsPush).toMatch(/\/metrics\/job\/[^/]+$/);
  return options;
}

function cronFieldsValid(expr: string): boolean {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5) return false;
  const ranges: Array<[number, number]> = [
    [0, 59],
    [0, 23],
    [1, 31],
    [1, 12],
    [0, 7],
  ];
  return fields.every((f, i) =>
    f.split(',').every((part) => {
      const m = /^(\*|\d+(?:-\d+)?)(?:\/(\d+))?$/.exec(part);
      if (!m) return false;
      if (m[1] === '*') return true;
      return m[1]!
        .split('-')
        .map(Number)
        .every((n) => n >= ranges[i]![0] && n <= ranges[i]![1]);
    }),
  );
}

describe('scheduling files', () => {
  it('systemd service runs a valid check, and the timer triggers it', async () => {
    const service = parseUnit(read('systemd/trustplay-check.service'));
    expect(service['Service']!['Type']).toEqual(['oneshot']);
    const exec = service['Service']!['ExecStart']![0]!.split(/\s+/);
    await expectValidCheck(exec);
    const timer = parseUnit(read('systemd/trustplay-check.timer'));
    expect(timer['Timer']!['OnCalendar']).toEqual(['hourly']);
    expect(timer['Install']!['WantedBy']).toEqual(['timers.target']);
  });

  it('the Kubernetes CronJob is a valid batch/v1 CronJob running a valid check', async () => {
    // YAML 1.1, as Kubernetes reads manifests (go-yaml): `0400` is octal there.
    const cj = parse(read('kubernetes/cronjob.yaml'), { version: '1.1' }) as {
      apiVersion: string;
      kind: string;
      spec: {
        schedule: string;
        concurrencyPolicy: string;
        jobTemplate: {
          spec: {
            template: {
              spec: {
                restartPolicy: string;
                containers: Array<{
                  image: string;
                  command?: string[];
                  args: string[];
                  env: Array<{ name: string; value: string }>;
                  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
                }>;
                volumes: Array<{ name: string; secret?: { secretName: string; defaultMode: number } }>;
              };
            };
          };
        };
      };
    };
    expect([cj.apiVersion, cj.kind]).toEqual(['batch/v1', 'CronJob']);
    expect(cronFieldsValid(cj.spec.schedule)).toBe(true);
    expect(cj.spec.concurrencyPolicy).toBe('Forbid');
    const pod = cj.spec.jobTemplate.spec.template.spec;
    expect(pod.restartPolicy).toBe('Never');
    // The image the project builds (`npm run image`: trustplay/agent at the package's version), whose
    // entrypoint is the CLI: the args are the check, its metrics pushed by trustplay itself (the
    // image has no curl), $(PUSHGATEWAY_URL) expanded by Kubernetes from the container's env.
    const c0 = pod.containers[0]!;
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(c0.image).toMatch(new RegExp(`/trustplay/agent:${version.replace(/\./g, '\\.')}$`));
    expect(c0.command).toBeUndefined();
    const gateway = c0.env.find((e) => e.name === 'PUSHGATEWAY_URL')?.value;
    expect(gateway).toMatch(/^https?:\/\/[^/]+$/);
    const args = c0.args.map((a) => a.replace('$(PUSHGATEWAY_URL)', gateway!));
    const check = ['trustplay', ...args];
    const options = await expectValidCheck(check);
    expect(options.metricsPush).toBe(`${gateway}/metrics/job/trustplay-check`);
    // The snapshot key comes from a Secret, read-only, 0400, outside the state dir.
    const c = pod.containers[0]!;
    const keyFile = c.env.find((e) => e.name === 'TRUSTPLAY_SNAPSHOT_KEY_FILE')?.value;
    const mount = c.volumeMounts.find((m) => keyFile?.startsWith(`${m.mountPath}/`));
    expect(mount?.readOnly).toBe(true);
    const vol = pod.volumes.find((v) => v.name === mount?.name);
    expect(vol?.secret).toEqual({ secretName: 'trustplay-snapshot-key', defaultMode: 0o400 });
    const stateDir = check[check.indexOf('--state-dir') + 1]!;
    expect(keyFile!.startsWith(`${stateDir}/`)).toBe(false);
  });

  it('the cron line is a valid cron.d entry running a valid check', async () => {
    const line = read('cron.example')
      .split('\n')
      .find((l) => /^\d/.test(l))!;
    const fields = line.split(/\s+/);
    expect(cronFieldsValid(fields.slice(0, 5).join(' '))).toBe(true);
    expect(fields[5]).toBe('root');
    const cmd = line
      .split(/\s+/)
      .slice(6)
      .join(' ')
      .split(/\s*[>|]/)[0]!
      .trim()
      .split(/\s+/);
    await expectValidCheck(cmd);
  });

  it('a malformed command would be caught', async () => {
    await expect(parseOptions(['x.yaml', '--forks', 'many'])).rejects.toThrow(/--forks must be a whole number/);
    expect(cronFieldsValid('61 * * * *')).toBe(false);
  });
});
