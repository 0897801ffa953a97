/**
 * registries.conf as containers/image loads it: the order of the files (system file, its drop-ins
 * by byte order, root's drop-ins; root's own file instead of the system's where it exists) and the
 * `credential-helpers` list the last file that sets it gives. The precedence was read from
 * containers-registries.conf.d(5) and what skopeo 1.9.3 opens (strace), and is proven end to end
 * with real skopeo in test/e2e/containers-tls.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { NodeEntry, NodeRead } from '../connection/read-files.js';
import {
  AUTH_FILE_HELPER,
  credentialHelpers,
  registriesConfFiles,
  rootRegistriesConfFiles,
} from './registries-conf.js';

const SYS = '/etc/containers/registries.conf';
const ROOT = '/root/.config/containers/registries.conf';

function read(files: Record<string, string>, others: NodeEntry[] = []): NodeRead {
  const entries = new Map<string, NodeEntry>();
  for (const [path, text] of Object.entries(files))
    entries.set(path, {
      kind: 'file',
      path,
      content: Buffer.from(text),
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: text.length,
    });
  for (const e of others) entries.set(e.path, e);
  return { entries, records: [] };
}

const names = (fs: Array<[string, Buffer]>): string[] => fs.map(([p]) => p);

describe('registries.conf files, in the order containers/image applies them', () => {
  it('the file, then its drop-ins by byte order (not the locale): only regular *.conf directly in the directory', () => {
    const r = read(
      {
        [SYS]: '',
        [`${SYS}.d/b.conf`]: '',
        [`${SYS}.d/B.conf`]: '',
        [`${SYS}.d/a.conf`]: '',
        [`${SYS}.d/000-shortnames.conf`]: '',
        [`${SYS}.d/notes.txt`]: '',
        [`${SYS}.d/sub/x.conf`]: '',
      },
      [{ kind: 'link', path: `${SYS}.d/linked.conf` }],
    );
    expect(names(registriesConfFiles(r, SYS))).toEqual([
      SYS,
      `${SYS}.d/000-shortnames.conf`,
      `${SYS}.d/B.conf`,
      `${SYS}.d/a.conf`,
      `${SYS}.d/b.conf`,
    ]);
  });

  it("as root: the system's files then root's drop-ins; root's own file replaces the system's and its drop-ins", () => {
    const base = { [SYS]: '', [`${SYS}.d/a.conf`]: '', [`${ROOT}.d/z.conf`]: '' };
    expect(names(rootRegistriesConfFiles(read(base), SYS))).toEqual([SYS, `${SYS}.d/a.conf`, `${ROOT}.d/z.conf`]);
    expect(names(rootRegistriesConfFiles(read({ ...base, [ROOT]: '' }), SYS))).toEqual([ROOT, `${ROOT}.d/z.conf`]);
    expect(names(rootRegistriesConfFiles(read({}), SYS))).toEqual([]);
  });
});

describe('credential-helpers', () => {
  const file = (path: string, text: string): [string, Buffer] => [path, Buffer.from(text)];

  it('the last file that sets the list wins, with that file; unset, the auth.json files alone', () => {
    expect(credentialHelpers([])).toEqual({ helpers: [AUTH_FILE_HELPER], file: undefined, problems: [] });
    const r = credentialHelpers([
      file(SYS, 'credential-helpers = ["containers-auth.json", "secretservice"]\n'),
      file(`${SYS}.d/50-ecr.conf`, 'credential-helpers = ["ecr-login"]\n'),
      file(`${SYS}.d/90-other.conf`, 'unqualified-search-registries = ["docker.io"]\n'),
    ]);
    expect(r).toEqual({ helpers: ['ecr-login'], file: `${SYS}.d/50-ecr.conf`, problems: [] });
  });

  it('a file that is not TOML is said, and the others still count', () => {
    const r = credentialHelpers([
      file(SYS, 'credential-helpers = ["pass"]\n'),
      file(`${SYS}.d/broken.conf`, 'credential-helpers = [\n'),
    ]);
    expect(r.helpers).toEqual(['pass']);
    expect(r.file).toBe(SYS);
    expect(r.problems).toEqual([{ file: `${SYS}.d/broken.conf`, message: expect.stringMatching(/is not valid TOML/) }]);
  });
});
