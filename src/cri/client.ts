import type { Duplex } from 'node:stream';
import type * as GrpcJs from '@grpc/grpc-js';
import type { PackageDefinition, MethodDefinition } from '@grpc/proto-loader';
import { parse as parseYaml } from 'yaml';
import type { Connection } from '../connection/connection.js';
import { readNode, type NodeEntry } from '../connection/read-files.js';
import { openStreamBridge, type StreamBridge } from './stream-bridge.js';

export const CRICTL_YAML = '/etc/crictl.yaml';

/** An image in the node's CRI image store. */
export interface CriImage {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: number;
}

/** Registry credentials for one pull (CRI `AuthConfig`); never logged. */
export interface CriAuth {
  username?: string;
  password?: string;
  /** base64("user:password"), as in a docker config.json. */
  auth?: string;
  identityToken?: string;
  registryToken?: string;
  serverAddress?: string;
}

/** What the runtime says about itself (CRI `RuntimeService/Version`). */
export interface CriVersion {
  runtimeName: string;
  runtimeVersion: string;
  runtimeApiVersion: string;
}

/** The image half of the CRI, as kubelet uses it. */
export interface CriImageClient {
  pullImage(image: string, opts?: { auth?: CriAuth; timeoutMs?: number }): Promise<{ imageRef: string }>;
  /** The image, or null when the store does not have it. */
  imageStatus(image: string): Promise<CriImage | null>;
  /** Removes the image and every tag pointing at it; absent is not an error. */
  removeImage(image: string): Promise<void>;
  listImages(): Promise<CriImage[]>;
  /** Cheapest call that proves the CRI plugin is loaded and serving. */
  version(timeoutMs?: number): Promise<CriVersion>;
  /**
   * The runtime's status; `verbose` adds `info`, the runtime's own view as JSON strings (containerd:
   * `config`, its effective CRI configuration, registry settings included on 1.x).
   */
  status(verbose: boolean, timeoutMs?: number): Promise<CriStatus>;
  close(): Promise<void>;
  /**
   * The same connection to the runtime, its calls cancelled by `signal` instead; closing the view
   * leaves the connection open (its owner closes it).
   */
  withSignal?(signal: AbortSignal | undefined): CriImageClient;
}

/** What the CRI `Status` call returns. */
export interface CriStatus {
  conditions: { type: string; status: boolean; reason: string; message: string }[];
  info: Record<string, string>;
}

/** A failed CRI call; `code` is the gRPC status, `details` the runtime's own message. */
export class CriError extends Error {
  override readonly name = 'CriError';
  constructor(
    message: string,
    readonly code: number,
    readonly details: string,
    /** The socket as the operator knows it (on the node, not the controller's bridge). */
    readonly socketPath: string,
  ) {
    super(message);
  }
}

/** Well-known gRPC status codes we branch on (values from grpc-js `status`). */
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_NOT_FOUND = 5;
export const GRPC_UNIMPLEMENTED = 12;
export const GRPC_UNAVAILABLE = 14;

/** Default ceiling for a pull: big images over slow links take minutes; callers pass their own `timeout`. */
const DEFAULT_PULL_TIMEOUT_MS = 10 * 60_000;
/** Default ceiling for metadata calls (status, list, remove, version). */
const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/** Sockets tried, in order, when neither the inventory nor crictl.yaml names one. */
export const DEFAULT_CRI_SOCKETS = ['/run/containerd/containerd.sock', '/run/k3s/containerd/containerd.sock'] as const;

interface Loaded {
  grpc: typeof GrpcJs;
  methods: Record<
    'ListImages' | 'ImageStatus' | 'PullImage' | 'RemoveImage' | 'Version' | 'Status',
    MethodDefinition<object, object>
  >;
}

/** proto-loader options shared with the descriptor test so both see the same shapes. */
export const CRI_LOADER_OPTIONS = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

let loading: Promise<Loaded> | undefined;

/** Loads grpc-js and the CRI descriptor ahead of the first client (a module's `warm`). */
export function warmCri(): Promise<unknown> {
  return load();
}

