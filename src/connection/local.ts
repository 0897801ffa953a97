import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readFile, readlink, rename, rm, stat, unlink } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { userInfo } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import type {
  Command,
  Connection,
  ExecOptions,
  ExecResult,
  FileExpectation,
  FileStat,
  WriteOptions,
} from './connection.js';
import { FileChangedError, FileOperationError, TcpOpenError, tcpFailureOf } from './errors.js';
import {
  parseReadResult,
  parseStatResult,
  readFileCommand,
  removeCommand,
  statCommand,
  fileError,
  changedRefusal,
  linkRefusal,
  statFromMode,
  writeFileCommand,
} from './file-scripts.js';
import { relayArgv, relayError, relayFromProbe, relayProbeCommand, relayStream, type RelayName } from './relay.js';
import { LineSession, type HostSession } from './session.js';
import { buildCommandLine, commandArgv } from './shell-quote.js';
import { defined } from '../defined.js';
import type { KubeClient } from '../k8s/api.js';

/** Options for a connection to the machine trustplay runs on. */
export interface LocalConnectionOptions {
  /** Inventory name (default `localhost`). */
  host?: string;
  /** Run commands and file operations through sudo unless already root. */
  become?: boolean;
  /** The user sudo makes us (default root). */
  becomeUser?: string;
  /** Fed to `sudo -S` on stdin, never on a command line. */
  becomePassword?: string;
  /** The environment variable the password came from, for messages. */
  becomePasswordEnv?: string;
  /**
   * A node seen from a pod (`trustplay agent`): the directory where the node's root is mounted
   * (`/host`). File operations happen under it, as a process chrooted there would see them.
   */
  root?: string;
  /**
   * Put before every command (and session, and socket relay), so commands run in the node's own
   * namespaces: in a pod `nsenter -t 1 -m -u -i -n -p --`. Commands see the node's paths as they
   * are, file operations the same files under `root`.
   */
  commandPrefix?: string[];
  /** The agent's API client: ServiceAccounts are read and written through it, not kubectl on the node. */
  kube?: KubeClient;
}

/**
 * Where `path` on a node whose root is mounted at `root` is, as a process chrooted at `root` would
 * resolve it: a symbolic link in a directory of the path is followed inside `root` (an absolute
 * target starts again at `root`, `..` never climbs above it), so a node's link can never lead into
 * the agent's own file system. The last component is followed only with `followLast` (callers
 * that refuse links there look at it themselves). A missing directory ends the walk: the rest is
 * taken as written (a write with `mkdirs` creates it under `root`).
 */
