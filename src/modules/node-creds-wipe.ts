/**
 * `node.creds.wipe`: removes stale credentials for one registry from the node's docker-format
 * config.json files and from containerd's `registry.configs."<host>".auth` (seed step 3, made
 * safe): only the named registry's entries go, other registries and every TLS setting stay, files
 * keep mode and owner, and a whole file is removed only with `all: true`. A config.toml change
 * notifies the verified containerd restart. Credential helpers the files name are reported, never
 * removed or run (helpersOf), and so are those containers/image's registries.conf names in
 * `credential-helpers` (confHelpers). Output names files, entries and helpers, never their values.
 */
import { managedEntry, readNode, ReadFailed, type NodeRead } from '../connection/read-files.js';
import type { Connection } from '../connection/connection.js';
import { inspectConfig } from '../containerd/config.js';
import { removeRegistryAuth, type RemoveAuthOutcome } from '../containerd/edits.js';
import { getIn, parsePlain } from '../toml/model.js';
import { TaskError } from '../engine/errors.js';
import { defineModule, type ArgsOf, type Change } from '../engine/module.js';
import { expectOf } from '../engine/apply.js';
import { defined } from '../defined.js';
import {
  afterPendingRestart,
  parsePendingMarker,
  pendingMarkerPath,
  restartRecordPath,
  type ConfigBackup,
} from '../engine/restart-backup.js';
import {
  allHelpers,
  credentialKeys,
  helpersFor,
  removeRegistryCredentials,
  type HelperRef,
} from '../creds/docker-config.js';
import { quote, quoteCommandName } from '../connection/shell-quote.js';
import {
  AUTH_FILE_HELPER,
  credentialHelpers,
  dropInDir,
  ROOT_REGISTRIES_CONF,
  rootRegistriesConfFiles,
} from '../containers-image/registries-conf.js';
import { DEFAULT_CREDENTIAL_FILES } from '../containerd/node-facts.js';
import {
  configFileArg,
  DEFAULT_CONFIG_FILE,
  DEFAULT_RESTART_COMMAND,
  registryArg,
  restartCommandArg,
  restartTimeoutArg,
  registriesConfArg,
} from '../playbook/schema/args-common.js';
import { detectFlavour, MICROK8S, type Flavour } from '../containerd/flavour.js';
import { criPluginsDisabledIn } from '../containerd/config.js';
import { removeRegistriesAuth } from '../containerd/registries-yaml.js';
import { registryKeyMatches } from '../containerd/registry-host.js';
import { restartRequestFor } from './containerd-restart.js';
import { criNotServingRefusal, criStateFor, runningVersionFor } from '../containerd/daemon-version.js';
import { criSocketFor, withCri } from '../cri/connect.js';
import { daemonRegistry, type DaemonRegistry } from '../containerd/daemon-config.js';
import { lagRestart, recordedConfig, recordedDaemon, type RecordDaemon } from '../containerd/daemon-lag.js';

const schema = {
  type: 'object',
  title: 'node.creds.wipe',
  description:
    "Remove stale credentials for one registry from the node's docker/kubelet config.json files, containers/image's auth.json files and containerd's `registry.configs.\"<host>\".auth`, keeping every other registry's entries and all TLS settings (step 3 of the fix: drop stale credentials, done safely). A credential helper a file names for the registry (`credHelpers`, or Docker's `credsStore`), or registries.conf's `credential-helpers` list, is never removed or run: its store may still hold the credential, so the task warns with the command that erases it and lists it in its result as `not_removed`.",
  additionalProperties: false,
  required: ['registry'],
  properties: {
    registry: registryArg,
    paths: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      default: DEFAULT_CREDENTIAL_FILES,
      description:
        "Credential files (docker config.json format) to clean: Docker's and kubelet's, and containers/image's auth.json (podman, skopeo, CRI-O). Missing files are skipped.",
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
    restart_timeout: restartTimeoutArg,
    all: {
      type: 'boolean',
      default: false,
      description:
        "Remove the whole credential files and every registry's containerd auth (dangerous). Credential helpers' stores are still never touched: the task warns about every helper a removed file named.",
    },
    registries_conf: registriesConfArg(
      "containers/image's registries.conf, read (never written) with its registries.conf.d drop-ins and root's own (~/.config/containers): the helpers its `credential-helpers` names hold credentials podman, skopeo and buildah use, so they are reported as a file's credHelpers are.",
    ),
  },
} as const;

