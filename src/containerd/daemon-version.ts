/**
 * The version of the containerd that is RUNNING on a node, which is the one whose config rules
 * matter. The `containerd` on PATH is often another binary: k3s and RKE2 embed their own, some
 * distributions install to /usr/local/bin beside a packaged one, and an upgrade in progress has
 * the new binary on disk while the old daemon still serves. A 2.1 daemon judged by a 1.6 binary
 * on PATH gets its version 3 config refused; the reverse would write a config the daemon cannot
 * load.
 *
 * In order: the CRI `Version` RPC on the socket the daemon serves (what kubelet sees); else the
 * running daemon process's own executable (`/proc/<pid>/exe --version`, which works even when an
 * upgrade replaced the file on disk); else `containerd --version` from PATH, said to be only that.
 */
import type { Connection } from '../connection/connection.js';
import {
  cleanUnavailable,
  createCriClientFor,
  rememberCriVersion,
  takeRecentCriVersion,
  DEFAULT_CRI_SOCKETS,
  GRPC_UNAVAILABLE,
  GRPC_UNIMPLEMENTED,
  resolveCriSocket,
} from '../cri/client.js';
import { defined } from '../defined.js';

/** containerd's version: the text it came from, and major/minor (0/0 when unparsable). */
export interface ContainerdVersion {
  raw: string;
  major: number;
  minor: number;
}

/** Where a version was read. */
export type VersionSource =
  | { kind: 'cri'; socket: string }
  /** `socket`: the API socket the process was matched by (absent: the only containerd process found). */
  | { kind: 'process'; pid: number; exe: string; socket?: string }
  | { kind: 'path' };

/** A version and where it came from. */
export interface SourcedVersion {
  version: ContainerdVersion;
  source: VersionSource;
}

/** "the running daemon (CRI Version on /run/containerd/containerd.sock)" and the like. */
export function describeVersionSource(s: VersionSource): string {
  switch (s.kind) {
    case 'cri':
      return `the running daemon (CRI Version on ${s.socket})`;
    case 'process':
      return `the running daemon's executable (pid ${s.pid}, ${s.exe}${s.socket !== undefined ? `, listening on ${s.socket}` : ''})`;
    case 'path':
      return '`containerd --version` on PATH (no running containerd answered)';
  }
}

/** Parses a bare version ("v2.1.9", "1.6.20~ds1", "2.1.9+unknown"). */
export function parseVersionWord(word: string, raw = word): ContainerdVersion | null {
  const m = /^v?(\d+)\.(\d+)(?:[.~+-]|$)/.exec(word.trim());
  return m ? { raw: raw.trim(), major: Number(m[1]), minor: Number(m[2]) } : null;
}

/** Parses `containerd --version` output ("containerd github.com/containerd/containerd v2.0.0 …", "… 1.6.20~ds1 …"). */
export function parseContainerdVersion(raw: string): ContainerdVersion | null {
  for (const w of raw.trim().split(/\s+/).slice(1)) {
    const v = parseVersionWord(w, raw);
    if (v) return v;
  }
  return null;
}

/** How long the CRI may take to answer `Version`. */
const CRI_VERSION_TIMEOUT_MS = 3000;

/** The CRI's answer when the runtime behind `socket` is containerd, else null (not serving, or another runtime). */
export async function versionFromCri(conn: Connection, socket: string): Promise<SourcedVersion | null> {
  let client;
  try {
    let v = takeRecentCriVersion(conn, socket);
    if (!v) {
      client = await createCriClientFor(conn, socket);
      v = await client.version(CRI_VERSION_TIMEOUT_MS);
      rememberCriVersion(conn, socket, v);
    }
    if (v.runtimeName !== 'containerd') return null;
    const parsed = parseVersionWord(v.runtimeVersion, `containerd ${v.runtimeVersion}`);
    return parsed ? { version: parsed, source: { kind: 'cri', socket } } : null;
  } catch {
    return null;
  } finally {
    await client?.close();
  }
}

