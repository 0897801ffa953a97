import { describe, expect, it } from 'vitest';
import {
  describeVersionSource,
  parseContainerdVersion,
  parseVersionWord,
  pathMismatchWarning,
} from './daemon-version.js';

describe('the running containerd version', () => {
  it('parses what the CRI reports (v-prefixed, Debian and +unknown builds) and `containerd --version` lines', () => {
    expect(parseVersionWord('v2.1.9')).toMatchObject({ major: 2, minor: 1 });
    expect(parseVersionWord('2.1.9+unknown')).toMatchObject({ major: 2, minor: 1 });
    expect(parseVersionWord('1.6.20~ds1')).toMatchObject({ major: 1, minor: 6 });
    expect(parseVersionWord('not-a-version')).toBeNull();
    expect(parseContainerdVersion('containerd github.com/containerd/containerd/v2 2.1.9+unknown ')).toMatchObject({
      major: 2,
      minor: 1,
    });
  });

  it('warns only when PATH’s containerd is another major.minor than the running daemon', () => {
    const running = {
      version: { raw: 'containerd 2.1.9', major: 2, minor: 1 },
      source: { kind: 'cri', socket: '/s' },
    } as const;
    expect(pathMismatchWarning(running, { raw: 'x', major: 1, minor: 6 }, 'n1')).toBe(
      'n1: the running containerd is 2.1 (the running daemon (CRI Version on /s)) but `containerd` on PATH is 1.6; trustplay follows the running daemon (k3s, RKE2 and upgrades in progress differ like this).',
    );
    expect(pathMismatchWarning(running, { raw: 'x', major: 2, minor: 1 }, 'n1')).toBeUndefined();
    expect(pathMismatchWarning(running, null, 'n1')).toBeUndefined();
    expect(
      pathMismatchWarning({ ...running, source: { kind: 'path' } }, { raw: 'x', major: 1, minor: 6 }, 'n1'),
    ).toBeUndefined();
    expect(describeVersionSource({ kind: 'process', pid: 42, exe: '/usr/bin/containerd' })).toBe(
      "the running daemon's executable (pid 42, /usr/bin/containerd)",
    );
  });
});
