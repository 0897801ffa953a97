/**
 * The OpenSSH client config as trustplay resolves it, compared with the real OpenSSH: `ssh -G HOST
 * -F FILE` prints what ssh would use for HOST and never connects.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSshConfig, resolveSshConfig } from './ssh-config.js';
import { connectionSpec } from '../engine/connect.js';
import { parseInventory } from '../playbook/inventory.js';

const dir = mkdtempSync(join(tmpdir(), 'trustplay-sshcfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const configs: Record<string, string> = {
  basic: `
Host bastion
  HostName 192.0.2.10
  User jump
  Port 2200

Host web*
  User deploy
  IdentityFile ~/.ssh/web_%h
  ProxyJump bastion

Host web1
  User ignored-first-match-wins
  Port 2222
  ServerAliveInterval 2
  ServerAliveCountMax 4

Host *
  User fallback
  StrictHostKeyChecking accept-new
  ConnectTimeout 7
`,
  negation: `
Host *.example.com !db.example.com
  User app
Host db.example.com
  User dba
  HostName %h.internal
Host *
  UserKnownHostsFile ${dir}/known_a ${dir}/known_b
`,
  include: `
Include ${dir}/included-*.conf
Host *
  Port 2022
`,
  'included-1.conf': `
Host alias1
  HostName 198.51.100.1
  User inc
`,
  match: `
Match host m1
  User matched
Host m1
  Port 2300
Host *
  IdentitiesOnly yes
  IdentityFile ${dir}/id_one
  IdentityFile ${dir}/id_two
`,
};
for (const [name, text] of Object.entries(configs)) writeFileSync(join(dir, name), text);

/** `ssh -G` output as a map of lower-case keys to their values (repeated keys collected). */
function sshG(file: string, host: string): Map<string, string[]> {
  const out = execFileSync('ssh', ['-G', '-F', file, host], { encoding: 'utf8' });
  const m = new Map<string, string[]>();
  for (const line of out.split('\n')) {
    const i = line.indexOf(' ');
    if (i < 0) continue;
    const k = line.slice(0, i);
    m.set(k, [...(m.get(k) ?? []), line.slice(i + 1)]);
  }
  return m;
}

const cases: Array<[string, string]> = [
  ['basic', 'bastion'],
  ['basic', 'web1'],
  ['basic', 'web2'],
  ['basic', 'other'],
  ['negation', 'a.example.com'],
  ['negation', 'db.example.com'],
  ['include', 'alias1'],
  ['include', 'nothing'],
  ['match', 'm1'],
  ['match', 'm2'],
];

describe('~/.ssh/config as OpenSSH reads it (compared with ssh -G)', () => {
  it.each(cases)('%s: %s', (file, host) => {
    const real = sshG(join(dir, file), host);
    const ours = resolveSshConfig(loadSshConfig(join(dir, file))!, host);
    const one = (k: string) => real.get(k)?.[0];
    expect(ours.hostName ?? host).toBe(one('hostname'));
    expect(ours.user ?? userInfo().username).toBe(one('user'));
    expect(String(ours.port ?? 22)).toBe(one('port'));
    expect(ours.proxyJump?.join(',')).toBe(one('proxyjump'));
    expect(ours.connectTimeout === undefined ? 'none' : String(ours.connectTimeout)).toBe(one('connecttimeout'));
    const strict = { 'accept-new': 'accept-new', yes: 'true', no: 'false', ask: 'ask' } as Record<string, string>;
    expect(strict[ours.strictHostKeyChecking ?? 'ask']).toBe(one('stricthostkeychecking'));
    // ssh -G prints IdentityFile as written; OpenSSH expands `~` and `%h` (the HostName) when it loads it.
    const expand = (f: string) => f.replace(/^~\//, homedir() + '/').replace(/%h/g, one('hostname')!);
    if (ours.identityFiles) expect(ours.identityFiles).toEqual(real.get('identityfile')!.map(expand));
    if (ours.userKnownHostsFiles) expect(ours.userKnownHostsFiles.join(' ')).toBe(one('userknownhostsfile'));
    expect(ours.identitiesOnly ?? false).toBe(one('identitiesonly') === 'yes');
    expect(String(ours.serverAliveInterval ?? 0)).toBe(one('serveraliveinterval'));
    expect(String(ours.serverAliveCountMax ?? 3)).toBe(one('serveralivecountmax'));
  });

  it('fills only what the inventory leaves unset, looked up by the address ssh would get', () => {
    const inv = parseInventory(
      'i.yaml',
      'g:\n  hosts:\n    w:\n      ansible_host: web1\n    b:\n      ansible_host: web2\n      ansible_user: mine\n      ansible_port: 2400\n',
    ).inventory!;
    inv.sshConfig = loadSshConfig(join(dir, 'basic'))!;
    const w = connectionSpec(inv, inv.hosts.get('w')!);
    expect(w).toMatchObject({
      address: 'web1',
      user: 'deploy',
      port: 2222,
      acceptNewHostKeys: true,
      keepaliveIntervalMs: 2000,
      keepaliveCountMax: 4,
    });
    expect(w.proxyJump).toEqual([{ address: 'bastion' }]);
    const b = connectionSpec(inv, inv.hosts.get('b')!);
    expect(b).toMatchObject({ address: 'web2', user: 'mine', port: 2400, connectTimeoutMs: 7000 });
  });

  it('reads nothing for --ssh-config none and names a missing file', () => {
    expect(loadSshConfig('none')).toBeUndefined();
    expect(() => loadSshConfig(join(dir, 'nope'))).toThrow(/cannot read SSH config .*nope/);
  });
});
