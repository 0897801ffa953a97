/**
 * `containerd.tls`: make a node's containerd trust a registry (seed step 1, done carefully).
 *
 * gather: one remote command (containerd-facts) plus reading the PEM material on the controller.
 * plan:   pure (`planContainerdTls`): desired files and config.toml text vs what the node has. Every
 *         refusal (version 1 config, legacy settings next to config_path, legacy style on 2.x...)
 *         is decided here, before anything is written.
 * apply:  by the engine: file writes compared with what gather saw; a config.toml change comes
 *         with a restart request (the verified restart rolls the file back when containerd does not
 *         come back). hosts.toml / CA changes are read by containerd at pull time: no restart.
 *
 * Rules that are not obvious:
 * - The CA goes on the server and on its host entry of hosts.toml (see hostsTomlModel).
 * - `style: legacy` keeps its certificate files in `<dir of config_file>/tls/<registry>/`, outside
 *   config_path, so removing one style never deletes the other style's files.
 * - In `hosts` style this registry's own legacy `configs."<registry>".tls` is removed first: the
 *   task owns this registry's trust, and that table next to config_path stops the CRI plugin on 1.x.
 * - `state: absent` removes only what trustplay wrote for this registry and leaves config_path
 *   (other registries' hosts.toml may live in the same directory).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { inspectConfig, type ContainerdConfigInfo, type LegacyTls } from '../containerd/config.js';
import { ensureConfigPath, setLegacyTls } from '../containerd/edits.js';
import { isManagedByTrustplay, parseHostsToml, renderHostsToml } from '../containerd/hosts-toml.js';
import { TaskError } from '../engine/errors.js';
import {
  defineModule,
  type ArgsOf,
  type Change,
  type FileRemove,
  type FileWrite,
  type RestartRequest,
  type TaskContext,
} from '../engine/module.js';
import {
  criNotServingRefusal,
  criStateFor,
  describeVersionSource,
  runningVersionFor,
  type VersionSource,
} from '../containerd/daemon-version.js';
import { criScope, criSocketFor, criSocketReads, withCri } from '../cri/connect.js';
import { daemonRegistry, type DaemonRegistry } from '../containerd/daemon-config.js';
import { lagRestart, recordedConfig, recordedDaemon, type RecordDaemon } from '../containerd/daemon-lag.js';
import {
  gatherContainerdFacts,
  gatherContainerdFactsWith,
  hostsDirFor,
  type ContainerdFacts,
  type HostsDirFacts,
} from '../containerd/facts.js';
import { expectOf, sha256 } from '../engine/apply.js';
import { afterPendingRestart, parsePendingMarker, type ConfigBackup } from '../engine/restart-backup.js';
import { unreadable } from '../playbook/controller-files.js';
import {
  caArg,
  clientCertArg,
  clientKeyArg,
  configFileArg,
  DEFAULT_CONFIG_FILE,
  DEFAULT_RESTART_COMMAND,
  registryArg,
  restartCommandArg,
  restartTimeoutArg,
} from '../playbook/schema/args-common.js';
import { restartRequestFor } from './containerd-restart.js';
import { detectFlavour, knownFlavour, MICROK8S, rememberFlavour, type Flavour } from '../containerd/flavour.js';
import {
  inspectRegistries,
  mirrorFoldsIntoDefault,
  selfMirrorEndpoint,
  setRegistriesSelfMirror,
  setRegistriesTls,
  type RegistriesTls,
} from '../containerd/registries-yaml.js';
import { defined } from '../defined.js';
import { expiryLines, preflightCa, preflightOutcome, trustExpiry, type CaPreflight } from '../diagnose/preflight.js';
import type { ExpiryWarning } from '../diagnose/diagnose.js';
import { warmCri } from '../cri/client.js';

const schema = {
  type: 'object',
  title: 'containerd.tls',
  description:
    "Make containerd trust a registry's TLS (step 1 of the fix: trust the registry): install its CA (recommended), a client certificate pair, or, insecurely, skip verification / use plain HTTP. Writes certs.d/<host>/hosts.toml and points config_path at it; restarts containerd only when config.toml changed and waits for the CRI socket.",
  additionalProperties: false,
  required: ['registry'],
  properties: {
    registry: registryArg,
    ca: caArg(
      "The registry's CA certificate: a PEM file path on the controller, or inline PEM (`-----BEGIN CERTIFICATE-----...`). The secure fix. A list (old and new CA together) is trusted as one bundle, for a CA rotation without an outage.",
    ),
    skip_verify: {
      type: 'boolean',
      description:
        'Skip TLS verification for this registry (insecure: anyone on the path can serve images). Prefer `ca`.',
    },
    plain_http: {
      type: 'boolean',
      description: 'The registry speaks plain HTTP, not TLS (insecure). Prefer serving TLS and `ca`.',
    },
    client_cert: clientCertArg(
      'Client certificate for mutual TLS: a PEM file path on the controller or inline PEM. Requires `client_key`.',
    ),
    client_key: clientKeyArg(
      'Client private key for mutual TLS: a PEM file path on the controller or inline PEM. Written 0600. Requires `client_cert`.',
    ),
    style: {
      type: 'string',
      enum: ['auto', 'hosts', 'legacy'],
      default: 'auto',
      description:
        '`hosts`: certs.d/<host>/hosts.toml (containerd 1.5+, the only style containerd 2.x honours); `legacy`: the CRI `registry.configs."<host>".tls` table (containerd 1.x only); `auto` = hosts.',
    },
    migrate_legacy: {
      type: 'boolean',
      default: false,
      description:
        'Move existing legacy `registry.mirrors` / `registry.configs.*.tls` settings into hosts.toml files instead of refusing (mixing them with config_path makes the CRI plugin fail to load).',
    },
    config_path: {
      type: 'string',
      minLength: 1,
      default: '/etc/containerd/certs.d',
      description: 'Directory containerd reads hosts.toml files from (the CRI registry `config_path`).',
    },
    verify_ca: {
      enum: ['auto', true, false],
      default: 'auto',
      description:
        "Pre-flight of `ca`: before anything is written, the node makes the TLS handshake a registry client makes (its own network view, through containerd's proxy when it has one, as `trustplay diagnose` does) and a CA that does not validate the chain the registry serves to it for that name is refused with the diagnosis. `auto`: when the node cannot reach the registry (bootstrap, registry down) a warning, and the CA is written; `true`: the check must succeed; `false`: no check.",
    },
    config_file: configFileArg,
    restart_command: restartCommandArg,
    socket: {
      type: 'string',
      minLength: 1,
      description:
        "containerd's CRI socket for the post-restart health check; default: the host's `cri_socket`, /etc/crictl.yaml, then /run/containerd/containerd.sock.",
    },
    restart_timeout: restartTimeoutArg,
    state: {
      type: 'string',
      enum: ['present', 'absent'],
      default: 'present',
      description:
        '`absent` removes what this task manages for the registry (its hosts.toml directory or legacy tls table).',
    },
  },
  'x-exclusive': [['ca', 'skip_verify', 'plain_http']],
  'x-together': [['client_cert', 'client_key']],
} as const;

/** Arguments of `containerd.tls` as the engine hands them over (schema defaults filled in). */
export type ContainerdTlsArgs = ArgsOf<typeof schema>;

