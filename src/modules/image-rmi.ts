/**
 * `image.rmi`: removes an image, with all its tags (as `crictl rmi` does), from the node's CRI
 * image store, so the next pull goes to the registry again. Absent = ok. An image is not a file,
 * so there is nothing to snapshot: a later pull brings it back.
 */
import type { CriImage } from '../cri/client.js';
import { defineModule, type ArgsOf, type ImageRemove } from '../engine/module.js';
import { criTaskError, withCri } from '../cri/connect.js';
import { defined } from '../defined.js';

const schema = {
  type: 'object',
  title: 'image.rmi',
  description:
    "Remove a cached image (all its tags) from the node's CRI image store (step 4 of the fix: the next pull goes to the registry again). Absent = ok.",
  additionalProperties: false,
  required: ['image'],
  properties: {
    image: { type: 'string', minLength: 1, description: 'Image reference, e.g. `registry.example.com/app:1.0`.' },
    socket: { type: 'string', minLength: 1, description: "containerd's CRI socket (default: auto-detected)." },
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
export function planImageRmi(args: ImageRmiArgs, present: CriImage | null): ImageRemove[] {
  if (!present) return [];
  return [
    {
      op: 'image.remove',
      summary: `remove image ${args.image} (${describeImage(present)})`,
      id: present.id,
      ...defined({ socket: args.socket }),
      diff: {
        target: `image ${args.image}`,
        before: `${present.repoTags.concat(present.repoDigests).join('\n')}\n`,
        after: '',
      },
    },
  ];
}

/** The `image.rmi` module. */
export default defineModule({
  schema,
  name: 'image.rmi',
  description: "Remove an image (all its tags) from the node's CRI image store; absent = ok.",
  async gather(ctx, args) {
    try {
      return await withCri(ctx, args.socket, (cri) => cri.imageStatus(args.image));
    } catch (err) {
      throw criTaskError(err);
    }
  },
  plan: (args, present) => planImageRmi(args, present),
});
