/**
 * `image.pull.verify`: pulls an image through each runtime of the node (containerd through the CRI
 * ImageService, the path kubelet takes, so the CRI registry configuration applies; Docker Engine
 * through its API; containers/image through skopeo or podman, see src/containers-image/client.ts)
 * and asserts it worked, optionally with an expected digest. `runtimes: auto` pulls through the
 * runtimes registry.trust trusts (one detection, src/modules/runtimes.ts), leaving out with a note
 * a Docker Engine whose daemon does not answer and a containers/image with neither skopeo nor podman. It never reports "changed": gather and plan have nothing to do, the pull happens in
 * `verify` (after any apply), and `pullVerdict` is the pure judgement of what the pull saw. It runs
 * in check mode too (`verifyInCheck`), where a failure is drift: the pull is the only honest proof,
 * and its side effect (the image in the node's cache) is documented in the README.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CriError, type CriAuth } from '../cri/client.js';
import { classifyPullError, type PullFailure, type PullFailureClass } from '../cri/classify.js';
import { Interrupted, interruptedBy } from '../engine/cancel.js';
import { TaskError } from '../engine/errors.js';
import { defineModule, type ArgsOf, type TaskContext } from '../engine/module.js';
import { criTaskError, withCri } from '../cri/connect.js';
import {
  DOCKER_API_SOCKET,
  engineImage,
  enginePing,
  enginePull,
  EngineError,
  type EngineAuth,
} from '../docker/engine-api.js';
import { containersPull, pullProgram, type ContainersAuth } from '../containers-image/client.js';
import { DEFAULT_CONFIG_FILE } from '../playbook/schema/args-common.js';
import { containerdHostSettings } from '../containerd/host-settings.js';
import {
  containersPrograms,
  detectRuntimes,
  LOOKED_FOR,
  runtimesArg,
  selectRuntimes,
  type Runtime,
} from './runtimes.js';
import { warmCri } from '../cri/client.js';
import { pickRepoDigest, repositoryOf } from '../images/reference.js';

const schema = {
  type: 'object',
  title: 'image.pull.verify',
  description:
    'Pull an image through each runtime of the node (containerd: the CRI ImageService, the path kubelet uses; Docker Engine: its API; containers/image: skopeo or podman) and assert success, optionally an expected digest. Classifies failures (unknown authority, name mismatch, expired, plain HTTP, auth, not found, unreachable). Never reports "changed"; runs in check mode too.',
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
    runtimes: runtimesArg(
      '`auto`: pull through every runtime of the node that registry.trust trusts (containerd via the CRI, Docker Engine via its API when dockerd answers, containers/image via skopeo or podman); a runtime that cannot pull is left out with a note. Or a list of `containerd`, `docker`, `containers`: exactly those, and one that is missing or cannot pull fails the task.',
    ),
  },
  'x-exclusive': [['pull_timeout', 'timeout']],
} as const;

/** Arguments of `image.pull.verify` as the engine hands them over (schema defaults filled in). */
export type ImagePullVerifyArgs = ArgsOf<typeof schema>;

/** What a verification saw: the pulled image, or the classified failure. */
export type PullObserved = { runtime?: Runtime } & (
  | { ok: true; image: string; imageRef: string; repoDigest: string | null; attempts: number }
  | { ok: false; image: string; failure: PullFailure; raw: string; attempts: number }
);

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

/** One pull attempt's outcome: what the runtime pulled, or its own error text (a verdict on the registry). */
type Attempt = { ok: true; imageRef: string; repoDigest: string | null } | { ok: false; raw: string };

/** Runs `once` with retries and back-off on retryable failures; the run's interruption ends it. */
async function withRetries(
  ctx: TaskContext,
  args: ImagePullVerifyArgs,
  runtime: Runtime,
  once: () => Promise<Attempt>,
): Promise<PullObserved> {
  for (let attempt = 1; ; attempt++) {
    const a = await once();
    if (a.ok)
      return {
        ok: true,
        runtime,
        image: args.image,
        imageRef: a.imageRef,
        repoDigest: a.repoDigest,
        attempts: attempt,
      };
    const failure = classifyPullError(a.raw, runtime);
    if (attempt > args.retries || !isRetryable(failure.class) || ctx.signal?.aborted)
      return { ok: false, runtime, image: args.image, failure, raw: a.raw, attempts: attempt };
    await sleep(backoffMs(attempt), undefined, ctx.signal ? { signal: ctx.signal } : undefined).catch(() => undefined);
    if (ctx.signal?.aborted) throw new Interrupted(interruptedBy(ctx.signal) ?? 'SIGINT');
  }
}

