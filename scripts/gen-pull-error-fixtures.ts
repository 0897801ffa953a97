/**
 * Records what containerd (CRI, 1.6/1.7/2.1), Docker Engine and containers/image (skopeo) really
 * say for every pull failure the lab can produce, into test/fixtures/pull-errors/<runtime>-<version>.json
 * (test/lab/pull-errors.ts says how). `--check` compares with the committed files instead and fails
 * on any drift, so the fixtures the classifier's unit tests read never disagree with the binaries.
 *
 * Needs root and the lab's packages plus docker.io and skopeo; brings up its own lab (or uses the
 * one TRUSTPLAY_LAB_DIR names, which must be a PULL_ERRORS_LAB) and takes it down.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { labDown, labState, labUp, type Lab } from '../test/lab/lab.js';
import {
  fixtureText,
  PULL_ERRORS_DIR,
  PULL_ERRORS_LAB,
  pullErrorsDrift,
  recordPullErrors,
} from '../test/lab/pull-errors.js';

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const shared = process.env.TRUSTPLAY_LAB_DIR;
  const lab: Lab = shared ? labState(shared) : await labUp({ ...PULL_ERRORS_LAB, log });
  let code = 0;
  try {
    const recorded = new Map(
      [...(await recordPullErrors(lab, log)).entries()].map(([f, e]) => [f, fixtureText(e)] as const),
    );
    const dir = fileURLToPath(PULL_ERRORS_DIR);
    if (check) {
      const drift = pullErrorsDrift(recorded, dir);
      for (const d of drift) process.stdout.write(`drift: ${d}\n`);
      process.stdout.write(`${recorded.size} runtimes checked: ${drift.length} drifted\n`);
      code = drift.length > 0 ? 1 : 0;
    } else {
      for (const [f, text] of recorded) writeFileSync(`${dir}/${f}`, text);
      process.stdout.write(`${[...recorded.keys()].join(', ')} written\n`);
    }
  } finally {
    if (!shared) await labDown(lab);
  }
  process.exitCode = code;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