/** File names trustplay writes in a registry's directory. */
export const FILE_NAMES = { hosts: 'hosts.toml', ca: 'ca.crt', cert: 'client.cert', key: 'client.key' } as const;

/** The ca_file / cert_file / key_file keys of a legacy or registries.yaml TLS table, for the files written to `dir`. */
function tlsFileKeys(material: TlsMaterial, dir: string): { ca_file?: string; cert_file?: string; key_file?: string } {
  return {
    ...(material.ca !== undefined ? { ca_file: `${dir}/${FILE_NAMES.ca}` } : {}),
    ...(material.clientCert !== undefined
      ? { cert_file: `${dir}/${FILE_NAMES.cert}`, key_file: `${dir}/${FILE_NAMES.key}` }
      : {}),
  };
}

/** PEM material read on the controller (public certificates and, for mTLS, the private key). */
export interface TlsMaterial {
  ca?: string;
  clientCert?: string;
  clientKey?: string;
}

/** What `gather` found. */
export interface TlsObserved {
  facts: ContainerdFacts;
  material: TlsMaterial;
  /** Problems with the material worth a warning (an expired CA), found while reading it. */
  materialWarnings: string[];
  /** Where facts.version came from (the running daemon, or PATH when none runs); absent in unit tests. */
  versionSource?: VersionSource | null;
  /** A config.toml change an interrupted run left unrestarted (its marker on the node). */
  pending?: ConfigBackup;
  /** The registry settings the running daemon reports (containerd 1.x over the CRI); absent when it cannot say. */
  daemon?: DaemonRegistry;
  /** Set when no containerd answered on the CRI at gather: the node's state, for the pre-flight refusal. */
  criDown?: string;
  /** The node's flavour; absent (plain containerd) in unit tests. */
  flavour?: Flavour;
  /** The `verify_ca` pre-flight: the task's CA against what the registry serves to the node (absent when not run). */
  caPreflight?: CaPreflight;
  /** `--expiry-warning`: certificates trusted for the registry (or served by it) expiring soon. */
  expiring?: ExpiryWarning[];
  /**
   * When the file no longer matches trustplay's restart record: whether the daemon is still the one
   * that record describes (`same`), or was started again since, after the file's last edit (so it
   * runs the file) or before it.
   */
  recordDaemon?: RecordDaemon;
}

/** The outcome of planning: changes in apply order and warnings for the run output. */
export interface TlsPlan {
  changes: Change[];
  warnings: string[];
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

/** Reads an argument that is inline PEM or a controller-side path to one. */
async function readPem(arg: string, what: string): Promise<string> {
  let text: string;
  if (arg.includes('-----BEGIN ')) text = arg;
  else {
    const file = path.resolve(arg);
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new TaskError(
        `the ${what} file ${file} ${unreadable(e)} on the controller: fix the path in the task or its variable.`,
        'refused',
      );
    }
  }
  text = text.replace(/\r\n/g, '\n');
  return text.endsWith('\n') ? text : `${text}\n`;
}

// A certificate's end date by its PEM: every host of a run reads the same CA file, parsed once.
const validUntil = new Map<string, string>();

/** Reads and checks the CA / client material named by the arguments (containerd.tls, docker.tls). */
export async function readMaterial(
  args: Pick<ContainerdTlsArgs, 'ca' | 'client_cert' | 'client_key' | 'state'>,
): Promise<{ material: TlsMaterial; warnings: string[] }> {
  const material: TlsMaterial = {};
  const warnings: string[] = [];
  const cert = (pem: string, what: string, arg: string): void => {
    const where = arg.includes('-----BEGIN ') ? `the inline ${what}` : `${what} ${path.resolve(arg)}`;
    if (!PEM_CERT.test(pem))
      throw new TaskError(
        `${where} is not a PEM certificate (no -----BEGIN CERTIFICATE----- block): give the certificate itself, not a key or a DER file.`,
        'refused',
      );
    let validTo = validUntil.get(pem);
    if (validTo === undefined) {
      try {
        validTo = new X509Certificate(pem).validTo;
      } catch (e) {
        throw new TaskError(
          `${where} is not a valid PEM certificate (${(e as Error).message}): check that the file is not truncated.`,
          'refused',
        );
      }
      if (validUntil.size >= 100) validUntil.clear();
      validUntil.set(pem, validTo);
    }
    if (Date.parse(validTo) < Date.now())
      warnings.push(`${where} expired on ${validTo}: the registry's certificate chain will not verify with it`);
  };
  if (args.state === 'absent') return { material, warnings };
  if (args.ca !== undefined) {
    // A list is one bundle in one CA file: containerd (and k3s's ca_file) trust every certificate
    // in it, which is how a rotation trusts the old and the new CA at once.
    const parts: string[] = [];
    for (const one of typeof args.ca === 'string' ? [args.ca] : args.ca) {
      const pem = await readPem(one, 'CA certificate');
      cert(pem, 'CA certificate', one);
      if (!parts.includes(pem)) parts.push(pem);
    }
    material.ca = parts.join('');
  }
  if (args.client_cert !== undefined && args.client_key !== undefined) {
    material.clientCert = await readPem(args.client_cert, 'client certificate');
    cert(material.clientCert, 'client certificate', args.client_cert);
    material.clientKey = await readPem(args.client_key, 'client key');
    try {
      createPrivateKey(material.clientKey);
    } catch {
      // The key's content never goes into a message.
      throw new TaskError(
        `client_key ${args.client_key.includes('-----BEGIN ') ? '(inline)' : path.resolve(args.client_key)} is not a PEM private key: give the unencrypted key that matches client_cert.`,
        'refused',
      );
    }
  }
  return { material, warnings };
}

