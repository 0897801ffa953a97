/**
 * `image.rmi`: removes an image, with all its tags (as `crictl rmi` does), from each image store of
 * the node (containerd's through the CRI, Docker Engine's through its API, containers/image's
 * containers-storage through podman, which CRI-O shares), so the next pull goes to the registry
 * again. Absent = ok. `runtimes: auto` works on the runtimes registry.trust trusts (runtimes.ts),
 * leaving out with a note a Docker Engine whose daemon does not answer and a containers/image host
 * without podman (skopeo keeps no image store). An image is not a file, so there is nothing to
 * snapshot: a later pull brings it back.
 */
import type { CriImage } from '../cri/client.js';
import { defineModule, type ArgsOf, type ImageRemove, type TaskContext } from '../engine/module.js';
import { criTaskError, withCri } from '../cri/connect.js';
import { defined } from '../defined.js';
import { DOCKER_API_SOCKET, engineImage, enginePing, EngineError } from '../docker/engine-api.js';
import { podmanImage } from '../containers-image/client.js';
import { containerdHostSettings } from '../containerd/host-settings.js';
import { TaskError } from '../engine/errors.js';
import { DEFAULT_CONFIG_FILE } from '../playbook/schema/args-common.js';
import { containersPrograms, detectRuntimes, runtimesArg, selectRuntimes, type Runtime } from './runtimes.js';
import { warmCri } from '../cri/client.js';

const schema = {
  type: 'object',
  title: 'image.rmi',
  description:
    'Remove a cached image (all its tags) from each image store of the node (containerd via the CRI, Docker Engine via its API, containers-storage via podman) (step 4 of the fix: the next pull goes to the registry again). Absent = ok.',
  additionalProperties: false,
  required: ['image'],
  properties: {
    image: { type: 'string', minLength: 1, description: 'Image reference, e.g. `registry.example.com/app:1.0`.' },
    socket: { type: 'string', minLength: 1, description: "containerd's CRI socket (default: auto-detected)." },
    runtimes: runtimesArg(
      '`auto`: every image store of the runtimes registry.trust trusts on the node (a Docker Engine that does not answer, or containers/image without podman, is left out with a note). Or a list of `containerd`, `docker`, `containers`: exactly those, and one that is missing or has no store to ask fails the task.',
    ),
  },
} as const;

/** Arguments of `image.rmi` as the engine hands them over (schema defaults filled in). */
export type ImageRmiArgs = ArgsOf<typeof schema>;

/** Tags shown in a summary before "and N more". */
const SHOWN_TAGS = 3;

function describeImage(image: CriImage): string {
  const id = image.id.replace(/^sha256:/, '').slice(0, 12);
  const tags = image.repoTags.length === 0 ? 'untagged' : image.repoTags.slice(0, SHOWN_TAGS).join(', ');
  const more = image.repoTags.length > SHOWN_TAGS ? ` and ${image.repoTags.length - SHOWN_TAGS} more` : '';
  return `${id}: ${tags}${more}`;
}

/** The changes for one image: none when the store lacks it, else one removal. */
export function planImageRmi(
  args: Pick<ImageRmiArgs, 'image' | 'socket'>,
  present: CriImage | null,
  runtime: Runtime = 'containerd',
): ImageRemove[] {
  if (!present) return [];
  const where =
    runtime === 'containerd' ? '' : ` from ${runtime === 'docker' ? 'Docker Engine' : 'containers-storage'}`;
  return [
    {
      op: 'image.remove',
      summary: `remove image ${args.image}${where} (${describeImage(present)})`,
      id: present.id,
      ...(runtime === 'containerd' ? defined({ socket: args.socket }) : { runtime }),
      diff: {
        target: `image ${args.image}`,
        before: `${present.repoTags.concat(present.repoDigests).join('\n')}\n`,
        after: '',
      },
    },
  ];
}

/** What one image store holds of the image. */
interface StoreState {
  runtime: Runtime;
  present: CriImage | null;
}

/** Looks the image up in each selected store; notes say which were left out and why. */
async function gatherStores(ctx: TaskContext, args: ImageRmiArgs): Promise<{ stores: StoreState[]; notes: string[] }> {
  const configFile = containerdHostSettings(ctx.vars).configFile ?? DEFAULT_CONFIG_FILE;
  const found = await detectRuntimes(ctx, configFile);
  const { runtimes, notes } = selectRuntimes(ctx.host, found, args.runtimes, 'image.rmi has no image store to clean');
  const explicit = args.runtimes !== 'auto';
  const cannot = (runtime: Runtime, why: string, warn = true): void => {
    if (explicit) throw new TaskError(`${ctx.host}: ${runtime}: no image store to clean: ${why}.`, 'refused');
    notes.push(`${runtime} left out: ${why}`);
    if (warn) ctx.warn(`${runtime} left out: ${why}`);
  };
  const stores: StoreState[] = [];
  for (const runtime of runtimes) {
    if (runtime === 'containerd') {
      try {
        stores.push({ runtime, present: await withCri(ctx, args.socket, (cri) => cri.imageStatus(args.image)) });
      } catch (err) {
        throw criTaskError(err);
      }
    } else if (runtime === 'docker') {
      if (!(await enginePing(ctx.conn, DOCKER_API_SOCKET))) {
        cannot(
          runtime,
          `Docker Engine is installed (${found.docker.join(', ')}) but does not answer on ${DOCKER_API_SOCKET}`,
        );
        continue;
      }
      try {
        stores.push({ runtime, present: await engineImage(ctx.conn, DOCKER_API_SOCKET, args.image) });
      } catch (err) {
        if (err instanceof EngineError) throw new TaskError(`${ctx.host}: docker: ${err.message}`, 'command');
        throw err;
      }
    } else if (containersPrograms(found).includes('podman')) {
      try {
        stores.push({ runtime, present: await podmanImage(ctx.conn, args.image) });
      } catch (err) {
        throw new TaskError(`${ctx.host}: containers: ${(err as Error).message}`, 'command');
      }
    } else cannot(runtime, `no podman here, and ${found.containers.join(', ')} keeps no image store`, false);
  }
  return { stores, notes };
}

/** The `image.rmi` module. */
export default defineModule({
  schema,
  name: 'image.rmi',
  warm: warmCri,
  description:
    'Remove an image (all its tags) from each image store of the node (CRI, Docker Engine, podman); absent = ok.',
  async gather(ctx, args) {
    return gatherStores(ctx, args);
  },
  plan: (args, observed) => observed.stores.flatMap((s) => planImageRmi(args, s.present, s.runtime)),
  result: (observed) => ({
    runtimes: observed.stores.map((s) => s.runtime),
    ...(observed.notes.length ? { notes: observed.notes } : {}),
  }),
});
