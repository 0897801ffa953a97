/**
 * The pull-error fixtures (test/fixtures/pull-errors/*.json, which src/cri/pull-error-fixtures.test.ts
 * classifies) are still what the installed binaries say: containerd 1.6/1.7/2.1 through the CRI,
 * dockerd through the Engine API, skopeo on a node. The recorder (test/lab/pull-errors.ts, the same
 * one `node --import tsx scripts/gen-pull-error-fixtures.ts` runs to rewrite them) pulls every
 * failure variant on every runtime of one lab, and any difference from the committed files fails
 * here with the old and new text. Prints the runtime x variant table of what the classifier makes
 * of each text.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { classifyPullError } from '../../src/cri/classify.js';
import {
  fixtureText,
  PULL_ERRORS_DIR,
  PULL_ERRORS_LAB,
  pullErrorsDrift,
  recordPullErrors,
  type PullErrorEntry,
} from '../lab/pull-errors.js';
import { describeLab, useLab } from '../support/lab-fixture.js';

describeLab('pull-error fixtures match the real runtimes (lab: containerd 1.6+dockerd, 1.7, 2.1; skopeo)', () => {
  const env = useLab(PULL_ERRORS_LAB);

  it('every runtime says what its fixture file recorded, for every variant', async () => {
    const started = Date.now();
    const recorded = await recordPullErrors(env.lab, (s) => process.stdout.write(`pull-errors: ${s}\n`));
    const texts = new Map([...recorded.entries()].map(([f, e]) => [f, fixtureText(e)] as const));
    const drift = pullErrorsDrift(texts, fileURLToPath(PULL_ERRORS_DIR));
    // The table for the issue's note: what each runtime's real text is classified as.
    const files = [...recorded.keys()];
    const rows = recorded.get(files[0]!)!.map((e, i) => {
      const cells = files.map((f) => {
        const entry = recorded.get(f)![i]!;
        const runtime = f.startsWith('docker-') ? 'docker' : f.startsWith('skopeo-') ? 'containers' : 'containerd';
        return entry.raw === undefined ? 'unproducible' : classifyPullError(entry.raw, runtime).class;
      });
      return `| ${e.variant} | ${e.expectedClass} | ${cells.join(' | ')} |`;
    });
    process.stdout.write(
      `\n| variant | expected | ${files.map((f) => f.replace(/\.json$/, '')).join(' | ')} |\n|---|---|${files.map(() => '---').join('|')}|\n${rows.join('\n')}\n` +
        `recorded and compared in ${Date.now() - started} ms\n`,
    );
    expect(drift).toEqual([]);
    // And the committed files are byte for byte what this run produced.
    for (const [f, text] of texts) {
      const committed = JSON.parse(readFileSync(new URL(f, PULL_ERRORS_DIR), 'utf8')) as PullErrorEntry[];
      expect(fixtureText(committed), f).toBe(text);
    }
  }, 600_000);
});
