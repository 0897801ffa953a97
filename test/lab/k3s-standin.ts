/**
 * The lab's stand-in for the k3s (or RKE2) agent's containerd setup. There is no k3s package on
 * this machine, so a k3s node of the lab runs this at every start of its `k3s` unit (as k3s does
 * before it starts its embedded containerd), then the real containerd binary with k3s's paths.
 *
 * It emulates one of two k3s releases, named on its command line (the lab picks by the node's
 * containerd: 2.x runs the fixed release, 1.x the pre-fix one, as those releases shipped):
 *
 * - `FIXED_RELEASE` (v1.34.0+k3s1 in the lab): k3s-io/k3s at commit
 *   06ea261ce3f10517abfdc3532f5a1c56db06adc2 (containerd 2.x era, config version 3),
 *   `pkg/agent/containerd/config.go`, i.e. after the k3s#9839 fix:
 *   - `getHostConfigs`: every `configs` entry becomes a host with a default endpoint carrying its
 *     TLS, every `mirrors` entry adds endpoints (normalised as `normalizeEndpointAddress` does:
 *     scheme defaulting, the docker.io host, `/v2` path and `override_path`; an endpoint that
 *     normalises to the registry's own default URL, last in the list, becomes the default endpoint),
 *     hosts left with only defaults are dropped;
 *   - the hosts.toml template writes the default endpoint's server and TLS at the top level and,
 *     since k3s#9853 (the #9839 fix), always a `[host]` table: containerd 1.6/1.7 reject a
 *     hosts.toml without one ("invalid `host` tree", containerd#10027);
 *   - `cleanContainerdHosts`: directories about to be written and directories whose hosts.toml
 *     starts with the generator's header are deleted, others (a person's own) are left alone;
 *   - `writeContainerdConfig`: config.toml is rendered from `config-v3.toml.tmpl` when present
 *     (here only `{{ template "base" . }}` plus literal text is understood), else from the base
 *     template, with `config_path` pointing at k3s's certs.d and `configs.<host>.auth` as CRI auth.
 * - `PRE_FIX_RELEASE` (v1.29.3+k3s1): k3s between k3s#9556 (February 2024, the registries
 *   handling `getHostConfigs` still has, read at the blob with that function and
 *   `os.RemoveAll(cfg.Containerd.Registry)`) and the k3s#9853 fix (v1.29.4, v1.28.9, v1.27.13):
 *   the same hosts as above, rendered without the `[host]` table, so on the containerd 1.7 these
 *   releases ship a registry whose TLS sits only at the top level (a `configs` entry without a
 *   mirror endpoint of its own) gets a hosts.toml containerd rejects: pulls go out without the CA
 *   (the k3s#9839 bug, reproduced by the real binary, not by the stand-in). The whole certs.d is
 *   deleted at each start, and config.toml is rendered from the version 2 template
 *   (`config.toml.tmpl` when present).
 *
 * Lab deviations (said so in the generated file): the CRI stream server listens on port 0, not
 * 10010 (lab nodes share one network namespace), no CNI or pause image settings matter, and root,
 * state and socket are set in config.toml instead of on containerd's command line.
 *
 * Run as `node --import tsx test/lab/k3s-standin.ts k3s|rke2 [release]` inside the node's namespace.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

/** The k3s commit whose behaviour the fixed release follows (named in the e2e suite too). */
export const K3S_SOURCE_COMMIT = '06ea261ce3f10517abfdc3532f5a1c56db06adc2';
/** The release the stand-in reports (`k3s --version`) when it follows K3S_SOURCE_COMMIT. */
export const FIXED_RELEASE = 'v1.34.0';
/** A release before the k3s#9839 fix (see the header). */
export const PRE_FIX_RELEASE = 'v1.29.3';
/** Which behaviour a release gets: only the two releases above are emulated. */
export type StandinRelease = typeof FIXED_RELEASE | typeof PRE_FIX_RELEASE;

/** A registries.yaml as k3s (rancher/wharfie) reads it. */
interface Registries {
  mirrors?: Record<string, { endpoint?: string[]; rewrite?: Record<string, string> } | null>;
  configs?: Record<
    string,
    {
      auth?: { username?: string; password?: string; auth?: string; identity_token?: string } | null;
      tls?: { ca_file?: string; cert_file?: string; key_file?: string; insecure_skip_verify?: boolean } | null;
    } | null
  >;
}
type RegistryConfig = NonNullable<NonNullable<Registries['configs']>[string]>;

