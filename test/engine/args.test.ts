/** Run-time arguments: interpolated, validated by the precompiled validators, schema defaults filled in. */
import { describe, expect, it } from 'vitest';
import { resolveArgs } from '../../src/engine/args.js';
import { moduleArgSchemas } from '../../src/playbook/schema/modules.js';

const schema = (m: keyof typeof moduleArgSchemas) => moduleArgSchemas[m] as unknown as Record<string, unknown>;

describe('resolveArgs', () => {
  it('fills every schema default after interpolation', () => {
    const args = resolveArgs(
      'containerd.tls',
      schema('containerd.tls'),
      { registry: '{{ reg }}', ca: '/ca.pem' },
      { reg: 'registry.test:5000' },
    );
    expect(args).toEqual({
      registry: 'registry.test:5000',
      ca: '/ca.pem',
      style: 'auto',
      migrate_legacy: false,
      verify_ca: 'auto',
      config_path: '/etc/containerd/certs.d',
      config_file: '/etc/containerd/config.toml',
      restart_command: 'systemctl restart containerd',
      restart_timeout: 60,
      state: 'present',
    });
    expect(resolveArgs('node.creds.wipe', schema('node.creds.wipe'), { registry: 'r.test' }, {})).toMatchObject({
      paths: [
        '/root/.docker/config.json',
        '/var/lib/kubelet/config.json',
        '/run/containers/0/auth.json',
        '/root/.config/containers/auth.json',
      ],
      containerd_auth: true,
      all: false,
    });
  });

  it('refuses wrong values and exclusive arguments with one sentence', () => {
    expect(() =>
      resolveArgs('image.pull.verify', schema('image.pull.verify'), { image: 'x', retries: '{{ n }}' }, { n: 'three' }),
    ).toThrow(/image.pull.verify: argument `retries` must be integer/);
    expect(() =>
      resolveArgs('containerd.tls', schema('containerd.tls'), { registry: 'r', ca: 'x', skip_verify: true }, {}),
    ).toThrow(/`ca` and `skip_verify` are mutually exclusive/);
    expect(() => resolveArgs('image.rmi', schema('image.rmi'), { image: '{{ missing }}' }, {})).toThrow(
      /undefined variable `missing`/,
    );
  });
});
