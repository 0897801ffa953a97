/**
 * The agent's container image, built with no container registry and no base image: the root file
 * system is Debian trixie's packages (the `nodejs` runtime and what it depends on, as apt resolves
 * it; `nsenter` from util-linux and `sh` from dash with the libraries their ELF files need; the
 * Mozilla CA bundle from ca-certificates), fetched through a private apt configuration, and the
 * app is the built `dist/` with the production `node_modules` (`npm ci --omit=dev`). Written as an
 * OCI image layout (two layers: Debian, then the app), byte for byte reproducible: the same
 * packages and the same app give the same digest.
 *
 *   npm run image [-- --out DIR] [--refresh]
 *
 * `--refresh` updates the private package lists (otherwise the lists cached by the first build are
 * used, so rebuilds resolve the same versions). The cache is TRUSTPLAY_IMAGE_CACHE or a directory
 * under /tmp. deploy/kubernetes/agent/README.md says how to push the layout.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FIXED_MTIME,
  type OciImage,
  type TarEntry,
  buildOciImage,
  imageSize,
  tarArchive,
  writeOciLayout,
} from './oci-image.js';
import { privateApt } from './private-apt.js';

/** The Debian suite of the runtime: trixie's nodejs is 20 (bookworm's is 18, below engines.node). */
export const SUITE = 'trixie';
/** The repository the image is published as (the registry host is the operator's). */
export const IMAGE_NAME = 'trustplay/agent';

/** Packages installed whole, with everything they depend on (apt-cache depends --recurse). */
const RUNTIME = ['nodejs'];
/** Dependencies left out: corepack is npm/yarn/pnpm's shim, not something `node` loads. */
const NOT_NEEDED = new Set(['node-corepack']);
/** Packages of which only these files go in; the libraries their ELF files need are added. */
const PARTS: Record<string, string[]> = {
  'util-linux': ['usr/bin/nsenter'],
  dash: ['usr/bin/dash'],
  'ca-certificates': [],
};
/**
 * Paths of the Debian packages left out of the image: documentation (the copyright files stay),
 * and glibc's iconv modules (node converts with ICU, never iconv(3)).
 */
const DROP =
  /^usr\/share\/(man|info|lintian|bug|doc-base|locale)\/|^usr\/share\/doc\/[^/]+\/(?!copyright$)|^usr\/lib\/[^/]+-linux-gnu\/gconv\//;

/** One Debian package that went into the image. */
export interface DebPackage {
  name: string;
  version: string;
  sha256: string;
}

/** A built image with what it is made of. */
export interface AgentImageBuild {
  image: OciImage;
  /** The tag (the app's version), also the layout's ref name. */
  tag: string;
  /** Debian packages (whole or in part), sorted by name. */
  packages: DebPackage[];
  /** Compressed size: what a node pulls. */
  size: number;
  /** Uncompressed size of the layers: the root file system. */
  unpacked: number;
}

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024, timeout: 900_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.slice(-3).join(' ')} failed: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

/** The cache of package lists, .debs, their unpacked trees and the app's production node_modules. */
export function imageCacheDir(): string {
  return path.resolve(process.env.TRUSTPLAY_IMAGE_CACHE ?? '/tmp/trustplay-image-cache');
}

/** The fixed time of every entry and of the image's `created`: SOURCE_DATE_EPOCH when set. */
function epoch(): number {
  const env = process.env.SOURCE_DATE_EPOCH;
  return env && /^\d+$/.test(env) ? Number(env) : FIXED_MTIME;
}

/** Names of the packages `names` need, whole closure (virtual packages and NOT_NEEDED left out). */
async function closure(opts: string[], names: string[]): Promise<string[]> {
  const out = await run('apt-cache', [
    ...opts,
    'depends',
    '--recurse',
    '--no-recommends',
    '--no-suggests',
    '--no-conflicts',
    '--no-breaks',
    '--no-replaces',
    '--no-enhances',
    ...names,
  ]);
  return [...new Set(out.split('\n').filter((l) => /^[a-z0-9]/.test(l)))].filter((n) => !NOT_NEEDED.has(n)).sort();
}

