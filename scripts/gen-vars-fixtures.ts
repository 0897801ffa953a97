/**
 * Records how the real Ansible resolves the variables of test/fixtures/git-repo (a playbook
 * repository with group_vars/host_vars beside the inventory and the playbook, vars_files and
 * imports), into test/fixtures/git-repo.expected.json:
 * - `ansible-inventory --list --playbook-dir playbooks`: the inventory's hosts and host variables;
 * - `ansible-playbook --list-hosts`: each play, in order, and its hosts;
 * - every probed variable of every play and host, as the play sees it: a copy of the repository
 *   whose imported task files are replaced by one `debug` task printing them (the plays, their
 *   vars, vars_files and imports stay as written), run with the json callback and no fact
 *   gathering, so nothing connects anywhere.
 * `--check` compares with the committed file instead and fails on drift (CI runs it).
 *
 * Needs ansible-core (Debian package `ansible-core`).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../test/fixtures/git-repo/', import.meta.url));
const EXPECTED = fileURLToPath(new URL('../test/fixtures/git-repo.expected.json', import.meta.url));

/** The variables compared, each crossing a precedence boundary (see the fixture's README). */
export const PROBED_VARS = [
  'ansible_user',
  'registry',
  'registry_ca',
  'env_probe',
  'tier_probe',
  'role_probe',
  'host_probe',
  'layer_probe',
  'play_probe',
  'image_tag',
  'restart_timeout',
  'verify_image',
  'vault_file_probe',
  'vault_inline_probe',
  'format_probe',
  'json_dir_probe',
];

/** Marks a variable a play does not define (Ansible's debug prints it in its place). */
export const UNDEFINED = '<undefined>';

export interface ExpectedVars {
  ansible: string;
  inventory: unknown;
  plays: Array<{ name: string; hosts: string[]; vars: Record<string, Record<string, unknown>> }>;
}

function run(cmd: string, args: string[], cwd: string, home: string, extra: NodeJS.ProcessEnv = {}) {
  return new Promise<string>((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        cwd,
        env: {
          PATH: process.env['PATH'] ?? '/usr/bin:/bin',
          HOME: home,
          ANSIBLE_CONFIG: join(home, 'ansible.cfg'),
          // The fixture's vault-encrypted vars file and inline !vault value.
          ANSIBLE_VAULT_PASSWORD_FILE: join(cwd, 'vault-pass'),
          ANSIBLE_LOCAL_TEMP: join(home, 'tmp'),
          LANG: 'C.UTF-8',
          ANSIBLE_NOCOLOR: '1',
          ANSIBLE_LOCALHOST_WARNING: 'false',
          ANSIBLE_DEPRECATION_WARNINGS: 'false',
          ANSIBLE_GATHERING: 'explicit',
          ...extra,
        },
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

/** `play #1 (workers): NAME\tTAGS: [...]` then `hosts (N):` and one host per line. */
function parseListHosts(out: string): Array<{ name: string; hosts: string[] }> {
  const plays: Array<{ name: string; hosts: string[] }> = [];
  for (const block of out.split(/\n(?=\s*play #\d+)/)) {
    const head = /play #\d+ \([^)]*\): (.*?)\tTAGS/.exec(block);
    if (!head) continue;
    const hosts = /hosts \(\d+\):\n((?:\s+\S+\n?)*)/.exec(block);
    plays.push({
      name: head[1]!,
      hosts: (hosts?.[1] ?? '')
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean),
    });
  }
  return plays;
}

export async function resolveWithAnsible(): Promise<ExpectedVars> {
  const work = mkdtempSync(join(tmpdir(), 'trustplay-vars-fixture-'));
  try {
    const home = join(work, 'home');
    const repo = join(work, 'repo');
    cpSync(REPO, repo, { recursive: true });
    mkdirSync(home);
    writeFileSync(join(home, 'ansible.cfg'), '[defaults]\n');
    const version = (await run('ansible', ['--version'], repo, home)).split('\n')[0]!;
    const inventory = JSON.parse(
      await run(
        'ansible-inventory',
        ['-i', 'inventory/hosts.yaml', '--list', '--playbook-dir', 'playbooks'],
        repo,
        home,
      ),
    ) as unknown;
    const msg = `{{ {${PROBED_VARS.map((v) => `'${v}': ${v} | default('${UNDEFINED}')`).join(', ')}} }}`;
    const probe = `- name: probe\n  ansible.builtin.debug:\n    msg: ${JSON.stringify(msg)}\n`;
    for (const f of readdirSync(join(repo, 'playbooks', 'tasks')))
      writeFileSync(join(repo, 'playbooks', 'tasks', f), probe);
    // trustplay's modules are unknown to Ansible: the plays are listed with the probe in place.
    const listed = parseListHosts(
      await run('ansible-playbook', ['-i', 'inventory/hosts.yaml', 'playbooks/site.yaml', '--list-hosts'], repo, home),
    );
    // The default callback (ansible-core has no json one): `PLAY [name]`, then for each host
    // `ok: [host] => {` and the result as indented JSON up to a closing brace at column 0.
    const out = await run('ansible-playbook', ['-i', 'inventory/hosts.yaml', 'playbooks/site.yaml'], repo, home, {
      ANSIBLE_CALLBACK_RESULT_FORMAT: 'json',
    });
    const plays = out
      .split(/^PLAY \[/m)
      .slice(1)
      .filter((b) => !b.startsWith('RECAP]'))
      .map((block, i) => {
        const vars: Record<string, Record<string, unknown>> = {};
        for (const m of block.matchAll(/^ok: \[([^\]]+)\] => (\{\n[\s\S]*?\n\})$/gm))
          vars[m[1]!] = (JSON.parse(m[2]!) as { msg: Record<string, unknown> }).msg;
        // Hosts answer in whatever order Ansible's forks finish: recorded by name.
        const sorted = Object.fromEntries(Object.entries(vars).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
        // --list-hosts gave this play's two hosts in either order from run to run (ansible-core
        // 2.14 here): the record holds the set, sorted; the inventory test suite checks order.
        const hosts = [...(listed[i]?.hosts ?? [])].sort();
        return { name: block.slice(0, block.indexOf(']')), hosts, vars: sorted };
      });
    return { ansible: version, inventory, plays };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const text = JSON.stringify(await resolveWithAnsible(), null, 2) + '\n';
  if (process.argv.includes('--check')) {
    const committed = readFileSync(EXPECTED, 'utf8');
    if (committed !== text) {
      process.stderr.write(
        `test/fixtures/git-repo.expected.json differs from what the installed Ansible gives: run \`node --import tsx scripts/gen-vars-fixtures.ts\` and review the change\n`,
      );
      return 1;
    }
    process.stdout.write('git-repo variables checked against the installed Ansible: no drift\n');
    return 0;
  }
  writeFileSync(EXPECTED, text);
  process.stdout.write(`wrote ${EXPECTED}\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1])
  main().then((code) => (process.exitCode = code));
