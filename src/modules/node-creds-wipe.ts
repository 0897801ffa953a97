/**
 * `node.creds.wipe`: removes stale credentials for one registry from the node's docker-format
 * config.json files and from containerd's `registry.configs."<host>".auth` (seed step 3, made
 * safe): only the named registry's entries go, other registries and every TLS setting stay, files
 * keep mode and owner, and a whole file is removed only with `all: true`. A config.toml change
 * notifies the verified containerd restart. Output names files and entries, never their values.
 */
import { describeExit } from '../connection/exit-codes.js';
import { IS_LINK, NO_LINK } from '../connection/file-scripts.js';
import type { Connection } from '../connection/connection.js';
import { inspectConfig } from '../containerd/config.js';
import { isRefusal, removeRegistryAuth, type RemoveAuthOutcome } from '../containerd/edits.js';
import { getIn, parsePlain } from '../containerd/toml-edit.js';
import { TaskError, defineModule, type ArgsOf, type Change } from '../engine/module.js';
import {
  containerdRestartRequest,
  afterPendingRestart,
  parsePendingMarker,
  pendingMarkerPath,
  rememberConfigBackup,
  type ConfigBackup,
} from './containerd-restart.js';
import { credentialKeys, isCredentialEditError, removeRegistryCredentials } from './docker-config.js';
import { configFileArg, registryArg, restartCommandArg } from '../playbook/schema/args-common.js';

const schema = {
  type: 'object',
  title: 'node.creds.wipe',
  description:
    "Remove stale credentials for one registry from the node's docker/kubelet config.json files and containerd's `registry.configs.\"<host>\".auth`, keeping every other registry's entries and all TLS settings (seed step 3, made safe).",
  additionalProperties: false,
  required: ['registry'],
  properties: {
    registry: registryArg,
    paths: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      default: ['/root/.docker/config.json', '/var/lib/kubelet/config.json'],
      description: 'Credential files (docker config.json format) to clean.',
    },
    containerd_auth: {
      type: 'boolean',
      default: true,
      description:
        'Also remove `registry.configs."<host>".auth` from config.toml (containerd is restarted when that changes).',
    },
    config_file: configFileArg,
    restart_command: restartCommandArg,
    socket: { type: 'string', minLength: 1, description: "containerd's CRI socket for the post-restart health check." },
    all: {
      type: 'boolean',
      default: false,
      description: "Remove the whole credential files and every registry's containerd auth (dangerous).",
    },
  },
} as const;

/** Arguments of `node.creds.wipe` as the engine hands them over (schema defaults filled in). */
export type NodeCredsWipeArgs = ArgsOf<typeof schema>;

/** How long the verified restart waits for the CRI socket (the module has no knob for it). */
const RESTART_TIMEOUT_SEC = 60;

/** A file on the node as gathered: content null unless it is a regular file (`other`: a directory, device...). */
export interface NodeFileState {
  path: string;
  kind: 'file' | 'absent' | 'other';
  content: string | null;
  mode?: number;
  uid?: number;
  gid?: number;
}

/** What `node.creds.wipe` reads: every credential file and (with `containerd_auth`) config.toml. */
export interface CredsObserved {
  files: NodeFileState[];
  config: NodeFileState | null;
  /** A config.toml change an interrupted run left unrestarted (its marker on the node). */
  pending?: ConfigBackup;
}

// One remote command for every file: a header line per path, then the bytes. `F size mode uid gid`
// precedes content followed by one newline; `A` = absent, `N` = exists but not a regular file.
const GATHER_SCRIPT = `${NO_LINK}
for p do
  nolink "$p"
  if [ -f "$p" ]; then
    n=$(wc -c < "$p") || exit 1
    m=$(stat -L -c '%a %u %g' -- "$p") || exit 1
    printf 'F %s %s\\n' "$((n))" "$m"
    cat -- "$p" || exit 1
    printf '\\n'
  elif [ -e "$p" ]; then printf 'N\\n'
  else printf 'A\\n'
  fi
done`;

