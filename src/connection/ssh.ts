import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type {
  AnyAuthMethod,
  AuthHandlerMiddleware,
  Client as SshClient,
  ClientChannel,
  ConnectConfig,
  ParsedKey,
  ServerHostKeyAlgorithm,
} from 'ssh2';
import type {
  Command,
  Connection,
  ExecOptions,
  ExecResult,
  FileExpectation,
  FileStat,
  SessionOptions,
  WriteOptions,
} from './connection.js';
import { ConnectionError, TcpOpenError, tcpFailureOf } from './errors.js';
import {
  fileError,
  parseReadResult,
  parseStatResult,
  readFileCommand,
  removeCommand,
  statCommand,
  writeFileCommand,
} from './file-scripts.js';
import {
  appendKnownHost,
  checkHostKey,
  defaultKnownHostsFiles,
  fingerprint,
  hostPattern,
  keyTypeOf,
  loadKnownHosts,
  preferredHostKeyAlgorithms,
} from './known-hosts.js';
import {
  relayArgv,
  relayError,
  relayFromProbe,
  relayProbeCommand,
  relayStream,
  type BecomeParty,
  type RelayName,
} from './relay.js';
import { driverEnabled } from './driver.js';
import { LineSession, type HostSession } from './session.js';
import { buildCommandLine, type CommandLine, type CommandLineOptions } from './shell-quote.js';
import { defined } from '../defined.js';

const { Client, utils } = ssh2;

/** One bastion on the way to a host (OpenSSH ProxyJump); its host key is checked too. */
export interface ProxyJumpHop {
  address: string;
  port?: number;
  user?: string;
  identityFile?: string;
}

/** How to reach one host over SSH. */
export interface SshConnectionOptions {
  /** Inventory name, for messages. */
  host: string;
  address: string;
  port?: number;
  /** Login user (default: root, as trustplay mostly edits root-owned files). */
  user?: string;
  identityFile?: string;
  /** Name of an environment variable holding the identity file's passphrase. */
  passphraseEnv?: string;
  /** ssh-agent socket (default: $SSH_AUTH_SOCK). */
  agent?: string;
  /**
   * OpenSSH's IdentitiesOnly: offer only the identity file (or the default key files), never the
   * agent's keys. A server that locks an account after N failed keys, or a config that pins a
   * host to one key, relies on it.
   */
  identitiesOnly?: boolean;
  /** Default: ~/.ssh/known_hosts. New keys are recorded in the first one. */
  knownHostsFiles?: string[];
  /** Trust and record a key never seen before (a changed key is still refused). */
  acceptNewHostKeys?: boolean;
  /** Default 10000. */
  connectTimeoutMs?: number;
  /** Default 15000; 0 disables keepalives. */
  keepaliveIntervalMs?: number;
  /** Keepalives left unanswered before the connection counts as lost (default 3). */
  keepaliveCountMax?: number;
  /** Bastions in order, first one reached directly. */
  proxyJump?: ProxyJumpHop[];
  /** Run every command through sudo. */
  become?: boolean;
  /** The user sudo makes us (default root). */
  becomeUser?: string;
  /** Fed to `sudo -S` on stdin, never on a command line. */
  becomePassword?: string;
  /** The environment variable the password came from, for messages. */
  becomePasswordEnv?: string;
  /** Open channels at most at once (OpenSSH's MaxSessions, default 10). */
  maxSessions?: number;
}

/** Counters for benchmarks: TCP connections made, channels opened, commands run on the driver. */
export interface SshStats {
  connections: number;
  channels: number;
  /** Commands carried by the long-lived session's driver instead of a channel of their own. */
  carried: number;
}

// ssh2's defaults, in its order; known_hosts key types are moved to the front per host.
const HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

interface Target {
  /** `node1 (10.0.0.1:22)` or `node1 via bastion 10.0.0.9:22`, the start of every message. */
  label: string;
  address: string;
  port: number;
  user: string;
  identityFile: string | undefined;
  /** known_hosts names checked for this hop. */
  names: string[];
}

