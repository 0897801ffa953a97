import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { CRI_LOADER_OPTIONS } from '../client.js';
import { CRI_IMAGE_DESCRIPTOR } from './cri-image-descriptor.js';

interface Field {
  name?: string | null;
  number?: number | null;
  type?: string | number | null;
  label?: string | number | null;
  typeName?: string | null;
}

/** Each message's fields and each service's methods, in a form both loaders agree on. */
function shape(def: protoLoader.PackageDefinition): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(def)) {
    if ('format' in entry) {
      const type = entry.type as { field?: Field[] };
      out[name] = (type.field ?? []).map((f) => [f.name, f.number, f.type, f.label, f.typeName ?? '']);
    } else {
      out[name] = Object.fromEntries(
        Object.entries(entry).map(([m, md]) => [m, [md.path, md.requestStream, md.responseStream]]),
      );
    }
  }
  return out;
}

const fromProto = protoLoader.loadSync(fileURLToPath(new URL('./cri-image.proto', import.meta.url)), CRI_LOADER_OPTIONS);
const fromDescriptor = protoLoader.fromJSON(
  CRI_IMAGE_DESCRIPTOR as Parameters<typeof protoLoader.fromJSON>[0],
  CRI_LOADER_OPTIONS,
);

describe('CRI descriptor', () => {
  it('matches cri-image.proto exactly (regenerate the descriptor after editing the .proto)', () => {
    expect(shape(fromDescriptor)).toEqual(shape(fromProto));
  });

  // Field names are camelCased by the loader; only the numbers travel on the wire.
  it('keeps the field numbers of k8s.io/cri-api runtime/v1/api.proto', () => {
    const numbers = (msg: string) =>
      Object.fromEntries(((fromDescriptor[`runtime.v1.${msg}`] as { type: { field: Field[] } }).type.field).map((f) => [f.name, f.number]));
    expect(numbers('ImageSpec')).toEqual({ image: 1, annotations: 2, userSpecifiedImage: 18, runtimeHandler: 19 });
    expect(numbers('AuthConfig')).toEqual({ username: 1, password: 2, auth: 3, serverAddress: 4, identityToken: 5, registryToken: 6 });
    expect(numbers('Image')).toEqual({ id: 1, repoTags: 2, repoDigests: 3, size: 4, uid: 5, username: 6, spec: 7, pinned: 8 });
    expect(numbers('PullImageRequest')).toEqual({ image: 1, auth: 2, sandboxConfig: 3 });
    expect(numbers('ImageStatusRequest')).toEqual({ image: 1, verbose: 2 });
    expect(numbers('PullImageResponse')).toEqual({ imageRef: 1 });
  });

  it('serves the methods under their upstream gRPC paths', () => {
    const image = fromDescriptor['runtime.v1.ImageService'] as Record<string, { path: string }>;
    expect(image['PullImage']?.path).toBe('/runtime.v1.ImageService/PullImage');
    expect(image['RemoveImage']?.path).toBe('/runtime.v1.ImageService/RemoveImage');
    const runtime = fromDescriptor['runtime.v1.RuntimeService'] as Record<string, { path: string }>;
    expect(runtime['Version']?.path).toBe('/runtime.v1.RuntimeService/Version');
  });
});