// grpc-js and protobufjs take 60-250 ms to import on a busy 2-core box; the CLI only pays that
// when a task actually talks to the CRI.
function load(): Promise<Loaded> {
  loading ??= (async () => {
    const [grpc, protoLoader, { CRI_IMAGE_DESCRIPTOR }] = await Promise.all([
      import('@grpc/grpc-js'),
      import('@grpc/proto-loader'),
      import('./proto/cri-image-descriptor.js'),
    ]);
    const def: PackageDefinition = protoLoader.fromJSON(
      // The literal's string fields are wider than protobufjs' unions; the shape is what toJSON() emits.
      CRI_IMAGE_DESCRIPTOR as Parameters<typeof protoLoader.fromJSON>[0],
      CRI_LOADER_OPTIONS,
    );
    const image = def['runtime.v1.ImageService'] as Record<string, MethodDefinition<object, object>>;
    const runtime = def['runtime.v1.RuntimeService'] as Record<string, MethodDefinition<object, object>>;
    const pick = (
      svc: Record<string, MethodDefinition<object, object>>,
      name: string,
    ): MethodDefinition<object, object> => {
      const m = svc[name];
      if (!m) throw new Error(`internal: CRI descriptor lacks ${name}`);
      return m;
    };
    return {
      grpc,
      methods: {
        ListImages: pick(image, 'ListImages'),
        ImageStatus: pick(image, 'ImageStatus'),
        PullImage: pick(image, 'PullImage'),
        RemoveImage: pick(image, 'RemoveImage'),
        Version: pick(runtime, 'Version'),
        Status: pick(runtime, 'Status'),
      },
    };
  })();
  return loading;
}

/** Talks CRI to a unix socket on this machine (a local connection). */
export function createCriClient(socketPath: string): CriImageClient {
  return new GrpcCriClient(`unix:${socketPath}`, socketPath);
}

/**
 * Talks CRI through streams opened on demand (an SSH host: `conn.openUnixSocket(path)`); grpc-js
 * cannot take a custom stream, so a private local unix socket bridges to `openStream()`.
 * `socketLabel` is the socket as the operator knows it, for messages.
 */
export async function createCriClientOverStream(
  openStream: () => Promise<Duplex>,
  socketLabel = 'the forwarded CRI socket',
): Promise<CriImageClient> {
  const bridge = await openStreamBridge(openStream);
  return new GrpcCriClient(`unix:${bridge.socketPath}`, socketLabel, bridge);
}

/**
 * A `Version` answer just given, kept for the next ask on the same connection and socket (once,
 * within 2 s): finding the socket (a probe's Version) and reading the running daemon's version ask
 * the same question back to back, and each ask is a CRI client (a bridge, a forward, HTTP/2).
 */
const recentVersions = new WeakMap<Connection, Map<string, { at: number; v: CriVersion }>>();
const RECENT_VERSION_MS = 2000;

export function rememberCriVersion(conn: Connection, socket: string, v: CriVersion): void {
  let m = recentVersions.get(conn);
  if (!m) recentVersions.set(conn, (m = new Map()));
  m.set(socket, { at: Date.now(), v });
}

/** The Version answer just given on this socket, if any (taken: the ask after it asks again). */
export function takeRecentCriVersion(conn: Connection, socket: string): CriVersion | undefined {
  const m = recentVersions.get(conn);
  const r = m?.get(socket);
  m?.delete(socket);
  return r && Date.now() - r.at <= RECENT_VERSION_MS ? r.v : undefined;
}

/**
 * The CRI client for a host: direct socket for a local connection, otherwise the connection's
 * stream (SSH stream-local, or the become relay). `signal` cancels its calls in flight (a long
 * pull) when aborted: they reject with the signal's reason, and the runtime sees the call
 * cancelled (containerd stops the pull).
 */
