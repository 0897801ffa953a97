import { describe, expect, it } from 'vitest';
import { resourcesOf } from '../engine/apply.js';
import { planImageRmi } from './image-rmi.js';

const ID = `sha256:${'0123456789ab'.repeat(5)}abcd`;

describe('planImageRmi', () => {
  it('an absent image is ok: nothing to do', () => {
    expect(planImageRmi({ image: 'r.test/app:1' }, null)).toEqual([]);
  });

  it('a present image is one removal that names its id and tags, touches no file and has no handler', () => {
    const [change, ...rest] = planImageRmi(
      { image: 'r.test/app:1' },
      {
        id: ID,
        repoTags: ['r.test/app:1', 'r.test/app:latest'],
        repoDigests: [`r.test/app@sha256:${'f'.repeat(64)}`],
        size: 1234,
      },
    );
    expect(rest).toEqual([]);
    expect(change?.summary).toBe('remove image r.test/app:1 (0123456789ab: r.test/app:1, r.test/app:latest)');
    expect(change && resourcesOf(change)).toEqual([]);
    expect(change).toMatchObject({ op: 'image.remove', id: ID });
    expect(change?.diff?.after).toBe('');
    expect(change?.diff?.before).toContain('r.test/app:latest');
  });

  it('keeps the summary one short line for an image with many tags, or none', () => {
    const tags = Array.from({ length: 7 }, (_, i) => `r.test/app:v${i}`);
    const [many] = planImageRmi({ image: 'r.test/app:v0' }, { id: ID, repoTags: tags, repoDigests: [], size: 1 });
    expect(many?.summary).toBe(
      'remove image r.test/app:v0 (0123456789ab: r.test/app:v0, r.test/app:v1, r.test/app:v2 and 4 more)',
    );
    const [untagged] = planImageRmi({ image: ID }, { id: ID, repoTags: [], repoDigests: [], size: 1 });
    expect(untagged?.summary).toBe(`remove image ${ID} (0123456789ab: untagged)`);
  });
});