interface Credential {
  method: AnyAuthMethod;
  /** For messages: `key ~/.ssh/id_ed25519` or `ssh-agent`. */
  description: string;
}

function tildify(path: string): string {
  const home = homedir();
  return path.startsWith(`${home}/`) ? `~${path.slice(home.length)}` : path;
}

const keyCache = new Map<string, Promise<ParsedKey>>();

/** Waits for free slots; the limit can shrink when the server turns out to allow fewer. */
class SessionSlots {
  private open = 0;
  private readonly waiting: (() => void)[] = [];
  private releaseWatchers: (() => void)[] = [];
  constructor(private limit: number) {}

  get inUse(): number {
    return this.open;
  }

  async acquire(): Promise<void> {
    if (this.open < this.limit) {
      this.open++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.open <= this.limit ? this.waiting.shift() : undefined;
    if (next) next();
    else this.open--;
    const watchers = this.releaseWatchers;
    this.releaseWatchers = [];
    for (const w of watchers) w();
  }

  /** Resolves at the next release(): a refused channel retries when a session has gone away. */
  nextRelease(): Promise<void> {
    return new Promise((resolve) => this.releaseWatchers.push(resolve));
  }

  shrinkTo(limit: number): void {
    this.limit = Math.max(1, Math.min(this.limit, limit));
  }
}

/** One host over SSH: a single ssh2 connection for the whole run, one channel per operation. */
export class SshConnection implements Connection {
  readonly host: string;
  readonly kind = 'ssh' as const;
  private client: SshClient | undefined;
  private jumpClients: SshClient[] = [];
  private connecting: Promise<void> | undefined;
  /** The host's checks after the first handshake (the become relay probe); kept for the run. */
  private prepared: Promise<void> | undefined;
  private relay: RelayName | undefined;
  private readonly slots: SessionSlots;
  private readonly counters: SshStats = { connections: 0, channels: 0, carried: 0 };
  /** The long-lived session whose driver runs the host's commands (the lock holder's), while it lives. */
  private carrier: { session: LineSession; become: boolean } | undefined;
  private readonly options: SshConnectionOptions;
  private readonly target: Target;
  private driverState: string | undefined;
  /** Sessions may carry the host's commands (TRUSTPLAY_SSH_DRIVER=0 turns it off). */
  readonly carriesCommands = driverEnabled();

  constructor(options: SshConnectionOptions) {
    this.options = options;
    this.host = options.host;
    this.slots = new SessionSlots(options.maxSessions ?? 10);
    const port = options.port ?? 22;
    const names = [hostPattern(options.address, port)];
    if (options.host !== options.address) names.push(hostPattern(options.host, port));
    this.target = {
      label: `${options.host} (${options.address}:${port})`,
      address: options.address,
      port,
      user: options.user ?? 'root',
      identityFile: options.identityFile,
      names,
    };
  }

  /** Connections made and channels opened so far (for benchmarks and tests). */
  stats(): SshStats {
    return { ...this.counters };
  }

  /** Connects, and on first use makes sure become works and finds the relay for unix sockets. */
  async connect(): Promise<void> {
    await this.handshakeOnce();
    this.prepared ??= this.prepare();
    return this.prepared;
  }