/** The directory holding this registry's files: under config_path (hosts style) or beside config.toml (legacy). */
export function registryDir(
  args: Pick<ContainerdTlsArgs, 'style' | 'config_path' | 'config_file' | 'registry'>,
): string {
  return args.style === 'legacy'
    ? hostsDirFor(`${path.posix.dirname(args.config_file)}/tls`, args.registry)
    : hostsDirFor(args.config_path, args.registry);
}

/** A file this module wants in a registry directory. */
export interface DesiredFile {
  name: string;
  content: Buffer;
  mode: number;
  what: string;
  secret?: boolean;
}

/** The write that makes `dir/<f.name>` what `f` says, or null when it already is. */
export function writeChange(dir: HostsDirFacts, f: DesiredFile): FileWrite | null {
  const path = `${dir.path}/${f.name}`;
  const existing = dir.files[f.name];
  const sameContent = existing !== undefined && existing.content.equals(f.content);
  if (sameContent && existing.mode === f.mode) return null;
  const mode = f.mode.toString(8).padStart(4, '0');
  const summary = sameContent
    ? `set mode ${mode} on ${path} (was ${existing.mode.toString(8).padStart(4, '0')})`
    : `${existing ? 'update' : 'write'} ${path} (${f.what}, ${mode})`;
  // Diffs are raw; the engine masks them (src/secrets), a secret file down to its size.
  const before = existing?.content.toString('utf8') ?? '';
  const after = f.content.toString('utf8');
  return {
    op: 'file.write',
    summary,
    path,
    content: f.content,
    mode: f.mode,
    expect: expectOf(existing?.content ?? null),
    diff: { target: path, before, after, ...(f.secret ? { secret: true } : {}) },
  };
}

/** The removal of `dir/<name>` (a file trustplay manages there), or null when it is not there. */
export function removeChange(dir: HostsDirFacts, name: string, what: string): FileRemove | null {
  const f = dir.files[name];
  if (!f) return null;
  const p = `${dir.path}/${name}`;
  return {
    op: 'file.remove',
    summary: `remove ${p} (${what})`,
    path: p,
    expect: expectOf(f.content),
    diff: {
      target: p,
      before: f.content.toString('utf8'),
      after: '',
      ...(name === FILE_NAMES.key ? { secret: true } : {}),
    },
  };
}

function configChange(args: ContainerdTlsArgs, facts: ContainerdFacts, next: string, what: string): FileWrite {
  const previous = facts.config.exists ? (facts.config.content ?? Buffer.from(facts.config.text ?? '', 'utf8')) : null;
  return {
    op: 'file.write',
    summary: `${what} in ${args.config_file} (restarts containerd)`,
    path: args.config_file,
    content: Buffer.from(next, 'utf8'),
    // An existing config.toml keeps its mode and owner.
    mode: facts.config.mode ?? 0o644,
    expect: expectOf(previous),
    diff: { target: args.config_file, before: facts.config.text ?? '', after: next },
  };
}

/** Whether the task's plan, before the pre-flight, changes anything (a refusal counts as a change: it is checked). */
function writesAnything(args: ContainerdTlsArgs, observed: TlsObserved, host: string): boolean {
  if (observed.pending !== undefined) return true;
  try {
    // The plan the module will make: registries.yaml's on k3s/RKE2, config.toml's and certs.d's elsewhere.
    const plan =
      observed.flavour?.registriesFile !== undefined
        ? planRancherTls(args, observed, host)
        : planContainerdTls(args, observed, host);
    return plan.changes.length > 0;
  } catch {
    return true;
  }
}

function refuse(host: string, error: string): never {
  throw new TaskError(error.replace(/^config\.toml/, `${host}: config.toml`), 'refused');
}

/** The `verify_ca` verdict: throws the refusal (nothing is written), else returns its warnings. */
function caPreflightWarnings(args: ContainerdTlsArgs, observed: TlsObserved, host: string): string[] {
  if (args.state === 'absent') return [];
  const o = preflightOutcome(args.verify_ca, args.registry, observed.caPreflight);
  if (o.refuse !== undefined) throw new TaskError(`${host}: ${o.refuse}`, 'refused');
  return o.warnings;
}

/** How a task's `ca` is named in messages: its path(s), or "the inline CA" (never PEM text). */
function caLabel(ca: string | readonly string[]): string {
  const one = (c: string) => (c.includes('-----BEGIN ') ? 'the inline CA' : path.resolve(c));
  return typeof ca === 'string' ? one(ca) : ca.map(one).join(' + ');
}

/**
 * Runs the pre-flight in gather when the task writes a CA and verify_ca allows it. Under `auto`, a
 * task that would write nothing (the node already has exactly this CA, trusted as the task wants:
 * every converged run) is not checked: nothing new is trusted, and the handshake from the node
 * (about 1.4 s a task) is saved. `true` always checks; so does `--expiry-warning`, which lists the
 * served chain the pre-flight sees.
 */
async function gatherCaPreflight(
  ctx: TaskContext,
  args: ContainerdTlsArgs,
  material: TlsMaterial,
  view: { configFile?: string; configPath?: string; facts?: ContainerdFacts },
  writes?: () => boolean,
): Promise<CaPreflight | undefined> {
  if (args.state === 'absent' || material.ca === undefined || args.ca === undefined || args.verify_ca === false)
    return undefined;
  if (args.verify_ca === 'auto' && ctx.expiryWarningDays === undefined && writes && !writes()) return undefined;
  return preflightCa(ctx.conn, {
    registry: args.registry,
    caPem: material.ca,
    caLabel: caLabel(args.ca),
    ...view,
    ...(ctx.expiryWarningDays !== undefined ? { expiryWarningDays: ctx.expiryWarningDays } : {}),
  });
}

/** `--expiry-warning`: the node's CA file for the registry, the task's CA and the served chain (when the pre-flight ran). */
function gatherExpiry(
  ctx: TaskContext,
  args: ContainerdTlsArgs,
  material: TlsMaterial,
  facts: ContainerdFacts,
  caPreflight: CaPreflight | undefined,
): ExpiryWarning[] | undefined {
  if (ctx.expiryWarningDays === undefined || args.state === 'absent') return undefined;
  const file = facts.hostsDir.files[FILE_NAMES.ca];
  const ws = trustExpiry({
    days: ctx.expiryWarningDays,
    ...(file
      ? { nodeCa: { path: `${facts.hostsDir.path}/${FILE_NAMES.ca}`, pem: file.content.toString('utf8') } }
      : {}),
    ...(material.ca !== undefined && args.ca !== undefined
      ? { taskCa: { label: caLabel(args.ca), pem: material.ca } }
      : {}),
    ...(caPreflight ? { preflight: caPreflight } : {}),
  });
  return ws.length ? ws : undefined;
}