/** Arguments of `node.creds.wipe` as the engine hands them over (schema defaults filled in). */
export type NodeCredsWipeArgs = ArgsOf<typeof schema>;

/** A file on the node as gathered: content null unless it is a regular file (`other`: a directory, device...). */
export interface NodeFileState {
  path: string;
  kind: 'file' | 'absent' | 'other';
  content: string | null;
  /** The bytes as read (what a write is compared against); absent in hand-made states. */
  raw?: Buffer;
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
  /** The running containerd's major version: which registry table of config.toml is in force. */
  containerdMajor?: number;
  /** Set when no containerd answered on the CRI: the node's state, refused before a config.toml change. */
  criDown?: string;
  /** k3s/RKE2: `config` is their registries.yaml (credentials live in `configs."<host>".auth` there). */
  flavour?: Flavour;
  /** The registries the running containerd holds credentials for, as it reports them (1.x, CRI Status). */
  daemon?: DaemonRegistry;
  /** trustplay's record of the config it last restarted containerd with (what 2.x runs, as it cannot say). */
  restartRecord?: string;
  /** Whether the daemon running is the one that record describes. */
  recordDaemon?: RecordDaemon;
  /** Credential helpers the files name for the registry (every helper, with `all`): what trustplay cannot remove. */
  helpers?: FileHelpers[];
}

/** The credential helpers one file names that may hold the credentials the task is after. */
export interface FileHelpers {
  file: string;
  /** The file's owner: the user whose helper store it is. */
  uid?: number;
  /** containers/image's auth.json (its own logout command; no credsStore). */
  containers: boolean;
  /** Each helper, with the registry it may hold (`*` for a credsStore under `all`: every registry it holds). */
  refs: Array<HelperRef & { registry: string }>;
}

/** One credential a helper's store may still hold: the task's `not_removed` data. */
export interface NotRemoved {
  file: string;
  /** The registry as the helper stores it (`*` for a credsStore whose file `all: true` removes: every registry it holds). */
  registry: string;
  helper: string;
}

/**
 * The arguments as they apply on the node's flavour: on k3s/RKE2 containerd's auth comes from
 * registries.yaml (config.toml is regenerated from it at each start) and the flavour's unit restarts
 * containerd; a task's own restart_command or socket still wins.
 */
export function flavourArgs(args: NodeCredsWipeArgs, flavour: Flavour | undefined): NodeCredsWipeArgs {
  if (flavour?.registriesFile === undefined) return args;
  return {
    ...args,
    config_file: flavour.registriesFile,
    restart_command:
      args.restart_command === DEFAULT_RESTART_COMMAND ? `systemctl restart ${flavour.unit}` : args.restart_command,
    socket: args.socket ?? flavour.socket!,
  };
}

/** The state of one path as the reader saw it. */
function fileState(read: NodeRead, host: string, path: string): NodeFileState {
  let e;
  try {
    e = managedEntry(read, path);
  } catch (err) {
    throw new TaskError(`${host}: ${(err as Error).message}`, 'refused');
  }
  if (e.kind === 'absent') return { path, kind: 'absent', content: null };
  if (e.kind !== 'file') return { path, kind: 'other', content: null };
  return {
    path,
    kind: 'file',
    content: e.content.toString('utf8'),
    raw: e.content,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
  };
}

/**
 * What `gatherCreds` reads: `paths`, config.toml with its markers when containerd's auth is in
 * scope, and registries.conf with root's, then (a trailing `/`) their drop-in directories.
 */
