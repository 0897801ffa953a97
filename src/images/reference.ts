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
  if (hasDomain(parts)) return ref;
  return parts.length === 1 ? `docker.io/library/${ref}` : `docker.io/${ref}`;
}

/** Whether a reference's first component names a registry (has a dot or a port, or is localhost). */
function hasDomain(parts: string[]): boolean {
  const first = parts[0] ?? '';
  return parts.length > 1 && (/[.:]/.test(first) || first === 'localhost');
}

/** The registry host of an image reference, as auth files key it (`docker.io` for Docker Hub names). */
export function registryOf(ref: string): string {
  const parts = ref.split('/');
  return hasDomain(parts) ? parts[0]! : 'docker.io';
}

/**
 * `repo:tag`, `repo@sha256:…` or `repo` split as Docker Engine's POST /images/create takes it (`tag`
 * is a tag or a digest). Without a tag the API would pull every tag of the repository: `latest`, as
 * `docker pull` does.
 */
export function splitReference(ref: string): { repo: string; tag: string } {
  const at = ref.indexOf('@');
  if (at >= 0) return { repo: ref.slice(0, at), tag: ref.slice(at + 1) };
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  return colon > slash ? { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) } : { repo: ref, tag: 'latest' };
}

/** The repo digest of `image` among an image's repo digests (`repo@sha256:...`), else the first one. */
export function pickRepoDigest(image: string, repoDigests: string[]): string | null {
  const repo = repositoryOf(image);
  return repoDigests.find((d) => d.split('@')[0] === repo) ?? repoDigests[0] ?? null;
}