function containerdMajor(facts: ContainerdFacts, host: string): number {
  if (!facts.version) {
    throw new TaskError(
      `${host}: no running containerd answered (CRI Version, daemon process) and \`containerd --version\` did not run (not installed or not on PATH), and trustplay needs its version to write a config it will load: install or start containerd first.`,
      'refused',
    );
  }
  return facts.version.major;
}

function inspect(facts: ContainerdFacts, major: number, host: string): ContainerdConfigInfo {
  const r = inspectConfig(facts.config.text, { containerdMajor: major });
  if (!r.ok) refuse(host, r.error);
  return r.info;
}

/** Desired files of the registry's directory: name → content + mode. */
function desiredFiles(args: ContainerdTlsArgs, material: TlsMaterial, dir: string): DesiredFile[] {
  const out: DesiredFile[] = [];
  if (material.ca !== undefined)
    out.push({ name: FILE_NAMES.ca, content: Buffer.from(material.ca), mode: 0o644, what: 'CA certificate' });
  if (material.clientCert !== undefined)
    out.push({
      name: FILE_NAMES.cert,
      content: Buffer.from(material.clientCert),
      mode: 0o644,
      what: 'client certificate',
    });
  if (material.clientKey !== undefined)
    out.push({
      name: FILE_NAMES.key,
      content: Buffer.from(material.clientKey),
      mode: 0o600,
      what: 'client key',
      secret: true,
    });
  if (args.style !== 'legacy') {
    const hosts = renderHostsToml({
      registry: args.registry,
      ...(material.ca !== undefined ? { ca: `${dir}/${FILE_NAMES.ca}` } : {}),
      ...(material.clientCert !== undefined
        ? { clientCert: `${dir}/${FILE_NAMES.cert}`, clientKey: `${dir}/${FILE_NAMES.key}` }
        : {}),
      ...(args.skip_verify === true ? { skipVerify: true } : {}),
      ...(args.plain_http === true ? { plainHttp: true } : {}),
    });
    // hosts.toml last: it must never point at a CA file that is not there yet.
    out.push({
      name: FILE_NAMES.hosts,
      content: Buffer.from(hosts),
      mode: 0o644,
      what: 'hosts.toml, managed by trustplay',
    });
  }
  return out;
}

/** Where trustplay keeps a registry's CA and client pair on k3s/RKE2: beside registries.yaml, which points at them. */
export function rancherTlsDir(flavour: Flavour, registry: string): string {
  return hostsDirFor(
    `${path.posix.dirname(flavour.registriesFile ?? '/etc/rancher/k3s/registries.yaml')}/tls`,
    registry,
  );
}

/** The restart a registries.yaml change needs: the flavour's unit (unless the task names its own command). */
function rancherRestart(args: ContainerdTlsArgs, flavour: Flavour, companions: string[] = []): RestartRequest {
  return {
    ...restartRequestFor({
      ...args,
      config_file: flavour.registriesFile!,
      restart_command:
        args.restart_command === DEFAULT_RESTART_COMMAND ? `systemctl restart ${flavour.unit}` : args.restart_command,
      socket: args.socket ?? flavour.socket!,
      service: flavour.unit,
    }),
    ...(companions.length ? { companions } : {}),
  };
}

/**
 * The plan on a k3s or RKE2 node: their agent renders every certs.d/<host>/hosts.toml and
 * config.toml from registries.yaml at each start, so the CA (and client pair) go in a directory
 * beside registries.yaml, `configs."<registry>".tls` points at them, and the unit is restarted only
 * when registries.yaml changed. Facts were read with registries.yaml as the config file and the tls
 * directory as the registry's directory.
 */
