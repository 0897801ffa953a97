/** The real trustplay CLI as a child process for end-to-end suites: plain output, stopped by pid on timeout. */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** Exit code and output of one CLI run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** A CLI run in progress: its process (to signal it), its output so far, and its end. */
export interface CliProcess {
  child: ChildProcess;
  /** Resolves with the first stdout line matching `re` (rejects if the run ends first). */
  line(re: RegExp): Promise<string>;
  /** Its output so far. */
  output(): { stdout: string; stderr: string };
  done: Promise<CliRun>;
}

/** Starts `node --import tsx src/cli/main.ts ...args` from the repository root, without a terminal. */
export function startTrustplay(
  args: string[],
  opts: { timeoutMs?: number; env?: Record<string, string>; cwd?: string } = {},
): CliProcess {
  const timeoutMs = opts.timeoutMs ?? 180_000;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', CI: '', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const watchers: { re: RegExp; resolve: (l: string) => void }[] = [];
  const scan = (): void => {
    for (const w of watchers.slice()) {
      const m = stdout.split('\n').find((l) => w.re.test(l));
      if (m !== undefined) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
    scan();
  });
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<CliRun>((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      reject(
        new Error(
          `trustplay ${args.join(' ')} did not finish within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      // Killed by a signal: the shell's convention, 128 + its number.
      resolve({ code: code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : -1), stdout, stderr });
    });
  });
  return {
    child,
    done,
    output: () => ({ stdout, stderr }),
    line: (re) =>
      new Promise((resolve, reject) => {
        watchers.push({ re, resolve });
        scan();
        void done.then(
          () => reject(new Error(`trustplay ended before printing a line matching ${re}: ${stdout}${stderr}`)),
          reject,
        );
      }),
  };
}

/** `node --import tsx src/cli/main.ts ...args` from the repository root (or `cwd`, a copy of it), without a terminal. */
export function trustplay(
  args: string[],
  opts: { timeoutMs?: number; env?: Record<string, string>; cwd?: string } = {},
): Promise<CliRun> {
  return startTrustplay(args, opts).done;
}
