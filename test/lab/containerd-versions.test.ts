import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { debianArchive, parseContainerdVersions } from './containerd-versions.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tp-ctrd-versions-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function etcApt(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp, name);
  mkdirSync(path.join(dir, 'sources.list.d'), { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(path.join(dir, f), text);
  return dir;
}

describe('lab containerd versions', () => {
  it('takes one version or a list, and names the versions it runs when given another', () => {
    expect(parseContainerdVersions('2.1')).toEqual(['2.1']);
    expect(parseContainerdVersions('1.6, 1.7,2.1')).toEqual(['1.6', '1.7', '2.1']);
    expect(() => parseContainerdVersions('1.6,2.0')).toThrow(
      'Unknown containerd version 2.0: the lab runs 1.6, 1.7, 2.1.',
    );
    expect(() => parseContainerdVersions(',')).toThrow(/\(none given\)/);
  });

  it("finds the main Debian archive of this machine's apt sources (deb822 and one-line), never the security one", () => {
    const deb822 = etcApt('deb822', {
      'sources.list.d/debian.sources': [
        'Types: deb',
        'URIs: http://deb.debian.org/debian-security',
        'Suites: bookworm-security',
        'Components: main',
        '',
        'Types: deb',
        'URIs: http://mirror.example/debian',
        'Suites: bookworm bookworm-updates',
        'Components: main',
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
        '',
      ].join('\n'),
      'sources.list.d/other.list': 'deb https://packages.example/apt stable main\n',
    });
    expect(debianArchive(deb822)).toEqual({
      uri: 'http://mirror.example/debian',
      signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg',
    });
    const oneLine = etcApt('one-line', {
      'sources.list': '# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://ftp.example/debian bookworm main contrib\n',
    });
    expect(debianArchive(oneLine)).toEqual({ uri: 'http://ftp.example/debian', signedBy: '/k.gpg' });
    expect(() => debianArchive(etcApt('none', {}))).toThrow(/No Debian archive with the main component/);
  });
});
