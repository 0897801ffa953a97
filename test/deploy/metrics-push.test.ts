/**
 * `--metrics-push URL` against the real Prometheus Pushgateway (Debian's prometheus-pushgateway),
 * started here on loopback and stopped by pid: what the CLI pushes is what the gateway then
 * serves, a later push replaces the job's figures (no host's green figure lingers), basic auth
 * from the URL works and its password appears in no message, and a gateway that is down or
 * refuses costs one line on stderr, never the run's exit code.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushMetrics, pushTargetProblem } from '../../src/report/push.js';
import { prometheusMetrics } from '../../src/report/metrics.js';
import type { JsonReport } from '../../src/report/json.js';
import { ExitCode } from '../../src/engine/outcome.js';
import { freePort, run, startDetached, stopPid, waitFor } from '../lab/procs.js';
import { trustplay } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tp-push-'));
const password = randomBytes(12).toString('hex');
let open: { pid: number; url: string };
let authed: { pid: number; url: string };

async function gateway(name: string, extra: string[] = []): Promise<{ pid: number; url: string }> {
  const port = await freePort();
  const pid = startDetached(
    'prometheus-pushgateway',
    [`--web.listen-address=127.0.0.1:${port}`, ...extra],
    join(dir, `${name}.log`),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`the Pushgateway on ${port}`, async () => {
    try {
      return (await fetch(`${url}/-/ready`)).status < 500;
    } catch {
      return false;
    }
  });
  return { pid, url };
}

beforeAll(async () => {
  open = await gateway('open');
  // Basic auth as the gateway's own web config sets it: a bcrypt hash (htpasswd -B, cost 5 for speed).
  const hash = (await run('htpasswd', ['-nbBC', '5', 'trustplay', password])).stdout.trim().split(':')[1]!;
  const web = join(dir, 'web.yml');
  writeFileSync(web, `basic_auth_users:\n  trustplay: '${hash}'\n`);
  authed = await gateway('authed', [`--web.config.file=${web}`]);
}, 30_000);

afterAll(async () => {
  for (const g of [open, authed]) if (g) await stopPid(g.pid, 'prometheus-push');
  rmSync(dir, { recursive: true, force: true });
});

/** What the gateway serves for a job, as sample lines. */
async function served(base: string, job: string, auth?: string): Promise<string[]> {
  const res = await fetch(`${base}/metrics`, auth ? { headers: { authorization: auth } } : {});
  expect(res.status).toBe(200);
  return (await res.text()).split('\n').filter((l) => l.startsWith('trustplay_') && l.includes(`job="${job}"`));
}

function report(exitCode: ExitCode, hosts: string[]): JsonReport {
  const recap = { ok: 1, changed: 0, failed: 0, skipped: 0, unreachable: 0, ignored: 0, verifyFailed: 0 };
  return {
    runId: 'r1',
    playbook: 'fix-registry.yaml',
    check: true,
    exitCode,
    outcome: { code: exitCode, reason: exitCode ? 'drift' : 'in sync', hosts: [] },
    durationMs: 900,
    hosts: Object.fromEntries(
      hosts.map((h) => [
        h,
        {
          recap,
          tasks: [
            {
              host: h,
              play: 'p',
              task: 'trust',
              module: 'containerd.tls',
              status: 'ok' as const,
              check: true,
              changes: [],
              diffs: [],
              warnings: [],
              durationMs: 10,
            },
          ],
        },
      ]),
    ),
  };
}