export function planRancherTls(args: ContainerdTlsArgs, observed: TlsObserved, host = 'host'): TlsPlan {
  const { facts, material } = observed;
  const flavour = observed.flavour!;
  const file = flavour.registriesFile!;
  const warnings = [...observed.materialWarnings];
  if (args.style === 'legacy')
    throw new TaskError(
      `${host} runs ${flavour.kind}, whose agent writes containerd's config from ${file}; style: legacy (a config.toml table) would be overwritten at its next start: use style: hosts (the default), which edits ${file}.`,
      'refused',
    );
  if (args.plain_http === true)
    throw new TaskError(
      `${host} runs ${flavour.kind}: plain HTTP is not a \`configs\` setting of ${file}; add a mirror whose endpoint is http://${args.registry} under \`mirrors\` there by hand.`,
      'refused',
    );
  if (args.state !== 'absent' && args.ca === undefined && args.skip_verify !== true && args.client_cert === undefined)
    throw new TaskError(
      'containerd.tls needs one of `ca` (the secure fix), `skip_verify: true` or `plain_http: true` (or a client_cert/client_key pair) to know what to trust.',
      'refused',
    );
  const inspected = inspectRegistries(facts.config.text, file);
  if (!inspected.ok) throw new TaskError(`${host}: ${inspected.error}`, 'refused');
  if (observed.criDown !== undefined) throw new TaskError(criNotServingRefusal(host, observed.criDown), 'refused');
  warnings.push(...caPreflightWarnings(args, observed, host));
  if (args.skip_verify === true)
    warnings.push(
      `skip_verify: ${args.registry}'s certificate is not verified, so anyone on the network path can serve images: insecure, production should trust the registry's CA with \`ca\``,
    );
  const dir = rancherTlsDir(flavour, args.registry);
  const hostsDir = facts.hostsDir.path === dir ? facts.hostsDir : { path: dir, exists: false, files: {} };
  const changes: Change[] = [];
  const push = (c: Change | null): void => {
    if (c) changes.push(c);
  };
  const wanted = args.state === 'absent' ? [] : desiredFiles({ ...args, style: 'legacy' }, material, dir);
  const tls: RegistriesTls | null =
    args.state === 'absent'
      ? null
      : {
          ...tlsFileKeys(material, dir),
          ...(args.skip_verify === true ? { insecure_skip_verify: true } : {}),
        };
  const tlsEdit = setRegistriesTls(facts.config.text, file, args.registry, tls);
  if (!tlsEdit.ok) throw new TaskError(`${host}: ${tlsEdit.error}`, 'refused');
  // With the tls entry, a mirror entry naming the registry itself: without it, k3s/RKE2 releases
  // before the k3s#9839 fix never apply the tls to the registry (see selfMirrorEndpoint); on fixed
  // releases it is harmless, so it is written whatever the node runs.
  const mirrorEdit = setRegistriesSelfMirror(tlsEdit.text, file, args.registry, tls !== null);
  if (!mirrorEdit.ok) throw new TaskError(`${host}: ${mirrorEdit.error}`, 'refused');
  if (tls !== null && mirrorFoldsIntoDefault(inspected.info, args.registry))
    warnings.push(
      `${file}'s own mirrors."${args.registry}" entry lists no endpoint but the registry's default one, so ${flavour.kind} releases before the k3s#9839 fix (k3s v1.29.4, v1.28.9, v1.27.13) write no host table for it and their containerd ignores the tls: add ${selfMirrorEndpoint(args.registry)} to its endpoints (trustplay leaves your entry as it is)`,
    );
  const edit = {
    text: mirrorEdit.text,
    changed: tlsEdit.changed || mirrorEdit.changed,
    reformatted: tlsEdit.reformatted || mirrorEdit.reformatted,
  };
  const what = [
    ...(tlsEdit.changed || !mirrorEdit.changed ? [`configs."${args.registry}".tls`] : []),
    ...(mirrorEdit.changed ? [`mirrors."${args.registry}" (${selfMirrorEndpoint(args.registry)})`] : []),
  ].join(' and ');
  // Certificates first: registries.yaml must never point at a file that is not there yet.
  for (const f of wanted) push(writeChange(hostsDir, f));
  if (edit.changed) {
    if (edit.reformatted)
      warnings.push(
        `${file} could not be edited in place, so it was re-rendered whole: comments and entries are kept, its spacing is normalised`,
      );
    const previous = facts.config.exists ? (facts.config.content ?? Buffer.from(facts.config.text ?? '')) : null;
    push({
      op: 'file.write',
      summary: `${tls === null ? 'remove' : 'set'} ${what} in ${file} (restarts ${flavour.kind}, which regenerates containerd's hosts.toml)`,
      path: file,
      content: Buffer.from(edit.text, 'utf8'),
      mode: facts.config.mode ?? 0o600,
      expect: expectOf(previous),
      diff: { target: file, before: facts.config.text ?? '', after: edit.text },
    });
  }
  for (const name of [FILE_NAMES.ca, FILE_NAMES.cert, FILE_NAMES.key])
    if (!wanted.some((w) => w.name === name))
      push(
        removeChange(hostsDir, name, args.state === 'absent' ? 'written by containerd.tls' : 'no longer configured'),
      );
  if (args.state === 'absent') pushRmdir(hostsDir, changes, push);
  // The CA (and client pair) written with registries.yaml go back with it if the unit cannot start.
  const written = changes.flatMap((c) => (c.op === 'file.write' && c.path !== file ? [c.path] : []));
  if (edit.changed) push(rancherRestart(args, flavour, written));
  return { changes, warnings };
}

/**
 * The pure plan: desired state from the arguments and controller material vs the node's facts.
 * Throws TaskError('refused') for anything it will not write.
 */
