/**
 * Argument schemas of every task module: the one source of truth for validation (ajv), editor
 * completion (schemas/playbook.schema.json is generated from these) and the TypeScript argument
 * types (derived with json-schema-to-ts). `x-exclusive` lists groups of mutually exclusive
 * arguments; it is enforced by the validator with a one-sentence message and mirrored as a plain
 * JSON Schema `not` so editors flag it too. `x-secret: true` marks an argument whose value is a
 * secret (as Ansible's `no_log`): src/secrets/ masks it in every output and validation messages
 * never echo it.
 */
import type { FromSchema } from 'json-schema-to-ts';

const registry = {
  type: 'string',
  minLength: 1,
  pattern: '^[A-Za-z0-9.-]+(:[0-9]{1,5})?$',
  description:
    'Registry host as images name it: `host` or `host:port` (no scheme, no path), e.g. `registry.example.com:5000`.',
  examples: ['registry.example.com', 'registry.example.com:5000'],
} as const;

const configFile = {
  type: 'string',
  minLength: 1,
  default: '/etc/containerd/config.toml',
  description: "containerd's main configuration file.",
} as const;

const restartCommand = {
  type: 'string',
  minLength: 1,
  default: 'systemctl restart containerd',
  description: 'Command (run with sh) that restarts containerd when config.toml changed.',
} as const;

export const containerdTlsArgs = {
  type: 'object',
  title: 'containerd.tls',
  description:
    "Make containerd trust a registry's TLS (seed step 1): install its CA (recommended), a client certificate pair, or, insecurely, skip verification / use plain HTTP. Writes certs.d/<host>/hosts.toml and points config_path at it; restarts containerd only when config.toml changed and waits for the CRI socket.",
  additionalProperties: false,
  required: ['registry'],
  properties: {
    registry,
    ca: {
      type: 'string',
      minLength: 1,
      description:
        "The registry's CA certificate: a PEM file path on the controller, or inline PEM (`-----BEGIN CERTIFICATE-----...`). The secure fix.",
    },
    skip_verify: {
      type: 'boolean',
      description:
        'Skip TLS verification for this registry (insecure: anyone on the path can serve images). Prefer `ca`.',
    },
    plain_http: {
      type: 'boolean',
      description: 'The registry speaks plain HTTP, not TLS (insecure). Prefer serving TLS and `ca`.',
    },
    client_cert: {
      type: 'string',
      minLength: 1,
      description:
        'Client certificate for mutual TLS: a PEM file path on the controller or inline PEM. Requires `client_key`.',
    },
    client_key: {
      type: 'string',
      minLength: 1,
      description:
        'Client private key for mutual TLS: a PEM file path on the controller or inline PEM. Written 0600. Requires `client_cert`.',
      'x-secret': true,
    },
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
    config_file: configFile,
    restart_command: restartCommand,
    socket: {
      type: 'string',
      minLength: 1,
      description:
        "containerd's CRI socket for the post-restart health check; default: the host's `cri_socket`, /etc/crictl.yaml, then /run/containerd/containerd.sock.",
    },
    restart_timeout: {
      type: 'integer',
      minimum: 1,
      default: 60,
      description: 'Seconds to wait for the CRI socket to answer after a restart before rolling config.toml back.',
    },
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

export const k8sSaClearArgs = {
  type: 'object',
  title: 'k8s.sa.clear',
  description:
    "Remove imagePullSecrets (all, or the named ones) from a ServiceAccount in one or more namespaces with kubectl on the target host (seed step 2). The previous value goes to the run's snapshot so `trustplay restore` puts it back.",
  additionalProperties: false,
  required: ['namespace'],
  properties: {
    namespace: {
      description: 'A namespace, a list of namespaces, or `all` for every namespace.',
      anyOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
      ],
    },
    service_account: {
      type: 'string',
      minLength: 1,
      default: 'default',
      description: 'ServiceAccount name.',
    },
    secrets: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      description: 'Names of the pull secrets to remove; default: all of them.',
    },
    kubeconfig: {
      type: 'string',
      minLength: 1,
      description: "Path of the kubeconfig on the target host (default: kubectl's own default).",
    },
    context: { type: 'string', minLength: 1, description: 'kubeconfig context to use.' },
    kubectl: { type: 'string', minLength: 1, default: 'kubectl', description: 'kubectl binary on the target host.' },
  },
} as const;

