/**
 * `image.rmi`: removes an image, with all its tags (as `crictl rmi` does), from the node's CRI
 * image store, so the next pull goes to the registry again. Absent = ok. An image is not a file,
 * so there is nothing to snapshot: a later pull brings it back.
 */
import type { CriImage } from '../cri/client.js';
import type { Change, Module } from '../engine/module.js';
import type { ImageRmiArgs } from '../playbook/schema/modules.js';
import { criTaskError, withCri } from './cri-connect.js';

/** Tags shown in a summary before "and N more". */
const SHOWN_TAGS = 3;

function describeImage(image: CriImage): string {
  const id = image.id.replace(/^sha256:/, '').slice(0, 12);
  const tags = image.repoTags.length === 0 ? 'untagged' : image.repoTags.slice(0, SHOWN_TAGS).join(', ');
  const more = image.repoTags.length > SHOWN_TAGS ? ` and ${image.repoTags.length - SHOWN_TAGS} more` : '';
  return `${id}: ${tags}${more}`;
}

/** The changes for one image: none when the store lacks it, else one removal. */
export function planImageRmi(args: ImageRmiArgs, present: CriImage | null): Change[] {
  if (!present) return [];
  return [
    {
      summary: `remove image ${args.image} (${describeImage(present)})`,
      resources: [],
      diff: {
        target: `image ${args.image}`,
        before: `${present.repoTags.concat(present.repoDigests).join('\n')}\n`,
        after: '',
      },
      apply: async (ctx) => {
        try {
          // By id: every tag of the image goes, not only the one named.
          await withCri(ctx, args.socket, (cri) => cri.removeImage(present.id));
        } catch (err) {
          throw criTaskError(err);
        }
      },
    },
  ];
}

/** The `image.rmi` module. */
export const imageRmi: Module<ImageRmiArgs, CriImage | null> = {
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
};