export function planContainerdTls(args: ContainerdTlsArgs, observed: TlsObserved, host = 'host'): TlsPlan {
  const { facts, material } = observed;
  const warnings = [...observed.materialWarnings];
  const major = containerdMajor(facts, host);
  const info = inspect(facts, major, host);
  // The pre-flight, after the config's own causes (a disabled CRI plugin says more than "not
  // serving") and after any interrupted change of ours was finished (afterPendingRestart).
  if (observed.criDown !== undefined) throw new TaskError(criNotServingRefusal(host, observed.criDown), 'refused');
  warnings.push(...caPreflightWarnings(args, observed, host));
  const dir = registryDir(args);
  const hostsDir = facts.hostsDir.path === dir ? facts.hostsDir : { path: dir, exists: false, files: {} };
  const changes: Change[] = [];
  const push = (c: Change | null): void => {
    if (c) changes.push(c);
  };

  if (
    args.state !== 'absent' &&
    args.ca === undefined &&
    args.skip_verify !== true &&
    args.plain_http !== true &&
    args.client_cert === undefined
  ) {
    throw new TaskError(
      'containerd.tls needs one of `ca` (the secure fix), `skip_verify: true` or `plain_http: true` (or a client_cert/client_key pair) to know what to trust.',
      'refused',
    );
  }
  if (args.skip_verify === true)
    warnings.push(
      `skip_verify: ${args.registry}'s certificate is not verified, so anyone on the network path can serve images: insecure, production should trust the registry's CA with \`ca\``,
    );
  if (args.plain_http === true)
    warnings.push(
      `plain_http: images from ${args.registry} travel unencrypted and unauthenticated: insecure, production should serve TLS and trust its CA with \`ca\``,
    );

  if (args.style === 'legacy') {
    if (args.plain_http === true)
      throw new TaskError(
        'plain_http is not a TLS setting of the legacy registry.configs table; use style: hosts for a plain-HTTP registry.',
        'refused',
      );
    const wantFiles = args.state === 'absent' ? [] : desiredFiles(args, material, dir);
    const tls: LegacyTls | null =
      args.state === 'absent'
        ? null
        : {
            ...(args.skip_verify === true ? { insecure_skip_verify: true } : {}),
            ...tlsFileKeys(material, dir),
          };
    const edit = setLegacyTls(facts.config.text, args.registry, tls, { containerdMajor: major });
    if (!edit.ok) refuse(host, edit.error);
    if (args.state === 'absent') {
      if (edit.changed) push(configChange(args, facts, edit.text, `remove registry.configs."${args.registry}".tls`));
      for (const name of [FILE_NAMES.ca, FILE_NAMES.cert, FILE_NAMES.key])
        push(removeChange(hostsDir, name, 'written by containerd.tls style: legacy'));
      pushRmdir(hostsDir, changes, push);
      if (edit.changed) push(restartRequestFor(args));
      return { changes, warnings };
    }
    for (const f of wantFiles) push(writeChange(hostsDir, f));
    for (const [name, present] of [
      [FILE_NAMES.ca, material.ca],
      [FILE_NAMES.cert, material.clientCert],
      [FILE_NAMES.key, material.clientKey],
    ] as const) {
      if (present === undefined) push(removeChange(hostsDir, name, 'no longer configured'));
    }
    if (edit.changed) {
      push(configChange(args, facts, edit.text, `set registry.configs."${args.registry}".tls`));
      push(restartRequestFor(args));
    }
    warnings.push(...edit.notes);
    return { changes, warnings };
  }

  // hosts style
  const current = hostsDir.files[FILE_NAMES.hosts];
  const managed = current !== undefined && isManagedByTrustplay(current.content.toString('utf8'));
  if (args.state === 'absent') {
    if (!hostsDir.exists) return { changes, warnings };
    if (current !== undefined && !managed) {
      warnings.push(
        `${dir}/${FILE_NAMES.hosts} was not written by trustplay, so state: absent leaves it (and ${dir}) as it is`,
      );
      return { changes, warnings };
    }
    for (const name of [FILE_NAMES.hosts, FILE_NAMES.ca, FILE_NAMES.cert, FILE_NAMES.key])
      push(removeChange(hostsDir, name, 'written by containerd.tls'));
    pushRmdir(hostsDir, changes, push);
    return { changes, warnings };
  }

  if (current !== undefined && !managed) {
    const parsed = parseHostsToml(current.content.toString('utf8'));
    warnings.push(
      `${dir}/${FILE_NAMES.hosts} was not written by trustplay${parsed.ok ? '' : ' (and is not valid TOML)'}; it is replaced by a managed one (the old file is in this run's snapshot)`,
    );
  }
  const wanted = desiredFiles(args, material, dir);
  for (const f of wanted) push(writeChange(hostsDir, f));
  // Files trustplay wrote for a setting that is gone (a CA replaced by skip_verify, mTLS dropped).
  if (current === undefined || managed) {
    for (const name of [FILE_NAMES.ca, FILE_NAMES.cert, FILE_NAMES.key]) {
      if (!wanted.some((w) => w.name === name)) push(removeChange(hostsDir, name, 'no longer configured'));
    }
  }

  // config.toml: this registry's own legacy tls goes (we own its trust), then config_path.
  let text = facts.config.text;
  const what: string[] = [];
  if (info.configs[args.registry]?.tls !== undefined && !args.migrate_legacy) {
    const r = setLegacyTls(text, args.registry, null, { containerdMajor: major });
    if (!r.ok) refuse(host, r.error);
    if (r.changed) {
      text = r.text;
      what.push(`remove legacy registry.configs."${args.registry}".tls`);
    }
  }
  const ensured = ensureConfigPath(text, args.config_path, {
    containerdMajor: major,
    migrateLegacy: args.migrate_legacy,
  });
  if (!ensured.ok) refuse(host, ensured.error);
  warnings.push(...ensured.notes);
  // Hosts files of a migration: written before config.toml so the restart finds them.
  for (const [d, content] of Object.entries(ensured.hostsFiles)) {
    const p = `${hostsDirFor(args.config_path, d)}/${FILE_NAMES.hosts}`;
    if (p === `${dir}/${FILE_NAMES.hosts}`) {
      warnings.push(
        `the legacy settings for ${args.registry} itself are replaced by this task's managed ${p}, not migrated`,
      );
      continue;
    }
    const target = hostsDirFor(args.config_path, d);
    push(
      writeChange(facts.extraDirs[target] ?? { path: target, exists: false, files: {} }, {
        name: FILE_NAMES.hosts,
        content: Buffer.from(content),
        mode: 0o644,
        what: 'migrated from legacy config.toml settings',
      }),
    );
  }
  if (ensured.changed) {
    const configPathChanged = info.configPath !== args.config_path;
    if (configPathChanged) what.push(`set config_path = "${args.config_path}"`);
    if (Object.keys(ensured.hostsFiles).length > 0) what.push('move legacy registry settings to hosts.toml');
    if (!info.exists) what.unshift(`create with version = ${info.version}`);
    text = ensured.text;
  }
  if (text !== facts.config.text && text !== null) {
    push(configChange(args, facts, text, what.join(', ') || 'update registry settings'));
    push(restartRequestFor(args));
  }
  return { changes, warnings };
}

/** Removes the registry's directory when nothing but what `changes` removes is left in it. */
export function pushRmdir(dir: HostsDirFacts, changes: Change[], push: (c: Change | null) => void): void {
  const removing = new Set(changes.flatMap((c) => (c.op === 'file.remove' ? [c.path] : [])));
  const others = Object.keys(dir.files).filter((n) => !removing.has(`${dir.path}/${n}`));
  // Files trustplay did not write keep the directory (and themselves) in place.
  if (dir.exists && others.length === 0)
    push({ op: 'dir.remove', summary: `remove the empty directory ${dir.path}`, path: dir.path });
}

/**
 * A restart when the running daemon lags config.toml on the registry settings this module manages
 * (config_path), whoever changed the file: its trust is not in effect until containerd reloads it.
 * Decided on what the daemon reports (containerd 1.x, CRI Status), else (2.x, which does not report
 * them) on trustplay's record of the config it last restarted containerd with, never on mtimes. An
 * edit of other keys never restarts; where only the record can tell, it is said in a warning.
 */
function daemonLag(args: ContainerdTlsArgs, observed: TlsObserved, warn: (m: string) => void): Change[] {
  const { daemon, facts } = observed;
  if (!facts.version || !facts.config.exists) return [];
  const file = inspectConfig(facts.config.text, { containerdMajor: facts.version.major });
  if (!file.ok) return [];
  const inFile = file.info.configPath ?? '';
  if (daemon) {
    if (inFile === daemon.configPath) return [];
    return lagRestart(
      `restart containerd: it runs with config_path ${JSON.stringify(daemon.configPath)} but ${args.config_file} says ${JSON.stringify(inFile)} (changed after containerd started), so the trust in the file is not in effect`,
      restartRequestFor(args),
    );
  }
  const recorded = recordedConfig(
    facts.restartRecord,
    facts.config.content ?? facts.config.text ?? '',
    observed.recordDaemon,
  );
  if (recorded === null) return [];
  if (recorded === 'unknown') {
    warn(
      `${args.config_file} changed after containerd was last started, and that start was not trustplay's: containerd ${facts.version.major}.x does not report what it loaded, so whether the trust in the file is in effect cannot be told; not restarting (restart containerd yourself if that edit must take effect)`,
    );
    return [];
  }
  const then = inspectConfig(recorded.config, { containerdMajor: facts.version.major });
  if (!then.ok) return [];
  const settings = (i: ContainerdConfigInfo) =>
    JSON.stringify({ configPath: i.configPath ?? '', mirrors: i.mirrors, configs: i.configs });
  if (settings(then.info) === settings(file.info)) {
    warn(
      `${args.config_file} changed since trustplay last restarted containerd, outside the registry settings: containerd ${facts.version.major}.x does not report what it loaded, so it may still run the earlier file; not restarting for keys this task does not manage (restart containerd yourself when that edit must take effect)`,
    );
    return [];
  }
  const was = then.info.configPath ?? '';
  return lagRestart(
    `restart containerd: ${args.config_file} changed since trustplay last restarted containerd (${was === inFile ? 'its registry settings differ' : `config_path was ${JSON.stringify(was)}, the file says ${JSON.stringify(inFile)}`}), and containerd ${facts.version.major}.x does not report the registry settings it runs with, so the trust in the file may not be in effect`,
    restartRequestFor(args),
  );
}

