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
    expect(registryFromStatusInfo(info)).toEqual({ configPath: '/etc/containerd/certs.d', authKeys: [] });
    expect(registryFromStatusInfo({ config: JSON.stringify({ registry: { mirrors: {} } }) })).toEqual({
      configPath: '',
      authKeys: [],
    });
  });

  it('names the registries it holds credentials for (1.6 and 1.7 as captured from the lab), never their values', () => {
    const auth = { username: 'u', password: 'p', auth: '', identitytoken: '' };
    const info = {
      config: JSON.stringify({
        registry: {
          configPath: '',
          mirrors: {},
          configs: { 'registry.test:5000': { auth, tls: null }, 'tls.only:443': { auth: null, tls: {} } },
          auths: { 'old.example': auth },
          headers: {},
        },
      }),
    };
    const r = registryFromStatusInfo(info);
    expect(r).toEqual({ configPath: '', authKeys: ['registry.test:5000', 'old.example'] });
    expect(JSON.stringify(r)).not.toMatch(/"u"|"p"/);
  });

  it('says nothing (null) when the status carries no registry settings (2.x) or no parsable config', () => {
    expect(registryFromStatusInfo({ config: JSON.stringify({ containerd: {} }) })).toBeNull();
    expect(registryFromStatusInfo({ config: 'not json' })).toBeNull();
    expect(registryFromStatusInfo({})).toBeNull();
  });
});