// The containerd process (not a shim: those are containerd-shim*) in this shell's own mount
// namespace (a containerd inside a container or another namespace is not this host's daemon)
// that holds the listening socket at one of the paths given as arguments: /proc/net/unix maps the
// path to the socket's inode, and the daemon has `socket:[<inode>]` among its fds. Several daemons
// may run side by side (a k3s agent next to a packaged containerd; lab nodes sharing a network
// namespace bind the same path), and a `containerd --version` someone runs is named containerd
// too, so the first process named containerd is only the last resort ($dheld=0).
// Sets dpid, dexe, dsock, dheld; returns 1 when no containerd runs here. `read` is a builtin: a
// `$(cat)` per process forks once per process, which costs seconds on a loaded node.
export const CONTAINERD_DAEMON_SH = `containerd_daemon() {
  dpid=; dexe=; dsock=; dheld=0
  self=$(readlink /proc/self/ns/mnt 2>/dev/null)
  inodes=
  for s in "$@"; do
    for i in $(awk -v p="$s" '$8 == p { print $7 }' /proc/net/unix 2>/dev/null); do inodes="$inodes $i:$s"; done
  done
  first=
  for d in /proc/[0-9]*; do
    { read -r n < "$d/comm"; } 2>/dev/null || continue
    [ "$n" = containerd ] || continue
    [ "$(readlink "$d/ns/mnt" 2>/dev/null)" = "$self" ] || continue
    e=$(readlink "$d/exe" 2>/dev/null) || continue
    [ -n "$first" ] || first="$d $e"
    [ -n "$inodes" ] || break
    fds=" $(readlink "$d"/fd/* 2>/dev/null | tr '\\n' ' ')"
    for i in $inodes; do
      case "$fds" in *" socket:[\${i%%:*}] "*) dpid=\${d#/proc/}; dexe=$e; dsock=\${i#*:}; dheld=1; return 0 ;; esac
    done
  done
  [ -n "$first" ] || return 1
  dpid=\${first%% *}; dpid=\${dpid#/proc/}; dexe=\${first#* }
}
`;

// Output: "<pid> <1 = holds the socket | 0> <base64 exe path> <base64 socket path>", then the
// executable's own `--version` line.
const PROCESS_SCRIPT = `${CONTAINERD_DAEMON_SH}
containerd_daemon "$@" || exit 0
v=$("/proc/$dpid/exe" --version 2>/dev/null | head -n 1) || exit 0
[ -n "$v" ] || exit 0
printf '%s %s %s %s\\n%s\\n' "$dpid" "$dheld" "$(printf '%s' "$dexe" | base64 | tr -d '\\n')" "$(printf '%s' "$dsock" | base64 | tr -d '\\n')" "$v"
`;

/**
 * The running containerd process's own version, or null when no containerd process runs. The
 * process serving one of `sockets` (containerd's API socket, which is also the CRI's) wins.
 */
export async function versionFromProcess(
  conn: Connection,
  sockets: readonly string[] = DEFAULT_CRI_SOCKETS,
): Promise<SourcedVersion | null> {
  const r = await conn.exec({ argv: ['sh', '-c', PROCESS_SCRIPT, 'sh', ...sockets] }).catch(() => null);
  if (!r || r.code !== 0) return null;
  const [head, line] = r.stdout.toString('utf8').split('\n');
  const [pid, held, exe64, sock64] = (head ?? '').split(' ');
  const version = line ? parseContainerdVersion(line) : null;
  if (!version || !pid || !exe64) return null;
  const socket = held === '1' && sock64 ? Buffer.from(sock64, 'base64').toString('utf8') : undefined;
  return {
    version,
    source: {
      kind: 'process',
      pid: Number(pid),
      exe: Buffer.from(exe64, 'base64').toString('utf8'),
      ...defined({ socket }),
    },
  };
}

/**
 * The running containerd's version: CRI first (`socket()` resolves the host's CRI socket; it may
 * throw when none answers), then the daemon process, then `pathVersion` (from PATH) as the last
 * resort; null when containerd is neither running nor installed.
 */
export async function runningContainerdVersion(
  conn: Connection,
  socket: () => Promise<string>,
  pathVersion: ContainerdVersion | null,
): Promise<SourcedVersion | null> {
  const sock = await socket().catch(() => undefined);
  const fromCri = sock !== undefined ? await versionFromCri(conn, sock) : null;
  if (fromCri) return fromCri;
  const fromProcess = await versionFromProcess(conn, sock !== undefined ? [sock] : DEFAULT_CRI_SOCKETS);
  if (fromProcess) return fromProcess;
  return pathVersion ? { version: pathVersion, source: { kind: 'path' } } : null;
}

/**
 * A warning when PATH's `containerd` is another major.minor than the running daemon: what an
 * operator running `containerd config default` or `ctr` on that node gets is not what serves.
 */
export function pathMismatchWarning(
  running: SourcedVersion,
  pathVersion: ContainerdVersion | null,
  host: string,
): string | undefined {
  if (running.source.kind === 'path' || !pathVersion) return undefined;
  if (pathVersion.major === running.version.major && pathVersion.minor === running.version.minor) return undefined;
  return `${host}: the running containerd is ${running.version.major}.${running.version.minor} (${describeVersionSource(running.source)}) but \`containerd\` on PATH is ${pathVersion.major}.${pathVersion.minor}; trustplay follows the running daemon (k3s, RKE2 and upgrades in progress differ like this).`;
}

