/**
 * `image.pull.verify`: pulls an image through the node's CRI ImageService (the path kubelet takes,
 * so the CRI registry configuration applies) and asserts it worked, optionally with an expected
 * digest. It never reports "changed": gather and plan have nothing to do, the pull happens in
 * `verify` (after any apply), and `pullVerdict` is the pure judgement of what the pull saw. It runs
 * in check mode too (`verifyInCheck`), where a failure is drift: the pull is the only honest proof,
 * and its side effect (the image in the node's cache) is documented in the README.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CriError, type CriAuth } from '../cri/client.js';
import { classifyPullError, type PullFailure, type PullFailureClass } from '../cri/classify.js';
import { Interrupted } from '../engine/cancel.js';
import { TaskError } from '../engine/errors.js';
import { defineModule, type ArgsOf, type TaskContext } from '../engine/module.js';
import { criTaskError, withCri } from '../cri/connect.js';

const schema = {
  type: 'object',
  title: 'image.pull.verify',
  description:
    'Pull an image through the CRI ImageService (the path kubelet uses) and assert success, optionally an expected digest. Classifies failures (unknown authority, name mismatch, expired, plain HTTP, auth, not found, unreachable). Never reports "changed"; runs in check mode too.',
  additionalProperties: false,
  required: ['image'],
  properties: {
    image: { type: 'string', minLength: 1, description: 'Image reference to pull.' },
    expect_digest: {
      type: 'string',
      pattern: '^sha256:[0-9a-f]{64}$',
      description: 'Fail unless the pulled image has this repo digest (`sha256:...`).',
    },
    auth: {
      type: 'object',
      additionalProperties: false,
      description: 'Registry credentials for the pull (from variables; never printed).',
      properties: {
        username: { type: 'string' },
        password: { type: 'string', 'x-secret': true },
        token: {
          type: 'string',
          description: 'A registry bearer/identity token instead of username/password.',
          'x-secret': true,
        },
      },
      'x-exclusive': [['password', 'token']],
    },
    pull_timeout: { type: 'integer', minimum: 1, default: 120, description: 'Seconds one pull may take.' },
    timeout: {
      type: 'integer',
      minimum: 1,
      deprecated: true,
      'x-renamed': 'pull_timeout',
      description: 'Deprecated name of `pull_timeout` (still accepted, with a warning).',
    },
    retries: {
      type: 'integer',
      minimum: 0,
      default: 0,
      description: 'Extra attempts after a failed pull (exponential back-off).',
    },
    socket: { type: 'string', minLength: 1, description: "containerd's CRI socket (default: auto-detected)." },
  },
  'x-exclusive': [['pull_timeout', 'timeout']],
} as const;

/** Arguments of `image.pull.verify` as the engine hands them over (schema defaults filled in). */
export type ImagePullVerifyArgs = ArgsOf<typeof schema>;

/** What a verification saw: the pulled image, or the classified failure. */
export type PullObserved =
  | { ok: true; image: string; imageRef: string; repoDigest: string | null; attempts: number }
  | { ok: false; image: string; failure: PullFailure; raw: string; attempts: number };

/** Failure classes a retry cannot fix (certificates, protocol, credentials): fail at once. */
const PERMANENT: ReadonlySet<PullFailureClass> = new Set([
  'unknown-authority',
  'name-mismatch',
  'cn-only',
  'sha1-signature',
  'expired',
  'not-yet-valid',
  'client-cert-required',
  'plain-http',
  'not-tls',
  'unauthorized',
]);

/** Back-off before retry `n` (1-based): 1 s, 2 s, 4 s, ... capped at 30 s. */
export function backoffMs(n: number): number {
  return Math.min(1000 * 2 ** Math.max(0, n - 1), 30_000);
}

/** Whether a failure of this class is worth another attempt. */
export function isRetryable(cls: PullFailureClass): boolean {
  return !PERMANENT.has(cls);
}

