/**
 * containerd registry host files: `<config_path>/<host[:port]>/hosts.toml` (containerd docs/hosts.md).
 *
 * Semantics we rely on (docs/hosts.md, "hosts.toml Content Description"):
 * - the directory is the registry host namespace: `host` or `host:port` exactly as in image refs
 *   (`_default` is the fallback namespace);
 * - `server` is the namespace's default server, tried after every `[host."..."]` entry; when absent,
 *   the namespace itself is used;
 * - `[host."<url>"]` entries are tried first, in order; `capabilities` says what a host may do
 *   (a registry we trust gets "pull" and "resolve"; CRI never pushes);
 * - `ca` is a path or list of paths, `client` a path, a list, or a list of [cert, key] pairs,
 *   `skip_verify` disables certificate and name checks; relative paths are relative to the file.
 */
import TOML from '@iarna/toml';
import { formatString, formatValue, toPlain, type PlainTable, type PlainValue, type TomlValue } from '../toml/model.js';
import type { Result } from '../result.js';

/** First line of every hosts.toml trustplay owns. */
export const MANAGED_MARKER = '# Managed by trustplay — changes will be overwritten.';
/** First line of hosts.toml files trustplay wrote while migrating legacy settings (not owned afterwards). */
export const MIGRATED_MARKER = '# Migrated by trustplay from the legacy CRI registry settings in config.toml.';

/** What `containerd.tls` wants for one registry. */
export interface HostsTomlOptions {
  /** `host` or `host:port`, as in image references. */
  registry: string;
  /** Where to pull from; default `https://<registry>` (`http://` with plainHttp). */
  server?: string;
  /** CA certificate path on the node. */
  ca?: string;
  clientCert?: string;
  clientKey?: string;
  skipVerify?: boolean;
  plainHttp?: boolean;
}

/** One `[host."<url>"]` entry, normalised. */
export interface HostsTomlHost {
  url: string;
  /** null when the file leaves it out (containerd then allows every capability). */
  capabilities: string[] | null;
  ca: string[];
  client: Array<[string, string]>;
  skipVerify: boolean;
}

/** A hosts.toml file, normalised so that equal meaning compares equal. */
export interface HostsTomlModel {
  server: string | null;
  /** Settings at the top level, which apply to `server`. */
  serverCa: string[];
  serverClient: Array<[string, string]>;
  serverSkipVerify: boolean;
  hosts: HostsTomlHost[];
}

/** The directory name containerd looks up for a registry (`host:port` for non-default ports). */
export function hostNamespaceDir(registry: string): string {
  return registry === '*' ? '_default' : registry;
}

/** The upstream server for a registry namespace (docker.io's API lives at registry-1.docker.io). */
export function defaultServer(registry: string, plainHttp = false): string {
  if (registry === 'docker.io') return 'https://registry-1.docker.io';
  return `${plainHttp ? 'http' : 'https'}://${registry}`;
}

/**
 * The model `renderHostsToml(o)` writes, for comparing with `parseHostsToml` of the file on the node.
 *
 * The TLS settings go BOTH at the top level (for `server`) and on the `[host."<server>"]` entry.
 * containerd's resolver tries every host entry and then `server`; when the image does not exist the
 * entry answers 404 and the resolver moves on to `server`, and if `server` lacks the CA that attempt
 * fails with x509, which is the error reported: a missing image would look like a trust problem.
 * Measured on containerd 1.6.20 in the lab: CA only on the entry -> a successful pull, but not-found
 * reported as "x509: certificate signed by unknown authority"; CA only at the top level -> both
 * right; CA in both places -> both right. Both places also covers a containerd that honours only
 * one of them (the top-level form is documented in docs/hosts.md, the entry form is what most
 * guides write).
 */
export function hostsTomlModel(o: HostsTomlOptions): HostsTomlModel {
  const server = o.server ?? defaultServer(o.registry, o.plainHttp === true);
  const ca = o.ca !== undefined ? [o.ca] : [];
  const client: Array<[string, string]> = o.clientCert !== undefined ? [[o.clientCert, o.clientKey ?? '']] : [];
  const skipVerify = o.skipVerify === true;
  return {
    server,
    serverCa: ca,
    serverClient: client,
    serverSkipVerify: skipVerify,
    hosts: [
      { url: server, capabilities: ['pull', 'resolve'], ca: [...ca], client: client.map((c) => [...c]), skipVerify },
    ],
  };
}

/** Renders the hosts.toml trustplay writes for one registry, marked as managed. */
export function renderHostsToml(o: HostsTomlOptions): string {
  return renderHostsModel(hostsTomlModel(o), MANAGED_MARKER);
}

