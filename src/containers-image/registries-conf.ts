/**
 * containers-registries.conf(5) as containers/image loads it (podman, skopeo, buildah, CRI-O): the
 * file, then the `*.conf` files of its drop-in directory (`registries.conf.d` beside it) in name
 * order, a field a later file sets replacing what an earlier one said (containers-registries.conf.d(5)).
 * Read on the node in the gather's one read (`files: [conf]`, `dirs: [dropInDir(conf)]`), never written.
 */
import TOML from '@iarna/toml';
import type { NodeRead } from '../connection/read-files.js';

/** The reserved `credential-helpers` name for containers-auth.json(5) files themselves, not a helper program. */
export const AUTH_FILE_HELPER = 'containers-auth.json';

/** The drop-in directory of a registries.conf (`registries.conf.d` next to it). */
export function dropInDir(conf: string): string {
  return `${conf}.d`;
}

/** root's own registries.conf: where it exists, root's podman, skopeo and buildah read it instead of the system's. */
export const ROOT_REGISTRIES_CONF = '/root/.config/containers/registries.conf';

/** The regular `*.conf` files directly in `conf`'s drop-in directory, by name as Go sorts them (byte order, not the locale's). */
function dropIns(read: NodeRead, conf: string): Array<[string, Buffer]> {
  const dir = `${dropInDir(conf)}/`;
  const out: Array<[string, Buffer]> = [];
  for (const e of read.entries.values())
    if (
      e.kind === 'file' &&
      e.path.startsWith(dir) &&
      !e.path.slice(dir.length).includes('/') &&
      e.path.endsWith('.conf')
    )
      out.push([e.path, e.content]);
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The registries.conf files in the order containers/image applies them, with their content: `conf` if it is a regular file, then its drop-ins. */
export function registriesConfFiles(read: NodeRead, conf: string): Array<[string, Buffer]> {
  const main = read.entries.get(conf);
  return [...(main?.kind === 'file' ? [[conf, main.content] as [string, Buffer]] : []), ...dropIns(read, conf)];
}

/**
 * The same as root's podman, skopeo and buildah load them (containers-registries.conf.d(5), and
 * what skopeo 1.9 opens): root's own file and its drop-ins where that file exists; else `conf`, its
 * drop-ins, then root's drop-ins. What to read: `files: [conf, rootConf]`, `dirs` of both drop-in directories.
 */
export function rootRegistriesConfFiles(
  read: NodeRead,
  conf: string,
  rootConf = ROOT_REGISTRIES_CONF,
): Array<[string, Buffer]> {
  const own = read.entries.get(rootConf);
  if (own?.kind === 'file') return [[rootConf, own.content], ...dropIns(read, rootConf)];
  return [...registriesConfFiles(read, conf), ...dropIns(read, rootConf)];
}

/** A registries.conf file that is not TOML: containers/image refuses to work with it. */
export interface ConfProblem {
  file: string;
  message: string;
}

/**
 * The credential helpers containers/image asks for a registry's credentials (and a `login` stores
 * them in, the first one), as the last file that sets `credential-helpers` says, with that file;
 * when no file sets it, containers/image's default (the auth.json files alone) and no file.
 */
export function credentialHelpers(files: Array<[string, Buffer]>): {
  helpers: string[];
  file: string | undefined;
  problems: ConfProblem[];
} {
  let found: { helpers: string[]; file: string } | undefined;
  const problems: ConfProblem[] = [];
  for (const [file, content] of files) {
    let doc: Record<string, unknown>;
    try {
      doc = TOML.parse(content.toString('utf8')) as Record<string, unknown>;
    } catch (e) {
      problems.push({ file, message: `${file} is not valid TOML (${(e as Error).message.split('\n')[0]})` });
      continue;
    }
    const v = doc['credential-helpers'];
    if (Array.isArray(v)) found = { helpers: v.filter((h): h is string => typeof h === 'string' && h !== ''), file };
  }
  return { helpers: found?.helpers ?? [AUTH_FILE_HELPER], file: found?.file, problems };
}
