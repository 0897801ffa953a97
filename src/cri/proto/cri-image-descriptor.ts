// Generated once from cri-image.proto (protobufjs Root#toJSON of a parse with camelCase field
// names, which is how proto-loader names fields by default) and kept in step with it by
// proto.test.ts: tsc only emits .ts, so this is what ships in dist/ and what the client loads.

const V1 = {
  RuntimeService: {
    methods: {
      Version: { requestType: 'VersionRequest', responseType: 'VersionResponse' },
      Status: { requestType: 'StatusRequest', responseType: 'StatusResponse' },
    },
  },
  ImageService: {
    methods: {
      ListImages: { requestType: 'ListImagesRequest', responseType: 'ListImagesResponse' },
      ImageStatus: { requestType: 'ImageStatusRequest', responseType: 'ImageStatusResponse' },
      PullImage: { requestType: 'PullImageRequest', responseType: 'PullImageResponse' },
      RemoveImage: { requestType: 'RemoveImageRequest', responseType: 'RemoveImageResponse' },
      ImageFsInfo: { requestType: 'ImageFsInfoRequest', responseType: 'ImageFsInfoResponse' },
    },
  },
  VersionRequest: {
    fields: {
      version: { type: 'string', id: 1 },
    },
  },
  VersionResponse: {
    fields: {
      version: { type: 'string', id: 1 },
      runtimeName: { type: 'string', id: 2 },
      runtimeVersion: { type: 'string', id: 3 },
      runtimeApiVersion: { type: 'string', id: 4 },
    },
  },
  StatusRequest: {
    fields: {
      verbose: { type: 'bool', id: 1 },
    },
  },
  RuntimeCondition: {
    fields: {
      type: { type: 'string', id: 1 },
      status: { type: 'bool', id: 2 },
      reason: { type: 'string', id: 3 },
      message: { type: 'string', id: 4 },
    },
  },
  RuntimeStatus: {
    fields: {
      conditions: { rule: 'repeated', type: 'RuntimeCondition', id: 1 },
    },
  },
  StatusResponse: {
    fields: {
      status: { type: 'RuntimeStatus', id: 1 },
      info: { keyType: 'string', type: 'string', id: 2 },
    },
  },
  ImageSpec: {
    fields: {
      image: { type: 'string', id: 1 },
      annotations: { keyType: 'string', type: 'string', id: 2 },
      userSpecifiedImage: { type: 'string', id: 18 },
      runtimeHandler: { type: 'string', id: 19 },
    },
  },
  Int64Value: {
    fields: {
      value: { type: 'int64', id: 1 },
    },
  },
  PodSandboxConfig: { fields: {} },
  ImageFilter: {
    fields: {
      image: { type: 'ImageSpec', id: 1 },
    },
  },
  ListImagesRequest: {
    fields: {
      filter: { type: 'ImageFilter', id: 1 },
    },
  },
  Image: {
    fields: {
      id: { type: 'string', id: 1 },
      repoTags: { rule: 'repeated', type: 'string', id: 2 },
      repoDigests: { rule: 'repeated', type: 'string', id: 3 },
      size: { type: 'uint64', id: 4 },
      uid: { type: 'Int64Value', id: 5 },
      username: { type: 'string', id: 6 },
      spec: { type: 'ImageSpec', id: 7 },
      pinned: { type: 'bool', id: 8 },
    },
  },
  ListImagesResponse: {
    fields: {
      images: { rule: 'repeated', type: 'Image', id: 1 },
    },
  },
  ImageStatusRequest: {
    fields: {
      image: { type: 'ImageSpec', id: 1 },
      verbose: { type: 'bool', id: 2 },
    },
  },
  ImageStatusResponse: {
    fields: {
      image: { type: 'Image', id: 1 },
      info: { keyType: 'string', type: 'string', id: 2 },
    },
  },
  AuthConfig: {
    fields: {
      username: { type: 'string', id: 1 },
      password: { type: 'string', id: 2 },
      auth: { type: 'string', id: 3 },
      serverAddress: { type: 'string', id: 4 },
      identityToken: { type: 'string', id: 5 },
      registryToken: { type: 'string', id: 6 },
    },
  },
  PullImageRequest: {
    fields: {
      image: { type: 'ImageSpec', id: 1 },
      auth: { type: 'AuthConfig', id: 2 },
      sandboxConfig: { type: 'PodSandboxConfig', id: 3 },
    },
  },
  PullImageResponse: {
    fields: {
      imageRef: { type: 'string', id: 1 },
    },
  },
  RemoveImageRequest: {
    fields: {
      image: { type: 'ImageSpec', id: 1 },
    },
  },
  RemoveImageResponse: { fields: {} },
  ImageFsInfoRequest: { fields: {} },
  UInt64Value: {
    fields: {
      value: { type: 'uint64', id: 1 },
    },
  },
  FilesystemIdentifier: {
    fields: {
      mountpoint: { type: 'string', id: 1 },
    },
  },
  FilesystemUsage: {
    fields: {
      timestamp: { type: 'int64', id: 1 },
      fsId: { type: 'FilesystemIdentifier', id: 2 },
      usedBytes: { type: 'UInt64Value', id: 3 },
      inodesUsed: { type: 'UInt64Value', id: 4 },
    },
  },
  ImageFsInfoResponse: {
    fields: {
      imageFilesystems: { rule: 'repeated', type: 'FilesystemUsage', id: 1 },
      containerFilesystems: { rule: 'repeated', type: 'FilesystemUsage', id: 2 },
    },
  },
};

/** protobufjs JSON descriptor of the runtime.v1 CRI subset in cri-image.proto. */
export const CRI_IMAGE_DESCRIPTOR = {
  nested: {
    runtime: {
      nested: {
        v1: {
          nested: V1,
        },
      },
    },
  },
};