export function credsReads(args: NodeCredsWipeArgs): string[] {
  return [...credsFiles(args), ...confReads(args)];
}

/** The credential files, then config.toml and its markers (by index in `gatherCreds`). */
function credsFiles(args: NodeCredsWipeArgs): string[] {
  return [
    ...args.paths,
    ...(args.containerd_auth
      ? [args.config_file, pendingMarkerPath(args.config_file), restartRecordPath(args.config_file)]
      : []),
  ];
}

/** registries.conf and root's, and their drop-in directories (a trailing `/`: read as directories). */
function confReads(args: NodeCredsWipeArgs): string[] {
  const confs = [args.registries_conf, ROOT_REGISTRIES_CONF];
  return [...confs, ...confs.map((c) => `${dropInDir(c)}/`)];
}

/** Reads `paths` (and config.toml) in one remote command. */
export async function gatherCreds(conn: Connection, args: NodeCredsWipeArgs): Promise<CredsObserved> {
  const paths = credsFiles(args);
  const confs = confReads(args);
  let read: NodeRead;
  try {
    read = await readNode(conn, {
      files: [...paths, ...confs.filter((p) => !p.endsWith('/'))],
      dirs: confs.filter((p) => p.endsWith('/')),
    });
  } catch (e) {
    if (!(e instanceof ReadFailed)) throw e;
    throw new TaskError(`reading the credential files on ${conn.host} failed (${e.why}); run again`, 'command');
  }
  const states = paths.map((p) => fileState(read, conn.host, p));
  const marker = args.containerd_auth ? states[args.paths.length + 1] : undefined;
  const record = args.containerd_auth ? states[args.paths.length + 2] : undefined;
  const files = states.slice(0, args.paths.length);
  const helpers = [...helpersOf(args, files), ...confHelpers(args, read)];
  return {
    files,
    ...(helpers.length ? { helpers } : {}),
    config: args.containerd_auth ? (states[args.paths.length] ?? null) : null,
    ...(marker?.content != null ? { pending: parsePendingMarker(conn.host, args.config_file, marker.content) } : {}),
    ...defined({ restartRecord: record?.content ?? undefined }),
  };
}

/**
 * containers/image's auth.json (containers-auth.json(5)) by its name; every other credential file
 * is docker's config.json format as Docker reads it (kubelet's too: kubelet ignores helpers, but
 * the file may be pointed at by DOCKER_CONFIG).
 */
const isContainersAuth = (file: string): boolean => file === 'auth.json' || file.endsWith('/auth.json');

/**
 * Which credential helpers the files name for the registry (with `all`, every helper they name):
 * the credential may live in that helper's store, which trustplay never touches. A helper's store
 * belongs to the user and serves every registry it holds: removing the credHelpers entry or
 * credsStore would break the other registries' logins, and running its `erase` means running a
 * program named by the file, in a session (gpg-agent, D-Bus) trustplay does not have. So they are
 * reported, with the command that clears them, every run: whether the store still holds the
 * credential cannot be known without asking the helper.
 */
export function helpersOf(args: NodeCredsWipeArgs, files: NodeFileState[]): FileHelpers[] {
  return files.flatMap((f) => {
    if (f.kind !== 'file' || f.content === null) return [];
    const containers = isContainersAuth(f.path);
    const refs = args.all
      ? allHelpers(f.content, { credsStore: !containers })
      : helpersFor(f.content, args.registry, { credsStore: !containers });
    if (!refs.length) return [];
    const registry = (r: HelperRef): string => r.key ?? (args.all ? '*' : args.registry);
    return [
      {
        file: f.path,
        ...defined({ uid: f.uid }),
        containers,
        refs: refs.map((r) => ({ ...r, registry: registry(r) })),
      },
    ];
  });
}

/**
 * The helpers containers/image's `credential-helpers` names (other than the auth.json files, which
 * `paths` covers), as root's podman, skopeo and buildah read registries.conf: they look a
 * registry's credentials up in each, and a `login` stores them in the first, so an auth.json
 * cleaned of the registry proves nothing while one of them may hold it. Measured with skopeo 1.9.3:
 * a drop-in's list is asked (`get`), and `skopeo logout REGISTRY` erases from each (`erase`).
 */
