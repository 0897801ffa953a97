/** Registry name handling shared by config.toml edits, hosts.toml files and credential files. */

/** A registry as `host` or `host:port`, no scheme or path; null when `input` is not one. */
export function normalizeRegistryHost(input: string): string | null {
  let s = input.trim();
  s = s.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  s = s.replace(/\/.*$/, '');
  if (s === '' || !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(:\d{1,5})?$/.test(s)) return null;
  return s;
}

/** Splits `host[:port]` (IPv6 in brackets) into host and port (null when absent). */
export function splitHostPort(registry: string): { host: string; port: string | null } {
  const m = /^(.*?)(?::(\d+))?$/.exec(registry);
  if (registry.startsWith('[')) {
    const end = registry.indexOf(']');
    const rest = registry.slice(end + 1);
    return { host: registry.slice(0, end + 1), port: rest.startsWith(':') ? rest.slice(1) : null };
  }
  return { host: m?.[1] ?? registry, port: m?.[2] ?? null };
}

/**
 * Whether a key naming a registry (`host`, `host:port`, `https://host`, `https://host/v1/`) names
 * `registry`. `registry.test` also matches `registry.test:443` written with https (the same endpoint).
 */
export function registryKeyMatches(key: string, registry: string): boolean {
  const want = normalizeRegistryHost(registry);
  const got = normalizeRegistryHost(key);
  if (want === null || got === null) return false;
  if (got === want) return true;
  const w = splitHostPort(want);
  const g = splitHostPort(got);
  const httpKey = /^http:\/\//i.test(key.trim());
  return (
    w.host === g.host && !httpKey && ((w.port === null && g.port === '443') || (w.port === '443' && g.port === null))
  );
}

const DNS_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Maximum length of a registry name (a DNS name's limit; a port adds at most 6). */
export const MAX_REGISTRY_NAME = 253;

/**
 * Why `name` is not a registry name (`host[:port]`: DNS labels, an IPv4 literal, or a bracketed
 * IPv6 literal, at most 253 characters), or null when it is one. A registry name becomes a
 * directory under certs.d, so `.`, `..`, a leading `-` or a `/` must never get through.
 */
export function registryNameProblem(name: string): string | null {
  if (name.length === 0) return 'it is empty';
  if (name.length > MAX_REGISTRY_NAME) return `it is ${name.length} characters long (at most ${MAX_REGISTRY_NAME})`;
  let host = name;
  let port: string | undefined;
  if (name.startsWith('[')) {
    const m = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(name);
    if (!m || !m[1]!.includes(':')) return 'a bracketed host must be an IPv6 address, e.g. `[fd00::1]:5000`';
    host = m[1]!;
    port = m[2];
    if (!/^[0-9A-Fa-f:.]+$/.test(host) || (host.match(/::/g)?.length ?? 0) > 1)
      return `\`${host}\` is not an IPv6 address`;
  } else {
    const i = name.lastIndexOf(':');
    if (i >= 0) {
      host = name.slice(0, i);
      port = name.slice(i + 1);
      if (!/^\d+$/.test(port)) return 'the part after `:` must be a port number';
    }
    if (/^[\d.]+$/.test(host)) {
      if (!IPV4.test(host)) return `\`${host}\` is not an IPv4 address`;
    } else {
      const labels = host.split('.');
      const bad = labels.find((l) => !DNS_LABEL.test(l));
      if (bad !== undefined)
        return bad === ''
          ? 'it has an empty DNS label (`..`, or a leading or trailing `.`)'
          : `\`${bad.slice(0, 64)}\` is not a DNS label (letters, digits and inner \`-\`, at most 63 characters)`;
    }
  }
  if (port !== undefined && (port === '' || Number(port) < 1 || Number(port) > 65535))
    return `port ${port} is not between 1 and 65535`;
  return null;
}

/** True when `name` is a registry name (see registryNameProblem). */
export function isRegistryName(name: string): boolean {
  return registryNameProblem(name) === null;
}