/** Renders any hosts.toml model with a first-line comment. */
export function renderHostsModel(m: HostsTomlModel, marker: string): string {
  const lines: string[] = [marker];
  if (m.server !== null) lines.push(`server = ${formatString(m.server)}`);
  lines.push(...tlsLines('', m.serverCa, m.serverClient, m.serverSkipVerify));
  // An empty `[host]` table when there is no entry: containerd 1.x rejects the file without one.
  if (m.hosts.length === 0) lines.push('', '[host]');
  for (const h of m.hosts) {
    lines.push('', `[host.${formatString(h.url)}]`);
    if (h.capabilities !== null) lines.push(`  capabilities = ${formatValue(h.capabilities)}`);
    lines.push(...tlsLines('  ', h.ca, h.client, h.skipVerify));
  }
  return lines.join('\n') + '\n';
}

function tlsLines(indent: string, ca: string[], client: Array<[string, string]>, skip: boolean): string[] {
  const out: string[] = [];
  if (ca.length === 1) out.push(`${indent}ca = ${formatString(ca[0] as string)}`);
  else if (ca.length > 1) out.push(`${indent}ca = ${formatValue(ca)}`);
  if (client.length > 0) out.push(`${indent}client = ${formatValue(client as TomlValue[])}`);
  if (skip) out.push(`${indent}skip_verify = true`);
  return out;
}

/** Whether a hosts.toml was written by trustplay as its own (first non-blank line is the marker). */
export function isManagedByTrustplay(text: string): boolean {
  const first = text.split('\n').find((l) => l.trim() !== '');
  return first?.trim() === MANAGED_MARKER;
}

/**
 * Result of `parseHostsToml`. `hostTable`: the file has a `host` key holding a table (`[host]`,
 * `[host."<url>"]` or an inline table), which containerd 1.x requires (see hostsTomlRejection).
 */
export type ParseHostsResult = Result<{ model: HostsTomlModel; managed: boolean; hostTable: boolean }>;

/** Why containerd 1.x ignores a hosts.toml without a `host` table (one line, for facts and diagnose). */
export const NO_HOST_TABLE =
  'it has no [host] table, which containerd 1.x requires ("failed to decode hosts.toml": invalid `host` tree, containerd#10027)';

/**
 * Why the containerd of `version` ignores a parsed hosts.toml, or null when it reads it.
 *
 * containerd 1.6 and 1.7 (remotes/docker/config/hosts.go, go-toml v1) look up the hosts in order
 * before decoding anything and fail when the root's `host` is not a table; the error is logged as
 * "failed to decode hosts.toml" and the directory is then read as a Docker certs.d directory
 * (`*.crt` files are CAs, `*.cert`/`*.key` client pairs), so none of the file's settings apply —
 * with no such files the registry gets the system roots. containerd 2.x's parser has no such
 * check (2.1.9's binary lacks the message). Checked in the lab: a file with only top-level
 * `server` and `ca` fails with x509 on 1.6.20 and 1.7.24 and pulls on 2.1.9; an empty `[host]`
 * table makes it pull on all three. An unknown version: null (not claimed).
 */
export function hostsTomlRejection(hostTable: boolean, version: { major: number } | null | undefined): string | null {
  if (hostTable || !version || version.major >= 2) return null;
  return NO_HOST_TABLE;
}

/** Parses a hosts.toml into the normalised model (for idempotency checks and reporting). */
export function parseHostsToml(text: string): ParseHostsResult {
  let doc: PlainTable;
  try {
    doc = toPlain(TOML.parse(text)) as PlainTable;
  } catch (e) {
    const first = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
    return { ok: false, error: `hosts.toml is not valid TOML: ${first}` };
  }
  const hostTable = doc['host'];
  const hosts: HostsTomlHost[] = [];
  if (isTable(hostTable)) {
    // Object key order is the file order for string keys, which is the order containerd tries hosts.
    for (const [url, h] of Object.entries(hostTable)) {
      if (!isTable(h)) continue;
      const caps = h['capabilities'];
      hosts.push({
        url,
        capabilities: Array.isArray(caps) ? caps.filter((c): c is string => typeof c === 'string') : null,
        ca: readCa(h['ca']),
        client: readClient(h['client']),
        skipVerify: h['skip_verify'] === true,
      });
    }
  }
  return {
    ok: true,
    managed: isManagedByTrustplay(text),
    hostTable: isTable(hostTable),
    model: {
      server: typeof doc['server'] === 'string' ? doc['server'] : null,
      serverCa: readCa(doc['ca']),
      serverClient: readClient(doc['client']),
      serverSkipVerify: doc['skip_verify'] === true,
      hosts,
    },
  };
}

function isTable(v: PlainValue | undefined): v is PlainTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readCa(v: PlainValue | undefined): string[] {
  if (typeof v === 'string') return [v];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function readClient(v: PlainValue | undefined): Array<[string, string]> {
  // containerd accepts a path, a list of paths, or a list of [cert, key] pairs; a lone path has no key.
  if (typeof v === 'string') return [[v, '']];
  if (!Array.isArray(v)) return [];
  return v.flatMap((x): Array<[string, string]> => {
    if (typeof x === 'string') return [[x, '']];
    if (Array.isArray(x) && typeof x[0] === 'string') return [[x[0], typeof x[1] === 'string' ? x[1] : '']];
    return [];
  });
}