  private handshakeOnce(): Promise<void> {
    if (this.client) return Promise.resolve();
    // Concurrent callers share one handshake.
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /**
   * Whether unix sockets must be reached through a relay run by sudo: sshd forwards them as the
   * login user, which is not the user commands run as.
   */
  private needsRelay(): boolean {
    return this.options.become === true && this.becomeUser() !== this.target.user;
  }

  private becomeUser(): string {
    return this.options.becomeUser ?? 'root';
  }

  private becomeParty(): BecomeParty {
    return {
      label: this.target.label,
      host: this.host,
      user: this.target.user,
      becomeUser: this.becomeUser(),
      passwordEnv: this.options.becomePasswordEnv,
      hasPassword: this.options.becomePassword !== undefined,
    };
  }

  /** One command before any other (a failure here changes nothing): sudo works, and which relay the node has. */
  private async prepare(): Promise<void> {
    if (!this.needsRelay()) return;
    const result = await this.run(this.commandLine(relayProbeCommand(), { become: true }), undefined, 30_000);
    this.relay = relayFromProbe(this.becomeParty(), result);
  }

  /** The relay program carrying unix-socket streams, or undefined when sshd forwards them directly. */
  socketRelay(): RelayName | undefined {
    return this.relay;
  }

  private commandLine(
    command: Command,
    options: Omit<CommandLineOptions, 'becomePassword' | 'becomeUser'>,
  ): CommandLine {
    const become = options.become ?? false;
    return buildCommandLine(command, {
      ...options,
      become,
      ...(become ? defined({ becomeUser: this.options.becomeUser, becomePassword: this.options.becomePassword }) : {}),
    });
  }

  private async open(): Promise<void> {
    const jumps: SshClient[] = [];
    try {
      let sock: Duplex | undefined;
      const hops = this.options.proxyJump ?? [];
      for (const [i, hop] of hops.entries()) {
        const port = hop.port ?? 22;
        const hopTarget: Target = {
          label: `${this.host} via bastion ${hop.address}:${port}`,
          address: hop.address,
          port,
          user: hop.user ?? this.target.user,
          identityFile: hop.identityFile ?? this.target.identityFile,
          names: [hostPattern(hop.address, port)],
        };
        const client = await this.handshake(hopTarget, sock);
        jumps.push(client);
        const next = hops[i + 1] ?? this.target;
        sock = await this.forward(client, hopTarget, next.address, next.port ?? 22);
      }
      const client = await this.handshake(this.target, sock);
      client.on('close', () => {
        if (this.client === client) this.client = undefined;
        for (const j of jumps) j.end();
      });
      this.jumpClients = jumps;
      this.client = client;
    } catch (err) {
      for (const j of jumps.reverse()) j.end();
      throw err;
    }
  }

  private forward(client: SshClient, via: Target, address: string, port: number): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      client.forwardOut('127.0.0.1', 0, address, port, (err, stream) => {
        if (err) {
          reject(
            new ConnectionError(
              'unreachable',
              this.host,
              `${via.label}: the bastion cannot reach ${address}:${port} (${err.message}) — check the address and that the bastion allows TCP forwarding`,
            ),
          );
        } else {
          this.counters.channels++;
          resolve(stream);
        }
      });
    });
  }

  private async credentials(target: Target): Promise<Credential[]> {
    const creds: Credential[] = [];
    const files = target.identityFile
      ? [target.identityFile]
      : ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => join(homedir(), '.ssh', n)).filter((f) => existsSync(f));
    for (const file of files) {
      const key = await this.loadKey(target, file);
      creds.push({ method: { type: 'publickey', username: target.user, key }, description: `key ${tildify(file)}` });
    }
    const agent = this.options.identitiesOnly ? undefined : (this.options.agent ?? process.env.SSH_AUTH_SOCK);
    if (agent) creds.push({ method: { type: 'agent', username: target.user, agent }, description: 'ssh-agent' });
    if (creds.length === 0) {
      throw new ConnectionError(
        'auth',
        this.host,
        this.options.identitiesOnly
          ? `${target.label}: no SSH key to log in with: the SSH config sets IdentitiesOnly, so ssh-agent keys are not offered — set IdentityFile there, or identity_file for the host`
          : `${target.label}: no SSH key to log in with — set identity_file for the host, or load a key into ssh-agent`,
      );
    }
    return creds;
  }

  private loadKey(target: Target, file: string): Promise<ParsedKey> {
    const envName = this.options.passphraseEnv;
    const passphrase = envName ? process.env[envName] : undefined;
    const cacheKey = `${file}\0${passphrase ?? ''}`;
    let parsed = keyCache.get(cacheKey);
    if (!parsed) {
      // Parsing an encrypted key runs bcrypt; do it once per process, not once per host.
      parsed = (async () => {
        let data: Buffer;
        try {
          data = await readFile(file);
        } catch (err) {
          throw new ConnectionError(
            'auth',
            this.host,
            `${target.label}: cannot read the SSH key ${tildify(file)} (${(err as Error).message}) — check identity_file`,
          );
        }
        const key = utils.parseKey(data, passphrase);
        if (key instanceof Error) {
          const msg = key.message;
          let why: string;
          if (/no passphrase given/.test(msg)) {
            why = envName
              ? `is passphrase-protected and the environment variable ${envName} is not set`
              : 'is passphrase-protected — name an environment variable holding the passphrase (passphrase_env) or load the key into ssh-agent';
          } else if (/passphrase/.test(msg)) {
            why = `cannot be decrypted with the passphrase from ${envName ?? 'the environment'} — check it`;
          } else {
            why = `is not a private key ssh2 can read (${msg})`;
          }
          throw new ConnectionError('auth', this.host, `${target.label}: the SSH key ${tildify(file)} ${why}`);
        }
        return Array.isArray(key) ? (key[0] as ParsedKey) : key;
      })();
      keyCache.set(cacheKey, parsed);
      parsed.catch(() => keyCache.delete(cacheKey));
    }
    return parsed;
  }

  private async handshake(target: Target, sock: Duplex | undefined): Promise<SshClient> {
    const creds = await this.credentials(target);
    const knownHostsFiles = this.options.knownHostsFiles ?? defaultKnownHostsFiles();
    const known = await loadKnownHosts(knownHostsFiles);
    const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
    let hostKeyError: ConnectionError | undefined;

    const hostVerifier = (key: Buffer, verify: (ok: boolean) => void): void => {
      const verdict = checkHostKey(known.entries, target.names, key);
      const fp = fingerprint(key);
      const type = keyTypeOf(key);
      switch (verdict.status) {
        case 'trusted':
          verify(true);
          return;
        case 'revoked':
          hostKeyError = new ConnectionError(
            'host-key',
            this.host,
            `${target.label}: the host key ${type} ${fp} is marked @revoked in ${verdict.entry.file}:${verdict.entry.line} — refusing to connect`,
          );
          verify(false);
          return;
        case 'changed':
          hostKeyError = new ConnectionError(
            'host-key',
            this.host,
            `${target.label}: HOST KEY CHANGED — the server sent ${type} ${fp}, which does not match ${verdict.entry.file}:${verdict.entry.line}${verdict.entry.keyType === type ? '' : ` (known_hosts pins a key of type ${verdict.entry.keyType} for this host, which the server no longer offers)`}; this may be an attack or a reinstalled host: verify the new fingerprint out of band, then remove that line (ssh-keygen -R '${target.names[0]}' -f ${verdict.entry.file})`,
          );
          verify(false);
          return;
        case 'unknown': {
          if (this.options.acceptNewHostKeys) {
            const file = knownHostsFiles[0];
            if (file) {
              appendKnownHost(file, target.names[0] ?? target.address, key).then(
                () => verify(true),
                (err: unknown) => {
                  hostKeyError = new ConnectionError(
                    'host-key',
                    this.host,
                    `${target.label}: cannot record the new host key in ${file}: ${(err as Error).message}`,
                  );
                  verify(false);
                },
              );
              return;
            }
          }
          const keyscan =
            target.port === 22 ? `ssh-keyscan ${target.address}` : `ssh-keyscan -p ${target.port} ${target.address}`;
          hostKeyError = new ConnectionError(
            'host-key',
            this.host,
            `${target.label}: unknown host key ${type} ${fp} — verify that fingerprint, then trust it with \`${keyscan} >> ${tildify(knownHostsFiles[0] ?? '~/.ssh/known_hosts')}\` or run with --accept-new-host-keys`,
          );
          verify(false);
        }
      }
    };

    const queue = [...creds];
    let lastTried: Credential | undefined;
    const authHandler: AuthHandlerMiddleware = (_left, _partial, next) => {
      lastTried = queue.shift();
      if (lastTried) next(lastTried.method);
      else (next as unknown as (m: false) => void)(false); // ssh2 accepts false ("no more methods"); its types omit it
    };

    const keepalive = this.options.keepaliveIntervalMs ?? 15_000;
    const config: ConnectConfig = {
      host: target.address,
      port: target.port,
      username: target.user,
      readyTimeout: timeoutMs,
      keepaliveInterval: keepalive,
      keepaliveCountMax: this.options.keepaliveCountMax ?? 3,
      hostVerifier,
      authHandler,
      algorithms: {
        serverHostKey: preferredHostKeyAlgorithms(
          known.entries,
          target.names,
          HOST_KEY_ALGORITHMS,
        ) as ServerHostKeyAlgorithm[],
      },
      ...(sock ? { sock } : {}),
    };

    const client = new Client();
    this.counters.connections++;
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: Error & { level?: string; code?: string }): void => {
        if (settled) return;
        settled = true;
        client.end();
        reject(hostKeyError ?? this.describeConnectError(target, err, creds, timeoutMs));
      };
      client.once('ready', () => {
        settled = true;
        // Each operation is a few small packets; Nagle would hold them for the peer's delayed ACK
        // (~40 ms per round trip on loopback).
        client.setNoDelay(true);
        client.removeListener('error', fail);
        // A later socket error surfaces as 'close'; keep a listener so it never crashes the process.
        client.on('error', () => undefined);
        resolve(client);
      });
      client.on('error', fail);
      client.once('close', () => fail(new Error('the server closed the connection during the handshake')));
      try {
        client.connect(config);
      } catch (err) {
        fail(err as Error);
      }
    });
  }

  private describeConnectError(
    target: Target,
    err: Error & { level?: string; code?: string },
    creds: Credential[],
    timeoutMs: number,
  ): ConnectionError {
    const at = target.label;
    if (err.level === 'client-authentication') {
      const how = creds.map((c) => c.description).join(', ');
      return new ConnectionError(
        'auth',
        this.host,
        `${at}: authentication failed for user ${target.user} with ${how} (publickey) — check the key and authorized_keys`,
        { cause: err },
      );
    }
    if (err.level === 'client-timeout') {
      return new ConnectionError(
        'unreachable',
        this.host,
        `${at}: no SSH handshake within ${timeoutMs / 1000} s — is the address right and the port reachable?`,
        { cause: err },
      );
    }
    const reasons: Record<string, string> = {
      ECONNREFUSED: 'connection refused — is sshd running and listening there?',
      EHOSTUNREACH: 'no route to host — check the address and the network',
      ENETUNREACH: 'network unreachable — check the address and the network',
      ETIMEDOUT: 'connection timed out — is the address right and the port reachable?',
      ENOTFOUND: 'cannot resolve the address — check the inventory',
      EAI_AGAIN: 'cannot resolve the address (DNS not answering) — check the inventory and DNS',
      ECONNRESET:
        'connection reset during the SSH handshake — is it an SSH server, and does it accept us (MaxStartups, firewall)?',
    };
    const reason = (err.code && reasons[err.code]) ?? `SSH connection failed: ${err.message}`;
    return new ConnectionError('unreachable', this.host, `${at}: ${reason}`, { cause: err });
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    await this.connect();
    const become = options.become ?? this.options.become ?? false;
    const lineOptions = {
      ...(options.env ? { env: options.env } : {}),
      ...defined({ timeoutMs: options.timeoutMs }),
    };
    const carrier = this.carrier;
    // The driver already runs as the become user (sudo ran once, for the session): no sudo per command.
    if (carrier && carrier.become === become) {
      const line = this.commandLine(command, { ...lineOptions, become: false, exec: true });
      this.counters.carried++;
      try {
        // A command with a timeout may be killed with its children still running (busybox's timeout
        // kills only its child): never streamed back, so nothing it leaves can write into the session.
        const contained = options.contained === true && options.timeoutMs === undefined;
        return await carrier.session.run(line.line, options.stdin, options.timeoutMs, contained);
      } catch (err) {
        // The session ended under the command: a lost connection is a lost host; otherwise the
        // session was stopped (its holder killed), and the command's fate is unknown.
        await new Promise((r) => setImmediate(r));
        if (!this.client) throw this.lost(err);
        throw new ConnectionError(
          'unreachable',
          this.host,
          `${this.target.label}: the SSH session carrying this host's commands (and its trustplay lock) ended before the command answered — did another run break the lock, or was the holder process killed?`,
          { cause: err },
        );
      }
    }
    return this.run(this.commandLine(command, { ...lineOptions, become }), options.stdin, options.timeoutMs);
  }

  /** Runs a command line on a session channel, waiting for a free slot first. */
  private async run(
    line: CommandLine,
    stdin: string | Buffer | undefined,
    timeoutMs: number | undefined,
  ): Promise<ExecResult> {
    await this.handshakeOnce();
    for (let refusals = 0; ;) {
      await this.slots.acquire();
      let running: { result: Promise<ExecResult> };
      try {
        running = await this.openSession(line.line, (channel) => this.collect(channel, line, stdin, timeoutMs));
      } catch (err) {
        const othersOpen = this.slots.inUse - 1;
        const retry = othersOpen > 0 && this.client !== undefined && /open failure/i.test((err as Error).message);
        const released = retry ? this.slots.nextRelease() : undefined;
        this.slots.release();
        if (!released) throw err;
        // sshd frees a session a moment after the close handshake, so a refusal right after one of
        // ours closed is a race: retry when the next one closes. Refused again and again means the
        // server's MaxSessions is lower than we assumed: adapt to it.
        if (++refusals >= 3) this.slots.shrinkTo(othersOpen);
        await released;
        continue;
      }
      try {
        return await running.result;
      } finally {
        // sshd frees a session slot a little after the close handshake; an OPEN sent in the same
        // instant is refused ("no more sessions"). A timer tick lets most frees land first; the
        // rare refusal left is retried above.
        setTimeout(() => this.slots.release(), 0);
      }
    }
  }

  /**
   * Opens a session running `line`. `start` runs synchronously in ssh2's callback: a fast
   * command's output, exit status and close can arrive in the same read as the exec reply, so
   * listeners attached a microtask later would miss them.
   */
  private async openSession(
    line: string,
    start: (channel: ClientChannel) => Promise<ExecResult>,
  ): Promise<{ result: Promise<ExecResult> }> {
    await this.handshakeOnce();
    const client = this.client;
    if (!client) throw this.lost();
    return new Promise((resolve, reject) => {
      try {
        client.exec(line, (err, channel) => {
          if (err) {
            // The connection ending while the channel was being opened is a lost host, not a
            // refused command: ssh2 answers pending opens with "No response from server", then closes.
            // A tick later, a closed connection has cleared this.client.
            this.failOpen(client, err, reject);
          } else {
            this.counters.channels++;
            resolve({ result: start(channel) });
          }
        });
      } catch (err) {
        // ssh2 throws synchronously when the socket is already gone.
        reject(this.lost(err));
      }
    });
  }

  /**
   * Whether a channel open failed because the connection itself ended (ssh2 answers pending opens
   * with "No response from server", then closes; a tick later a closed connection has cleared
   * this.client), not because the server refused that one channel.
   */
  private connectionGone(client: SshClient, err: Error): boolean {
    return this.client !== client || /no response from server|not connected/i.test(err.message);
  }

  /** Rejects a failed channel open a tick later: as a lost host when the connection ended, else with `other`. */
  private failOpen(client: SshClient, err: Error, reject: (e: unknown) => void, other: unknown = err): void {
    setImmediate(() => reject(this.connectionGone(client, err) ? this.lost(err) : other));
  }

  private lost(cause?: unknown): ConnectionError {
    return new ConnectionError(
      'unreachable',
      this.host,
      `${this.target.label}: the SSH connection was lost — is the host still up?`,
      { cause },
    );
  }

  private collect(
    channel: ClientChannel,
    line: CommandLine,
    stdin: string | Buffer | undefined,
    timeoutMs: number | undefined,
  ): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let code: number | undefined;
      let signal: string | undefined;
      let timedOut = false;
      let timer: NodeJS.Timeout | undefined;
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        if (timedOut) {
          resolve({ code: 124, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), timedOut: true });
          return;
        }
        if (code === undefined && signal === undefined) {
          if (!this.client) {
            reject(this.lost());
            return;
          }
          // sshd sends no exit status when it could not run the command at all.
          code = 255;
        }
        const result: ExecResult = { code: code ?? 128, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr) };
        if (signal !== undefined) result.signal = signal.startsWith('SIG') ? signal : `SIG${signal}`;
        resolve(result);
      };
      channel.on('data', (b: Buffer) => stdout.push(b));
      channel.stderr.on('data', (b: Buffer) => stderr.push(b));
      channel.on('exit', (c: number | null, s?: string) => {
        if (c !== null && c !== undefined) code = c;
        else if (s) signal = s;
      });
      channel.on('close', finish);
      channel.on('error', () => undefined);
      if (timeoutMs !== undefined && timeoutMs > 0) {
        timer = setTimeout(() => {
          timedOut = true;
          // The remote `timeout` wrapper kills the process group; the signal is a faster first try.
          try {
            channel.signal('KILL');
          } catch {
            // not supported by every server
          }
          channel.close();
          // Do not wait on an unresponsive server to acknowledge the close.
          setTimeout(finish, 1000).unref();
        }, timeoutMs);
      }
      if (line.stdinPrefix) channel.write(line.stdinPrefix);
      if (stdin !== undefined) channel.write(stdin);
      channel.end();
    });
  }

  /** A channel running `line` that holds a session slot until the caller releases it (on close). */
  private async longLivedChannel(line: CommandLine): Promise<ClientChannel> {
    await this.slots.acquire();
    try {
      const channel = await new Promise<ClientChannel>((resolve, reject) => {
        const client = this.client;
        if (!client) return reject(this.lost());
        try {
          client.exec(line.line, (err, ch) => {
            if (!err) return resolve(ch);
            this.failOpen(client, err, reject);
          });
        } catch (err) {
          reject(this.lost(err));
        }
      });
      this.counters.channels++;
      return channel;
    } catch (err) {
      this.slots.release();
      throw err;
    }
  }

  /**
   * A long-lived command on its own channel, holding one of the connection's session slots until it
   * ends. sshd closes its stdin when the connection goes (client killed, network reset), so the
   * command sees EOF and can clean up after us.
   */
  async session(command: Command, options: SessionOptions = {}): Promise<HostSession> {
    await this.connect();
    const become = options.become ?? this.options.become ?? false;
    // The login shell is replaced by the session's own (`exec sh -c ...`): one process fewer per host.
    const line = this.commandLine(command, { become, exec: !become });
    const channel = await this.longLivedChannel(line);
    channel.on('error', () => undefined);
    const ended = new Promise<void>((resolve) => {
      channel.on('close', () => {
        setTimeout(() => this.slots.release(), 0);
        resolve();
      });
    });
    if (line.stdinPrefix) channel.write(line.stdinPrefix);
    const session = new LineSession(channel, channel, ended, () => {
      try {
        channel.signal('KILL');
      } catch {
        // not supported by every server
      }
      channel.close();
    });
    if (options.carry) {
      // The driver says at once whether this shell can run it; otherwise one session per command, as before.
      const status = await session.driverStatus();
      this.driverState = status ?? 'the session ended before the driver started';
      if (status === 'ok') {
        this.carrier = { session, become };
        void ended.then(() => {
          if (this.carrier?.session === session) this.carrier = undefined;
        });
      }
    }
    return session;
  }

  /** `ok` while a session's driver carries commands, else why not (for tests and --verbose); undefined before any. */
  driverStatus(): string | undefined {
    return this.carrier ? 'ok' : this.driverState;
  }

  async readFile(path: string): Promise<Buffer | null> {
    return parseReadResult(this.host, path, await this.exec(readFileCommand(path), { contained: true }));
  }

  async writeFile(path: string, data: string | Buffer, options: WriteOptions = {}): Promise<void> {
    const result = await this.exec(writeFileCommand(path, Buffer.byteLength(data), options), {
      stdin: data,
      contained: true,
    });
    if (result.code !== 0) throw fileError(this.host, 'write', path, result);
  }

  async stat(path: string): Promise<FileStat> {
    return parseStatResult(this.host, path, await this.exec(statCommand(path), { contained: true }));
  }

  async remove(path: string, options: { expect?: FileExpectation } = {}): Promise<void> {
    const result = await this.exec(removeCommand(path, options.expect), { contained: true });
    if (result.code !== 0) throw fileError(this.host, 'remove', path, result);
  }

  async openUnixSocket(path: string): Promise<Duplex> {
    await this.connect();
    if (this.relay !== undefined) return this.openRelay(this.relay, path);
    const client = this.client;
    if (!client) throw this.lost();
    return new Promise((resolve, reject) => {
      client.openssh_forwardOutStreamLocal(path, (err, stream) => {
        if (err) {
          this.failOpen(
            client,
            err,
            reject,
            new Error(
              `${this.target.label}: cannot open the unix socket ${path} over SSH (${err.message}) — is something listening there, and does sshd allow AllowStreamLocalForwarding?`,
            ),
          );
          return;
        }
        this.counters.channels++;
        resolve(stream);
      });
    });
  }

  async openTcp(address: string, port: number): Promise<Duplex> {
    await this.connect();
    const client = this.client;
    if (!client) throw this.lost();
    return new Promise((resolve, reject) => {
      client.forwardOut('127.0.0.1', 0, address, port, (err, stream) => {
        if (err) {
          // The host lost (a frozen or killed sshd) is not the address failing; otherwise OpenSSH
          // puts its resolver's or connect()'s error text in the open-failure description.
          this.failOpen(
            client,
            err,
            reject,
            new TcpOpenError(
              tcpFailureOf(err.message),
              `${this.target.label}: the host cannot open a TCP connection to ${address}:${port} (${err.message.replace(/^\(SSH\) Channel open failure: /, '')})`,
            ),
          );
          return;
        }
        this.counters.channels++;
        resolve(stream);
      });
    });
  }

  /**
   * The socket through `sudo <relay>` on an exec channel: its stdio is the stream. It holds a
   * session slot while open. A relay that ends badly (socket missing, permission) destroys the
   * stream with its stderr as the error, which the CRI client reports as the cause.
   */
  private async openRelay(relay: RelayName, path: string): Promise<Duplex> {
    const line = this.commandLine({ argv: relayArgv(relay, path) }, { become: true });
    const channel = await this.longLivedChannel(line);
    if (line.stdinPrefix) channel.write(line.stdinPrefix);
    channel.on('error', () => undefined);
    let code: number | null = null;
    channel.on('exit', (c: number | null) => (code = c ?? null));
    const ended = new Promise<number | null>((resolve) =>
      channel.on('close', () => {
        setTimeout(() => this.slots.release(), 0);
        resolve(code);
      }),
    );
    return relayStream(channel, channel.stderr, channel, ended, (exit, stderr) =>
      relayError(relay, path, exit, stderr),
    );
  }

  async close(): Promise<void> {
    const clients = [this.client, ...this.jumpClients.slice().reverse()].filter((c): c is SshClient => c !== undefined);
    this.client = undefined;
    this.jumpClients = [];
    await Promise.all(
      clients.map(
        (c) =>
          new Promise<void>((resolve) => {
            c.once('close', () => resolve());
            c.end();
            setTimeout(resolve, 2000).unref();
          }),
      ),
    );
  }
}
