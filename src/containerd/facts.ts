/**
 * Everything the containerd modules need to know about a node, read in ONE remote command: the
 * containerd version, config.toml (content, mode, owner) and one registry's certs.d directory
 * (every regular file in it, with mode and owner). Shared by containerd.tls, node.creds.wipe and
 * `trustplay facts`.
 */
import { posix } from 'node:path';
import type { Connection } from '../connection/connection.js';
import { describeExit } from '../connection/exit-codes.js';
import { IS_LINK, NO_LINK } from '../connection/file-scripts.js';
import { hostNamespaceDir } from './hosts-toml.js';
import { registryNameProblem } from './registry-host.js';
import { TaskError } from '../engine/errors.js';

import { parseContainerdVersion, type ContainerdVersion } from '../containerd/daemon-version.js';

export { parseContainerdVersion, type ContainerdVersion };

/** One file on the node with its metadata. */
export interface NodeFile {
  content: Buffer;
  mode: number;
  uid: number;
  gid: number;
}

/** A directory on the node and the regular files directly in it. */
export interface HostsDirFacts {
  path: string;
  exists: boolean;
  files: Record<string, NodeFile>;
}

/** Facts about containerd on one node. */
export interface ContainerdFacts {
  version: ContainerdVersion | null;
  /** config.toml: `text` is its content as UTF-8, `content` the exact bytes (for a byte-exact rollback). */
  config: { exists: boolean; text: string | null; content?: Buffer; mode?: number; uid?: number; gid?: number };
  /** The registry's host directory under config_path (path '' when no registry was asked for). */
  hostsDir: HostsDirFacts;
  /** Every directory in `extraDirs`, by path. */
  extraDirs: Record<string, HostsDirFacts>;
  /** Identity of the containerd binary (device:inode:size:mtime) the version was read from. */
  versionKey?: string;
  /** The content of config.toml's pending-restart marker (an interrupted change of trustplay's own). */
  pendingMarker?: string;
  /** The content of config.toml's restart record (the config trustplay last restarted containerd with). */
  restartRecord?: string;
}

/** What to read. */
export interface ContainerdFactsOptions {
  configFile: string;
  /** The certs.d directory (the CRI registry config_path trustplay manages). */
  configPath: string;
  /** `host` or `host:port`: read `<configPath>/<registry>/`. */
  registry?: string;
  /** More directories to list and read the same way (e.g. the targets of a legacy migration). */
  extraDirs?: string[];
}

// `containerd --version` starts a ~50 MB Go binary (~20 ms of CPU): ask it once per host and binary
// per process. The answer is kept here, in memory, keyed by the binary's device, inode, size and
// mtime as the node reports them; nothing is written on the node (check only reads).
const versions = new Map<string, { key: string; raw: string }>();

// Files bigger than this in a host directory are not certificates or hosts.toml; their content is
// not shipped back (the size guard keeps one odd file from turning a gather into a download).
const MAX_FILE = 1024 * 1024;

// Framing: `@@<tag> <fields>` header lines, each followed by base64 lines when it carries content.
// Paths arrive as positional parameters, never spliced into the script.
const SCRIPT = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
${NO_LINK}
cfg=$1
known=$2
shift 2
nolink "$cfg"
if command -v containerd >/dev/null 2>&1; then
  k=$(stat -L -c '%d:%i:%s:%Y' "$(command -v containerd)" 2>/dev/null)
  if [ -n "$k" ] && [ "$k" = "$known" ]; then
    echo "@@version same"
  else
    echo "@@version 1 $k"; containerd --version 2>&1 | head -n 1 | base64
  fi
else
  echo "@@version 0"
fi
if [ -f "$cfg" ]; then
  echo "@@config 1 $(stat -L -c '%a %u %g' -- "$cfg")"
  base64 < "$cfg" || exit 3
else
  echo "@@config 0"
fi
if [ -f "$cfg.trustplay-pending" ]; then
  echo "@@pending"
  base64 < "$cfg.trustplay-pending" || exit 3
fi
if [ -f "$cfg.trustplay-restarted" ]; then
  echo "@@restarted"
  base64 < "$cfg.trustplay-restarted" || exit 3
fi
for dir in "$@"; do
  p=$(printf '%s' "$dir" | base64 | tr -d '\\n')
  [ -n "$dir" ] && nolink "$dir"
  [ -n "$dir" ] && [ -d "$dir" ] || { echo "@@dir $p 0"; continue; }
  echo "@@dir $p 1"
  for f in "$dir"/* "$dir"/.[!.]*; do
    # A link is never read; at a name trustplay manages it is refused.
    if [ -L "$f" ]; then case \${f##*/} in hosts.toml|ca.crt|client.cert|client.key) nolink "$f";; esac; continue; fi
    [ -f "$f" ] || continue
    set -- $(stat -L -c '%a %u %g %s' -- "$f")
    n=$(printf '%s' "\${f##*/}" | base64 | tr -d '\\n')
    if [ "$4" -gt ${MAX_FILE} ]; then echo "@@big $n $1 $2 $3 $4"; continue; fi
    echo "@@file $n $1 $2 $3"
    base64 < "$f" || exit 3
  done