describe('--metrics-push', () => {
  it('the CLI pushes a broken check (exit 3) to the real gateway, which then serves it', async () => {
    writeFileSync(join(dir, 'broken.yaml'), '- hosts: all\n  tasks:\n    - containerd.tsl: {}\n');
    const r = await trustplay([
      'check',
      join(dir, 'broken.yaml'),
      '--metrics-push',
      `${open.url}/metrics/job/trustplay-check`,
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).not.toContain('could not push');
    const lines = await served(open.url, 'trustplay-check');
    expect(lines.find((l) => l.startsWith('trustplay_exit_code'))).toMatch(/mode="check".* 3$/);
  });

  it('a later push replaces the job: a check that stopped (no hosts) leaves no green host figure', async () => {
    const target = `${open.url}/metrics/job/replace`;
    const hostLines = (ls: string[]) => ls.filter((l) => /^trustplay_(host|task)_in_sync/.test(l));
    expect(await pushMetrics(target, prometheusMetrics(report(ExitCode.Ok, ['n1', 'n2']), Date.now()))).toBeUndefined();
    expect(hostLines(await served(open.url, 'replace'))).toHaveLength(4);
    // A POST would merge: the host and task families, absent from this push, would stay green.
    expect(await pushMetrics(target, prometheusMetrics(report(ExitCode.Invalid, []), Date.now()))).toBeUndefined();
    const after = await served(open.url, 'replace');
    expect(hostLines(after)).toEqual([]);
    expect(after.find((l) => l.startsWith('trustplay_exit_code'))).toMatch(/ 3$/);
  });

  it('takes basic auth from the URL, and no message ever shows the password', async () => {
    const port = new URL(authed.url).port;
    const text = prometheusMetrics(report(ExitCode.Ok, ['n1']), Date.now());
    expect(
      await pushMetrics(`http://trustplay:${password}@127.0.0.1:${port}/metrics/job/authed`, text),
    ).toBeUndefined();
    const auth = `Basic ${Buffer.from(`trustplay:${password}`).toString('base64')}`;
    expect(await served(authed.url, 'authed', auth)).not.toHaveLength(0);
    const wrong = await pushMetrics(`http://trustplay:not-${password}@127.0.0.1:${port}/metrics/job/authed`, text);
    expect(wrong).toBe(
      `could not push metrics to http://127.0.0.1:${port}/metrics/job/authed: HTTP 401 (Unauthorized)`,
    );
    // Through the CLI: the run's exit code stays its own, one line on stderr, no password anywhere.
    const r = await trustplay([
      'check',
      join(dir, 'broken.yaml'),
      '--metrics-push',
      `http://trustplay:x${password}@127.0.0.1:${port}/metrics/job/authed`,
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `trustplay: could not push metrics to http://127.0.0.1:${port}/metrics/job/authed: HTTP 401`,
    );
    expect(`${r.stdout}${r.stderr}`).not.toContain(password);
  });

  it('a gateway that is down is one line on stderr; the exit code is the run’s', async () => {
    const port = await freePort();
    const r = await trustplay([
      'check',
      join(dir, 'broken.yaml'),
      '--metrics-push',
      `http://127.0.0.1:${port}/metrics/job/x`,
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `trustplay: could not push metrics to http://127.0.0.1:${port}/metrics/job/x: ECONNREFUSED`,
    );
  });

  it('a gateway that takes the connection and never answers is given up on, and said so', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as net.AddressInfo;
    try {
      expect(await pushMetrics(`http://127.0.0.1:${port}/metrics/job/x`, 'x 1\n', 300)).toBe(
        `could not push metrics to http://127.0.0.1:${port}/metrics/job/x: no answer within 300 ms`,
      );
    } finally {
      silent.close();
    }
  });

  it('refuses what is not a Pushgateway job URL before anything runs (exit 3)', async () => {
    expect(pushTargetProblem('http://gw:9091/metrics/job/trustplay-check/instance/a')).toBeUndefined();
    expect(pushTargetProblem('https://gw/metrics/job@base64/dHA')).toBeUndefined();
    expect(pushTargetProblem('ftp://gw/metrics/job/x')).toBe('--metrics-push takes an http(s) URL, not ftp:');
    expect(pushTargetProblem('pushgateway/metrics/job/x')).toMatch(/^--metrics-push takes an http\(s\) URL/);
    const r = await trustplay(['check', join(dir, 'broken.yaml'), '--metrics-push', `http://u:${password}@gw:9091/`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      "--metrics-push http://gw:9091/: a Pushgateway job's path is /metrics/job/NAME (e.g. http://pushgateway:9091/metrics/job/trustplay-check)",
    );
    expect(r.stderr).not.toContain(password);
  });
});