/** Facts for the run's snapshot manifest (no secrets): merged across containerd.tls tasks of the host. */
function recordFacts(ctx: TaskContext, args: ContainerdTlsArgs, observed: TlsObserved): void {
  const { facts } = observed;
  const info = facts.version ? inspectConfig(facts.config.text, { containerdMajor: facts.version.major }) : null;
  const key = 'containerd.tls:registries';
  const registries = (ctx.hostState.get(key) as Record<string, unknown> | undefined) ?? {};
  const hostsFile = facts.hostsDir.files[FILE_NAMES.hosts];
  const parsed = hostsFile ? parseHostsToml(hostsFile.content.toString('utf8')) : null;
  const ca = facts.hostsDir.files[FILE_NAMES.ca];
  registries[args.registry] = {
    style: args.style === 'legacy' ? 'legacy' : 'hosts',
    dir: facts.hostsDir.path,
    hostsToml: hostsFile ? (parsed?.ok ? (parsed.managed ? 'managed' : 'present') : 'invalid') : 'absent',
    ...(parsed?.ok
      ? {
          server: parsed.model.server,
          skipVerify: parsed.model.serverSkipVerify || parsed.model.hosts.some((h) => h.skipVerify),
        }
      : {}),
    caFile: ca ? `sha256:${sha256(ca.content.toString('utf8'))}` : null,
    clientCert: facts.hostsDir.files[FILE_NAMES.cert] !== undefined,
    ...(info?.ok && info.info.configs[args.registry]?.tls
      ? { legacyTls: { ...info.info.configs[args.registry]?.tls } }
      : {}),
  };
  ctx.hostState.set(key, registries);
  ctx.fact('containerd', {
    version: facts.version?.raw ?? null,
    versionSource: observed.versionSource ? describeVersionSource(observed.versionSource) : null,
    major: facts.version?.major ?? null,
    minor: facts.version?.minor ?? null,
    configFile: args.config_file,
    configExists: facts.config.exists,
    configVersion: info?.ok ? info.info.version : null,
    configPath: info?.ok ? info.info.configPath : null,
    legacyMirrors: info?.ok ? Object.keys(info.info.mirrors) : [],
    legacyTlsHosts: info?.ok
      ? Object.entries(info.info.configs)
          .filter(([, c]) => c.tls)
          .map(([h]) => h)
      : [],
    imports: info?.ok ? info.info.imports : [],
    registries,
  });
}

/** Directories a legacy migration would write to, so gather can read them (second command, migration only). */
function migrationDirs(args: ContainerdTlsArgs, facts: ContainerdFacts): string[] {
  if (!args.migrate_legacy || args.style === 'legacy' || args.state === 'absent' || !facts.version) return [];
  const r = inspectConfig(facts.config.text, { containerdMajor: facts.version.major });
  if (!r.ok) return [];
  const names = new Set([
    ...Object.keys(r.info.mirrors).map((m) => (m === '*' ? '_default' : m)),
    ...Object.entries(r.info.configs)
      .filter(([, c]) => c.tls)
      .map(([h]) => h),
  ]);
  return [...names].map((n) => hostsDirFor(args.config_path, n));
}

/**
 * A flavour this module cannot act on fails with the flavour and what rules it (DECISIONS: green
 * means checked), before anything is read or written.
 */
function refuseFlavour(host: string, flavour: Flavour, args: ContainerdTlsArgs): void {
  if (flavour.kind === 'bottlerocket')
    throw new TaskError(
      `${host} runs Bottlerocket (${flavour.evidence.join(', ')}), whose containerd is configured only through its settings API, not files: trust the registry's CA with \`apiclient set settings.pki.${args.registry.replace(/[^A-Za-z0-9-]/g, '-')}.data=<base64 PEM> settings.pki.${args.registry.replace(/[^A-Za-z0-9-]/g, '-')}.trusted=true\` (or the same settings in user data), then run \`trustplay check\` to confirm the pull works.`,
      'refused',
    );
  if (flavour.kind === 'microk8s' && args.config_file === DEFAULT_CONFIG_FILE)
    throw new TaskError(
      `${host} runs microk8s (${flavour.evidence.join(', ')}): its containerd reads ${flavour.configFile} and registry directories under ${flavour.certsDir}, not /etc/containerd: set config_file: ${flavour.configFile}, config_path: ${flavour.certsDir}, socket: ${flavour.socket} and restart_command: ${MICROK8S.restartCommand} on this host's task (or its variables).`,
      'refused',
    );
}

/** gather on k3s/RKE2: registries.yaml as the config, the tls directory beside it as the registry's directory. */
async function gatherRancher(
  ctx: TaskContext,
  args: ContainerdTlsArgs,
  flavour: Flavour,
  material: TlsMaterial,
  materialWarnings: string[],
): Promise<TlsObserved> {
  const dir = rancherTlsDir(flavour, args.registry);
  const facts = await gatherContainerdFacts(ctx.conn, {
    configFile: flavour.registriesFile!,
    configPath: path.posix.dirname(dir),
    registry: args.registry,
  });
  const socket = args.socket ?? flavour.socket;
  const running = await runningVersionFor(ctx, () => criSocketFor(ctx, socket), null);
  facts.version = running?.version ?? null;
  const pending =
    facts.pendingMarker !== undefined
      ? parsePendingMarker(ctx.host, flavour.registriesFile!, facts.pendingMarker)
      : undefined;
  const criDown = running?.source.kind === 'cri' ? undefined : await criStateFor(ctx, socket, running);
  const observed: TlsObserved = {
    facts,
    material,
    materialWarnings,
    flavour,
    versionSource: running?.source ?? null,
    ...(pending ? { pending } : {}),
    ...defined({ criDown }),
  };
  // As on containerd's own path: under `auto`, a task that writes nothing is not checked again.
  const caPreflight = await gatherCaPreflight(ctx, args, material, {}, () => writesAnything(args, observed, ctx.host));
  const expiring = gatherExpiry(ctx, args, material, facts, caPreflight);
  Object.assign(observed, defined({ caPreflight, expiring }));
  recordRancherFacts(ctx, args, observed);
  return observed;
}