/** Pulls through the CRI with retries and back-off; CRI socket trouble is a command failure, a refused pull an observation. */
export async function pullWithRetries(ctx: TaskContext, args: ImagePullVerifyArgs): Promise<PullObserved> {
  const auth = criAuthFor(args.auth);
  markEncodedSecret(ctx, args);
  return withCri(ctx, args.socket, (cri) =>
    withRetries(ctx, args, 'containerd', async () => {
      try {
        const { imageRef } = await cri.pullImage(args.image, {
          ...(auth ? { auth } : {}),
          timeoutMs: args.pull_timeout * 1000,
        });
        const status = await cri.imageStatus(imageRef || args.image);
        return { ok: true, imageRef, repoDigest: pickRepoDigest(args.image, status?.repoDigests ?? []) };
      } catch (err) {
        // Cancelled by the run's interruption: not a verdict on the registry either.
        if (err instanceof Interrupted) throw err;
        // 14/12: containerd itself cannot be reached or has no CRI: not a verdict on the registry.
        if (!(err instanceof CriError) || err.code === 14 || err.code === 12) throw criTaskError(err);
        return { ok: false, raw: err.code === 4 ? err.message : err.details || err.message };
      }
    }),
  );
}

/** The password and token are x-secret arguments (the engine masks them); their encoded form is marked here. */
function markEncodedSecret(ctx: TaskContext, args: ImagePullVerifyArgs): void {
  const encoded = basicAuthSecret(args.auth);
  if (encoded !== undefined) ctx.secret?.(encoded);
}

/** The task's credentials in the Docker Engine API's and auth.json's shape. */
export function registryAuthFor(auth: ImagePullVerifyArgs['auth']): (EngineAuth & ContainersAuth) | undefined {
  const cri = criAuthFor(auth);
  if (!cri) return undefined;
  return cri.identityToken !== undefined
    ? { identitytoken: cri.identityToken }
    : { username: cri.username ?? '', password: cri.password ?? '' };
}

/** The repo digest `repo@sha256:…` of `image` for a digest only a runtime reports bare. */
function repoDigestOf(image: string, digest: string | null): string | null {
  return digest === null ? null : `${repositoryOf(image)}@${digest}`;
}

/** Pulls through Docker Engine's API on the host's socket. */
async function dockerPullWithRetries(ctx: TaskContext, args: ImagePullVerifyArgs): Promise<PullObserved> {
  const auth = registryAuthFor(args.auth);
  markEncodedSecret(ctx, args);
  if (auth) ctx.secret?.(Buffer.from(JSON.stringify(auth)).toString('base64url'));
  return withRetries(ctx, args, 'docker', async () => {
    let raw: string;
    try {
      raw = await enginePull(ctx.conn, DOCKER_API_SOCKET, args.image, {
        ...(auth ? { auth } : {}),
        timeoutMs: args.pull_timeout * 1000,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      });
    } catch (err) {
      if (ctx.signal?.aborted) throw new Interrupted(interruptedBy(ctx.signal) ?? 'SIGINT');
      if (err instanceof EngineError) throw new TaskError(`${ctx.host}: docker: ${err.message}`, 'command');
      throw err;
    }
    if (raw !== '') return { ok: false, raw };
    const image = await engineImage(ctx.conn, DOCKER_API_SOCKET, args.image);
    return {
      ok: true,
      imageRef: image?.id ?? '',
      repoDigest: pickRepoDigest(args.image, image?.repoDigests ?? []),
    };
  });
}

/** Pulls through containers/image (skopeo, else podman) on the host. */
async function containersPullWithRetries(
  ctx: TaskContext,
  args: ImagePullVerifyArgs,
  program: 'skopeo' | 'podman',
): Promise<PullObserved> {
  const auth = registryAuthFor(args.auth);
  markEncodedSecret(ctx, args);
  return withRetries(ctx, args, 'containers', async () => {
    const r = await containersPull(ctx.conn, program, args.image, {
      ...(auth ? { auth } : {}),
      timeoutMs: args.pull_timeout * 1000,
    });
    if (ctx.signal?.aborted) throw new Interrupted(interruptedBy(ctx.signal) ?? 'SIGINT');
    return r.ok
      ? { ok: true, imageRef: '', repoDigest: repoDigestOf(args.image, r.repoDigest) }
      : { ok: false, raw: r.raw };
  });
}

/** How each selected runtime pulls on this host, and notes on those that cannot. */
interface PullPlan {
  pulls: { runtime: Runtime; run: () => Promise<PullObserved> }[];
  notes: string[];
}

