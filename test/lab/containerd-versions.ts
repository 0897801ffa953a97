/**
 * The containerd versions a lab node can run. 1.6 is this machine's own package (`.ci/run`
 * installs it); 1.7 and 2.1 are Debian's packages from the trixie and sid suites, fetched once
 * into a cache directory through a PRIVATE apt configuration (its own sources list, lists and
 * cache dirs passed with `-o Dir::...`): the system's apt sources are never changed. Each package
 * is pinned by exact version and by the sha256 of its .deb, so every lab runs the same bytes.
 *
 * The cache defaults to a directory under /tmp (a temp dir, visible inside lab nodes, which mount
 * over /root, /run and /var/lib) and is overridden with TRUSTPLAY_CONTAINERD_CACHE.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { privateApt } from '../../scripts/private-apt.js';
import { run } from './procs.js';

export { debianArchive } from '../../scripts/private-apt.js';

/** The versions a node can run, by the name tests and `--containerd` use. */
export const CONTAINERD_VERSIONS = ['1.6', '1.7', '2.1'] as const;
export type ContainerdVersionKey = (typeof CONTAINERD_VERSIONS)[number];

interface PinnedPackage {
  /** Debian suite that carries this exact version. */
  suite: string;
  /** Exact Debian version of the `containerd` package. */
  debVersion: string;
  /** sha256 of `containerd_<debVersion>_amd64.deb`. */
  sha256: string;
}

/** Debian's containerd packages the lab runs besides the machine's own 1.6. */
export const PINNED: Record<Exclude<ContainerdVersionKey, '1.6'>, PinnedPackage> = {
  '1.7': {
    suite: 'trixie',
    debVersion: '1.7.24~ds1-6+deb13u1',
    sha256: 'ed708deb96fe476a3bce4efa5c0538dfbcf717ab9a7c7944ba7260342c25899c',
  },
  '2.1': {
    suite: 'sid',
    debVersion: '2.1.9+ds1-5',
    sha256: '2dda86ce7033fd612fc50e136679d8174ccad680eb29cd4611e0d2a1b84cf591',
  },
};

/** One containerd a node can run: its binaries' directory and the version they report. */
export interface ContainerdBuild {
  version: ContainerdVersionKey;
  /** Debian package version (`1.6.20~ds1-1+deb12u3`, `2.1.9+ds1-5`). */
  release: string;
  /** Directory holding `containerd`, `ctr` and the runc shim. */
  binDir: string;
}

/** Parses `--containerd 1.6,1.7,2.1` (or a single version) into version keys. */
export function parseContainerdVersions(spec: string): ContainerdVersionKey[] {
  const out = spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const bad = out.filter((v) => !(CONTAINERD_VERSIONS as readonly string[]).includes(v));
  if (out.length === 0 || bad.length > 0) {
    throw new Error(
      `Unknown containerd version ${bad.length > 0 ? bad.join(', ') : '(none given)'}: the lab runs ${CONTAINERD_VERSIONS.join(', ')}.`,
    );
  }
  return out as ContainerdVersionKey[];
}

/** The cache directory for fetched containerd packages. */
export function containerdCacheDir(): string {
  return path.resolve(process.env.TRUSTPLAY_CONTAINERD_CACHE ?? '/tmp/trustplay-containerd-cache');
}

/** Where a fetched package is unpacked. */
function packageDir(pin: PinnedPackage, cache = containerdCacheDir()): string {
  return path.join(cache, `containerd_${pin.debVersion}`);
}

const COMPLETE = '.trustplay-complete';

async function systemBuild(): Promise<ContainerdBuild> {
  const { stdout } = await run('containerd', ['--version']).catch(() => ({ stdout: '' }));
  // "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3"
  const words = stdout.trim().split(/\s+/);
  if (!/^v?1\.6\./.test(words[2] ?? '')) {
    throw new Error(
      `The lab's containerd 1.6 is this machine's own package, but \`containerd --version\` says "${stdout.trim() || 'nothing'}"; install Debian bookworm's containerd (apt-get install containerd).`,
    );
  }
  const which = await run('sh', ['-c', 'command -v containerd']);
  return { version: '1.6', release: words[3] ?? words[2] ?? '1.6', binDir: path.dirname(which.stdout.trim()) };
}

/**
 * The build of `version`, fetching and unpacking its pinned package once into the cache when it is
 * not there yet. Parallel callers each fetch into their own temp dir and the first rename wins.
 */
export async function ensureContainerd(
  version: ContainerdVersionKey,
  log: (s: string) => void = () => undefined,
): Promise<ContainerdBuild> {
  if (version === '1.6') return systemBuild();
  const pin = PINNED[version];
  const cache = containerdCacheDir();
  const dir = packageDir(pin, cache);
  const build = { version, release: pin.debVersion, binDir: path.join(dir, 'usr', 'bin') };
  if (existsSync(path.join(dir, COMPLETE))) return build;

  mkdirSync(cache, { recursive: true, mode: 0o755 });
  const work = await mkdtemp(path.join(cache, '.fetch-'));
  try {
    const { opts, archive } = privateApt(path.join(work, 'apt'), pin.suite);
    const dl = path.join(work, 'dl');
    mkdirSync(dl, { recursive: true });
    log(`fetching containerd ${pin.debVersion} from ${archive.uri} ${pin.suite} (private apt configuration)`);
    await run('apt-get', [...opts, 'update'], { timeoutMs: 600_000 });
    await run(
      'sh',
      ['-c', 'cd "$1" && shift && exec apt-get "$@"', 'sh', dl, ...opts, 'download', `containerd=${pin.debVersion}`],
      {
        timeoutMs: 600_000,
      },
    );
    const deb = path.join(dl, readdirSync(dl).find((f) => f.endsWith('.deb')) ?? 'missing.deb');
    const sha = createHash('sha256').update(readFileSync(deb)).digest('hex');
    if (sha !== pin.sha256) {
      throw new Error(
        `containerd ${pin.debVersion} from ${archive.uri} has sha256 ${sha}, not the pinned ${pin.sha256}: the archive serves different bytes; check the mirror before trusting it.`,
      );
    }
    const unpacked = path.join(work, 'root');
    await run('dpkg-deb', ['-x', deb, unpacked]);
    writeFileSync(path.join(unpacked, COMPLETE), `${pin.debVersion} ${pin.sha256}\n`);
    try {
      renameSync(unpacked, dir);
    } catch (err) {
      // Another process finished the same fetch first; its copy is identical.
      if (!existsSync(path.join(dir, COMPLETE))) throw err;
    }
    log(`containerd ${pin.debVersion} cached at ${dir}`);
    return build;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