/** The CRI AuthConfig for the task's `auth` (a token is an identity token, as `docker login` stores it). */
export function criAuthFor(auth: ImagePullVerifyArgs['auth']): CriAuth | undefined {
  if (!auth) return undefined;
  // containerd's CRI uses the first of username, identity token, auth it finds; send only one.
  if (auth.token !== undefined) return { identityToken: auth.token };
  if (auth.username === undefined && auth.password === undefined) return undefined;
  return { username: auth.username ?? '', password: auth.password ?? '' };
}

/** The base64 `user:password` form registries and config.json carry: a secret of the run like the password. */
export function basicAuthSecret(auth: ImagePullVerifyArgs['auth']): string | undefined {
  return auth?.username !== undefined && auth.password
    ? Buffer.from(`${auth.username}:${auth.password}`).toString('base64')
    : undefined;
}

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

function attemptsNote(attempts: number): string {
  return attempts > 1 ? ` (${attempts} attempts)` : '';
}

/** The verdict: what the report shows when the pull worked (and the digest matched), else a verification TaskError. */
export function pullVerdict(
  args: Pick<ImagePullVerifyArgs, 'image' | 'expect_digest'>,
  observed: PullObserved,
): { imageRef: string; repoDigest: string | null } {
  if (!observed.ok) {
    const { failure } = observed;
    throw new TaskError(
      `pulling ${observed.image} failed${attemptsNote(observed.attempts)}: ${failure.summary}; ${failure.hint}`,
      'verification',
      observed.raw,
    );
  }
  if (args.expect_digest !== undefined) {
    const got = observed.repoDigest?.split('@')[1] ?? null;
    if (got !== args.expect_digest) {
      throw new TaskError(
        got === null
          ? `${observed.image} was pulled but the node reports no repo digest for it, so it cannot be checked against ${args.expect_digest}: pull by digest (image@sha256:...) instead`
          : `${observed.image} resolved to ${got}, not the expected ${args.expect_digest}: the tag now points at another image (or another registry answered); check what was pushed`,
        'verification',
      );
    }
  }
  return { imageRef: observed.imageRef, repoDigest: observed.repoDigest };
}

/** Pulls with retries and back-off; CRI socket trouble is a command failure, a refused pull an observation. */
export async function pullWithRetries(ctx: TaskContext, args: ImagePullVerifyArgs): Promise<PullObserved> {
  const auth = criAuthFor(args.auth);
  // The password and token are x-secret arguments; their encoded form is marked here. The engine
  // masks both in the error and its detail.
  const encoded = basicAuthSecret(args.auth);
  if (encoded !== undefined) ctx.secret?.(encoded);
  return withCri(ctx, args.socket, async (cri) => {
    for (let attempt = 1; ; attempt++) {
      try {
        const { imageRef } = await cri.pullImage(args.image, {
          ...(auth ? { auth } : {}),
          timeoutMs: args.pull_timeout * 1000,
        });
        const status = await cri.imageStatus(imageRef || args.image);
        return {
          ok: true,
          image: args.image,
          imageRef,
          repoDigest: pickRepoDigest(args.image, status?.repoDigests ?? []),
          attempts: attempt,
        };
      } catch (err) {
        // Cancelled by the run's interruption: not a verdict on the registry either.
        if (err instanceof Interrupted) throw err;
        // 14/12: containerd itself cannot be reached or has no CRI: not a verdict on the registry.
        if (!(err instanceof CriError) || err.code === 14 || err.code === 12) throw criTaskError(err);
        const raw = err.code === 4 ? err.message : err.details || err.message;
        const failure = classifyPullError(raw);
        if (attempt > args.retries || !isRetryable(failure.class) || ctx.signal?.aborted) {
          return { ok: false, image: args.image, failure, raw, attempts: attempt };
        }
        await sleep(backoffMs(attempt), undefined, ctx.signal ? { signal: ctx.signal } : undefined).catch(
          () => undefined,
        );
      }
    }
  });
}

/** The `image.pull.verify` module. */
export default defineModule({
  schema,
  name: 'image.pull.verify',
  description: 'Pull an image through the CRI and assert success (and digest); classifies failures; never "changed".',
  verifyInCheck: true,
  gather: () => Promise.resolve(null),
  plan: () => [],
  verify: async (ctx, args) => pullVerdict(args, await pullWithRetries(ctx, args)),
});
