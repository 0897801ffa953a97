/**
 * Image references as the runtimes record them: one place for the repository a reference names
 * and for picking its repo digest among an image's (containerd's CRI, Docker Engine and podman all
 * record `docker.io/library/busybox@sha256:...` for `busybox:1`).
 */

/**
 * The repository an image reference names, normalised as containerd records it in repo digests:
 * `busybox:1` → `docker.io/library/busybox`, `reg:5000/a/b@sha256:..` → `reg:5000/a/b`.
 */
export function repositoryOf(image: string): string {
  let ref = image.split('@')[0] ?? image;
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) ref = ref.slice(0, colon);
  const parts = ref.split('/');
  const first = parts[0] ?? '';
  const hasDomain = parts.length > 1 && (/[.:]/.test(first) || first === 'localhost');
  if (hasDomain) return ref;
  return parts.length === 1 ? `docker.io/library/${ref}` : `docker.io/${ref}`;
}

/** The repo digest of `image` among an image's repo digests (`repo@sha256:...`), else the first one. */
export function pickRepoDigest(image: string, repoDigests: string[]): string | null {
  const repo = repositoryOf(image);
  return repoDigests.find((d) => d.split('@')[0] === repo) ?? repoDigests[0] ?? null;
}