export async function pathInRoot(root: string, path: string, followLast = false): Promise<string> {
  const queue = path.split('/').filter((p) => p !== '' && p !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (queue.length > 0) {
    const part = queue.shift() as string;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    if (queue.length === 0 && !followLast) {
      resolved.push(part);
      break;
    }
    const here = join(root, ...resolved, part);
    const st = await lstat(here).catch((err: unknown) => {
      if (isMissing(err)) return undefined;
      throw err;
    });
    if (st === undefined) {
      resolved.push(part, ...queue);
      break;
    }
    if (!st.isSymbolicLink()) {
      resolved.push(part);
      continue;
    }
    // Linux gives up after 40 links in one lookup (ELOOP); so does this.
    if (++links > 40) throw new Error(`too many levels of symbolic links in ${path}`);
    const target = await readlink(here);
    if (target.startsWith('/')) resolved.length = 0;
    queue.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
  }
  return join(root, ...resolved);
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Why files in `dir` cannot be written safely: someone other than root or us could swap them. */
function parentDirProblem(dir: string, st: Stats): string | null {
  const me = process.getuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== me)
    return `the directory ${dir} is owned by uid ${st.uid}, not root: anyone who owns it can swap the file; fix with: chown root ${dir}`;
  if (st.mode & 0o022)
    return `the directory ${dir} is writable by group or others (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}): anyone could swap the file; fix with: chmod go-w ${dir}`;
  return null;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** How long a TCP connect may take before it counts as a timeout (as a registry client's dialer). */
const TCP_CONNECT_TIMEOUT_MS = 10_000;

/** Runs commands as child processes of this process and touches files with fs calls. */
export class LocalConnection implements Connection {
  readonly host: string;
  readonly kind = 'local' as const;
  private readonly become: boolean;
  private readonly becomePassword: string | undefined;
  private readonly becomeUser: string;
  private readonly options: LocalConnectionOptions;
  private readonly me = userInfo().username;
  private prepared: Promise<void> | undefined;
  private relay: RelayName | undefined;
  private readonly root: string | undefined;
  private readonly prefix: string[];
  readonly kube: KubeClient | undefined;

  constructor(options: LocalConnectionOptions = {}) {
    this.host = options.host ?? 'localhost';
    this.kube = options.kube;
    this.options = options;
    this.root = options.root;
    this.prefix = options.commandPrefix ?? [];
    this.become = options.become ?? false;
    this.becomePassword = options.becomePassword;
    this.becomeUser = options.becomeUser ?? 'root';
  }

  /** With become as another user: sudo works, and which relay carries unix sockets (once). */
  connect(): Promise<void> {
    this.prepared ??= (async () => {
      if (!this.needsSudo()) return;
      const result = await this.exec(relayProbeCommand(), { timeoutMs: 30_000 });
      this.relay = relayFromProbe(
        {
          label: this.host,
          host: this.host,
          user: this.me,
          becomeUser: this.becomeUser,
          passwordEnv: this.options.becomePasswordEnv,
          hasPassword: this.becomePassword !== undefined,
        },
        result,
      );
    })();
    return this.prepared;
  }

  async close(): Promise<void> {}

  async directSocketPath(path: string): Promise<string | undefined> {
    await this.connect();
    return this.relay === undefined ? this.local(path, true) : undefined;
  }

  socketRelay(): RelayName | undefined {
    return this.relay;
  }

  /** Where a node path is on this machine: itself, or under the node's root (see {@link pathInRoot}). */
  private async local(path: string, followLast = false): Promise<string> {
    if (this.root === undefined) return path;
    try {
      return await pathInRoot(this.root, path, followLast);
    } catch (err) {
      throw new FileOperationError(
        this.host,
        path,
        `${this.host}: cannot resolve ${path} under ${this.root}: ${errorText(err)}`,
      );
    }
  }

  /** Whether an operation must go through sudo (become requested and we are not already that user). */
  private needsSudo(become?: boolean): boolean {
    return (become ?? this.become) && this.me !== this.becomeUser;
  }

  /** How to start a command: through sudo (a line fed on stdin first) or directly. */
  private spawnArgs(
    command: Command,
    options: ExecOptions,
  ): { file: string; args: string[]; stdinPrefix: Buffer | undefined; env: NodeJS.ProcessEnv } {
    let file: string;
    let args: string[];
    let stdinPrefix: Buffer | undefined;
    let env: NodeJS.ProcessEnv = process.env;
    if (this.needsSudo(options.become)) {
      const built = buildCommandLine(command, {
        ...(options.env ? { env: options.env } : {}),
        become: true,
        ...(this.becomeUser !== 'root' ? { becomeUser: this.becomeUser } : {}),
        ...defined({ becomePassword: this.becomePassword }),
      });
      [file, args, stdinPrefix] = ['sh', ['-c', built.line], built.stdinPrefix];
    } else {
      const argv = commandArgv(command);
      [file, args] = [argv[0] as string, argv.slice(1)];
      if (options.env) env = { ...process.env, ...options.env };
    }
    const [first, ...rest] = this.prefix;
    if (first !== undefined) [file, args] = [first, [...rest, file, ...args]];
    return { file, args, stdinPrefix, env };
  }

  session(command: Command, options: Pick<ExecOptions, 'become'> = {}): Promise<HostSession> {
    const { file, args, stdinPrefix, env } = this.spawnArgs(command, options);
    // Its own process group: a Ctrl-C on the terminal reaches trustplay, which releases the lock
    // in order; if trustplay dies instead, the pipe closes and the session sees EOF.
    const child = spawn(file, args, { env, detached: true, stdio: ['pipe', 'pipe', 'ignore'] });
    const ended = new Promise<void>((resolve) => {
      child.on('close', () => resolve());
      child.on('error', () => resolve());
    });
    if (stdinPrefix) child.stdin.write(stdinPrefix);
    return Promise.resolve(
      new LineSession(child.stdin, child.stdout, ended, () => {
        if (child.pid !== undefined && child.exitCode === null)
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            // already gone
          }
      }),
    );
  }

  exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    const { file, args, stdinPrefix, env } = this.spawnArgs(command, options);
    return new Promise((resolve) => {
      // detached = own process group, so a timeout kills the command and everything it started.
      const child = spawn(file, args, { env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let timedOut = false;
      let timer: NodeJS.Timeout | undefined;
      let spawnError: Error | undefined;
      child.stdout.on('data', (b: Buffer) => stdout.push(b));
      child.stderr.on('data', (b: Buffer) => stderr.push(b));
      child.stdin.on('error', () => undefined); // the command may exit without reading its stdin
      child.on('error', (err) => {
        spawnError = err;
      });
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        if (spawnError) {
          // Same shape as a shell's "command not found" so callers handle one kind of failure.
          const missing = (spawnError as NodeJS.ErrnoException).code === 'ENOENT';
          resolve({
            code: missing ? 127 : 126,
            stdout: Buffer.alloc(0),
            stderr: Buffer.from(`${file}: ${spawnError.message}\n`),
          });
          return;
        }
        const result: ExecResult = {
          code: timedOut ? 124 : (code ?? 128),
          stdout: Buffer.concat(stdout),
          stderr: Buffer.concat(stderr),
        };
        if (signal && !timedOut) result.signal = signal;
        if (timedOut) result.timedOut = true;
        resolve(result);
      });
      if (options.timeoutMs !== undefined && options.timeoutMs > 0) {
        timer = setTimeout(() => {
          timedOut = true;
          if (child.pid !== undefined) {
            try {
              process.kill(-child.pid, 'SIGKILL');
            } catch {
              // already gone
            }
          }
        }, options.timeoutMs);
      }
      if (stdinPrefix) child.stdin.write(stdinPrefix);
      if (options.stdin !== undefined) child.stdin.write(options.stdin);
      child.stdin.end();
    });
  }

  async readFile(path: string): Promise<Buffer | null> {
    if (this.needsSudo()) return parseReadResult(this.host, path, await this.exec(readFileCommand(path)));
    try {
      // O_NOFOLLOW: a link at a managed path is refused, never read through.
      const fh = await open(await this.local(path), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        return await fh.readFile();
      } finally {
        await fh.close();
      }
    } catch (err) {
      if (isMissing(err)) return null;
      const why = (err as NodeJS.ErrnoException).code === 'ELOOP' ? linkRefusal(path) : errorText(err);
      throw new FileOperationError(this.host, path, `${this.host}: cannot read ${path}: ${why}`);
    }
  }

  async writeFile(path: string, data: string | Buffer, options: WriteOptions = {}): Promise<void> {
    if (this.needsSudo()) {
      const result = await this.exec(writeFileCommand(path, Buffer.byteLength(data), options), { stdin: data });
      if (result.code !== 0) throw fileError(this.host, 'write', path, result);
      return;
    }
    let tmp: string | undefined;
    try {
      // The same rules as the remote script (file-scripts.ts): no link at the path, a parent only
      // root or we can write, owner and mode set on the temp file we created, then renamed over.
      const target = await this.local(path);
      const existing = await lstat(target).catch((err: unknown) => {
        if (isMissing(err)) return undefined;
        throw err;
      });
      if (existing?.isSymbolicLink()) throw new Error(linkRefusal(path));
      if (existing?.isDirectory()) throw new Error('it is a directory');
      await this.compareAndSwap(path, target, existing, options.expect, 'write');
      const dir = dirname(target);
      if (options.mkdirs) await mkdir(dir, { recursive: true, mode: 0o755 });
      const parentProblem = parentDirProblem(dir, await stat(dir));
      if (parentProblem) throw new Error(parentProblem);
      const mode = options.mode ?? (existing ? existing.mode & 0o7777 : 0o644);
      const uid = options.uid ?? existing?.uid;
      const gid = options.gid ?? existing?.gid;
      tmp = join(dir, `.${basename(target)}.trustplay-${randomBytes(6).toString('hex')}`);
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(data);
        if (uid !== undefined || gid !== undefined) await fh.chown(uid ?? -1, gid ?? -1);
        await fh.chmod(mode);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, target);
      tmp = undefined;
      const dh = await open(dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch (err) {
      if (tmp !== undefined) await unlink(tmp).catch(() => undefined);
      if (err instanceof FileChangedError) throw err;
      throw new FileOperationError(this.host, path, `${this.host}: cannot write ${path}: ${errorText(err)}`);
    }
  }

  async stat(path: string): Promise<FileStat> {
    if (this.needsSudo()) return parseStatResult(this.host, path, await this.exec(statCommand(path)));
    try {
      const st = await stat(await this.local(path, true));
      return statFromMode(st.mode, st.uid, st.gid, st.size);
    } catch (err) {
      if (isMissing(err)) return { exists: false };
      throw new FileOperationError(this.host, path, `${this.host}: cannot stat ${path}: ${errorText(err)}`);
    }
  }

  /** The write and remove scripts' `cas`, with fs: throws FileChangedError when the file is not `expect`. */
  private async compareAndSwap(
    path: string,
    target: string,
    existing: Stats | undefined,
    expect: FileExpectation | undefined,
    op: 'write' | 'remove',
  ): Promise<void> {
    if (!expect) return;
    const why =
      'absent' in expect
        ? existing && 'it exists now'
        : !existing
          ? 'it is gone'
          : createHash('sha256')
                .update(await readFile(target))
                .digest('hex') !== expect.sha256
            ? 'its content is not what was read'
            : undefined;
    if (why) throw new FileChangedError(this.host, path, `${changedRefusal(this.host, path, op)} (${why})`);
  }

  async remove(path: string, options: { expect?: FileExpectation } = {}): Promise<void> {
    if (this.needsSudo()) {
      const result = await this.exec(removeCommand(path, options.expect));
      if (result.code !== 0) throw fileError(this.host, 'remove', path, result);
      return;
    }
    try {
      const target = await this.local(path);
      const st = await lstat(target).catch((err: unknown) => {
        if (isMissing(err)) return undefined;
        throw err;
      });
      if (st?.isSymbolicLink()) throw new Error(linkRefusal(path));
      if (st?.isDirectory()) throw new Error('it is a directory');
      await this.compareAndSwap(path, target, st, options.expect, 'remove');
      if (st) await rm(target, { force: true });
    } catch (err) {
      if (err instanceof FileChangedError) throw err;
      throw new FileOperationError(this.host, path, `${this.host}: cannot remove ${path}: ${errorText(err)}`);
    }
  }

  async openUnixSocket(path: string): Promise<Duplex> {
    await this.connect();
    const relay = this.relay;
    if (relay !== undefined) {
      const { file, args, stdinPrefix, env } = this.spawnArgs({ argv: relayArgv(relay, path) }, {});
      const child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
      child.stdin.on('error', () => undefined);
      if (stdinPrefix) child.stdin.write(stdinPrefix);
      const ended = new Promise<number | null>((resolve) => {
        child.on('close', (code) => resolve(code));
        child.on('error', () => resolve(127));
      });
      return relayStream(child.stdout, child.stderr, child.stdin, ended, (code, stderr) =>
        relayError(relay, path, code, stderr),
      );
    }
    const target = await this.local(path, true);
    return new Promise((resolve, reject) => {
      const socket = netConnect(target);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (err) => {
        reject(new Error(`${this.host}: cannot connect to unix socket ${path}: ${err.message}`));
      });
    });
  }

  openTcp(address: string, port: number): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host: address, port, timeout: TCP_CONNECT_TIMEOUT_MS });
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        socket.removeAllListeners('timeout');
        socket.setTimeout(0);
        resolve(socket);
      });
      socket.once('timeout', () => {
        socket.destroy();
        reject(new TcpOpenError('timeout', `${this.host}: connecting to ${address}:${port} timed out`));
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          new TcpOpenError(
            tcpFailureOf(`${err.code ?? ''} ${err.message}`),
            `${this.host}: cannot connect to ${address}:${port}: ${err.message}`,
          ),
        );
      });
    });
  }
}