/** Parses the gather script's output for `paths` (exported for tests). */
export function parseGatherOutput(out: Buffer, paths: string[]): NodeFileState[] {
  const states: NodeFileState[] = [];
  let pos = 0;
  for (const path of paths) {
    const eol = out.indexOf(0x0a, pos);
    if (eol < 0) throw new Error(`output ended before ${path}`);
    const header = out.subarray(pos, eol).toString('utf8').split(' ');
    pos = eol + 1;
    if (header[0] === 'A' || header[0] === 'N') {
      states.push({ path, kind: header[0] === 'A' ? 'absent' : 'other', content: null });
      continue;
    }
    const [, size, mode, uid, gid] = header.map((h, i) => (i === 0 ? 0 : Number.parseInt(h, i === 2 ? 8 : 10)));
    if (header[0] !== 'F' || size === undefined || Number.isNaN(size) || out[pos + size] !== 0x0a) {
      throw new Error(`${path} changed while it was read (or the output is garbled)`);
    }
    states.push({
      path,
      kind: 'file',
      content: out.subarray(pos, pos + size).toString('utf8'),
      ...(mode !== undefined && !Number.isNaN(mode) ? { mode } : {}),
      ...(uid !== undefined && !Number.isNaN(uid) ? { uid } : {}),
      ...(gid !== undefined && !Number.isNaN(gid) ? { gid } : {}),
    });
    pos += size + 1;
  }
  return states;
}

/** Reads `paths` (and config.toml) in one remote command. */
export async function gatherCreds(conn: Connection, args: NodeCredsWipeArgs): Promise<CredsObserved> {
  const paths = [
    ...args.paths,
    ...(args.containerd_auth ? [args.config_file, pendingMarkerPath(args.config_file)] : []),
  ];
  const r = await conn.exec({ argv: ['sh', '-c', GATHER_SCRIPT, 'sh', ...paths] });
  if (r.code !== 0) {
    const err = r.stderr.toString('utf8').trim().split('\n').slice(-2).join('; ');
    if (r.code === IS_LINK) throw new TaskError(`${conn.host}: ${err}`, 'refused');
    throw new TaskError(
      `reading the credential files on ${conn.host} failed (${describeExit(r.code, r.signal)})${err ? `: ${err}` : ''}`,
      'command',
    );
  }
  let states: NodeFileState[];
  try {
    states = parseGatherOutput(r.stdout, paths);
  } catch (e) {
    throw new TaskError(
      `reading the credential files on ${conn.host} failed: ${(e as Error).message}; run again`,
      'command',
    );
  }
  const marker = args.containerd_auth ? states[args.paths.length + 1] : undefined;
  return {
    files: states.slice(0, args.paths.length),
    config: args.containerd_auth ? (states[args.paths.length] ?? null) : null,
    ...(marker?.content != null ? { pending: parsePendingMarker(conn.host, args.config_file, marker.content) } : {}),
  };
}

/** Removes every registry's credentials from config.toml (`all: true`). */
export function removeAllRegistryAuth(text: string): RemoveAuthOutcome {
  const inspected = inspectConfig(text);
  if (!inspected.ok) return { error: inspected.error };
  const keys = Object.entries(inspected.info.configs).flatMap(([k, c]) => (c.auth === undefined ? [] : [k]));
  const auths = getIn(parsePlain(text), [...inspected.info.criRegistryPath, 'auths']);
  if (typeof auths === 'object' && auths !== null && !Array.isArray(auths)) keys.push(...Object.keys(auths));
  let cur = { text, changed: false, notes: [] as string[], removed: [] as string[] };
  for (const key of keys) {
    const r = removeRegistryAuth(cur.text, key);
    if (isRefusal(r)) return r;
    cur = {
      text: r.text,
      changed: cur.changed || r.changed,
      notes: [...cur.notes, ...r.notes],
      removed: [...cur.removed, ...r.removed.filter((x) => !cur.removed.includes(x))],
    };
  }
  return cur;
}

