/**
 * `IdentitiesOnly` from the OpenSSH client config, against a real sshd and a real ssh-agent, side
 * by side with the real `ssh -F`: the agent holds the key the server accepts, the config names
 * another key file. Without IdentitiesOnly both log in with the agent's key; with it, both offer
 * the named file only and are refused.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionError, createConnection } from '../../src/connection/index.js';
import { loadSshConfig } from '../../src/connection/ssh-config.js';
import { connectionSpec } from '../../src/engine/connect.js';
import { parseInventory } from '../../src/playbook/inventory.js';
import { makeKeyPair, sshdUnavailable, startSshd, type Sshd } from '../support/sshd.js';

const run = promisify(execFile);
const unavailable = sshdUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`IdentitiesOnly tests cannot run in CI: ${unavailable}`);

describe.skipIf(unavailable !== undefined)('IdentitiesOnly from the SSH config, as OpenSSH applies it', () => {
  let sshd: Sshd;
  let dir: string;
  let agentSock: string;
  let agentPid: number | undefined;
  let otherKey: string;
  const savedSock = process.env.SSH_AUTH_SOCK;

  beforeAll(async () => {
    sshd = await startSshd();
    dir = await mkdtemp(join(tmpdir(), 'trustplay-idonly-'));
    agentSock = join(dir, 'agent.sock');
    // -D: in the foreground, so the test owns the process and ends it by its pid.
    const agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
    agentPid = agent.pid;
    for (let i = 0; i < 100; i++) {
      try {
        await run('ssh-add', ['-l'], { env: { ...process.env, SSH_AUTH_SOCK: agentSock } });
        break;
      } catch (e) {
        // Exit 1 is "no identities": the agent answers.
        if ((e as { code?: number }).code === 1) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await run('ssh-add', [sshd.clientKey], { env: { ...process.env, SSH_AUTH_SOCK: agentSock } });
    otherKey = await makeKeyPair(join(dir, 'not-authorized'));
    process.env.SSH_AUTH_SOCK = agentSock;
  }, 60_000);

  afterAll(async () => {
    if (savedSock === undefined) delete process.env.SSH_AUTH_SOCK;
    else process.env.SSH_AUTH_SOCK = savedSock;
    if (agentPid) process.kill(agentPid);
    await sshd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function writeConfig(identitiesOnly: boolean): Promise<string> {
    const file = join(dir, `config-${identitiesOnly}`);
    await writeFile(
      file,
      [
        'Host node1',
        `  HostName ${sshd.address}`,
        `  Port ${sshd.port}`,
        '  User root',
        `  IdentityFile ${otherKey}`,
        ...(identitiesOnly ? ['  IdentitiesOnly yes'] : []),
        `  UserKnownHostsFile ${sshd.knownHosts}`,
        '  StrictHostKeyChecking yes',
        '  BatchMode yes',
        '',
      ].join('\n'),
    );
    return file;
  }

  /** Whether the real ssh logs in with this config. */
  async function opensshLogsIn(config: string): Promise<boolean> {
    return run('ssh', ['-F', config, 'node1', 'true'], {
      env: { ...process.env, SSH_AUTH_SOCK: agentSock },
      timeout: 20_000,
    }).then(
      () => true,
      () => false,
    );
  }

  /** Whether trustplay logs in with this config, reaching the host the way a run does. */
  async function trustplayLogsIn(config: string): Promise<{ ok: boolean; error?: ConnectionError }> {
    const inv = parseInventory(join(dir, 'hosts.ini'), '[nodes]\nnode1\n').inventory!;
    inv.sshConfig = loadSshConfig(config)!;
    const conn = createConnection(connectionSpec(inv, inv.hosts.get('node1')!));
    try {
      await conn.connect();
      return { ok: (await conn.exec({ argv: ['true'] })).code === 0 };
    } catch (e) {
      if (!(e instanceof ConnectionError)) throw e;
      return { ok: false, error: e };
    } finally {
      await conn.close();
    }
  }

  it('without IdentitiesOnly: the agent key logs in, for ssh and for trustplay', async () => {
    const config = await writeConfig(false);
    expect(await opensshLogsIn(config)).toBe(true);
    expect((await trustplayLogsIn(config)).ok).toBe(true);
  });

  it('with IdentitiesOnly yes: only the named key is offered, and both are refused', async () => {
    const config = await writeConfig(true);
    expect(await opensshLogsIn(config)).toBe(false);
    const r = await trustplayLogsIn(config);
    expect(r.ok).toBe(false);
    expect(r.error?.kind).toBe('auth');
  });
});
