/**
 * A long-lived command on a host, fed and read line by line. The host lock lives in one (the node
 * drops the lock the moment the session ends, whoever ended it); its line protocol is open to more
 * verbs, so the same session can later carry the host's other commands.
 */
import type { Readable, Writable } from 'node:stream';

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

/** The line plumbing shared by the local and SSH sessions. */
export class LineSession implements HostSession {
  private buffered = '';
  private readonly lines: string[] = [];
  private waiters: ((l: string | null) => void)[] = [];
  private eof = false;
  readonly ended: Promise<void>;

  constructor(
    private readonly stdin: Writable,
    stdout: Readable,
    ended: Promise<void>,
    private readonly kill: () => void,
  ) {
    this.ended = ended;
    stdin.on('error', () => undefined);
    stdout.on('data', (b: Buffer) => {
      this.buffered += b.toString('utf8');
      let i: number;
      while ((i = this.buffered.indexOf('\n')) >= 0) {
        this.push(this.buffered.slice(0, i));
        this.buffered = this.buffered.slice(i + 1);
      }
    });
    const end = (): void => {
      if (this.eof) return;
      this.eof = true;
      for (const w of this.waiters.splice(0)) w(null);
    };
    stdout.on('end', end);
    stdout.on('close', end);
    void ended.then(end);
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