done
echo "@@end"
`;

/** The host directory for a registry under config_path. */
export function hostsDirFor(configPath: string, registry: string): string {
  const name = hostNamespaceDir(registry);
  const why = name === '_default' ? null : registryNameProblem(name);
  if (why)
    throw new TaskError(
      `${JSON.stringify(name.slice(0, 100))} is not a registry name (${why}), so it cannot name a directory under ${configPath}; use host or host:port`,
      'refused',
    );
  const root = posix.normalize(configPath.replace(/\/+$/, '') || '/');
  const dir = `${root === '/' ? '' : root}/${name}`;
  // Whatever the name's origin (a playbook, -e, the node's own config.toml), the directory written
  // or removed is a direct child of config_path.
  if (posix.dirname(posix.normalize(dir)) !== root || posix.normalize(dir) !== dir)
    throw new TaskError(
      `${dir} does not resolve to a directory directly under ${root}; refusing to touch it`,
      'refused',
    );
  return dir;
}

/** Parses the framed output of the gather script (exported for tests). */
export function parseFactsOutput(out: string, hostsDirPath: string, knownVersion?: string): ContainerdFacts {
  const facts: ContainerdFacts = {
    version: null,
    config: { exists: false, text: null },
    hostsDir: { path: hostsDirPath, exists: false, files: {} },
    extraDirs: {},
  };
  let dir: HostsDirFacts = { path: '', exists: false, files: {} };
  let sink: ((b: Buffer) => void) | null = null;
  let chunks: string[] = [];
  const flush = (): void => {
    if (sink) sink(Buffer.from(chunks.join(''), 'base64'));
    sink = null;
    chunks = [];
  };
  let ended = false;
  for (const line of out.split('\n')) {
    if (!line.startsWith('@@')) {
      if (sink) chunks.push(line.trim());
      continue;
    }
    flush();
    const [tag, ...f] = line.slice(2).split(' ');
    switch (tag) {
      case 'version':
        if (f[0] === '1' || f[0] === 'same') {
          const known = f[0] === 'same' ? knownVersion : undefined;
          if (f[0] === 'same' && known === undefined)
            throw new TaskError('the containerd facts command reused a version it was never given', 'command');
          const set = (raw: string): void => {
            facts.version = parseContainerdVersion(raw) ?? { raw: raw.trim(), major: 0, minor: 0 };
            if (f[1]) facts.versionKey = f[1];
          };
          if (known !== undefined) set(known);
          else sink = (b) => set(b.toString('utf8'));
        }
        break;
      case 'config':
        if (f[0] === '1') {
          facts.config = {
            exists: true,
            text: '',
            mode: parseInt(f[1] ?? '', 8),
            uid: Number(f[2]),
            gid: Number(f[3]),
          };
          sink = (b) => {
            facts.config.content = b;
            facts.config.text = b.toString('utf8');
          };
        }
        break;
      case 'pending':
        sink = (b) => (facts.pendingMarker = b.toString('utf8'));
        break;
      case 'restarted':
        sink = (b) => (facts.restartRecord = b.toString('utf8'));
        break;
      case 'dir': {
        const p = Buffer.from(f[0] ?? '', 'base64').toString('utf8');
        dir = { path: p, exists: f[1] === '1', files: {} };
        if (p !== '' && p === hostsDirPath) facts.hostsDir = dir;
        else facts.extraDirs[p] = dir;
        break;
      }
      case 'file': {
        const name = Buffer.from(f[0] ?? '', 'base64').toString('utf8');
        const meta = { mode: parseInt(f[1] ?? '', 8), uid: Number(f[2]), gid: Number(f[3]) };
        const into = dir;
        sink = (b) => (into.files[name] = { content: b, ...meta });
        break;
      }
      case 'big': {
        const name = Buffer.from(f[0] ?? '', 'base64').toString('utf8');
        throw new TaskError(
          `${dir.path}/${name} is ${f[4] ?? '?'} bytes, too big for a certificate or hosts.toml: move it out of the registry's host directory.`,
          'refused',
        );
      }
      case 'end':
        ended = true;
        break;
    }
  }
  flush();
  if (!ended)
    throw new TaskError('the containerd facts command stopped before its end marker (output cut short)', 'command');
  return facts;
}

/** Reads containerd's version, config.toml and one registry's certs.d directory in one remote command. */
export async function gatherContainerdFacts(conn: Connection, o: ContainerdFactsOptions): Promise<ContainerdFacts> {
  const dir = o.registry !== undefined ? hostsDirFor(o.configPath, o.registry) : '';
  const dirs = [...(dir ? [dir] : []), ...(o.extraDirs ?? []).filter((d) => d !== dir)];
  const known = versions.get(conn.host);
  const r = await conn.exec({ argv: ['sh', '-c', SCRIPT, 'sh', o.configFile, known?.key ?? '', ...dirs] });
  if (r.code !== 0) {
    const err = r.stderr.toString('utf8').trim().split('\n').slice(-3).join('; ');
    if (r.code === IS_LINK) throw new TaskError(`${conn.host}: ${err}`, 'refused');
    throw new TaskError(
      `${conn.host}: could not read containerd's version, ${o.configFile}${dir ? ` and ${dir}` : ''} (${describeExit(r.code, r.signal)})${err ? `: ${err}` : ''}`,
      'command',
    );
  }
  const facts = parseFactsOutput(r.stdout.toString('utf8'), dir, known?.raw);
  if (facts.versionKey && facts.version) versions.set(conn.host, { key: facts.versionKey, raw: facts.version.raw });
  return facts;
}