interface Endpoint {
  url: URL | null;
  config: RegistryConfig;
  rewrites?: Record<string, string>;
  overridePath: boolean;
}
interface HostConfig {
  default: Endpoint | null;
  endpoints: Endpoint[];
}

/** The paths of one flavour, as its agent uses them. */
export function paths(flavour: 'k3s' | 'rke2') {
  const data = `/var/lib/rancher/${flavour}`;
  return {
    registries: `/etc/rancher/${flavour}/registries.yaml`,
    containerdDir: `${data}/agent/etc/containerd`,
    config: `${data}/agent/etc/containerd/config.toml`,
    certsDir: `${data}/agent/etc/containerd/certs.d`,
    root: `${data}/agent/containerd`,
    state: '/run/k3s/containerd',
    socket: '/run/k3s/containerd/containerd.sock',
  };
}

/** containerd's docker.DefaultHost: docker.io's API host. */
function defaultHost(host: string): string {
  return host === 'docker.io' ? 'registry-1.docker.io' : host;
}

function isLocalhost(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

/** k3s's normalizeEndpointAddress: [registry name, URL, override_path]. */
function normalizeEndpoint(endpoint: string): [string, URL, boolean] {
  const withScheme = endpoint.includes('://') ? endpoint : `placeholder-scheme://${endpoint}`;
  const u = new URL(withScheme);
  let scheme = endpoint.includes('://') ? u.protocol.replace(/:$/, '') : '';
  const port = u.port;
  if (scheme === '') scheme = isLocalhost(u.host) && port !== '' && port !== '443' ? 'http' : 'https';
  let registry = u.host;
  const host = defaultHost(registry);
  if (host === 'registry-1.docker.io') registry = 'docker.io';
  const p = u.pathname;
  const override = !(p === '' || p === '/' || p === '/v2');
  const url = new URL(`${scheme}://${host}${override ? p : '/v2'}`);
  return [registry, url, override];
}

function configForHost(configs: Registries['configs'], host: string): RegistryConfig {
  const h = defaultHost(host);
  if (h !== host && configs?.[h]) return configs[h] ?? {};
  return configs?.[host] ?? {};
}

function hasConfig(e: Endpoint | null): boolean {
  return !!e && (e.overridePath || !!e.config.auth || !!e.config.tls || Object.keys(e.rewrites ?? {}).length > 0);
}

/** k3s's getHostConfigs (noDefaultEndpoint false, no embedded mirror). */
export function hostConfigs(reg: Registries): Map<string, HostConfig> {
  const hosts = new Map<string, HostConfig>();
  const defaultFor = (host: string, config: RegistryConfig): HostConfig => ({
    default: { url: host === '*' ? null : normalizeEndpoint(host)[1], config, overridePath: false },
    endpoints: [],
  });
  for (const [host, config] of Object.entries(reg.configs ?? {}))
    hosts.set(host === '*' ? '_default' : host, defaultFor(host, config ?? {}));
  for (const [host, mirror] of Object.entries(reg.mirrors ?? {})) {
    let config = hosts.get(host);
    if (!config) {
      config = defaultFor(host, configForHost(reg.configs, host));
      if (host === '*' && config.default) config.default.url = null;
    }
    const seen = new Set<string>();
    const eps = mirror?.endpoint ?? [];
    eps.forEach((endpoint, i) => {
      let parsed: [string, URL, boolean];
      try {
        parsed = normalizeEndpoint(endpoint);
      } catch {
        return;
      }
      const [name, url, override] = parsed;
      if (seen.has(url.href)) return;
      seen.add(url.href);
      const ep: Endpoint = {
        config: configForHost(reg.configs, name),
        ...(mirror?.rewrite ? { rewrites: mirror.rewrite } : {}),
        overridePath: override,
        url,
      };
      if (i + 1 === eps.length && (config.default?.url?.href ?? '') === url.href) config.default = ep;
      else config.endpoints.push(ep);
    });
    hosts.set(host === '*' ? '_default' : host, config);
  }
  for (const [host, c] of hosts) if (c.endpoints.length === 0 && !hasConfig(c.default)) hosts.delete(host);
  return hosts;
}

/** The header k3s writes first in every hosts.toml it generates (and deletes by). */
export function hostsHeader(flavour: 'k3s' | 'rke2'): string {
  return `# File generated by ${flavour}. DO NOT EDIT.\n`;
}

const q = (s: string): string => JSON.stringify(s);

function tlsLines(c: RegistryConfig, indent: string): string[] {
  const t = c.tls;
  if (!t) return [];
  return [
    ...(t.ca_file ? [`${indent}ca = [${q(t.ca_file)}]`] : []),
    ...(t.cert_file || t.key_file ? [`${indent}client = [[${q(t.cert_file ?? '')}, ${q(t.key_file ?? '')}]]`] : []),
    ...(t.insecure_skip_verify ? [`${indent}skip_verify = true`] : []),
  ];
}

/** One hosts.toml as the release's HostsTomlTemplate renders it. */
export function renderHostsToml(
  flavour: 'k3s' | 'rke2',
  c: HostConfig,
  release: StandinRelease = FIXED_RELEASE,
): string {
  const out = [hostsHeader(flavour).trimEnd()];
  if (c.default) {
    if (c.default.url) out.push(`server = ${q(c.default.url.href)}`, 'capabilities = ["pull", "resolve", "push"]');
    out.push(...tlsLines(c.default.config, ''));
  }
  // The k3s#9853 fix: a `host` table containerd 1.x's parser needs even when no endpoint follows.
  if (release === FIXED_RELEASE) out.push('', '[host]');
  for (const e of c.endpoints) {
    out.push('', `[host.${q(e.url!.href)}]`, '  capabilities = ["pull", "resolve"]');
    if (e.overridePath) out.push('  override_path = true');
    out.push(...tlsLines(e.config, '  '));
    if (e.rewrites && Object.keys(e.rewrites).length > 0) {
      out.push(`  [host.${q(e.url!.href)}.rewrite]`);
      for (const k of Object.keys(e.rewrites).sort()) out.push(`    ${q(k)} = ${q(e.rewrites[k]!)}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** The CRI auth tables k3s's base templates write for `configs.<host>.auth`, under `plugin`. */
function authLines(reg: Registries, plugin: string): string[] {
  const lines: string[] = [];
  for (const host of Object.keys(reg.configs ?? {}).sort()) {
    const a = reg.configs?.[host]?.auth;
    if (!a) continue;
    lines.push('', `[${plugin}.registry.configs.${q(host)}.auth]`);
    if (a.username) lines.push(`  username = ${q(a.username)}`);
    if (a.password) lines.push(`  password = ${q(a.password)}`);
    if (a.auth) lines.push(`  auth = ${q(a.auth)}`);
    if (a.identity_token) lines.push(`  identitytoken = ${q(a.identity_token)}`);
  }
  return lines;
}

/** Root, state, socket (on k3s's command line, in the lab's config.toml) and the opt plugin's path. */
function daemonLines(flavour: 'k3s' | 'rke2', quote: '"' | "'"): string[] {
  const p = paths(flavour);
  return [
    `root = ${q(p.root)}`,
    `state = ${q(p.state)}`,
    '',
    '[grpc]',
    `  address = ${q(p.socket)}`,
    '',
    `[plugins.${quote}io.containerd.internal.v1.opt${quote}]`,
    `  path = ${q(`/var/lib/rancher/${flavour}/agent/containerd`)}`,
    '',
  ];
}

/** The pre-fix release's base config.toml template (version 2, containerd 1.x), rendered for the lab. */
function renderBaseConfigV2(flavour: 'k3s' | 'rke2', reg: Registries): string {
  const p = paths(flavour);
  const cri = '[plugins."io.containerd.grpc.v1.cri"';
  return `${[
    `# File generated by ${flavour}. DO NOT EDIT. Use config.toml.tmpl instead.`,
    `# (trustplay lab stand-in of k3s ${PRE_FIX_RELEASE}: stream server on port 0, no CNI)`,
    'version = 2',
    ...daemonLines(flavour, '"'),
    `${cri}]`,
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    '  enable_selinux = false',
    '  enable_unprivileged_ports = true',
    '  enable_unprivileged_icmp = true',
    '',
    `${cri}.containerd]`,
    '  snapshotter = "overlayfs"',
    '  disable_snapshot_annotations = true',
    '',
    `${cri}.containerd.runtimes.runc]`,
    '  runtime_type = "io.containerd.runc.v2"',
    '',
    `${cri}.registry]`,
    `  config_path = ${q(p.certsDir)}`,
    ...authLines(reg, 'plugins."io.containerd.grpc.v1.cri"'),
  ].join('\n')}\n`;
}

/** k3s's base config-v3 template, rendered for the lab (see the deviations above). */
export function renderBaseConfig(
  flavour: 'k3s' | 'rke2',
  reg: Registries,
  release: StandinRelease = FIXED_RELEASE,
): string {
  if (release === PRE_FIX_RELEASE) return renderBaseConfigV2(flavour, reg);
  const p = paths(flavour);
  const lines = [
    `# File generated by ${flavour}. DO NOT EDIT. Use config-v3.toml.tmpl instead.`,
    `# (trustplay lab stand-in of k3s ${K3S_SOURCE_COMMIT.slice(0, 12)}: stream server on port 0, no CNI)`,
    'version = 3',
    `imports = [${q(`${p.containerdDir}/config-v3.toml.d/*.toml`)}]`,
    ...daemonLines(flavour, "'"),
    "[plugins.'io.containerd.grpc.v1.cri']",
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    '',
    "[plugins.'io.containerd.cri.v1.runtime']",
    '  enable_selinux = false',
    '  enable_unprivileged_ports = true',
    '  enable_unprivileged_icmp = true',
    '',
    "[plugins.'io.containerd.cri.v1.images']",
    '  snapshotter = "overlayfs"',
    '  disable_snapshot_annotations = true',
    '',
    "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]",
    '  runtime_type = "io.containerd.runc.v2"',
    '',
    "[plugins.'io.containerd.cri.v1.images'.registry]",
    `  config_path = ${q(p.certsDir)}`,
    ...authLines(reg, "plugins.'io.containerd.cri.v1.images'"),
  ];
  return `${lines.join('\n')}\n`;
}

/** What k3s does before starting containerd: registries.yaml → certs.d and config.toml. */
export function renderAgent(flavour: 'k3s' | 'rke2', release: StandinRelease = FIXED_RELEASE): void {
  const p = paths(flavour);
  const text = existsSync(p.registries) ? readFileSync(p.registries, 'utf8') : '';
  // k3s fails to start on a registries.yaml it cannot parse.
  const reg = ((parse(text) as Registries | null) ?? {}) satisfies Registries;
  const hosts = hostConfigs(reg);
  // The pre-fix release deletes the whole certs.d (a person's own directories too).
  if (release === PRE_FIX_RELEASE) rmSync(p.certsDir, { recursive: true, force: true });
  mkdirSync(p.certsDir, { recursive: true });
  for (const host of hosts.keys()) rmSync(path.join(p.certsDir, host), { recursive: true, force: true });
  for (const ent of readdirSync(p.certsDir, { withFileTypes: true })) {
    if (!ent.isDirectory()) continue;
    const f = path.join(p.certsDir, ent.name, 'hosts.toml');
    if (!existsSync(f)) continue;
    const first = readFileSync(f, 'utf8').split('\n')[0];
    if (`${first}\n` === hostsHeader(flavour))
      rmSync(path.join(p.certsDir, ent.name), { recursive: true, force: true });
  }
  for (const [host, c] of hosts) {
    mkdirSync(path.join(p.certsDir, host), { recursive: true, mode: 0o700 });
    writeFileSync(path.join(p.certsDir, host, 'hosts.toml'), renderHostsToml(flavour, c, release));
  }
  const base = renderBaseConfig(flavour, reg, release);
  const tmpl = path.join(p.containerdDir, release === PRE_FIX_RELEASE ? 'config.toml.tmpl' : 'config-v3.toml.tmpl');
  let config = base;
  if (existsSync(tmpl)) {
    const t = readFileSync(tmpl, 'utf8');
    const rest = t.replace(/\{\{-?\s*template\s+"base"\s+\.\s*-?\}\}/g, '');
    if (rest.includes('{{')) throw new Error(`${tmpl}: the lab stand-in understands only {{ template "base" . }}`);
    config = t.replace(/\{\{-?\s*template\s+"base"\s+\.\s*-?\}\}/g, base);
  }
  writeFileSync(p.config, config, { mode: 0o600 });
}

if (process.argv[1] && path.basename(process.argv[1]) === 'k3s-standin.ts') {
  const flavour = process.argv[2] === 'rke2' ? 'rke2' : 'k3s';
  const release = process.argv[3] ?? FIXED_RELEASE;
  try {
    if (release !== FIXED_RELEASE && release !== PRE_FIX_RELEASE)
      throw new Error(`emulates k3s ${FIXED_RELEASE} or ${PRE_FIX_RELEASE}, not ${release}`);
    renderAgent(flavour, release);
  } catch (e) {
    console.error(`level=fatal msg="${flavour} (lab stand-in): ${(e as Error).message}"`);
    process.exit(1);
  }
}
