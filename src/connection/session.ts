/**
 * A long-lived command on a host, fed and read line by line. The host lock lives in one (the node
 * drops the lock the moment the session ends, whoever ended it); its line protocol is open to more
 * verbs, so the same session can later carry the host's other commands.
 */
import type { Readable, Writable } from 'node:stream';
import type { ExecResult } from './connection.js';
import { DriverParser, driverRequest, driverToken, type DriverAnswer } from './driver.js';

export interface HostSession {
  /** Sends one line (a newline is added) to the command's stdin. */
  send(line: string): void;
  /** The next line the command prints on stdout, or null once its output has ended. */
  nextLine(signal?: AbortSignal): Promise<string | null>;
  /** Ends the command's stdin (it sees EOF) and waits up to `graceMs` for it to exit, then kills it. */
  close(graceMs?: number): Promise<void>;
  /** Resolves when the command has exited or the connection carrying it is gone. */
  readonly ended: Promise<void>;
}

/** The session a command was sent on ended (its connection, or its process) before answering. */
export class SessionEndedError extends Error {
  override readonly name = 'SessionEndedError';
}

/** A command sent to the driver, answered in order. */
interface Pending {
  timeoutMs: number | undefined;
  resolve: (r: ExecResult) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
  /** Answered already (timed out): its frame is read and dropped. */
  settled: boolean;
}

/**
 * The line plumbing shared by the local and SSH sessions, and the driver's framed commands on the
 * same stdout (see driver.ts) when the session's script runs the driver.
 */
export class LineSession implements HostSession {
  private readonly lines: string[] = [];
  private readonly pending: Pending[] = [];
  private status: ((s: string | null) => void) | undefined;
  private readonly statusSeen: Promise<string | null>;
  private waiters: ((l: string | null) => void)[] = [];
  private eof = false;
  /** This session's token for contained commands (see driver.ts). */
  private readonly token = driverToken();
  readonly ended: Promise<void>;

  constructor(
    private readonly stdin: Writable,
    stdout: Readable,
    ended: Promise<void>,
    private readonly kill: () => void,
  ) {
    this.ended = ended;
    this.statusSeen = new Promise((resolve) => (this.status = resolve));
    stdin.on('error', () => undefined);
    const parser = new DriverParser(
      {
        line: (l) => this.push(l),
        status: (s) => this.status?.(s),
        frame: (a) => this.answer(a),
      },
      this.token,
    );
    stdout.on('data', (b: Buffer) => parser.push(b));
    const end = (): void => {
      if (this.eof) return;
      this.eof = true;
      this.status?.(null);
      for (const w of this.waiters.splice(0)) w(null);
      for (const p of this.pending.splice(0)) {
        if (p.timer) clearTimeout(p.timer);
        if (!p.settled) p.reject(new SessionEndedError('the session carrying the command ended before it answered'));
      }
    };
    stdout.on('end', end);
    stdout.on('close', end);
    void ended.then(end);
  }

  /**
   * Whether the session's driver runs (its `D ok` line), or why not; null when the session ended
   * first (or never started a driver).
   */
  driverStatus(): Promise<string | null> {
    return this.statusSeen;
  }

  /**
   * Runs a command line on the driver. Commands are pipelined; each one's timer starts when the
   * one before it has answered, as it would on a channel of its own. After `timeoutMs` it answers
   * code 124 (`timedOut`); the command line's own `timeout` wrapper ends the command on the node.
   * `contained`: the command leaves no process behind (ExecOptions.contained), so its stdout may
   * come straight back.
   */
  run(
    line: string,
    stdin: string | Buffer | undefined,
    timeoutMs: number | undefined,
    contained = false,
  ): Promise<ExecResult> {
    if (this.eof || this.stdin.writableEnded || this.stdin.destroyed)
      return Promise.reject(new SessionEndedError('the session carrying commands has ended'));
    return new Promise((resolve, reject) => {
      const p: Pending = { timeoutMs, resolve, reject, settled: false };
      this.pending.push(p);
      if (this.pending.length === 1) this.startTimer(p);
      this.stdin.write(driverRequest(line, stdin, contained ? this.token : undefined));
    });
  }

  private startTimer(p: Pending): void {
    if (p.timeoutMs === undefined || p.timeoutMs <= 0) return;
    p.timer = setTimeout(() => {
      p.settled = true;
      p.resolve({ code: 124, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), timedOut: true });
    }, p.timeoutMs);
  }

  private answer(a: DriverAnswer): void {
    const p = this.pending.shift();
    const next = this.pending[0];
    if (next) this.startTimer(next);
    if (!p || p.settled) return;
    if (p.timer) clearTimeout(p.timer);
    p.settled = true;
    p.resolve({ code: a.code, stdout: a.stdout, stderr: a.stderr });
  }

  private push(line: string): void {
    const w = this.waiters.shift();
    if (w) w(line);
    else this.lines.push(line);
  }

  send(line: string): void {
    if (!this.stdin.writableEnded && !this.stdin.destroyed) this.stdin.write(`${line}\n`);
  }

  nextLine(signal?: AbortSignal): Promise<string | null> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.eof) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const waiter = (line: string | null): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(line);
      };
      const onAbort = (): void => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  async close(graceMs = 3000): Promise<void> {
    if (!this.stdin.writableEnded) this.stdin.end();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(true), graceMs);
      timer.unref();
    });
    if (await Promise.race([this.ended.then(() => false), timedOut])) this.kill();
    clearTimeout(timer);
  }
}