/** Candidate version, .deb file name and sha256 of each package, from the private lists. */
async function candidates(opts: string[], names: string[]): Promise<(DebPackage & { file: string })[]> {
  const out = await run('apt-cache', [...opts, 'show', '--no-all-versions', ...names]);
  const found = out
    .split(/\n\n+/)
    .filter((s) => s.trim() !== '')
    .map((stanza) => {
      const field = (f: string): string => new RegExp(`^${f}: (.+)$`, 'm').exec(stanza)?.[1]?.trim() ?? '';
      return {
        name: field('Package'),
        version: field('Version'),
        sha256: field('SHA256'),
        file: path.posix.basename(field('Filename')),
      };
    });
  for (const n of names)
    if (!found.some((p) => p.name === n)) throw new Error(`apt-cache show found no ${n} in Debian ${SUITE}`);
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

const sha256File = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Downloads the .debs not cached yet (checking each against the index's sha256) and unpacks each once. */
async function fetchAndUnpack(
  opts: string[],
  pkgs: (DebPackage & { file: string })[],
  cache: string,
  log: (s: string) => void,
): Promise<Map<string, string>> {
  const debs = path.join(cache, 'debs');
  mkdirSync(debs, { recursive: true });
  const missing = pkgs.filter((p) => !existsSync(path.join(debs, p.file)));
  if (missing.length > 0) {
    log(`downloading ${missing.length} packages from Debian ${SUITE}`);
    const tmp = await mkdtemp(path.join(debs, '.download-'));
    await run('apt-get', [...opts, 'download', ...missing.map((p) => `${p.name}=${p.version}`)], { cwd: tmp });
    // apt names a file with its epoch (zlib1g_1%3a1.3…); the cache keeps the pool's name, matched by hash.
    for (const f of readdirSync(tmp)) {
      const sha = sha256File(path.join(tmp, f));
      const p = missing.find((m) => m.sha256 === sha);
      if (p) renameSync(path.join(tmp, f), path.join(debs, p.file));
    }
    rmSync(tmp, { recursive: true, force: true });
  }
  const trees = new Map<string, string>();
  for (const p of pkgs) {
    const deb = path.join(debs, p.file);
    const sha = sha256File(deb);
    if (sha !== p.sha256) throw new Error(`${p.file} has sha256 ${sha}, not the ${p.sha256} the archive's index says`);
    const tree = path.join(cache, 'unpacked', p.file.replace(/\.deb$/, ''));
    if (!existsSync(tree)) {
      mkdirSync(path.dirname(tree), { recursive: true });
      const tmp = await mkdtemp(`${tree}.tmp-`);
      await run('dpkg-deb', ['-x', deb, tmp]);
      renameSync(tmp, tree);
    }
    trees.set(p.name, tree);
  }
  return trees;
}

/** `bin/x` -> `usr/bin/x`: trixie is merged-/usr, and the image's /bin, /lib… are links into /usr. */
function merged(rel: string): string {
  return /^(bin|sbin|lib|lib32|lib64|libx32)(\/|$)/.test(rel) ? `usr/${rel}` : rel;
}

/** A file system tree, by path in the image, and where each regular file's bytes come from. */
class Tree {
  readonly entries = new Map<string, TarEntry>();
  readonly sources = new Map<string, string>();

  add(e: TarEntry, source?: string): void {
    this.entries.set(e.name, e);
    if (source) this.sources.set(e.name, source);
    for (let d = path.posix.dirname(e.name); d !== '.'; d = path.posix.dirname(d))
      if (!this.entries.has(d)) this.entries.set(d, { type: 'dir', name: d, mode: 0o755 });
  }

  /** Adds `root/rel` (a file, link or directory, not what is below it) at `name`. */
  addFrom(root: string, rel: string, name: string, normalizeMode = false): void {
    const src = path.join(root, rel);
    const st = lstatSync(src);
    let mode = st.mode & 0o7777;
    if (normalizeMode) mode = st.isDirectory() || (st.mode & 0o111) !== 0 ? 0o755 : 0o644;
    if (st.isSymbolicLink()) this.add({ type: 'symlink', name, target: readlinkSync(src) });
    else if (st.isDirectory()) this.add({ type: 'dir', name, mode });
    else if (st.isFile()) this.add({ type: 'file', name, mode, content: readFileSync(src) }, src);
  }

  /** Adds everything under `root` (relative paths mapped by `to`, skipped where it returns undefined). */
  addTree(root: string, to: (rel: string) => string | undefined, normalizeMode = false): void {
    const walk = (rel: string): void => {
      for (const name of readdirSync(path.join(root, rel)).sort()) {
        const r = rel === '' ? name : `${rel}/${name}`;
        const dest = to(r);
        if (dest === undefined) continue;
        this.addFrom(root, r, dest, normalizeMode);
        if (lstatSync(path.join(root, r)).isDirectory()) walk(r);
      }
    };
    walk('');
  }

  list(): TarEntry[] {
    return [...this.entries.values()];
  }
}

/** DT_NEEDED of an ELF file (readelf from binutils). */
async function needed(file: string): Promise<string[]> {
  const out = await run('readelf', ['-d', '--wide', file]);
  return [...out.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1] as string);
}

const LIB_DIRS = ['usr/lib/x86_64-linux-gnu', 'usr/lib/aarch64-linux-gnu', 'usr/lib', 'usr/lib64'];

/**
 * Adds to `tree` every shared library an ELF file in it needs, from the unpacked `trees`, until
 * nothing is missing; fails naming what no package provides.
 */
async function addLibraries(tree: Tree, trees: string[]): Promise<void> {
  const index = new Map<string, { root: string; rel: string }>();
  for (const root of trees) {
    for (const dir of ['lib', 'usr/lib', 'lib64', 'usr/lib64', 'lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu']) {
      const abs = path.join(root, dir);
      if (!existsSync(abs)) continue;
      for (const name of readdirSync(abs)) {
        if (!/\.so(\.|$)/.test(name)) continue;
        const key = `${merged(dir)}/${name}`;
        if (!index.has(key)) index.set(key, { root, rel: `${dir}/${name}` });
      }
    }
  }
  const seen = new Set<string>();
  for (;;) {
    const todo = [...tree.sources].filter(([name]) => !seen.has(name));
    if (todo.length === 0) return;
    for (const [name, src] of todo) {
      seen.add(name);
      const head = readFileSync(src).subarray(0, 4);
      if (head.toString('latin1') !== '\x7fELF') continue;
      for (const lib of await needed(src)) {
        // Beside the file too: gconv-like modules find their helpers through RUNPATH $ORIGIN.
        const where = [...LIB_DIRS, path.posix.dirname(name)].map((d) => `${d}/${lib}`);
        if (where.some((w) => tree.entries.has(w))) continue;
        const hit = where.map((w) => [w, index.get(w)] as const).find(([, v]) => v !== undefined);
        if (!hit?.[1]) throw new Error(`${name} needs ${lib}, which no package of the image provides`);
        // The soname is usually a link to the real file: take the link and what it points at.
        const root = hit[1].root;
        let [dest, rel] = [hit[0], hit[1].rel];
        for (let i = 0; i < 8; i++) {
          tree.addFrom(root, rel, dest);
          const st = lstatSync(path.join(root, rel));
          if (!st.isSymbolicLink()) break;
          const target = readlinkSync(path.join(root, rel));
          if (target.startsWith('/')) {
            rel = target.slice(1);
            dest = merged(path.posix.normalize(rel));
          } else {
            rel = path.posix.join(path.posix.dirname(rel), target);
            dest = merged(path.posix.normalize(path.posix.join(path.posix.dirname(dest), target)));
          }
        }
      }
    }
  }
}

/** The app's production node_modules, installed once per package-lock.json into the cache. */
async function productionModules(repo: string, cache: string, log: (s: string) => void): Promise<string> {
  const lock = readFileSync(path.join(repo, 'package-lock.json'));
  const pkg = readFileSync(path.join(repo, 'package.json'));
  const key = createHash('sha256').update(lock).update(pkg).digest('hex').slice(0, 16);
  const dir = path.join(cache, `app-${key}`);
  if (existsSync(path.join(dir, 'node_modules'))) return path.join(dir, 'node_modules');
  log('npm ci --omit=dev into a staging directory');
  const tmp = await mkdtemp(`${dir}.tmp-`);
  writeFileSync(path.join(tmp, 'package-lock.json'), lock);
  writeFileSync(path.join(tmp, 'package.json'), pkg);
  // No install scripts: `prepare` builds the app (done already) and no dependency needs one
  // (ssh2's optional native binding is skipped; it falls back to JavaScript).
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd: tmp,
  });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return path.join(dir, 'node_modules');
}

