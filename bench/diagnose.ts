/**
 * Issue 20's figure: `trustplay diagnose` of 20 lab nodes against one converged `check` of
 * playbooks/fix-registry.yaml on the same nodes (target: diagnose within 1.5x of the check). Both
 * through the built CLI (dist/), so each pays the same Node start-up; medians of a few runs.
 * Needs root and the lab's packages (it brings up a 20-node lab, ~1 GB RSS, and takes it down).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { labDown, labPrerequisites, labUp } from '../test/lab/lab.js';
import { median, root, runNode } from './util.js';

export async function benchDiagnose(nodes = 20, runs = 3): Promise<Array<Record<string, string | number>>> {
  const missing = labPrerequisites();
  if (missing.length)
    return [{ measure: `diagnose vs check, ${nodes} lab nodes`, value: `not run: ${missing.join('; ')}`, target: '' }];
  const lab = await labUp({ nodes });
  try {
    const cli = path.join(root, 'dist', 'cli', 'main.js');
    const state = path.join(lab.dir, 'bench-state');
    const common = ['-i', lab.inventoryPath, '--state-dir', state, '--lock-timeout', '120'];
    const first = await runNode([cli, 'run', 'playbooks/fix-registry.yaml', ...common]);
    if (first.code !== 0) throw new Error(`the converging run exited ${first.code}: ${first.stderr.slice(-500)}`);
    // The same playbook with verify_ca: true, which runs the pre-flight on every check (as every
    // check did before `auto` skipped converged tasks): the pre-flight's cost, side by side.
    const strict = path.join(lab.dir, 'fix-registry-verify-ca-true.yaml');
    await writeFile(
      strict,
      (await readFile(path.join(root, 'playbooks', 'fix-registry.yaml'), 'utf8')).replace(
        '        ca: "{{ registry_ca }}"\n',
        '        ca: "{{ registry_ca }}"\n        verify_ca: true\n',
      ),
    );
    const checks: number[] = [];
    const stricts: number[] = [];
    const diags: number[] = [];
    for (let i = 0; i < runs; i++) {
      const c = await runNode([cli, 'check', 'playbooks/fix-registry.yaml', ...common]);
      if (c.code !== 0) throw new Error(`converged check exited ${c.code}: ${c.stderr.slice(-500)}`);
      checks.push(c.ms);
      const v = await runNode([cli, 'check', strict, ...common]);
      if (v.code !== 0)
        throw new Error(`converged check with verify_ca: true exited ${v.code}: ${v.stderr.slice(-500)}`);
      stricts.push(v.ms);
      const d = await runNode([
        cli,
        'diagnose',
        lab.registries.registry.host,
        '-i',
        lab.inventoryPath,
        '--format',
        'json',
      ]);
      // node1 (the master) is not made to trust the registry by the playbook: diagnose finds it (exit 2).
      if (d.code !== 0 && d.code !== 2) throw new Error(`diagnose exited ${d.code}: ${d.stderr.slice(-500)}`);
      diags.push(d.ms);
    }
    const ratio = median(diags) / median(checks);
    return [
      {
        measure: `converged check of fix-registry.yaml, ${nodes} lab nodes (median of ${runs})`,
        value: `${median(checks).toFixed(0)} ms`,
        target: '',
      },
      {
        measure: `the same check with verify_ca: true (the pre-flight every time)`,
        value: `${median(stricts).toFixed(0)} ms`,
        target: '',
      },
      {
        measure: `diagnose REGISTRY, ${nodes} lab nodes (median of ${runs})`,
        value: `${median(diags).toFixed(0)} ms`,
        target: '',
      },
      { measure: 'diagnose / converged check', value: `${ratio.toFixed(2)}x`, target: '<= 1.5x' },
    ];
  } finally {
    await labDown(lab);
  }
}
