/** Small helpers shared by the benchmarks: timing child processes, medians, tables. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));

export interface ChildRun {
  ms: number;
  code: number;
  maxRssKb: number;
  stdout: string;
  stderr: string;
}

/** Runs a node script with the RSS probe preloaded; wall time measured around the whole process. */
/** `env`: added to this process's environment; a variable set to undefined is removed. */
export function runNode(args: string[], env: Record<string, string | undefined> = {}): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, ['--import', new URL('./rss-on-exit.mjs', import.meta.url).href, ...args], {
      cwd: root,
      env: Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([, v]) => v !== undefined)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const m = /\{"bench_max_rss_kb":(\d+)\}/.exec(stderr);
      resolve({
        ms,
        code: code ?? -1,
        maxRssKb: m ? Number(m[1]) : NaN,
        stdout,
        stderr: stderr.replace(/\n?\{"bench_max_rss_kb":\d+\}\n?/, ''),
      });
    });
  });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function table(rows: Array<Record<string, string | number>>): string {
  if (!rows.length) return '';
  const cols = Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (vals: string[]) => '| ' + vals.map((v, i) => v.padEnd(width[i]!)).join(' | ') + ' |';
  return [
    line(cols),
    '|' + width.map((w) => '-'.repeat(w + 2)).join('|') + '|',
    ...rows.map((r) => line(cols.map((c) => String(r[c])))),
  ].join('\n');
}