/** Builds the image from the repository at `repo` (its `dist/` must be built). */
export async function buildAgentImage(
  opts: { repo?: string; cache?: string; refresh?: boolean; log?: (s: string) => void } = {},
): Promise<AgentImageBuild> {
  const repo = opts.repo ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const cache = opts.cache ?? imageCacheDir();
  const log = opts.log ?? (() => undefined);
  if (!existsSync(path.join(repo, 'dist', 'cli', 'main.js')))
    throw new Error(`${repo}/dist is not built: run npm run build (npm run image does) first`);
  const version = (JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version;

  const aptDir = path.join(cache, `apt-${SUITE}`);
  const { opts: apt } = privateApt(aptDir, SUITE);
  if (opts.refresh || !readdirSync(path.join(aptDir, 'lists')).some((f) => f.includes('_Packages'))) {
    log(`apt-get update (private configuration, Debian ${SUITE})`);
    await run('apt-get', [...apt, 'update']);
  }
  const whole = await closure(apt, RUNTIME);
  const partial = Object.keys(PARTS);
  // Where the libraries of the partial packages' programs come from (only those used go in).
  const libs = await closure(apt, partial);
  const all = [...new Set([...whole, ...partial, ...libs])].sort();
  const pkgs = await candidates(apt, all);
  const trees = await fetchAndUnpack(apt, pkgs, cache, log);

  const os = new Tree();
  for (const name of whole) os.addTree(trees.get(name)!, (rel) => (DROP.test(merged(rel)) ? undefined : merged(rel)));
  for (const [name, files] of Object.entries(PARTS))
    for (const rel of files) os.addFrom(trees.get(name)!, rel, merged(rel));
  await addLibraries(os, [...trees.values()]);
  // Which packages contributed files: the whole ones, the partial ones, and the libraries used.
  const used = new Set([...whole, ...partial]);
  for (const [name, root] of trees) {
    if (used.has(name)) continue;
    if ([...os.sources.values()].some((src) => src.startsWith(`${root}/`))) used.add(name);
  }
  const packages = pkgs
    .filter((p) => used.has(p.name))
    .map(({ name, version: v, sha256 }) => ({ name, version: v, sha256 }));

  for (const [link, target] of [
    ['bin', 'usr/bin'],
    ['sbin', 'usr/sbin'],
    ['lib', 'usr/lib'],
    ['lib64', 'usr/lib64'],
    ['usr/bin/sh', 'dash'],
  ] as const)
    os.add({ type: 'symlink', name: link, target });
  const caDir = path.join(trees.get('ca-certificates')!, 'usr/share/ca-certificates/mozilla');
  const bundle = Buffer.concat(
    readdirSync(caDir)
      .filter((f) => f.endsWith('.crt'))
      .sort()
      .map((f) => readFileSync(path.join(caDir, f))),
  );
  const file = (name: string, content: string | Buffer, mode = 0o644): void =>
    os.add({ type: 'file', name, mode, content: Buffer.from(content) });
  file('etc/ssl/certs/ca-certificates.crt', bundle);
  file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  file('etc/group', 'root:x:0:\nnogroup:x:65534:\n');
  file(
    'usr/share/trustplay/debian-packages.txt',
    packages.map((p) => `${p.name} ${p.version} sha256:${p.sha256}\n`).join(''),
  );
  for (const [dir, mode] of [
    ['tmp', 0o1777],
    ['root', 0o700],
    ['host', 0o755],
    ['etc/trustplay', 0o755],
    ['var/lib/trustplay', 0o755],
  ] as const)
    os.add({ type: 'dir', name: dir, mode });

  const app = new Tree();
  const modules = await productionModules(repo, cache, log);
  app.addFrom(repo, 'package.json', 'app/package.json', true);
  for (const dir of ['dist', 'schemas', 'playbooks'])
    app.addTree(path.join(repo, dir), (rel) => (rel.endsWith('.map') ? undefined : `app/${dir}/${rel}`), true);
  app.addTree(modules, (rel) => `app/node_modules/${rel}`, true);
  app.add({
    type: 'file',
    name: 'usr/local/bin/trustplay',
    mode: 0o755,
    content: Buffer.from('#!/bin/sh\nexec /usr/bin/node /app/dist/cli/main.js "$@"\n'),
  });
  // Parents of /app and /usr/local/bin are in the Debian layer already; the app layer keeps its own.

  const t = epoch();
  const layers = [
    { tar: tarArchive(os.list(), t), createdBy: `trustplay: Debian ${SUITE} ${packages.map((p) => p.name).join(' ')}` },
    { tar: tarArchive(app.list(), t), createdBy: `trustplay ${version}: /app (dist, production node_modules)` },
  ];
  const image = buildOciImage({
    layers,
    created: new Date(t * 1000).toISOString().replace(/\.000Z$/, 'Z'),
    config: {
      Entrypoint: ['/usr/local/bin/trustplay'],
      Cmd: ['agent'],
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'NODE_ENV=production'],
      WorkingDir: '/',
      Labels: {
        'org.opencontainers.image.title': 'trustplay agent',
        'org.opencontainers.image.version': version,
        'org.opencontainers.image.licenses': 'Apache-2.0',
      },
    },
  });
  return {
    image,
    tag: version,
    packages,
    size: imageSize(image),
    unpacked: layers.reduce((n, l) => n + l.tar.length, 0),
  };
}

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;

async function main(argv: string[]): Promise<void> {
  const at = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const out = path.resolve(at('--out') ?? path.join(repo, 'build', 'agent-image'));
  const started = Date.now();
  const built = await buildAgentImage({
    repo,
    refresh: argv.includes('--refresh'),
    log: (s) => process.stderr.write(`${s}\n`),
  });
  writeOciLayout(out, built.image, built.tag);
  process.stdout.write(
    [
      `OCI image layout: ${out} (tag ${built.tag})`,
      `digest: ${built.image.digest}`,
      `size: ${mib(built.size)} compressed, ${mib(built.unpacked)} unpacked`,
      `Debian ${SUITE} packages: ${built.packages.map((p) => `${p.name}=${p.version}`).join(' ')}`,
      `built in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      `push: skopeo copy oci:${out}:${built.tag} docker://REGISTRY/${IMAGE_NAME}:${built.tag}`,
      '',
    ].join('\n'),
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
