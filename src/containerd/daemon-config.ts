/**
 * What the RUNNING containerd has loaded of its registry configuration, as opposed to what
 * config.toml says: a restart that was due and never happened (a run killed before it, someone's
 * hand edit) leaves them apart, and the file alone would say "ok" while every pull fails.
 *
 * containerd 1.6 and 1.7 return their effective CRI configuration, registry settings included, in
 * CRI `Status` with `verbose` (`info.config`, JSON: `registry.configPath`). containerd 2.x moved
 * the registry settings to the images plugin, and its runtime status does not carry them: there the
 * daemon cannot say, and this returns null (the pending marker of trustplay's own changes still
 * covers an interrupted run; see containerd-restart).
 */
import type { CriImageClient } from '../cri/client.js';

/** The registry settings a daemon reports having loaded. */
export interface DaemonRegistry {
  /** The CRI registry config_path it runs with ('' when unset). */
  configPath: string;
  /**
   * The registry keys it holds credentials for (`configs."<host>".auth`, and the older
   * `auths."<host>"`): the names only — the credentials themselves are never kept or printed.
   */
  authKeys: string[];
}

/** Reads `info.config` of a verbose CRI Status; null when it carries no registry settings. */
export function registryFromStatusInfo(info: Record<string, string>): DaemonRegistry | null {
  const text = info['config'];
  if (text === undefined) return null;
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    return null;
  }
  const registry = (config as { registry?: { configPath?: unknown; configs?: unknown; auths?: unknown } } | null)
    ?.registry;
  if (!registry || typeof registry !== 'object') return null;
  const table = (v: unknown): Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  // A config without an auth table reports `"auth": null`.
  const authKeys = Object.entries(table(registry.configs))
    .filter(([, c]) => table(c)['auth'] != null)
    .map(([k]) => k);
  for (const k of Object.keys(table(registry.auths))) if (!authKeys.includes(k)) authKeys.push(k);
  return { configPath: typeof registry.configPath === 'string' ? registry.configPath : '', authKeys };
}

/** The running daemon's registry settings, or null when it does not say (2.x) or does not answer. */
export async function daemonRegistry(cri: CriImageClient): Promise<DaemonRegistry | null> {
  try {
    return registryFromStatusInfo((await cri.status(true, 5_000)).info);
  } catch {
    return null;
  }
}