export const nodeCredsWipeArgs = {
  type: 'object',
  title: 'node.creds.wipe',
  description:
    "Remove stale credentials for one registry from the node's docker/kubelet config.json files and containerd's `registry.configs.\"<host>\".auth`, keeping every other registry's entries and all TLS settings (seed step 3, made safe).",
  additionalProperties: false,
  required: ['registry'],
  properties: {
    registry,
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
    config_file: configFile,
    restart_command: restartCommand,
    socket: { type: 'string', minLength: 1, description: "containerd's CRI socket for the post-restart health check." },
    all: {
      type: 'boolean',
      default: false,
      description: "Remove the whole credential files and every registry's containerd auth (dangerous).",
    },
  },
} as const;

export const imageRmiArgs = {
  type: 'object',
  title: 'image.rmi',
  description: "Remove a cached image (all its tags) from the node's CRI image store (seed step 4). Absent = ok.",
  additionalProperties: false,
  required: ['image'],
  properties: {
    image: { type: 'string', minLength: 1, description: 'Image reference, e.g. `registry.example.com/app:1.0`.' },
    socket: { type: 'string', minLength: 1, description: "containerd's CRI socket (default: auto-detected)." },
  },
} as const;

export const imagePullVerifyArgs = {
  type: 'object',
  title: 'image.pull.verify',
  description:
    'Pull an image through the CRI ImageService (the path kubelet uses) and assert success, optionally an expected digest. Classifies failures (unknown authority, name mismatch, expired, plain HTTP, auth, not found, unreachable). Never reports "changed"; runs in check mode too.',
  additionalProperties: false,
  required: ['image'],
  properties: {
    image: { type: 'string', minLength: 1, description: 'Image reference to pull.' },
    expect_digest: {
      type: 'string',
      pattern: '^sha256:[0-9a-f]{64}$',
      description: 'Fail unless the pulled image has this repo digest (`sha256:...`).',
    },
    auth: {
      type: 'object',
      additionalProperties: false,
      description: 'Registry credentials for the pull (from variables; never printed).',
      properties: {
        username: { type: 'string' },
        password: { type: 'string', 'x-secret': true },
        token: {
          type: 'string',
          description: 'A registry bearer/identity token instead of username/password.',
          'x-secret': true,
        },
      },
      'x-exclusive': [['password', 'token']],
    },
    timeout: { type: 'integer', minimum: 1, default: 120, description: 'Seconds one pull may take.' },
    retries: {
      type: 'integer',
      minimum: 0,
      default: 0,
      description: 'Extra attempts after a failed pull (exponential back-off).',
    },
    socket: { type: 'string', minLength: 1, description: "containerd's CRI socket (default: auto-detected)." },
  },
} as const;

/** Every user-facing module's argument schema, by module name. */
export const moduleArgSchemas = {
  'containerd.tls': containerdTlsArgs,
  'k8s.sa.clear': k8sSaClearArgs,
  'node.creds.wipe': nodeCredsWipeArgs,
  'image.rmi': imageRmiArgs,
  'image.pull.verify': imagePullVerifyArgs,
} as const;

export type ModuleName = keyof typeof moduleArgSchemas;
export const moduleNames = Object.keys(moduleArgSchemas) as ModuleName[];

type Defaulted = { keepDefaultedPropertiesOptional: false };
export type ContainerdTlsArgs = FromSchema<typeof containerdTlsArgs, Defaulted>;
export type K8sSaClearArgs = FromSchema<typeof k8sSaClearArgs, Defaulted>;
export type NodeCredsWipeArgs = FromSchema<typeof nodeCredsWipeArgs, Defaulted>;
export type ImageRmiArgs = FromSchema<typeof imageRmiArgs, Defaulted>;
export type ImagePullVerifyArgs = FromSchema<typeof imagePullVerifyArgs, Defaulted>;
