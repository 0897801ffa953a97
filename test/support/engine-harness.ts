/** Runs a playbook text through the loader and the engine with the test modules, collecting output. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { afterAll } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runPlaybook, type RunResult } from '../../src/engine/run.js';
import type { RunEvent } from '../../src/engine/events.js';
import { parseInventory, type Inventory } from '../../src/playbook/inventory.js';
import { parsePlaybook } from '../../src/playbook/playbook.js';
import { JsonCollector, JsonlReporter, TeeReporter } from '../../src/report/json.js';
import { PlainReporter } from '../../src/report/plain.js';
import { plain } from '../../src/report/format.js';
import { RunSnapshot, SnapshotStore } from '../../src/snapshots/store.js';
import { testModules, testModuleSchemas } from './test-modules.js';

export interface HarnessResult {
  result: RunResult;
  exitCode: number;
  events: RunEvent[];
  text: string;
  jsonl: string;
  json: NonNullable<JsonCollector['report']>;
  stateDir: string;
}

// State dirs made here are removed when the test file is done (imported at collection time, so
// this hook belongs to the importing file's root suite).
const made: string[] = [];
afterAll(async () => {
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

export function inventoryFrom(yamlText: string): Inventory {
  const r = parseInventory('inventory.yaml', yamlText);
  if (!r.inventory) throw new Error(r.errors.map((e) => `${e.line}:${e.col} ${e.message}`).join('\n'));
  return r.inventory;
}

export async function runText(
  playbookText: string,
  inventory: Inventory,
  opts: {
    check?: boolean;
    diff?: boolean;
    forks?: number;
    tags?: string[];
    extraVars?: Record<string, unknown>;
    stateDir?: string;
    acceptNewHostKeys?: boolean;
  } = {},
): Promise<HarnessResult> {
  const loaded = parsePlaybook('playbook.yaml', playbookText, {
    inventory,
    extraModules: testModuleSchemas,
    ...(opts.extraVars ? { extraVars: opts.extraVars } : {}),
  });
  if (!loaded.playbook) throw new Error(loaded.errors.map((e) => `${e.line}:${e.col} ${e.message}`).join('\n'));
  const events: RunEvent[] = [];
  const textOut = new PassThrough();
  const jsonlOut = new PassThrough();
  let text = '';
  let jsonl = '';
  textOut.on('data', (d: Buffer) => (text += d.toString()));
  jsonlOut.on('data', (d: Buffer) => (jsonl += d.toString()));
  const collector = new JsonCollector();
  const reporter = new TeeReporter([
    { event: (e) => events.push(e) },
    collector,
    new PlainReporter({ out: textOut, style: plain }),
    new JsonlReporter(jsonlOut),
  ]);
  const stateDir = opts.stateDir ?? (await mkdtemp(join(tmpdir(), 'trustplay-state-')));
  if (!opts.stateDir) made.push(stateDir);
  const snapshot = new RunSnapshot(new SnapshotStore(stateDir), { runId: `test-${Date.now()}`, command: 'run test' });
  const check = opts.check ?? false;
  const result = await runPlaybook({
    playbook: loaded.playbook,
    inventory,
    playHosts: loaded.playHosts,
    modules: testModules,
    reporter,
    check,
    diff: opts.diff ?? false,
    forks: opts.forks ?? 50,
    extraVars: opts.extraVars ?? {},
    snapshot,
    ...(opts.tags ? { tags: opts.tags } : {}),
    ...(opts.acceptNewHostKeys !== undefined ? { acceptNewHostKeys: opts.acceptNewHostKeys } : {}),
  });
  await snapshot.complete();
  return { result, exitCode: result.outcome.code, events, text, jsonl, json: collector.report!, stateDir };
}

export async function writeTemp(dir: string, name: string, text: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
}
