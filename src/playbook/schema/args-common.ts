/** Argument schema pieces several modules share, so their wording and defaults stay the same. */

export const registryArg = {
  type: 'string',
  minLength: 1,
  pattern: '^[A-Za-z0-9.-]+(:[0-9]{1,5})?$',
  description:
    'Registry host as images name it: `host` or `host:port` (no scheme, no path), e.g. `registry.example.com:5000`.',
  examples: ['registry.example.com', 'registry.example.com:5000'],
} as const;

export const configFileArg = {
  type: 'string',
  minLength: 1,
  default: '/etc/containerd/config.toml',
  description: "containerd's main configuration file.",
} as const;

export const restartCommandArg = {
  type: 'string',
  minLength: 1,
  default: 'systemctl restart containerd',
  description: 'Command (run with sh) that restarts containerd when config.toml changed.',
} as const;