export function confHelpers(args: NodeCredsWipeArgs, read: NodeRead, rootConf?: string): FileHelpers[] {
  const { helpers, file } = credentialHelpers(rootRegistriesConfFiles(read, args.registries_conf, rootConf));
  const programs = [...new Set(helpers.filter((h) => h !== AUTH_FILE_HELPER))];
  if (file === undefined || programs.length === 0) return [];
  return [
    {
      file,
      containers: true,
      refs: programs.map((helper) => ({
        helper,
        via: 'credential-helpers' as const,
        key: null,
        registry: args.all ? '*' : args.registry,
      })),
    },
  ];
}

/** The task's `not_removed` data: a row per helper that may hold a credential trustplay left. */
export function notRemoved(helpers: FileHelpers[]): NotRemoved[] {
  return helpers.flatMap((h) => h.refs.map((r) => ({ file: h.file, registry: r.registry, helper: r.helper })));
}

const erase = (helper: string, registry: string): string =>
  `printf %s ${quote(registry)} | ${quoteCommandName(`docker-credential-${helper}`)} erase`;

/** One warning per file that names a helper: which helper, and the command its owner can run. */
export function helperWarnings(args: NodeCredsWipeArgs, helpers: FileHelpers[]): string[] {
  return helpers.map((h) => {
    if (h.refs.every((r) => r.via === 'credential-helpers')) return confHelperWarning(args, h);
    const named = `credential helper${h.refs.length > 1 ? 's' : ''} ${h.refs
      .map((r) =>
        r.via === 'credHelpers'
          ? `\`${r.helper}\` (credHelpers."${r.key}")`
          : `\`${r.helper}\` (credsStore, the default helper for registries credHelpers does not name)`,
      )
      .join(', ')}`;
    const who = `as the file's owner${h.uid !== undefined ? ` (uid ${h.uid})` : ''}, in a session where the helper works`;
    if (args.all) {
      const cmds = h.refs.map((r) =>
        r.key !== null
          ? `\`${erase(r.helper, r.key)}\``
          : `\`${quoteCommandName(`docker-credential-${r.helper}`)} list\` (the registries it holds), then \`${erase(r.helper, 'REGISTRY')}\` for each`,
      );
      return `${h.file} goes whole (all: true) but names ${named}: ${h.refs.length > 1 ? 'their stores' : 'its store'} may still hold the credentials they had (trustplay runs no helper, and what pointed at them goes with the file); to erase them, ${who}: ${cmds.join('; ')}`;
    }
    const reg = args.registry;
    const direct = h.refs.map((r) => `\`${erase(r.helper, r.registry)}\``).join(', ');
    // The tools' own logout erases from the helper even with no `auths` entry left (measured:
    // docker 20.10 and 28.2 call `erase` for credHelpers and credsStore; skopeo 1.9 for credHelpers).
    // Docker reads $DOCKER_CONFIG/config.json only, so another file name gets the direct command alone.
    const dir = h.file.replace(/\/[^/]*$/, '') || '/';
    const logout = h.containers
      ? `skopeo logout --authfile ${quote(h.file)} ${quote(reg)}`
      : h.file.endsWith('/config.json')
        ? `DOCKER_CONFIG=${quote(dir)} docker logout ${quote(reg)}`
        : null;
    const how = logout === null ? direct : `\`${logout}\` (or ${direct})`;
    return `${h.file}: ${reg}'s credentials may be in the store of ${named}, which trustplay never touches (it keeps credHelpers and credsStore, and runs no helper); to remove them, ${who}: ${how}`;
  });
}