/** The runtimes to pull through (see the `runtimes` argument), each with how it pulls. */
async function planPulls(ctx: TaskContext, args: ImagePullVerifyArgs): Promise<PullPlan> {
  const configFile = containerdHostSettings(ctx.vars).configFile ?? DEFAULT_CONFIG_FILE;
  const found = await detectRuntimes(ctx, configFile);
  const { runtimes, notes } = selectRuntimes(
    ctx.host,
    found,
    args.runtimes,
    'image.pull.verify has nothing to pull through',
  );
  const explicit = args.runtimes !== 'auto';
  const pulls: PullPlan['pulls'] = [];
  const cannot = (runtime: Runtime, why: string): void => {
    if (explicit) throw new TaskError(`${ctx.host}: ${runtime}: cannot pull: ${why}.`, 'refused');
    notes.push(`${runtime} left out: ${why}`);
    // A pull not made is a verification not made: said on the run's output, not only in the data.
    ctx.warn(`${runtime} left out: ${why}`);
  };
  for (const runtime of runtimes) {
    if (runtime === 'containerd') pulls.push({ runtime, run: () => pullWithRetries(ctx, args) });
    else if (runtime === 'docker') {
      if (await enginePing(ctx.conn, DOCKER_API_SOCKET))
        pulls.push({ runtime, run: () => dockerPullWithRetries(ctx, args) });
      else
        cannot(
          runtime,
          `Docker Engine is installed (${found.docker.join(', ')}) but does not answer on ${DOCKER_API_SOCKET}`,
        );
    } else {
      const program = pullProgram(containersPrograms(found));
      if (program) pulls.push({ runtime, run: () => containersPullWithRetries(ctx, args, program) });
      else cannot(runtime, `neither skopeo nor podman is on PATH to pull with (found ${found.containers.join(', ')})`);
    }
  }
  if (pulls.length === 0)
    throw new TaskError(
      `${ctx.host}: no runtime here can pull (${notes.join('; ')}; looked for ${Object.values(LOOKED_FOR).join('; ')}).`,
      'refused',
    );
  return { pulls, notes };
}

/**
 * The verdict over every runtime's pull: the report's data when all worked (the containerd pull's
 * imageRef and repoDigest at the top, as before, and each runtime's under `pulls`), else one
 * verification TaskError naming each runtime that failed.
 */
export function pullVerdicts(
  args: Pick<ImagePullVerifyArgs, 'image' | 'expect_digest'>,
  observed: PullObserved[],
  notes: string[] = [],
): Record<string, unknown> {
  const errors: { runtime: Runtime; error: TaskError }[] = [];
  const ok: Partial<Record<Runtime, { imageRef: string; repoDigest: string | null }>> = {};
  for (const o of observed) {
    const runtime = o.runtime ?? 'containerd';
    try {
      ok[runtime] = pullVerdict(args, o);
    } catch (e) {
      if (!(e instanceof TaskError)) throw e;
      errors.push({ runtime, error: e });
    }
  }
  const several = observed.length > 1 || observed.some((o) => (o.runtime ?? 'containerd') !== 'containerd');
  if (errors.length > 0) {
    if (!several) throw errors[0]!.error;
    const details = errors.filter((e) => e.error.detail).map((e) => `${e.runtime}: ${e.error.detail}`);
    throw new TaskError(
      errors.map((e) => `${e.runtime}: ${e.error.message}`).join('; '),
      'verification',
      details.length ? details.join('\n') : undefined,
    );
  }
  const first = ok.containerd ?? Object.values(ok)[0]!;
  return {
    ...first,
    ...(several ? { pulls: ok } : {}),
    ...(notes.length ? { notes } : {}),
  };
}

/** Pulls through every runtime the task selects (in order) and judges them together. */
export async function verifyPulls(ctx: TaskContext, args: ImagePullVerifyArgs): Promise<Record<string, unknown>> {
  const { pulls, notes } = await planPulls(ctx, args);
  const observed: PullObserved[] = [];
  for (const p of pulls) observed.push(await p.run());
  return pullVerdicts(args, observed, notes);
}

/** The `image.pull.verify` module. */
export default defineModule({
  schema,
  name: 'image.pull.verify',
  warm: warmCri,
  description:
    'Pull an image through each runtime of the node (CRI, Docker Engine API, containers/image) and assert success (and digest); classifies failures; never "changed".',
  verifyInCheck: true,
  gather: () => Promise.resolve(null),
  plan: () => [],
  verify: (ctx, args) => verifyPulls(ctx, args),
});