export async function createCriClientFor(
  conn: Connection,
  socketPath: string,
  opts: { signal?: AbortSignal } = {},
): Promise<CriImageClient> {
  await conn.connect();
  const direct = await conn.directSocketPath?.(socketPath);
  if (direct !== undefined) return new GrpcCriClient(`unix:${direct}`, socketPath, undefined, opts.signal);
  const bridge = await openStreamBridge(() => conn.openUnixSocket(socketPath));
  return new GrpcCriClient(`unix:${bridge.socketPath}`, `${socketPath} on ${conn.host}`, bridge, opts.signal);
}

/** What a call cancelled by `signal` rejects with: its reason (trustplay's Interrupted), else an Error. */
function cancelled(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('the CRI call was cancelled');
}

interface RawImage {
  id?: string;
  repoTags?: string[];
  repoDigests?: string[];
  size?: number | string;
}

function toCriImage(raw: RawImage): CriImage {
  return {
    id: raw.id ?? '',
    repoTags: raw.repoTags ?? [],
    repoDigests: raw.repoDigests ?? [],
    size: Number(raw.size ?? 0),
  };
}

class GrpcCriClient implements CriImageClient {
  private client: Promise<{ loaded: Loaded; client: GrpcJs.Client }> | undefined;

  constructor(
    private readonly target: string,
    private readonly label: string,
    private readonly bridge?: StreamBridge,
    private readonly signal?: AbortSignal,
    /** A view's owner: the view calls on the owner's connection and never closes it. */
    private readonly owner?: GrpcCriClient,
  ) {}

  withSignal(signal: AbortSignal | undefined): CriImageClient {
    return new GrpcCriClient(this.target, this.label, this.bridge, signal, this.owner ?? this);
  }

  private connect(): Promise<{ loaded: Loaded; client: GrpcJs.Client }> {
    if (this.owner) return this.owner.connect();
    this.client ??= load().then((loaded) => ({
      loaded,
      client: new loaded.grpc.Client(this.target, loaded.grpc.credentials.createInsecure(), {
        // Same ceiling as crictl: ListImages on a busy node easily exceeds grpc's 4 MiB default.
        'grpc.max_receive_message_length': 16 * 1024 * 1024,
        // After a containerd restart we poll; keep the channel's own back-off short so a poll
        // sees the socket as soon as it is back.
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
      }),
    }));
    return this.client;
  }