/** registries.conf's `credential-helpers`: which helpers, and how root removes what they hold. */
function confHelperWarning(args: NodeCredsWipeArgs, h: FileHelpers): string {
  const names = h.refs.map((r) => `\`${r.helper}\``).join(', ');
  const list = `its credential-helpers name${h.refs.length > 1 ? '' : 's'} ${names}`;
  const who = 'as root, in a session where the helper works';
  if (args.all) {
    const cmds = h.refs.map(
      (r) =>
        `\`${quoteCommandName(`docker-credential-${r.helper}`)} list\` (the registries it holds), then \`${erase(r.helper, 'REGISTRY')}\` for each`,
    );
    return `${h.file}: ${list}: podman, skopeo and buildah keep credentials there as well as in auth.json, and ${h.refs.length > 1 ? 'their stores' : 'its store'} may still hold every registry's (trustplay runs no helper); to erase them, ${who}: ${cmds.join('; ')}`;
  }
  const reg = args.registry;
  const direct = h.refs.map((r) => `\`${erase(r.helper, reg)}\``).join(', ');
  return `${h.file}: ${list}: podman, skopeo and buildah look ${reg}'s credentials up there too (a login stores them in the first helper listed), and trustplay runs no helper; to remove them, ${who}: \`skopeo logout ${quote(reg)}\` (it erases the registry from every helper listed; or ${direct})`;
}

/** The registry keys config.toml holds credentials for (`configs."<host>".auth`, `auths."<host>"`); null when unreadable. */
function authKeysOf(text: string | null, opts: { containerdMajor?: number }): string[] | null {
  const inspected = inspectConfig(text, opts);
  if (!inspected.ok) return null;
  const keys = Object.entries(inspected.info.configs).flatMap(([k, c]) => (c.auth === undefined ? [] : [k]));
  const auths = text === null ? undefined : getIn(parsePlain(text), [...inspected.info.criRegistryPath, 'auths']);
  if (typeof auths === 'object' && auths !== null && !Array.isArray(auths)) keys.push(...Object.keys(auths));
  return keys;
}

/** Removes every registry's credentials from config.toml (`all: true`). */
export function removeAllRegistryAuth(text: string, opts: { containerdMajor?: number } = {}): RemoveAuthOutcome {
  const inspected = inspectConfig(text, opts);
  if (!inspected.ok) return inspected;
  const keys = authKeysOf(text, opts) ?? [];
  let cur = { text, changed: false, notes: [] as string[], removed: [] as string[] };
  for (const key of keys) {
    const r = removeRegistryAuth(cur.text, key, opts);
    if (!r.ok) return r;
    cur = {
      text: r.text,
      changed: cur.changed || r.changed,
      notes: [...cur.notes, ...r.notes],
      removed: [...cur.removed, ...r.removed.filter((x) => !cur.removed.includes(x))],
    };
  }
  return { ok: true, ...cur };
}

function credentialFileChange(args: NodeCredsWipeArgs, file: NodeFileState): Change | null {
  if (file.content === null) return null;
  const content = file.content;
  if (args.all) {
    const keys = credentialKeys(content);
    return {
      op: 'file.remove',
      summary: `remove ${file.path} (credentials for ${keys.length ? keys.join(', ') : 'no registry'})`,
      path: file.path,
      expect: file.raw && expectOf(file.raw),
      diff: { target: file.path, before: content, after: '' },
    };
  }
  const edit = removeRegistryCredentials(content, args.registry, file.path);
  if (!edit.ok) throw new TaskError(edit.error, 'refused');
  if (!edit.changed) return null;
  return {
    op: 'file.write',
    summary: `remove ${edit.removed.map((k) => `auths."${k}"`).join(', ')} from ${file.path}`,
    path: file.path,
    // No mode or owner: the file keeps its own (these files are 0600 and must stay so).
    content: edit.text,
    expect: file.raw && expectOf(file.raw),
    diff: { target: file.path, before: content, after: edit.text },
  };
}