function credentialFileChange(args: NodeCredsWipeArgs, file: NodeFileState): Change | null {
  if (file.content === null) return null;
  const content = file.content;
  if (args.all) {
    const keys = credentialKeys(content);
    return {
      summary: `remove ${file.path} (credentials for ${keys.length ? keys.join(', ') : 'no registry'})`,
      resources: [{ kind: 'file', path: file.path }],
      diff: { target: file.path, before: content, after: '' },
      apply: (ctx) => ctx.conn.remove(file.path),
    };
  }
  const edit = removeRegistryCredentials(content, args.registry, file.path);
  if (isCredentialEditError(edit)) throw new TaskError(edit.error, 'refused');
  if (!edit.changed) return null;
  return {
    summary: `remove ${edit.removed.map((k) => `auths."${k}"`).join(', ')} from ${file.path}`,
    resources: [{ kind: 'file', path: file.path }],
    diff: { target: file.path, before: content, after: edit.text },
    // writeFile keeps the file's mode and owner (these files are 0600 and must stay so).
    apply: (ctx) => ctx.conn.writeFile(file.path, edit.text),
  };
}

function restartRequest(args: NodeCredsWipeArgs) {
  return {
    configFile: args.config_file,
    restartCommand: args.restart_command,
    ...(args.socket !== undefined ? { socket: args.socket } : {}),
    timeoutSec: RESTART_TIMEOUT_SEC,
  };
}

function containerdAuthChange(args: NodeCredsWipeArgs, config: NodeFileState): Change | null {
  if (config.content === null) return null;
  const previous = config.content;
  const outcome = args.all ? removeAllRegistryAuth(previous) : removeRegistryAuth(previous, args.registry);
  if (isRefusal(outcome)) {
    throw new TaskError(
      `${args.config_file}: ${outcome.error} (set containerd_auth: false to clean only the credential files)`,
      'refused',
    );
  }
  if (!outcome.changed) return null;
  const { text, removed } = outcome;
  return {
    summary: `remove ${removed.join(', ')} from ${args.config_file}`,
    resources: [{ kind: 'file', path: args.config_file }],
    diff: { target: args.config_file, before: previous, after: text },
    notify: [containerdRestartRequest(restartRequest(args))],
    apply: async (ctx) => {
      await rememberConfigBackup(ctx, args.config_file, Buffer.from(previous, 'utf8'), {
        ...(config.mode !== undefined ? { mode: config.mode } : {}),
        ...(config.uid !== undefined ? { uid: config.uid } : {}),
        ...(config.gid !== undefined ? { gid: config.gid } : {}),
      });
      await ctx.conn.writeFile(args.config_file, text);
    },
  };
}

/** The changes for the observed files: one per file that holds the registry's credentials. */
export function planCredsWipe(args: NodeCredsWipeArgs, observed: CredsObserved): Change[] {
  const changes: Change[] = [];
  for (const file of observed.files) {
    const c = credentialFileChange(args, file);
    if (c) changes.push(c);
  }
  if (args.containerd_auth && observed.config) {
    const c = containerdAuthChange(args, observed.config);
    if (c) changes.push(c);
  }
  return changes;
}

/** The `node.creds.wipe` module. */
export default defineModule({
  schema,
  name: 'node.creds.wipe',
  description:
    "Remove one registry's stale credentials from docker/kubelet config.json files and containerd's auth, keeping everything else.",
  gather: async (ctx, args) => {
    const observed = await gatherCreds(ctx.conn, args);
    // For the snapshot manifest and `facts`: which registries each file holds credentials for,
    // never the credentials themselves.
    ctx.fact(
      'credentials',
      Object.fromEntries(
        observed.files.map((f) => [
          f.path,
          f.kind === 'file' && f.content !== null ? credentialKeys(f.content) : f.kind,
        ]),
      ),
    );
    return observed;
  },
  plan: (args, observed, ctx) =>
    afterPendingRestart(ctx, observed.pending, restartRequest(args), () => planCredsWipe(args, observed)),
});