/** What `runningVersionFor` needs of a task's context. */
export interface VersionContext {
  conn: Connection;
  host: string;
  hostState: Map<string, unknown>;
  warn(message: string): void;
}

const RUNNING_KEY = 'containerd.running-version';

/**
 * `runningContainerdVersion` once per host per run (kept in the run's memory, never on the node),
 * warning once when PATH's containerd differs from the running one.
 */
export async function runningVersionFor(
  ctx: VersionContext,
  socket: () => Promise<string>,
  pathVersion: ContainerdVersion | null,
): Promise<SourcedVersion | null> {
  const cached = ctx.hostState.get(RUNNING_KEY) as SourcedVersion | undefined;
  if (cached) return cached;
  const running = await runningContainerdVersion(ctx.conn, socket, pathVersion);
  if (!running) return null;
  ctx.hostState.set(RUNNING_KEY, running);
  const warning = pathMismatchWarning(running, pathVersion, ctx.host);
  if (warning) ctx.warn(warning);
  return running;
}

/** The host's CRI socket without a task: `configured`, else crictl.yaml, else the first default socket whose runtime is containerd. */
export function containerdSocket(conn: Connection, configured?: string): Promise<string> {
  return resolveCriSocket(conn, configured, async (candidate) => (await versionFromCri(conn, candidate)) !== null);
}

/** How long the pre-flight waits for a socket's `Version` before calling the CRI not serving. */
const PREFLIGHT_TIMEOUT_MS = 3000;

/**
 * The node's real state when its CRI does not serve, for the pre-flight refusal (DECISIONS:
 * interrupted changes and the CRI pre-flight): what each socket said and which daemon runs. Read
 * only: it asks `Version` on each socket once and looks at the daemon found by `running`.
 * Undefined when a socket does answer as containerd now: the first read was only slow (a loaded
 * node), and the CRI serves after all; no refusal is due.
 */
export async function criNotServingState(
  conn: Connection,
  sockets: readonly string[],
  running: SourcedVersion | null,
): Promise<string | undefined> {
  const said: string[] = [];
  for (const socket of sockets) {
    const st = await conn.stat(socket).catch(() => null);
    if (!st?.exists) {
      said.push(`no socket at ${socket}`);
      continue;
    }
    let client;
    try {
      client = await createCriClientFor(conn, socket);
      const v = await client.version(PREFLIGHT_TIMEOUT_MS);
      if (v.runtimeName === 'containerd') return undefined;
      said.push(`${socket} is served by ${v.runtimeName} ${v.runtimeVersion}, not containerd`);
    } catch (e) {
      const m = e as { code?: number; details?: string; message?: string };
      said.push(
        `${socket}: ${m.code === GRPC_UNIMPLEMENTED ? 'containerd answers without the CRI (plugin not loaded)' : m.code === GRPC_UNAVAILABLE ? cleanUnavailable(m.details ?? '') : (m.details ?? m.message ?? String(e))}`,
      );
    } finally {
      await client?.close();
    }
  }
  const daemon =
    running?.source.kind === 'process'
      ? `containerd ${running.version.raw.split(/\s+/).find((w) => parseVersionWord(w)) ?? running.version.raw} runs as pid ${running.source.pid} (${running.source.exe})`
      : 'no containerd process runs';
  return `${said.join('; ')}; ${daemon}`;
}

/** The refusal of a module whose pre-flight found the CRI not serving, with nothing of trustplay's pending. */
export function criNotServingRefusal(host: string, state: string): string {
  return `${host}: containerd's CRI does not serve (${state}), and no change of trustplay's is pending, so the node was already not serving Kubernetes before this run; nothing was changed: fix containerd first (its log says why; a missing base runtime spec file or a disabled CRI plugin are common causes), then run again.`;
}

/** `criNotServingState` for a task: its `socket`, else the host's `cri_socket`, else the well-known sockets. */
export function criStateFor(
  ctx: { conn: Connection; vars: Record<string, unknown> },
  configured: string | undefined,
  running: SourcedVersion | null,
): Promise<string | undefined> {
  const fromVars = typeof ctx.vars['cri_socket'] === 'string' ? ctx.vars['cri_socket'] : undefined;
  const explicit = configured ?? fromVars;
  const sockets =
    explicit !== undefined && explicit !== ''
      ? [explicit.replace(/^unix:(\/\/)?/, '')]
      : running?.source.kind === 'process' && running.source.socket !== undefined
        ? [running.source.socket]
        : DEFAULT_CRI_SOCKETS;
  return criNotServingState(ctx.conn, sockets, running);
}