function containerdAuthChange(
  args: NodeCredsWipeArgs,
  config: NodeFileState,
  containerdMajor?: number,
  rancher = false,
  service?: string,
): Change[] {
  if (config.content === null) return [];
  const previous = config.content;
  // A containerd whose CRI plugin is disabled (Docker's containerd.io config) pulls nothing for
  // Kubernetes: no CRI registry auth it might hold is read, so there is nothing of it to wipe; the
  // credential files (Docker's config.json among them) are still cleaned.
  if (!rancher && criPluginsDisabledIn(previous).length > 0) return [];
  const opts = containerdMajor !== undefined ? { containerdMajor } : {};
  const outcome = rancher
    ? removeRegistriesAuth(previous, args.config_file, (key) => args.all || registryKeyMatches(key, args.registry))
    : args.all
      ? removeAllRegistryAuth(previous, opts)
      : removeRegistryAuth(previous, args.registry, opts);
  if (!outcome.ok) {
    throw new TaskError(
      `${args.config_file}: ${outcome.error} (set containerd_auth: false to clean only the credential files)`,
      'refused',
    );
  }
  if (!outcome.changed) return [];
  const { text, removed } = outcome;
  return [
    {
      op: 'file.write',
      summary: `remove ${removed.join(', ')} from ${args.config_file}`,
      path: args.config_file,
      content: text,
      expect: config.raw && expectOf(config.raw),
      diff: { target: args.config_file, before: previous, after: text },
    },
    restartRequestFor({ ...args, service }),
  ];
}

/** The changes for the observed files: one per file that holds the registry's credentials. */
export function planCredsWipe(args: NodeCredsWipeArgs, observed: CredsObserved, host = 'host'): Change[] {
  const changes: Change[] = [];
  for (const file of observed.files) {
    const c = credentialFileChange(args, file);
    if (c) changes.push(c);
  }
  if (args.containerd_auth && observed.config) {
    const auth = containerdAuthChange(
      args,
      observed.config,
      observed.containerdMajor,
      observed.flavour?.registriesFile !== undefined,
      observed.flavour?.unit,
    );
    // The pre-flight: a config.toml change restarts containerd, and a CRI that was not serving
    // before would make that restart fail and look like trustplay's fault.
    if (auth.length > 0 && observed.criDown !== undefined)
      throw new TaskError(criNotServingRefusal(host, observed.criDown), 'refused');
    changes.push(...auth);
  }
  return changes;
}

/**
 * A restart when the running containerd still holds credentials for the registry that config.toml
 * no longer has: a run that died between its write and its restart (and whose pending marker is
 * gone), or a hand edit without a restart. The file alone says "nothing to remove" while containerd
 * keeps sending the stale credentials. Decided per version on what can tell (daemon-lag.ts): 1.6
 * and 1.7 name the registries they hold credentials for in CRI Status; on 2.x, trustplay's record
 * of the config it last restarted containerd with, while that daemon still runs. A restart by
 * someone else since then means the record cannot tell, and nothing is restarted (containerd.tls
 * says so for the file as a whole). On k3s/RKE2 config.toml is regenerated at each start: not here.
 */
export function credsLag(args: NodeCredsWipeArgs, observed: CredsObserved): Change[] {
  const { config, containerdMajor } = observed;
  if (!args.containerd_auth || observed.flavour?.registriesFile !== undefined || config?.content == null) return [];
  const opts = containerdMajor !== undefined ? { containerdMajor } : {};
  const inFile = authKeysOf(config.content, opts);
  if (inFile === null) return [];
  const stale = (keys: string[]) =>
    keys.filter((k) => (args.all || registryKeyMatches(k, args.registry)) && !inFile.includes(k));
  if (observed.daemon) {
    const keys = stale(observed.daemon.authKeys);
    if (!keys.length) return [];
    return lagRestart(
      `restart containerd: it still holds credentials for ${keys.join(', ')} that ${args.config_file} no longer has (removed after containerd started), so it keeps using them`,
      restartRequestFor(args),
    );
  }
  const recorded = recordedConfig(observed.restartRecord, config.raw ?? config.content, observed.recordDaemon);
  if (recorded === null || recorded === 'unknown') return [];
  const keys = stale(authKeysOf(recorded.config, opts) ?? []);
  if (!keys.length) return [];
  return lagRestart(
    `restart containerd: ${args.config_file} changed since trustplay last restarted containerd (credentials for ${keys.join(', ')} were removed), and containerd ${containerdMajor ?? 2}.x does not report the registry settings it runs with, so it may still use them`,
    restartRequestFor(args),
  );
}