  private async call<Res>(
    method: keyof Loaded['methods'],
    request: object,
    timeoutMs: number,
    what: string,
  ): Promise<Res> {
    const { loaded, client } = await this.connect();
    const m = loaded.methods[method];
    const signal = this.signal;
    if (signal?.aborted) throw cancelled(signal);
    return new Promise<Res>((resolve, reject) => {
      const call = client.makeUnaryRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        request,
        new loaded.grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          signal?.removeEventListener('abort', cancel);
          if (err) reject(signal?.aborted ? cancelled(signal) : this.toCriError(err, what, timeoutMs));
          else resolve(res as Res);
        },
      );
      const cancel = () => call.cancel();
      signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  private toCriError(err: GrpcJs.ServiceError, what: string, timeoutMs: number): CriError {
    const details = err.details || err.message;
    const where = this.label;
    switch (err.code) {
      case GRPC_UNAVAILABLE: {
        // Over SSH the socket grpc-js sees is our bridge, so the real cause is the channel error.
        const openError = this.bridge?.lastOpenError?.message;
        const cause =
          openError === undefined
            ? cleanUnavailable(details)
            : /Channel open failure/i.test(openError)
              ? `${openError}: sshd refused to open it (the socket does not exist there, or sshd_config has AllowStreamLocalForwarding no / DisableForwarding yes)`
              : openError;
        return new CriError(`cannot reach containerd's CRI socket ${where}: ${cause}`, err.code, details, where);
      }
      case GRPC_UNIMPLEMENTED:
        return new CriError(
          `containerd at ${where} answers but does not serve the CRI (${details}): is the cri plugin disabled in config.toml or did it fail to load? see containerd's log`,
          err.code,
          details,
          where,
        );
      case GRPC_DEADLINE_EXCEEDED:
        return new CriError(`${what} through ${where} did not finish within ${timeoutMs} ms`, err.code, details, where);
      default:
        return new CriError(`${what} through ${where} failed: ${details}`, err.code, details, where);
    }
  }

  async pullImage(image: string, opts: { auth?: CriAuth; timeoutMs?: number } = {}): Promise<{ imageRef: string }> {
    const request: Record<string, unknown> = { image: { image } };
    if (opts.auth) request['auth'] = { ...opts.auth };
    const res = await this.call<{ imageRef?: string }>(
      'PullImage',
      request,
      opts.timeoutMs ?? DEFAULT_PULL_TIMEOUT_MS,
      `pulling ${image}`,
    );
    return { imageRef: res.imageRef ?? '' };
  }

  async imageStatus(image: string): Promise<CriImage | null> {
    const res = await this.call<{ image?: RawImage | null }>(
      'ImageStatus',
      { image: { image }, verbose: false },
      DEFAULT_CALL_TIMEOUT_MS,
      `looking up image ${image}`,
    );
    return res.image ? toCriImage(res.image) : null;
  }

  async removeImage(image: string): Promise<void> {
    // Resolve to the id first and remove by id, as crictl does: removing by one tag would leave
    // the image's other tags (and its content) behind.
    const status = await this.imageStatus(image);
    if (!status) return;
    try {
      await this.call(
        'RemoveImage',
        { image: { image: status.id } },
        DEFAULT_CALL_TIMEOUT_MS,
        `removing image ${image}`,
      );
    } catch (err) {
      // Raced with another remover (kubelet's image GC): the end state is what we wanted.
      if (err instanceof CriError && err.code === GRPC_NOT_FOUND) return;
      throw err;
    }
  }

  async listImages(): Promise<CriImage[]> {
    const res = await this.call<{ images?: RawImage[] }>('ListImages', {}, DEFAULT_CALL_TIMEOUT_MS, 'listing images');
    return (res.images ?? []).map(toCriImage);
  }

  async version(timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<CriVersion> {
    const res = await this.call<Partial<CriVersion>>(
      'Version',
      { version: 'v1' },
      timeoutMs,
      'asking the runtime its version',
    );
    return {
      runtimeName: res.runtimeName ?? '',
      runtimeVersion: res.runtimeVersion ?? '',
      runtimeApiVersion: res.runtimeApiVersion ?? '',
    };
  }

  async status(verbose: boolean, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<CriStatus> {
    const res = await this.call<{
      status?: { conditions?: Partial<CriStatus['conditions'][number]>[] };
      info?: Record<string, string>;
    }>('Status', { verbose }, timeoutMs, 'asking the runtime its status');
    return {
      conditions: (res.status?.conditions ?? []).map((c) => ({
        type: c.type ?? '',
        status: c.status ?? false,
        reason: c.reason ?? '',
        message: c.message ?? '',
      })),
      info: res.info ?? {},
    };
  }

  async close(): Promise<void> {
    if (this.owner) return;
    const pending = this.client;
    this.client = undefined;
    if (pending) (await pending).client.close();
    await this.bridge?.close();
  }
}

/** grpc-js' "No connection established. Last error: Error: connect ENOENT /x. Resolution note: " → "connect ENOENT /x". */
export function cleanUnavailable(details: string): string {
  let s = details;
  const marker = 'Last error: ';
  const i = s.indexOf(marker);
  if (i >= 0) s = s.slice(i + marker.length);
  s = s
    .replace(/\.?\s*Resolution note:[\s\S]*$/, '')
    .replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)\s*$/, '')
    .replace(/^Error: /, '')
    .trim();
  return s || details;
}

/**
 * Polls `RuntimeService/Version` until the CRI answers (e.g. after a containerd restart); fails
 * at once when containerd answers without the CRI, since waiting will not load the plugin.
 */
export async function waitForCri(target: CriImageClient | string, timeoutMs: number): Promise<CriVersion> {
  const client = typeof target === 'string' ? createCriClient(target) : target;
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const remaining = deadline - Date.now();
      try {
        return await client.version(Math.max(100, Math.min(remaining, 5000)));
      } catch (err) {
        if (!(err instanceof CriError) || err.code === GRPC_UNIMPLEMENTED) throw err;
        if (Date.now() + 250 >= deadline) {
          throw new CriError(
            `the CRI at ${err.socketPath} did not answer within ${timeoutMs} ms (last error: ${err.code === GRPC_UNAVAILABLE ? cleanUnavailable(err.details) : err.details}): is containerd running? see its log`,
            err.code,
            err.details,
            err.socketPath,
          );
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    if (typeof target === 'string') await client.close();
  }
}

/**
 * The CRI socket on a host: `configured` (inventory/task setting), else the image/runtime endpoint
 * in the node's /etc/crictl.yaml, else the first of DEFAULT_CRI_SOCKETS that exists. Existence is
 * all this checks; pass `answers` (e.g. a `waitForCri` with a short timeout) to also require that
 * the socket serves the CRI.
 */
export async function resolveCriSocket(
  conn: Connection,
  configured?: string,
  answers?: (socketPath: string) => Promise<boolean>,
  read?: ReadonlyMap<string, NodeEntry>,
): Promise<string> {
  if (configured) return endpointToPath(configured, `the configured CRI socket for ${conn.host}`);

  // One remote command for crictl.yaml and every default socket (a round trip each before), or
  // none when a gather just read them with its own files (`read`, CRI_SOCKET_READS).
  const seen = CRI_SOCKET_READS.every((p) => read?.has(p))
    ? { entries: read! }
    : await readNode(conn, { files: [...CRI_SOCKET_READS] });
  const yaml = seen.entries.get(CRICTL_YAML);
  // A link is refused by readFile, with its reason, as before.
  const crictl = yaml?.kind === 'file' ? yaml.content : yaml?.kind === 'link' ? await conn.readFile(CRICTL_YAML) : null;
  if (crictl) {
    const endpoint = crictlEndpoint(crictl.toString('utf8'));
    if (endpoint) return endpointToPath(endpoint, `${CRICTL_YAML} on ${conn.host}`);
  }

  for (const candidate of DEFAULT_CRI_SOCKETS) {
    // A socket, or a link (to one, maybe): anything but a file or a directory may serve.
    const kind = seen.entries.get(candidate)?.kind;
    if (kind !== 'other' && kind !== 'link') continue;
    if (answers && !(await answers(candidate))) continue;
    return candidate;
  }
  throw new Error(
    `no CRI socket found on ${conn.host} (tried ${DEFAULT_CRI_SOCKETS.join(', ')} and /etc/crictl.yaml): is containerd running? otherwise set the host's CRI socket path explicitly`,
  );
}

/** What `resolveCriSocket` reads on the node: crictl.yaml and the well-known sockets. */
export const CRI_SOCKET_READS: readonly string[] = [CRICTL_YAML, ...DEFAULT_CRI_SOCKETS];

/** `image-endpoint` (what crictl uses for image calls) or `runtime-endpoint` from a crictl.yaml. */
export function crictlEndpoint(yamlText: string): string | undefined {
  let doc: unknown;
  try {
    doc = parseYaml(yamlText);
  } catch {
    // A broken crictl.yaml breaks crictl, not us: fall through to the well-known sockets.
    return undefined;
  }
  if (!doc || typeof doc !== 'object') return undefined;
  const rec = doc as Record<string, unknown>;
  for (const key of ['image-endpoint', 'runtime-endpoint']) {
    const v = rec[key];
    if (typeof v === 'string' && v.trim() !== '') return v.trim();
  }
  return undefined;
}

/** `unix:///run/x.sock`, `unix:/run/x.sock` or `/run/x.sock` → `/run/x.sock`. */
export function endpointToPath(endpoint: string, source: string): string {
  const path = endpoint.replace(/^unix:(\/\/)?/, '');
  if (!path.startsWith('/')) {
    throw new Error(
      `${source} names ${JSON.stringify(endpoint)}, which is not a unix socket: trustplay reaches the CRI only through a unix socket path such as unix:///run/containerd/containerd.sock`,
    );
  }
  return path;
}
