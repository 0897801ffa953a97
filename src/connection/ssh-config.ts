/**
 * The OpenSSH client config (`~/.ssh/config`, or `--ssh-config FILE` / `-F FILE`) as OpenSSH reads
 * it, for the settings trustplay's SSH connection uses: HostName, User, Port, IdentityFile,
 * IdentitiesOnly, ProxyJump, UserKnownHostsFile, StrictHostKeyChecking, ConnectTimeout,
 * ServerAliveInterval, ServerAliveCountMax. Ansible
 * drives OpenSSH, so a fleet's bastions, users, ports and aliases often live there. Parsing and
 * first-match-wins evaluation (Host patterns with negation, Match host/user) are the `ssh-config`
 * package's; this file adds `Include` (OpenSSH reads included files in place), token expansion
 * and the conversion to trustplay's connection settings. `Match exec` is never run: a config
 * file must not make trustplay execute commands.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import SSHConfig from 'ssh-config';
import { defined } from '../defined.js';

export interface SshClientConfig {
  file: string;
  config: SSHConfig;
}

/** What the config says for one host, in trustplay's terms (only what it sets). */
export interface SshConfigValues {
  hostName?: string;
  user?: string;
  port?: number;
  identityFiles?: string[];
  identitiesOnly?: boolean;
  proxyJump?: string[];
  userKnownHostsFiles?: string[];
  strictHostKeyChecking?: string;
  connectTimeout?: number;
  /** Seconds between keepalives (0: none); with the count, how soon a silent peer counts as lost. */
  serverAliveInterval?: number;
  serverAliveCountMax?: number;
}

export class SshConfigError extends Error {}

function expandTilde(p: string): string {
  return p === '~' ? homedir() : p.startsWith('~/') ? join(homedir(), p.slice(2)) : p;
}

/** `*` and `?` in the last path component, as OpenSSH's glob() for Include. */
function globFiles(pattern: string): string[] {
  const dir = dirname(pattern);
  const base = basename(pattern);
  if (!/[*?[]/.test(base)) return existsSync(pattern) ? [pattern] : [];
  if (!existsSync(dir)) return [];
  const re = new RegExp(
    '^' +
      base
        .replace(/[.+^${}()|\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.') +
      '$',
  );
  return readdirSync(dir)
    .filter((f) => re.test(f))
    .sort()
    .map((f) => join(dir, f));
}

/** The config text with each `Include` replaced by the files it names (relative ones under ~/.ssh). */
function withIncludes(file: string, depth: number): string {
  if (depth > 16) throw new SshConfigError(`${file}: Include nests more than 16 levels (a loop?)`);
  const text = readFileSync(file, 'utf8');
  return text
    .split('\n')
    .map((line) => {
      const m = /^\s*include\s*[=\s]\s*(.+?)\s*$/i.exec(line);
      if (!m) return line;
      return m[1]!
        .split(/\s+/)
        .map((p) => p.replace(/^"|"$/g, ''))
        .flatMap((p) => {
          const path = expandTilde(p);
          return globFiles(isAbsolute(path) ? path : join(homedir(), '.ssh', path));
        })
        .filter((f) => statSync(f).isFile())
        .map((f) => withIncludes(f, depth + 1))
        .join('\n');
    })
    .join('\n');
}

/**
 * Read an OpenSSH client config: FILE, or `~/.ssh/config` when it exists; `none` (as `ssh -F
 * none`) reads nothing.
 */
export function loadSshConfig(file?: string): SshClientConfig | undefined {
  if (file === 'none') return undefined;
  const path = file ?? join(homedir(), '.ssh', 'config');
  if (file === undefined && !existsSync(path)) return undefined;
  let text: string;
  try {
    text = withIncludes(path, 0);
  } catch (e) {
    if (e instanceof SshConfigError) throw e;
    throw new SshConfigError(`cannot read SSH config ${path}: ${(e as Error).message}`);
  }
  try {
    return { file: path, config: SSHConfig.parse(text) };
  } catch (e) {
    throw new SshConfigError(`cannot parse SSH config ${path}: ${(e as Error).message}`);
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function list(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** OpenSSH's percent tokens for the directives that take them (%h %r %u %d %%). */
function tokens(s: string, t: { h: string; r: string }): string {
  return s.replace(/%([hrud%])/g, (_, k: string) =>
    k === 'h' ? t.h : k === 'r' ? t.r : k === 'u' ? userInfo().username : k === 'd' ? homedir() : '%',
  );
}

/** The settings that apply to HOST (the name ssh would be given), first match winning. */
export function resolveSshConfig(cfg: SshClientConfig, host: string, user?: string): SshConfigValues {
  const raw = cfg.config.compute({ Host: host, ...defined({ User: user }) }, { ignoreCase: true, matchExec: false });
  const get = (k: string) => raw[k.toLowerCase()];
  const out: SshConfigValues = {};
  const hostName = first(get('HostName'));
  if (hostName) out.hostName = tokens(hostName, { h: host, r: user ?? '' });
  const u = first(get('User'));
  if (u) out.user = u;
  const remoteUser = user ?? out.user ?? userInfo().username;
  const port = first(get('Port'));
  if (port !== undefined) {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 1 || n > 65535)
      throw new SshConfigError(`${cfg.file}: Port ${port} for ${host} is not a port number`);
    out.port = n;
  }
  const ids = list(get('IdentityFile'));
  const h = out.hostName ?? host;
  if (ids.length) out.identityFiles = ids.map((i) => expandTilde(tokens(i, { h, r: remoteUser })));
  const only = first(get('IdentitiesOnly'));
  if (only !== undefined) out.identitiesOnly = only.toLowerCase() === 'yes';
  const jump = first(get('ProxyJump'));
  if (jump && jump.toLowerCase() !== 'none') out.proxyJump = jump.split(',').map((j) => j.trim());
  const known = list(get('UserKnownHostsFile')).flatMap((k) => k.split(/\s+/));
  if (known.length) out.userKnownHostsFiles = known.map((k) => expandTilde(tokens(k, { h, r: remoteUser })));
  const strict = first(get('StrictHostKeyChecking'));
  if (strict !== undefined) out.strictHostKeyChecking = strict.toLowerCase();
  const timeout = first(get('ConnectTimeout'));
  if (timeout !== undefined && Number.isFinite(Number(timeout))) out.connectTimeout = Number(timeout);
  const alive = first(get('ServerAliveInterval'));
  if (alive !== undefined && Number.isInteger(Number(alive)) && Number(alive) >= 0)
    out.serverAliveInterval = Number(alive);
  const count = first(get('ServerAliveCountMax'));
  if (count !== undefined && Number.isInteger(Number(count)) && Number(count) >= 1)
    out.serverAliveCountMax = Number(count);
  return out;
}
