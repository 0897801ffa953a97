/** Reading what the running containerd has loaded from its CRI Status (verbose `info`). */
import { describe, expect, it } from 'vitest';
import { registryFromStatusInfo } from './daemon-config.js';

describe('registryFromStatusInfo', () => {
  it("reads config_path from containerd 1.6's verbose status (info.config, as captured from the lab)", () => {
    const info = {
      config: JSON.stringify({
        containerd: { snapshotter: 'overlayfs' },
        registry: {
          configPath: '/etc/containerd/certs.d',
          mirrors: {},
          configs: {},
          auths: {},
          headers: { 'User-Agent': ['containerd/1.6.20~ds1'] },
        },
      }),
      golang: 'go1.19.8',
    };
    expect(registryFromStatusInfo(info)).toEqual({ configPath: '/etc/containerd/certs.d' });
    expect(registryFromStatusInfo({ config: JSON.stringify({ registry: { mirrors: {} } }) })).toEqual({
      configPath: '',
    });
  });

  it('says nothing (null) when the status carries no registry settings (2.x) or no parsable config', () => {
    expect(registryFromStatusInfo({ config: JSON.stringify({ containerd: {} }) })).toBeNull();
    expect(registryFromStatusInfo({ config: 'not json' })).toBeNull();
    expect(registryFromStatusInfo({})).toBeNull();
  });
});
