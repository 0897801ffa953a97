/** Argument schema pieces several modules share, so their wording and defaults stay the same. */

export const registryArg = {
  type: 'string',
  minLength: 1,
  // DNS labels (or an IP literal, IPv6 in brackets) and an optional port, at most 253 characters:
  // the name becomes a directory under certs.d, so `.`, `..`, a leading `-` or `/` never get through.
  maxLength: 253,
  pattern:
    '^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]{1,5})?$',
  description:
    'Registry host as images name it: `host` or `host:port` (DNS labels, an IPv4 address or a bracketed IPv6 address; no scheme, no path), e.g. `registry.example.com:5000`.',
  examples: ['registry.example.com', 'registry.example.com:5000'],
} as const;

/** containerd's config file when a task names none. */
export const DEFAULT_CONFIG_FILE = '/etc/containerd/config.toml';

/** The restart command when a task names none (on k3s/RKE2 the flavour's unit replaces it). */
export const DEFAULT_RESTART_COMMAND = 'systemctl restart containerd';

export const configFileArg = {
  type: 'string',
  minLength: 1,
  default: DEFAULT_CONFIG_FILE,
  description: "containerd's main configuration file.",
} as const;

export const restartCommandArg = {
  type: 'string',
  minLength: 1,
  default: DEFAULT_RESTART_COMMAND,
  description: 'Command (run with sh) that restarts containerd when config.toml changed.',
} as const;

/** How long a verified restart waits for containerd's CRI socket: the one default for every module and restore. */
export const DEFAULT_RESTART_TIMEOUT = 60;

export const restartTimeoutArg = {
  type: 'integer',
  minimum: 1,
  default: DEFAULT_RESTART_TIMEOUT,
  description: 'Seconds to wait for the CRI socket to answer after a restart before rolling config.toml back.',
} as const;

/**
 * A registry's CA: a PEM file path on the controller or inline PEM, or a list of them trusted as
 * one bundle (a CA rotation). Each module words what it does with it.
 */
export function caArg(description: string) {
  return {
    description,
    anyOf: [
      { type: 'string', minLength: 1 },
      { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
    ],
    'x-file': 'controller-certificate',
  } as const;
}

/** The client certificate of a mutual-TLS pair (a PEM file path on the controller or inline PEM). */
export function clientCertArg(description: string) {
  return { type: 'string', minLength: 1, description, 'x-file': 'controller-certificate' } as const;
}

/** The client key of a mutual-TLS pair: a secret, never shown. */
export function clientKeyArg(description: string) {
  return { type: 'string', minLength: 1, description, 'x-secret': true, 'x-file': 'controller-private-key' } as const;
}

/** containers/image's registries.conf on the node (read, never written, with its registries.conf.d drop-ins). */
export function registriesConfArg(description: string) {
  return {
    type: 'string',
    minLength: 1,
    pattern: '^/',
    default: '/etc/containers/registries.conf',
    description,
  } as const;
}
