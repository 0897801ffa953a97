/**
 * Debian packages fetched through a PRIVATE apt configuration: its own sources list (one suite of
 * the Debian archive this machine's apt already uses), lists, cache and an empty dpkg status, all
 * passed with `-o Dir::…`. The system's apt sources and state are never read for resolution nor
 * changed. Used by the lab's containerd builds (test/lab/containerd-versions.ts) and the agent's
 * image (scripts/build-agent-image.ts).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The Debian archive (URI and keyring) this machine's apt sources use, read from /etc/apt. */
export function debianArchive(etcApt = '/etc/apt'): { uri: string; signedBy?: string } {
  const files: string[] = [];
  if (existsSync(path.join(etcApt, 'sources.list'))) files.push(path.join(etcApt, 'sources.list'));
  const partsDir = path.join(etcApt, 'sources.list.d');
  if (existsSync(partsDir)) {
    for (const f of readdirSync(partsDir).sort()) {
      if (f.endsWith('.list') || f.endsWith('.sources')) files.push(path.join(partsDir, f));
    }
  }
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      // deb822 stanzas, separated by blank lines.
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (name: string): string | undefined =>
          new RegExp(`^${name}:\\s*(.+)$`, 'mi').exec(stanza)?.[1]?.trim();
        const uri = field('URIs')?.split(/\s+/)[0];
        const suites = field('Suites')?.split(/\s+/) ?? [];
        if (uri && isMainArchive(uri, suites, field('Components')?.split(/\s+/) ?? [])) {
          return { uri, signedBy: field('Signed-By') };
        }
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(line.trim());
        if (m?.[2] && m[3] && isMainArchive(m[2], [m[3]], (m[4] ?? '').split(/\s+/))) {
          const signedBy = /signed-by=(\S+)/.exec(m[1] ?? '')?.[1];
          return { uri: m[2], signedBy };
        }
      }
    }
  }
  throw new Error(
    `No Debian archive with the main component in ${etcApt}/sources.list*: the packages are fetched from the archive this machine's apt uses.`,
  );
}

function isMainArchive(uri: string, suites: string[], components: string[]): boolean {
  return /\/debian\/?$/.test(uri) && components.includes('main') && suites.some((s) => !/-(security|updates)$/.test(s));
}

/**
 * Creates a private apt configuration for `suite` under `dir` (kept between uses: its lists are
 * the cache) and returns the options every apt-get / apt-cache call takes, plus the archive used.
 */
export function privateApt(
  dir: string,
  suite: string,
): { opts: string[]; archive: { uri: string; signedBy?: string } } {
  const archive = debianArchive();
  const keyring = archive.signedBy ?? '/usr/share/keyrings/debian-archive-keyring.gpg';
  const apt = {
    sources: path.join(dir, 'sources.list'),
    parts: path.join(dir, 'sources.list.d'),
    lists: path.join(dir, 'lists'),
    cache: path.join(dir, 'cache'),
    status: path.join(dir, 'status'),
  };
  for (const d of [apt.parts, path.join(apt.lists, 'partial'), path.join(apt.cache, 'archives', 'partial')])
    mkdirSync(d, { recursive: true });
  writeFileSync(apt.sources, `deb [signed-by=${keyring}] ${archive.uri} ${suite} main\n`);
  // An empty dpkg status: what this machine has installed must not change what is resolved.
  if (!existsSync(apt.status)) writeFileSync(apt.status, '');
  const opts = [
    '-q',
    '-o',
    `Dir::Etc::sourcelist=${apt.sources}`,
    '-o',
    `Dir::Etc::sourceparts=${apt.parts}`,
    '-o',
    `Dir::State::lists=${apt.lists}`,
    '-o',
    `Dir::State::status=${apt.status}`,
    '-o',
    `Dir::Cache=${apt.cache}`,
    // The download dir belongs to root, not _apt: tell apt so instead of having it warn.
    '-o',
    'APT::Sandbox::User=root',
  ];
  return { opts, archive };
}
