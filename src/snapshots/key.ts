/**
 * The key that authenticates snapshot manifests (HMAC-SHA256). It lives apart from the state dir
 * (default `~/.config/trustplay/snapshot.key`, 0600, created on first use) so that whoever can
 * write the state dir (a shared dir, a backup, a CI cache) cannot forge or edit a manifest that
 * `restore` then runs as root: `--state-dir` never moves it. Losing the key makes every snapshot it
 * signed unverifiable, and restore refuses them.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** The environment variable that names the key file (below `--snapshot-key`, above the default). */
export const SNAPSHOT_KEY_ENV = 'TRUSTPLAY_SNAPSHOT_KEY_FILE';

/** The default key file: `$XDG_CONFIG_HOME/trustplay/snapshot.key`, else `~/.config/trustplay/snapshot.key`. */
export function defaultSnapshotKeyFile(): string {
  const env = process.env[SNAPSHOT_KEY_ENV];
  if (env) return env;
  const xdg = process.env['XDG_CONFIG_HOME'];
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.config'), 'trustplay', 'snapshot.key');
}

/** A loaded key: the secret bytes and a public id (a hash prefix) that names it in messages and manifests. */
export interface SnapshotKey {
  file: string;
  id: string;
  secret: Buffer;
}

/** Why a key cannot be used; `missing` lets readers say "lost" rather than "broken". */
export class SnapshotKeyError extends Error {
  constructor(
    message: string,
    readonly missing = false,
  ) {
    super(message);
    this.name = 'SnapshotKeyError';
  }
}

const MIN_KEY_BYTES = 32;

function keyOf(file: string, raw: Buffer): SnapshotKey {
  const secret = Buffer.from(raw.toString('utf8').trim(), 'utf8');
  if (secret.length < MIN_KEY_BYTES)
    throw new SnapshotKeyError(
      `the snapshot key ${file} is too short (${secret.length} bytes, at least ${MIN_KEY_BYTES}); restore the right key file, or move it away to start a new key (old snapshots then cannot be verified)`,
    );
  return { file, secret, id: createHash('sha256').update(secret).digest('hex').slice(0, 16) };
}

/**
 * Reads the key, checking it like OpenSSH checks a private key: a regular file (a symlink is
 * followed, as Kubernetes Secret volumes are links), owned by this user or root, readable by no one
 * else. Never creates it: reading snapshots must not write anything.
 */
export async function readSnapshotKey(file: string): Promise<SnapshotKey> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new SnapshotKeyError(
        `the snapshot key ${file} does not exist (lost, or snapshots were written by another user or machine); point --snapshot-key or ${SNAPSHOT_KEY_ENV} at the key that wrote them`,
        true,
      );
    throw new SnapshotKeyError(`cannot read the snapshot key ${file}: ${(e as Error).message}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new SnapshotKeyError(`the snapshot key ${file} is not a regular file; replace it`);
    const uid = process.getuid?.() ?? 0;
    if (st.uid !== uid && st.uid !== 0)
      throw new SnapshotKeyError(
        `the snapshot key ${file} is owned by uid ${st.uid}, not by you (uid ${uid}) or root; fix with: chown ${uid} ${file}`,
      );
    if (st.mode & 0o077)
      throw new SnapshotKeyError(
        `the snapshot key ${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); fix with: chmod 600 ${file}`,
      );
    if (st.size > 4096) throw new SnapshotKeyError(`the snapshot key ${file} is too large to be a key; replace it`);
    return keyOf(file, await fh.readFile());
  } finally {
    await fh.close();
  }
}

/** The key for writing snapshots: read it, or create it (0600, in a 0700 dir) on first use. */
export async function loadOrCreateSnapshotKey(file: string): Promise<SnapshotKey> {
  try {
    return await readSnapshotKey(file);
  } catch (e) {
    if (!(e instanceof SnapshotKeyError) || !e.missing) throw e;
  }
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const text = randomBytes(32).toString('hex') + '\n';
  let fh;
  try {
    fh = await open(file, 'wx', 0o600);
  } catch (e) {
    // Another process created it first: use theirs.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return readSnapshotKey(file);
    throw new SnapshotKeyError(`cannot create the snapshot key ${file}: ${(e as Error).message}`);
  }
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return keyOf(file, Buffer.from(text));
}

/** JSON with object keys sorted at every level: the bytes a MAC is computed over. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** HMAC-SHA256 of a document's canonical JSON, hex. */
export function macOf(key: SnapshotKey, doc: unknown): string {
  return createHmac('sha256', key.secret).update(canonicalJson(doc)).digest('hex');
}

/** Constant-time comparison of two hex MACs. */
export function macEquals(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
