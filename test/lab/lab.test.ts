import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { labDown, labPrerequisites, labUp } from './lab.js';

const tmp: string[] = [];
afterAll(() => {
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});
const tempDir = (): string => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'tp-lab-unit-'));
  tmp.push(d);
  return d;
};

describe('lab guards', () => {
  it('refuses to start without root, in one sentence, and creates nothing', async () => {
    const dir = path.join(tempDir(), 'never');
    let out: string;
    if (process.getuid?.() === 0) {
      // Drop to nobody for this one child: the check must hold for a real non-root user. nobody
      // cannot read a checkout in a 0700 directory (a clone under /root or a private home), so the
      // child runs one bundled file from a world-readable temp dir, not the checkout's sources.
      const scriptDir = tempDir();
      chmodSync(scriptDir, 0o755);
      const entry = path.join(scriptDir, 'nonroot.ts');
      writeFileSync(
        entry,
        `import { labUp, labPrerequisites } from ${JSON.stringify(fileURLToPath(new URL('./lab.ts', import.meta.url)))};
console.log(JSON.stringify(labPrerequisites()));
try { await labUp({ dir: ${JSON.stringify(dir)} }); console.log('started'); } catch (e) { console.log(e.message); }
`,
      );
      const bundle = path.join(scriptDir, 'nonroot.mjs');
      await build({
        entryPoints: [entry],
        outfile: bundle,
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        // Bundled CommonJS dependencies call require(); ESM output has none of its own.
        banner: {
          js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
        },
        logLevel: 'error',
      });
      chmodSync(bundle, 0o644);
      out = await new Promise((resolve, reject) =>
        execFile(
          'setpriv',
          ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', 'HOME=/tmp', process.execPath, bundle],
          { cwd: scriptDir },
          (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout)),
        ),
      );
    } else {
      const missing = labPrerequisites();
      const message = await labUp({ dir }).then(
        () => 'started',
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      );
      out = `${JSON.stringify(missing)}\n${message}\n`;
    }
    const [missing, message] = out.trim().split('\n');
    expect(JSON.parse(missing ?? '[]')).toContain('the lab needs root (it creates mount namespaces); run it as root');
    expect(message).toMatch(/^Cannot start the lab: .*needs root.*\.$/);
    expect(existsSync(dir)).toBe(false);
  });

  it('labDown leaves a directory without lab.json alone', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'precious'), 'keep me');
    await expect(labDown(dir)).rejects.toThrow(/is not a lab directory/);
    expect(readFileSync(path.join(dir, 'precious'), 'utf8')).toBe('keep me');
  });

  it.skipIf(labPrerequisites().length > 0)(
    'labUp refuses a non-empty directory or one that nodes mount over',
    async () => {
      const dir = tempDir();
      writeFileSync(path.join(dir, 'something'), '');
      await expect(labUp({ dir })).rejects.toThrow(/is not empty/);
      expect(readFileSync(path.join(dir, 'something'), 'utf8')).toBe('');
      await expect(labUp({ dir: '/root/trustplay-lab' })).rejects.toThrow(/is under \/root, which nodes mount over/);
      expect(existsSync('/root/trustplay-lab')).toBe(false);
      await expect(labUp({ nodes: 0, dir: path.join(dir, 'x') })).rejects.toThrow(/1 to 200 nodes/);
    },
  );
});
