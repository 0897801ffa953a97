/**
 * `-e` connection variables, compared with the real Ansible: `ansible -vvv` prints the ssh command
 * line it would run for each host (address, `-o Port=`, `-o User=`). Every address is on loopback
 * and the port is 1 (nothing listens there), so Ansible's attempt is refused at once; its home,
 * control sockets and temp files live in this test's temp dir.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { trustplay } from '../support/cli.js';

const run = promisify(execFile);

function ansibleMissing(): string | undefined {
  try {
    execFileSync('ansible', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'the `ansible` command is not installed (Debian package ansible-core)';
  }
}
const missing = ansibleMissing();
if (missing && process.env.CI === 'true') throw new Error(`-e connection tests cannot run in CI: ${missing}`);

const dir = mkdtempSync(join(tmpdir(), 'trustplay-extra-vars-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Reached {
  address: string;
  port: number;
  user: string | null;
}

/** What Ansible's ssh connection would be given for each host. */
async function ansibleReaches(inventory: string, extra: string[]): Promise<Record<string, Reached>> {
  const home = join(dir, 'home');
  mkdirSync(home, { recursive: true });
  const r = await run('ansible', ['all', '-i', inventory, '-m', 'ping', '-vvv', ...extra.flatMap((e) => ['-e', e])], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      ANSIBLE_HOME: join(home, '.ansible'),
      ANSIBLE_LOCAL_TEMP: join(home, 'tmp'),
      ANSIBLE_SSH_CONTROL_PATH_DIR: join(home, 'cp'),
      ANSIBLE_HOST_KEY_CHECKING: 'False',
      ANSIBLE_NOCOLOR: '1',
    },
    timeout: 60_000,
  }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  const out: Record<string, Reached> = {};
  // Ansible's workers print in no fixed order, so each host is read from its own UNREACHABLE block
  // ("connect to host ADDR port N"), and the user from the ssh command line for that address
  // (`<ADDR> SSH: EXEC ssh ... -o 'User="u"' ...`); the cases never give one address two users.
  const users = new Map<string, Set<string | null>>();
  for (const m of r.stdout.matchAll(/^<([^>]+)> SSH: EXEC ssh (.*)$/gm)) {
    const user = /-o 'User="([^"]+)"'/.exec(m[2]!);
    users.set(m[1]!, (users.get(m[1]!) ?? new Set()).add(user ? user[1]! : null));
  }
  for (const m of r.stdout.matchAll(/^(\S+) \| UNREACHABLE! => \{[^}]*?connect to host (\S+) port (\d+)/gms)) {
    const seen = [...(users.get(m[2]!) ?? [])];
    if (seen.length !== 1) throw new Error(`ansible used ${seen.length} users for ${m[2]}: ${r.stdout}`);
    out[m[1]!] = { address: m[2]!, port: Number(m[3]), user: seen[0]! };
  }
  return out;
}

async function trustplayReaches(inventory: string, extra: string[]): Promise<Record<string, Reached>> {
  const r = await trustplay([
    'inventory',
    '-i',
    inventory,
    '--list',
    '--resolved',
    '--ssh-config',
    'none',
    ...extra.flatMap((e) => ['-e', e]),
  ]);
  expect(r.code, r.stderr).toBe(0);
  const res = (JSON.parse(r.stdout) as { _meta: { trustplay_resolved: Record<string, Record<string, unknown>> } })._meta
    .trustplay_resolved;
  return Object.fromEntries(
    Object.entries(res).map(([h, v]) => [
      h,
      { address: v['address'] as string, port: v['port'] as number, user: (v['user'] as string | null) ?? null },
    ]),
  );
}

describe.skipIf(missing !== undefined)('-e connection variables override the inventory as in Ansible', () => {
  const inventory = join(dir, 'hosts.ini');
  writeFileSync(
    inventory,
    [
      '[web]',
      // The older name is read first by Ansible, whatever level sets either: -e ansible_host loses to it.
      'web1 ansible_ssh_host=127.0.0.9',
      'web2 ansible_host=127.0.0.10 ansible_user=carol',
      '[db]',
      'db1 ansible_host=127.0.0.12 ansible_port=2300',
      '[web:vars]',
      'ansible_user=alice',
      'ansible_port=2200',
      '',
    ].join('\n'),
  );
  const cases: Array<[string, string[]]> = [
    ['user and port for every host', ['ansible_user=bob', 'ansible_port=1']],
    ['address, user and port', ['ansible_host=127.0.0.11', 'ansible_user=bob', 'ansible_port=1']],
    ['the older ansible_ssh_* names', ['ansible_ssh_user=dave', 'ansible_ssh_port=1']],
    ['a templated value, read with the host variables', ['ansible_port=1', 'ansible_user={{ inventory_hostname }}-op']],
  ];
  for (const [name, extra] of cases)
    it(`${name}: ${extra.join(' ')}`, async () => {
      const [ansible, ours] = await Promise.all([ansibleReaches(inventory, extra), trustplayReaches(inventory, extra)]);
      expect(Object.keys(ansible).sort()).toEqual(['db1', 'web1', 'web2']);
      expect(ours).toEqual(ansible);
    });

  it('refuses a -e connection value Ansible would fail on, once, naming -e', async () => {
    const r = await trustplay(['inventory', '-i', inventory, '--list', '--resolved', '-e', 'ansible_port=abc']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^-e: host `web1`: `ansible_port` must be a port number/m);
    expect(r.stderr.match(/ansible_port/g)).toHaveLength(1);
  });
});