/** The `node.creds.wipe` module. */
export default defineModule({
  schema,
  name: 'node.creds.wipe',
  description:
    "Remove one registry's stale credentials from docker/kubelet config.json files and containerd's auth, keeping everything else.",
  // The usual node's files (k3s/RKE2 name another config file, read by the gather itself).
  // (Arguments as validated by the schema: the engine resolves them as for the task.)
  readsAhead: (args) => credsReads(args as NodeCredsWipeArgs),
  gather: async (ctx, given) => {
    const flavour = await detectFlavour(ctx.conn, ctx.hostState);
    if (flavour.kind === 'bottlerocket')
      throw new TaskError(
        `${ctx.host} runs Bottlerocket (${flavour.evidence.join(', ')}): registry credentials there are settings (\`apiclient\`, settings.container-registry.credentials), not files; remove the stale entry with \`apiclient set\` or in user data.`,
        'refused',
      );
    if (flavour.kind === 'microk8s' && given.containerd_auth && given.config_file === DEFAULT_CONFIG_FILE)
      throw new TaskError(
        `${ctx.host} runs microk8s (${flavour.evidence.join(', ')}): its containerd reads ${flavour.configFile}, not /etc/containerd/config.toml: set config_file: ${flavour.configFile}, socket: ${flavour.socket} and restart_command: ${MICROK8S.restartCommand} on this host's task (or containerd_auth: false).`,
        'refused',
      );
    const args = flavourArgs(given, flavour);
    const observed: CredsObserved = await gatherCreds(ctx.conn, args);
    if (flavour.registriesFile !== undefined) observed.flavour = flavour;
    if (observed.config?.content != null) {
      // Only the running daemon's version counts here (CRI, else its process): PATH's containerd
      // may be another binary, and without either the file's own version line decides.
      const running = await runningVersionFor(ctx, () => criSocketFor(ctx, args.socket), null);
      if (running) observed.containerdMajor = running.version.major;
      if (running?.source.kind !== 'cri') observed.criDown = await criStateFor(ctx, args.socket, running);
      // What the running daemon holds, for credsLag: from itself where it says (1.x), else from
      // whether trustplay's restart record still describes it (2.x).
      if (observed.flavour === undefined) {
        const daemon =
          running?.source.kind === 'cri' ? await withCri(ctx, args.socket, (cri) => daemonRegistry(cri)) : null;
        if (daemon) observed.daemon = daemon;
        else {
          const recordDaemon = await recordedDaemon(
            ctx.conn,
            observed.restartRecord,
            args.config_file,
            observed.config.raw ?? observed.config.content,
          );
          if (recordDaemon) observed.recordDaemon = recordDaemon;
        }
      }
    }
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
  plan: (given, observed, ctx) => {
    const args = flavourArgs(given, observed.flavour);
    // A warning, not a failure or drift: nothing trustplay may do would change it (see helpersOf).
    for (const w of helperWarnings(args, observed.helpers ?? [])) ctx.warn(w);
    return afterPendingRestart(
      ctx,
      observed.pending,
      restartRequestFor({ ...args, service: observed.flavour?.unit }),
      () => {
        const changes = planCredsWipe(args, observed, ctx.host);
        const restarts = changes.some((c) => c.op === 'restart.request') || observed.pending !== undefined;
        return restarts ? changes : [...changes, ...credsLag(args, observed)];
      },
    );
  },
  result: (observed) => {
    const rows = notRemoved(observed.helpers ?? []);
    return rows.length ? { not_removed: rows } : {};
  },
});
