/**
 * `npm ci` runs no dependency install script and warns about none: every package in the lock file
 * that has one is decided in package.json's `allowScripts` (npm 11). Each is denied, for these
 * reasons (none is needed; each only builds or checks something optional):
 * - esbuild: its postinstall only verifies the platform binary and swaps the JS shim for it; the
 *   binary comes from the @esbuild/<platform> optional dependency either way (tsx uses the API).
 * - ssh2: builds an optional native crypto binding with node-gyp; ssh2 falls back to Node's crypto.
 * - cpu-features: a native addon ssh2 uses, if present, to order ciphers by CPU support; optional.
 * - protobufjs: its postinstall only warns about dependents' version schemes.
 * Denied means no compiler, no network and the same tree on every machine.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

const read = (f: string) => JSON.parse(readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8')) as unknown;

it('every dependency with an install script is decided in allowScripts (so npm ci is quiet and deterministic)', () => {
  const lock = read('package-lock.json') as { packages: Record<string, { hasInstallScript?: boolean }> };
  const withScripts = Object.entries(lock.packages)
    .filter(([path, p]) => path !== '' && p.hasInstallScript)
    .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length))
    .sort();
  const pkg = read('package.json') as { allowScripts?: Record<string, boolean> };
  expect(withScripts.length).toBeGreaterThan(0);
  for (const name of withScripts) expect(pkg.allowScripts?.[name], name).toBe(false);
});
