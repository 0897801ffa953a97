import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { appendFile, mkdir, open, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** One key line of an OpenSSH known_hosts file. */
export interface KnownHostEntry {
  file: string;
  /** 1-based line number, for messages. */
  line: number;
  marker?: 'revoked' | 'cert-authority';
  /** Comma-separated host patterns as written (or the `|1|salt|hash` form). */
  hosts: string;
  keyType: string;
  /** The public key blob (SSH wire format), as sent by the server. */
  key: Buffer;
}

/** Parsed known_hosts content plus notes on lines that were skipped. */
export interface KnownHosts {
  entries: KnownHostEntry[];
  notes: string[];
}

/** The default file OpenSSH users already maintain. */
export function defaultKnownHostsFiles(): string[] {
  return [join(homedir(), '.ssh', 'known_hosts')];
}

/** How OpenSSH names a host in known_hosts: bare for port 22, `[addr]:port` otherwise. */
export function hostPattern(address: string, port = 22): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

/** OpenSSH's fingerprint format: `SHA256:` + unpadded base64 of the key blob's SHA-256. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside a public key blob (its first SSH string). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const len = key.readUInt32BE(0);
  if (len > key.length - 4) return 'unknown';
  return key.subarray(4, 4 + len).toString('latin1');
}

/** Parses known_hosts text; malformed lines become notes, never exceptions. */
export function parseKnownHosts(text: string, file: string): KnownHosts {
  const entries: KnownHostEntry[] = [];
  const notes: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] ?? '').trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const fields = raw.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else {
        notes.push(`${file}:${i + 1}: unknown marker ${m}; line ignored`);
        continue;
      }
    }
    const [hosts, keyType, b64] = fields;
    if (!hosts || !keyType || !b64) {
      notes.push(`${file}:${i + 1}: not a known_hosts key line; ignored`);
      continue;
    }
    const key = Buffer.from(b64, 'base64');
    if (key.length === 0 || keyTypeOf(key) !== keyType) {
      notes.push(`${file}:${i + 1}: key does not decode as ${keyType}; line ignored`);
      continue;
    }
    if (marker === 'cert-authority') {
      // ssh2 does not hand us the host certificate, so a CA line cannot vouch for anything here.
      notes.push(
        `${file}:${i + 1}: @cert-authority lines are not supported (host certificates are not checked); ignored`,
      );
      continue;
    }
    entries.push({ file, line: i + 1, ...(marker ? { marker } : {}), hosts, keyType, key });
  }
  return { entries, notes };
}

// Compiled once per pattern: every handshake matches its names against every line (twice), so a
// fleet's run would otherwise compile hosts x lines x names expressions.
const globs = new Map<string, RegExp | string>();

function globMatch(pattern: string, value: string): boolean {
  let m = globs.get(pattern);
  if (m === undefined) {
    m = /[*?]/.test(pattern)
      ? new RegExp(
          `^${pattern
            .replace(/[.+^${}()|[\]\\]/g, '\\$&')
            .replace(/\*/g, '.*')
            .replace(/\?/g, '.')}$`,
          'i',
        )
      : pattern.toLowerCase();
    if (globs.size >= 10_000) globs.clear();
    globs.set(pattern, m);
  }
  return typeof m === 'string' ? m === value.toLowerCase() : m.test(value);
}

function hashedMatch(hashed: string, host: string): boolean {
  // |1|base64(salt)|base64(HMAC-SHA1(salt, host))
  const [, kind, salt, hash] = hashed.split('|');
  if (kind !== '1' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(host).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** Whether an entry's host field names `host` (a `hostPattern()` string). */
export function entryMatches(entry: KnownHostEntry, host: string): boolean {
  if (entry.hosts.startsWith('|')) return hashedMatch(entry.hosts, host);
  let matched = false;
  for (const pattern of entry.hosts.split(',')) {
    if (pattern.startsWith('!')) {
      if (globMatch(pattern.slice(1), host)) return false;
    } else if (globMatch(pattern, host)) {
      matched = true;
    }
  }
  return matched;
}

// A fleet's known_hosts has a line per host, and every handshake asked every line whether it names
// the host: hosts x lines matches (a million at 1,000 hosts; up to ~2 s in a wall-clock profile,
// which also counts time the controller was preempted). Lines
// whose every pattern is a plain name are looked up by name instead; only the others (hashed,
// wildcard or negated patterns) are still asked one by one. Same answers, same order.
interface HostIndex {
  byName: Map<string, number[]>;
  others: number[];
  revoked: KnownHostEntry[];
}
const indexes = new WeakMap<readonly KnownHostEntry[], HostIndex>();

function indexOf(entries: readonly KnownHostEntry[]): HostIndex {
  let index = indexes.get(entries);
  if (index) return index;
  index = { byName: new Map(), others: [], revoked: [] };
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.marker === 'revoked') index.revoked.push(e);
    if (e.marker !== undefined) continue;
    const patterns = e.hosts.split(',');
    if (e.hosts.startsWith('|') || patterns.some((p) => /[*?!]/.test(p))) {
      index.others.push(i);
      continue;
    }
    for (const name of new Set(patterns.map((p) => p.toLowerCase()))) {
      const at = index.byName.get(name);
      if (at) at.push(i);
      else index.byName.set(name, [i]);
    }
  }
  indexes.set(entries, index);
  return index;
}

