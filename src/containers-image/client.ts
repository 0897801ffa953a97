/**
 * Pulls and image-store operations through containers/image on a host (the library podman, buildah,
 * skopeo and CRI-O share), run as the node's own programs over the connection:
 *
 * - pull check: `skopeo inspect --raw docker://REF` when skopeo is there: containers/image resolves
 *   the registry, reads its certs.d, registries.conf and auth files exactly as a podman or CRI-O
 *   pull does, and fetches the manifest (TLS, credentials, repository and tag); the manifest's
 *   sha256 is the repo digest a pull records. Layers are not downloaded (nothing is stored on the
 *   node). Else `podman pull` (a real pull into the node's containers-storage, which CRI-O shares).
 * - image store: podman's (`podman image inspect`, `podman rmi --force`); a host with skopeo only
 *   has no image store of containers/image to clean.
 *
 * Credentials given to the task go to a 0600 temporary `--authfile` fed on stdin and removed after
 * the command, never on a command line (which every user of the node can read in /proc).
 */
import { createHash } from 'node:crypto';
import type { Connection } from '../connection/connection.js';
import { quote } from '../connection/shell-quote.js';
import { pickRepoDigest, registryOf } from '../images/reference.js';

/** Credentials for one registry, as an auth.json entry takes them. */
export interface ContainersAuth {
  username?: string;
  password?: string;
  identitytoken?: string;
}

/** An auth.json holding only `auth` for the image's registry (a secret: never printed). */
export function authFile(ref: string, auth: ContainersAuth): string {
  const entry =
    auth.identitytoken !== undefined
      ? { identitytoken: auth.identitytoken }
      : { auth: Buffer.from(`${auth.username ?? ''}:${auth.password ?? ''}`).toString('base64') };
  return JSON.stringify({ auths: { [registryOf(ref)]: entry } });
}

/**
 * A script that runs `command` (whose argv may name "$AUTHFILE") with the task's credentials in a
 * private temporary auth file read from stdin, or without one. Exported for tests.
 */
export function withAuthFile(argv: string[], authFlagAt: number | null): string {
  const words = argv.map(quote);
  if (authFlagAt === null) return `exec ${words.join(' ')}`;
  words.splice(authFlagAt, 0, '--authfile', '"$f"');
  return [
    'f=$(umask 077 && mktemp) || exit 125',
    'trap \'rm -f "$f"\' EXIT',
    "trap 'exit 130' INT TERM",
    'cat > "$f" || exit 125',
    words.join(' '),
  ].join('\n');
}

/** What one containers/image pull check saw: the repo digest, or the tool's own error text. */
export type ContainersPull =
  { ok: true; repoDigest: string | null; via: string } | { ok: false; raw: string; via: string };

/** The program a pull check runs: skopeo when there, else podman; null when neither is. */
export function pullProgram(programs: readonly string[]): 'skopeo' | 'podman' | null {
  return programs.includes('skopeo') ? 'skopeo' : programs.includes('podman') ? 'podman' : null;
}

/** The error text of a failed containers/image command: its stderr, without the `level=fatal` framing. */
export function containersError(stderr: string, code: number): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const last = lines.at(-1) ?? `exited with ${code}`;
  // skopeo/podman print `time="…" level=fatal msg="…"`: the message is the text.
  const m = /level=(?:fatal|error) msg="((?:[^"\\]|\\.)*)"/.exec(last);
  return m ? m[1]!.replace(/\\(.)/g, '$1') : last.replace(/^Error: /, '');
}

/** Pull check of `ref` through containers/image on the host (see the file comment). */
export async function containersPull(
  conn: Connection,
  program: 'skopeo' | 'podman',
  ref: string,
  opts: { auth?: ContainersAuth; timeoutMs?: number } = {},
): Promise<ContainersPull> {
  const argv =
    program === 'skopeo' ? ['skopeo', 'inspect', '--raw', `docker://${ref}`] : ['podman', 'pull', '--quiet', ref];
  const script = withAuthFile(argv, opts.auth ? 2 : null);
  const r = await conn.exec(
    { script },
    {
      ...(opts.auth ? { stdin: authFile(ref, opts.auth) } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    },
  );
  const via = program === 'skopeo' ? 'skopeo inspect' : 'podman pull';
  if (r.timedOut) return { ok: false, raw: `${via} ${ref} took over ${opts.timeoutMs} ms (i/o timeout)`, via };
  if (r.code !== 0) return { ok: false, raw: containersError(r.stderr.toString('utf8'), r.code), via };
  if (program === 'skopeo') {
    // By digest the manifest is what the digest names; by tag its sha256 is the tag's repo digest.
    return { ok: true, repoDigest: `sha256:${createHash('sha256').update(r.stdout).digest('hex')}`, via };
  }
  const image = await podmanImage(conn, ref);
  // podman records Docker Hub's short names normalised (`docker.io/library/busybox@...`), as containerd does.
  const digest = pickRepoDigest(ref, image?.repoDigests ?? []);
  return { ok: true, repoDigest: digest?.split('@')[1] ?? null, via };
}

/** An image in podman's store (containers-storage). */
export interface PodmanImage {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: number;
}

/** The image `ref` names in podman's store, or null when there is none. */
export async function podmanImage(conn: Connection, ref: string): Promise<PodmanImage | null> {
  const r = await conn.exec({ argv: ['podman', 'image', 'inspect', '--format', 'json', ref] }, { timeoutMs: 30_000 });
  if (r.code !== 0) {
    const err = r.stderr.toString('utf8');
    if (/no such image|image not known/i.test(err)) return null;
    throw new Error(`podman image inspect ${ref} failed: ${containersError(err, r.code)}`);
  }
  const [j] = JSON.parse(r.stdout.toString('utf8')) as {
    Id?: string;
    RepoTags?: string[] | null;
    RepoDigests?: string[] | null;
    Size?: number;
  }[];
  if (!j) return null;
  return { id: j.Id ?? '', repoTags: j.RepoTags ?? [], repoDigests: j.RepoDigests ?? [], size: j.Size ?? 0 };
}

/** Removes image `id` with all its tags from podman's store (`podman rmi --force`); absent is fine. */
export async function podmanRemove(conn: Connection, id: string): Promise<void> {
  const r = await conn.exec({ argv: ['podman', 'rmi', '--force', id] }, { timeoutMs: 60_000 });
  if (r.code !== 0 && !/no such image|image not known/i.test(r.stderr.toString('utf8')))
    throw new Error(`podman rmi ${id} failed: ${containersError(r.stderr.toString('utf8'), r.code)}`);
}
