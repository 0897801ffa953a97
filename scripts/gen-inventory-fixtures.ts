/**
 * Regenerates the differential suite's expected results from the real Ansible: for every inventory
 * in test/fixtures/inventory-diff/cases, `ansible-inventory --list` and `--graph`, its warnings,
 * and for each pattern of the case's `.patterns` file the hosts `ansible PATTERN --list-hosts`
 * selects, in order. `--check` compares with the committed fixtures instead of writing them and
 * fails on any drift (CI runs it, so a fixture can never disagree with the Ansible it claims).
 *
 * Needs ansible-core (Debian package `ansible-core`, 2.14 on bookworm).
 */
import { execFile } from 'node:child_process';
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  existsSync,
  mkdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../test/fixtures/inventory-diff/', import.meta.url));
const CASES = join(ROOT, 'cases');
const EXPECTED = join(ROOT, 'expected');

export interface Expected {
  /** Ansible could not parse the file (ANSIBLE_INVENTORY_UNPARSED_FAILED). */
  ansibleFails: boolean;
  list?: unknown;
  graph?: string;
  warnings: string[];
  patterns: Record<string, { hosts: string[] } | { error: true }>;
}

// Only the plugin for the file's format, a fatal parse failure, an empty HOME (no user config), no
// colour: the outcome depends on the file alone.
function ansibleEnv(file: string, home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    ANSIBLE_CONFIG: join(home, 'ansible.cfg'),
    HOME: home,
    LANG: 'C.UTF-8',
    ANSIBLE_INVENTORY_ENABLED: extname(file) === '.ini' ? 'ini' : 'yaml',
    ANSIBLE_INVENTORY_UNPARSED_FAILED: 'true',
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_LOCALHOST_WARNING: 'false',
    ANSIBLE_DEPRECATION_WARNINGS: 'false',
  };
}

function runIn(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd = CASES,
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, cwd, maxBuffer: 64 << 20, timeout: 120_000 }, (e, out, err) => {
      const code = e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0;
      resolve({ code, out, err });
    });
  });
}

/** Ansible's warnings (unwrapped), with the case's path made relative to the fixtures. */
function warningsOf(stderr: string, file: string, dir: string): string[] {
  const out: string[] = [];
  for (const line of stderr.split('\n')) {
    if (line.startsWith('[WARNING]: ')) out.push(line.slice('[WARNING]: '.length).trim());
    // textwrap breaks after a hyphen too: such a line continues the word.
    else if (out.length && line.trim() && !line.startsWith('['))
      out[out.length - 1] += (out[out.length - 1]!.endsWith('-') ? '' : ' ') + line.trim();
  }
  // Ansible names the file by its absolute path: keep only the case's name.
  return out.map((w) =>
    w
      .split(dir + '/')
      .join('')
      .split(file)
      .join(`cases/${file}`),
  );
}

// Each case runs as a copy in a fresh temporary directory (a path of the same length on every
// machine): Ansible wraps warnings at 79 columns, also inside the absolute path it names, so the
// same path length gives the same text wherever the repository is checked out.
async function expectedFor(path: string, home: string): Promise<Expected> {
  const file = basename(path);
  const env = ansibleEnv(file, home);
  const work = mkdtempSync('/tmp/tp-inv-');
  copyFileSync(path, join(work, file));
  try {
    return await expectedIn(work, path, file, env);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function expectedIn(work: string, path: string, file: string, env: NodeJS.ProcessEnv): Promise<Expected> {
  const run = (cmd: string, args: string[], e: NodeJS.ProcessEnv) => runIn(cmd, args, e, work);
  const list = await run('ansible-inventory', ['-i', file, '--list'], env);
  if (list.code !== 0) return { ansibleFails: true, warnings: [], patterns: {} };
  const graph = await run('ansible-inventory', ['-i', file, '--graph'], env);
  const patternsFile = path.replace(/\.(ya?ml|ini)$/, '.patterns');
  const patterns: Expected['patterns'] = {};
  if (existsSync(patternsFile)) {
    for (const p of readFileSync(patternsFile, 'utf8').split('\n').filter(Boolean)) {
      const r = await run('ansible', [p, '-i', file, '--list-hosts'], env);
      if (r.code !== 0) patterns[p] = { error: true };
      else
        patterns[p] = {
          hosts: r.out
            .split('\n')
            .slice(1)
            .map((l) => l.trim())
            .filter(Boolean),
        };
    }
  }
  return {
    ansibleFails: false,
    list: JSON.parse(list.out),
    graph: graph.out.trimEnd(),
    warnings: warningsOf(list.err, file, work),
    patterns,
  };
}

async function main(): Promise<number> {
  const check = process.argv.includes('--check');
  const version = await runIn('ansible-inventory', ['--version'], process.env);
  if (version.code !== 0) {
    process.stderr.write('ansible-inventory is not installed: apt-get install ansible-core\n');
    return 1;
  }
  const files = readdirSync(CASES)
    .filter((f) => /\.(ya?ml|ini)$/.test(f))
    .sort();
  const home = mkdtempSync(join(tmpdir(), 'trustplay-ansible-home-'));
  writeFileSync(join(home, 'ansible.cfg'), '[defaults]\n');
  mkdirSync(EXPECTED, { recursive: true });
  let drift = 0;
  try {
    // A few at a time: each Ansible start costs about a second of CPU.
    const queue = [...files];
    const worker = async () => {
      for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
        const exp = await expectedFor(join(CASES, f), home);
        const text = JSON.stringify(exp, null, 2) + '\n';
        const target = join(EXPECTED, basename(f).replace(/\.(ya?ml|ini)$/, '') + '.json');
        if (check) {
          const have = existsSync(target) ? readFileSync(target, 'utf8') : '';
          if (have !== text) {
            drift++;
            process.stderr.write(
              `${f}: the committed fixture differs from what ${version.out.split('\n')[0]} gives now: run \`node --import tsx scripts/gen-inventory-fixtures.ts\` and review the change\n`,
            );
          }
        } else writeFileSync(target, text);
      }
    };
    await Promise.all([worker(), worker(), worker()]);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
  process.stdout.write(
    `${files.length} inventories ${check ? `checked against ${version.out.split('\n')[0]}: ${drift} drifted` : 'regenerated'}\n`,
  );
  return drift ? 1 : 0;
}

main().then((code) => (process.exitCode = code));