/** The unmarked entries that name any of `hosts`, in file order (as a filter with `entryMatches`). */
export function entriesForHosts(entries: readonly KnownHostEntry[], hosts: readonly string[]): KnownHostEntry[] {
  const index = indexOf(entries);
  const at = new Set<number>();
  for (const h of hosts) for (const i of index.byName.get(h.toLowerCase()) ?? []) at.add(i);
  for (const i of index.others) if (hosts.some((h) => entryMatches(entries[i]!, h))) at.add(i);
  return [...at].sort((a, b) => a - b).map((i) => entries[i]!);
}

/** The outcome of checking a server's key against known_hosts. */
export type HostKeyVerdict =
  | { status: 'trusted'; entry: KnownHostEntry }
  | { status: 'revoked'; entry: KnownHostEntry }
  | { status: 'changed'; entry: KnownHostEntry }
  | { status: 'unknown' };

/**
 * Checks `key` for any of `hosts` (pattern strings); revoked wins, then a match, then a mismatch.
 * Any known key for the host counts: a host pinned to an ed25519 key that now offers only ECDSA
 * is "changed" (refused), never "unknown" (which --accept-new-host-keys would trust).
 */
export function checkHostKey(
  entries: readonly KnownHostEntry[],
  hosts: readonly string[],
  key: Buffer,
): HostKeyVerdict {
  const revoked = indexOf(entries).revoked.find((e) => e.key.equals(key));
  if (revoked) return { status: 'revoked', entry: revoked };
  const forHost = entriesForHosts(entries, hosts);
  const match = forHost.find((e) => e.key.equals(key));
  if (match) return { status: 'trusted', entry: match };
  const type = keyTypeOf(key);
  const changed = forHost.find((e) => e.keyType === type) ?? forHost[0];
  if (changed) return { status: 'changed', entry: changed };
  return { status: 'unknown' };
}

const ALGORITHMS_FOR_KEY_TYPE: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/**
 * Host key algorithms to offer, those already known for the host first: like OpenSSH, so a
 * server with several key types presents the one we can verify.
 */
export function preferredHostKeyAlgorithms(
  entries: readonly KnownHostEntry[],
  hosts: readonly string[],
  defaults: readonly string[],
): string[] {
  const known = entriesForHosts(entries, hosts)
    .flatMap((e) => ALGORITHMS_FOR_KEY_TYPE[e.keyType] ?? [])
    .filter((a) => defaults.includes(a));
  return [...new Set([...known, ...defaults])];
}

const cache = new Map<string, { mtimeMs: number; size: number; parsed: Promise<KnownHosts> }>();

// The last answer per list of files, with the parses it was made of: the same parses give the same
// object back (its entries' index is built once, not once per handshake).
const combined = new Map<string, { parts: Promise<KnownHosts>[]; all: Promise<KnownHosts> }>();

/** Reads and parses known_hosts files (missing files count as empty); cached by mtime and size. */
export async function loadKnownHosts(files: readonly string[]): Promise<KnownHosts> {
  const parts: Promise<KnownHosts>[] = [];
  for (const file of files) {
    let st;
    try {
      st = await stat(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    let hit = cache.get(file);
    if (!hit || hit.mtimeMs !== st.mtimeMs || hit.size !== st.size) {
      // The fleet's handshakes start together: they share one read and parse.
      hit = {
        mtimeMs: st.mtimeMs,
        size: st.size,
        parsed: readFile(file, 'utf8').then((t) => parseKnownHosts(t, file)),
      };
      cache.set(file, hit);
      const mine = hit;
      hit.parsed.catch(() => cache.get(file) === mine && cache.delete(file));
    }
    parts.push(hit.parsed);
  }
  const key = files.join('\0');
  const last = combined.get(key);
  if (last && last.parts.length === parts.length && last.parts.every((p, i) => p === parts[i])) return last.all;
  // Set before it resolves: the handshakes that start together share it too.
  const all = Promise.all(parts).then((list) => {
    const out: KnownHosts = { entries: [], notes: [] };
    for (const parsed of list) {
      for (const e of parsed.entries) out.entries.push(e);
      for (const n of parsed.notes) out.notes.push(n);
    }
    return out;
  });
  if (combined.size >= 64) combined.clear();
  combined.set(key, { parts, all });
  all.catch(() => combined.get(key)?.all === all && combined.delete(key));
  return all;
}

const appendQueues = new Map<string, Promise<void>>();

/** Records a host key (trust on first use): creates the file 0600 if missing, one append per key. */
export async function appendKnownHost(file: string, host: string, key: Buffer): Promise<void> {
  const previous = appendQueues.get(file) ?? Promise.resolve();
  // Serialised per file so parallel first connects never interleave or double-newline lines.
  const next = previous
    .catch(() => undefined)
    .then(async () => {
      await mkdir(dirname(file), { recursive: true, mode: 0o700 });
      let prefix = '';
      try {
        const fh = await open(file, fsConstants.O_RDONLY);
        try {
          const { size } = await fh.stat();
          if (size > 0) {
            const last = Buffer.alloc(1);
            await fh.read(last, 0, 1, size - 1);
            if (last[0] !== 0x0a) prefix = '\n';
          }
        } finally {
          await fh.close();
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      await appendFile(file, `${prefix}${host} ${keyTypeOf(key)} ${key.toString('base64')}\n`, { mode: 0o600 });
      cache.delete(file);
    });
  appendQueues.set(file, next);
  return next;
}