/** Facts on k3s/RKE2 for the manifest and `facts`: the flavour, registries.yaml's entry for the registry. */
function recordRancherFacts(ctx: TaskContext, args: ContainerdTlsArgs, observed: TlsObserved): void {
  const flavour = observed.flavour!;
  const inspected = inspectRegistries(observed.facts.config.text, flavour.registriesFile!);
  const ca = observed.facts.hostsDir.files[FILE_NAMES.ca];
  ctx.fact('containerd', {
    flavour: flavour.kind,
    flavourEvidence: flavour.evidence,
    version: observed.facts.version?.raw ?? null,
    versionSource: observed.versionSource ? describeVersionSource(observed.versionSource) : null,
    registriesFile: flavour.registriesFile,
    configFile: flavour.configFile,
    configPath: flavour.certsDir,
    registries: {
      [args.registry]: {
        style: 'registries.yaml',
        tls: inspected.ok ? (inspected.info.configs[args.registry]?.tls ?? null) : null,
        caFile: ca ? `sha256:${sha256(ca.content.toString('utf8'))}` : null,
      },
    },
  });
}

/** containerd.tls's gather (inside one CRI scope). */
async function gatherTls(ctx: TaskContext, args: ContainerdTlsArgs): Promise<TlsObserved> {
  const { material, warnings } = await readMaterial(args);
  if (material.clientKey !== undefined) ctx.secret?.(material.clientKey);
  const known = knownFlavour(ctx.hostState);
  if (known) {
    refuseFlavour(ctx.host, known, args);
    if (known.kind === 'k3s' || known.kind === 'rke2') return gatherRancher(ctx, args, known, material, warnings);
  }
  const opts = {
    configFile: args.config_file,
    configPath: args.config_path,
    registry: args.registry,
  };
  const dir = registryDir(args);
  // One command for the usual node: the flavour (when not yet known), containerd's files and the
  // CRI socket candidates. On k3s/RKE2 that read is set aside for registries.yaml's.
  const socketReads = criSocketReads(ctx, args.socket);
  let gathered: Awaited<ReturnType<typeof gatherContainerdFactsWith>>;
  try {
    gathered = await gatherContainerdFactsWith(
      ctx.conn,
      args.style === 'legacy' ? { ...opts, configPath: path.posix.dirname(dir) } : opts,
      { flavour: !known, files: [...socketReads] },
    );
  } catch (err) {
    // A node this task refuses (Bottlerocket has no shell to read with) says so, not why the read failed.
    if (!known) refuseFlavour(ctx.host, await detectFlavour(ctx.conn, ctx.hostState), args);
    throw err;
  }
  const flavour = known ?? gathered.flavour ?? (await detectFlavour(ctx.conn, ctx.hostState));
  if (!known) {
    rememberFlavour(ctx.hostState, flavour);
    refuseFlavour(ctx.host, flavour, args);
    if (flavour.kind === 'k3s' || flavour.kind === 'rke2') return gatherRancher(ctx, args, flavour, material, warnings);
  }
  let facts = gathered.facts;
  const running = await runningVersionFor(
    ctx,
    () => criSocketFor(ctx, args.socket, socketReads.length ? gathered.read.entries : undefined),
    facts.version,
  );
  facts.version = running?.version ?? null;
  const extra = migrationDirs(args, facts);
  if (extra.length > 0)
    facts = { ...(await gatherContainerdFacts(ctx.conn, { ...opts, extraDirs: extra })), version: facts.version };
  const pending =
    facts.pendingMarker !== undefined ? parsePendingMarker(ctx.host, args.config_file, facts.pendingMarker) : undefined;
  // Only when the daemon answered on the CRI: what it has loaded, to see whether it lags the file.
  const daemon = running?.source.kind === 'cri' ? await withCri(ctx, args.socket, (cri) => daemonRegistry(cri)) : null;
  const criDown = running?.source.kind === 'cri' ? undefined : await criStateFor(ctx, args.socket, running);
  const recordDaemon = daemon
    ? undefined
    : await recordedDaemon(
        ctx.conn,
        facts.restartRecord,
        args.config_file,
        facts.config.exists ? (facts.config.content ?? facts.config.text ?? '') : null,
      );
  const observed: TlsObserved = {
    facts,
    material,
    materialWarnings: warnings,
    ...(flavour.kind !== 'containerd' ? { flavour } : {}),
    versionSource: running?.source ?? null,
    ...(pending ? { pending } : {}),
    ...(daemon ? { daemon } : {}),
    ...defined({ criDown }),
    ...(recordDaemon ? { recordDaemon } : {}),
  };
  const caPreflight = await gatherCaPreflight(
    ctx,
    args,
    material,
    // The legacy style read its dir's parent as config_path: the node view reads its own.
    { configFile: args.config_file, configPath: args.config_path, ...(args.style === 'legacy' ? {} : { facts }) },
    () => writesAnything(args, observed, ctx.host),
  );
  const expiring = gatherExpiry(ctx, args, material, facts, caPreflight);
  Object.assign(observed, defined({ caPreflight, expiring }));
  recordFacts(ctx, args, observed);
  return observed;
}

/** The `containerd.tls` module. */
export default defineModule({
  schema,
  name: 'containerd.tls',
  warm: warmCri,
  description:
    "Make containerd trust a registry's TLS: hosts.toml + CA (or legacy CRI tls), config_path, verified restart with rollback.",
  // One CRI client for the gather: the probe that finds the socket also answers the Status call.
  gather: (ctx, args) => criScope(ctx, () => gatherTls(ctx, args)),
  plan(args, observed, ctx) {
    for (const w of expiryLines(args.registry, observed.expiring ?? [])) ctx.warn(w);
    if (observed.flavour?.registriesFile !== undefined)
      return afterPendingRestart(ctx, observed.pending, rancherRestart(args, observed.flavour), () => {
        const plan = planRancherTls(args, observed, ctx.host);
        for (const w of plan.warnings) ctx.warn(w);
        return plan.changes;
      });
    return afterPendingRestart(ctx, observed.pending, restartRequestFor(args), () => {
      const plan = planContainerdTls(args, observed, ctx.host);
      for (const w of plan.warnings) ctx.warn(w);
      const restarts = plan.changes.some((c) => c.op === 'restart.request') || observed.pending !== undefined;
      return [...plan.changes, ...(restarts ? [] : daemonLag(args, observed, (m) => ctx.warn(m)))];
    });
  },
});
