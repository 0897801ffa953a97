/**
 * Which files a restore may write, derived from the module that saved them. A snapshot records
 * the module's name; the kinds of file that module manages are known here, in the code, so an
 * edited or forged manifest cannot make restore write an `authorized_keys`, a sudoers drop-in or a
 * unit file: only containerd configs, certs.d host files (containerd's, Docker's and containers/image's) and
 * docker-format credential files.
 */
import { posix } from 'node:path';
import { isRegistryName } from '../containerd/registry-host.js';

/** A kind of file trustplay manages, and how to recognise its path. */
type FileKind = 'containerd-config' | 'hosts-dir-file' | 'credential-file' | 'rancher-registries';

const HOSTS_DIR_FILES = new Set(['hosts.toml', 'ca.crt', 'client.cert', 'client.key']);

const KIND_TEST: Record<FileKind, (path: string) => boolean> = {
  // containerd's main config (config_file: any path, a TOML file).
  'containerd-config': (p) => p.endsWith('.toml') && posix.basename(p).length > '.toml'.length,
  // certs.d/<registry>/{hosts.toml,ca.crt,client.cert,client.key}; `_default` is the catch-all namespace.
  'hosts-dir-file': (p) => {
    const dir = posix.basename(posix.dirname(p));
    return HOSTS_DIR_FILES.has(posix.basename(p)) && (dir === '_default' || isRegistryName(dir));
  },
  // k3s's / RKE2's registries.yaml, which their agent renders containerd's registry config from.
  'rancher-registries': (p) => /^\/etc\/rancher\/(k3s|rke2)\/registries\.yaml$/.test(p),
  // docker-format config.json files (node.creds.wipe `paths`).
  'credential-file': (p) => p.endsWith('.json') && posix.basename(p).length > '.json'.length,
};

const ALL_KINDS = Object.keys(KIND_TEST) as FileKind[];

/** The file kinds each module that saves files manages. A module not listed saves no files. */
const MODULE_FILE_KINDS: Record<string, readonly FileKind[]> = {
  'containerd.tls': ['containerd-config', 'hosts-dir-file', 'rancher-registries'],
  // Docker Engine's certs.d/<registry>/{ca.crt,client.cert,client.key}.
  'docker.tls': ['hosts-dir-file'],
  // containers/image's certs.d/<registry>/{ca.crt,client.cert,client.key} (podman, skopeo, CRI-O).
  'containers.tls': ['hosts-dir-file'],
  // Whatever containerd.tls, docker.tls and containers.tls write: it runs them for each runtime.
  'registry.trust': ['containerd-config', 'hosts-dir-file', 'rancher-registries'],
  'node.creds.wipe': ['containerd-config', 'credential-file', 'rancher-registries'],
  'containerd.restart': ['containerd-config', 'rancher-registries'],
  // A restore saves what it puts back, which passed these checks when it was restored.
  'snapshot.file.restore': ALL_KINDS,
};

/** Modules whose saved ServiceAccounts a restore may put back. */
const SA_MODULES = new Set(['k8s.sa.clear', 'snapshot.sa.restore']);

/** Module names a manifest may record. */
export const SNAPSHOT_MODULES: readonly string[] = [...new Set([...Object.keys(MODULE_FILE_KINDS), ...SA_MODULES])];

/** Why `path` is not an absolute, normalised path, or null. */
export function pathProblem(path: string): string | null {
  if (path.includes('\0')) return 'it contains a NUL byte';
  if (/[\n\r]/.test(path)) return 'it contains a line break';
  if (!path.startsWith('/')) return 'it is not absolute';
  if (path.length > 4096) return 'it is longer than 4096 characters';
  if (path.split('/').some((c) => c === '..' || c === '.')) return 'it contains `.` or `..`';
  if (posix.normalize(path) !== path || path.endsWith('/')) return 'it is not normalised (`//` or a trailing `/`)';
  return null;
}

/**
 * Why a file resource saved by `module` (undefined: an old-format manifest, which did not record
 * it) may not be restored at `path`, or null when it may.
 */
export function fileRestoreProblem(module: string | undefined, path: string): string | null {
  const p = pathProblem(path);
  if (p) return `its path ${JSON.stringify(path.slice(0, 200))} is refused: ${p}`;
  const kinds = module === undefined ? ALL_KINDS : MODULE_FILE_KINDS[module];
  if (!kinds) return `module \`${module}\` does not manage files`;
  if (!kinds.some((k) => KIND_TEST[k](path)))
    return `${path} is not a kind of file ${module === undefined ? 'trustplay' : `\`${module}\``} manages (a containerd *.toml config, a certs.d/<registry>/ host file, a *.json credential file or k3s's/RKE2's registries.yaml)`;
  return null;
}

/** Why a ServiceAccount saved by `module` may not be restored, or null. */
export function saRestoreProblem(module: string | undefined): string | null {
  if (module === undefined || SA_MODULES.has(module)) return null;
  return `module \`${module}\` does not manage ServiceAccounts`;
}
