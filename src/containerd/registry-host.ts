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
