/** The per-host lock over a real SSH connection: exclusive, bounded wait, stale locks broken. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshConnection } from '../../src/connection/ssh.js';
import { acquireHostLock, HostBusyError } from '../../src/engine/lock.js';
import { startSshd, sshdUnavailable, type Sshd } from '../support/sshd.js';

const unavailable = sshdUnavailable();
if (unavailable && process.env['CI'] === 'true') throw new Error(`host lock tests cannot run in CI: ${unavailable}`);

describe.skipIf(Boolean(unavailable))(`host lock over ssh${unavailable ? ` (not run: ${unavailable})` : ''}`, () => {
  let sshd: Sshd;
  const conns: SshConnection[] = [];
  const connect = () => {
    const c = new SshConnection({
      host: 'node',
      address: sshd.address,
      port: sshd.port,
      user: 'root',
      identityFile: sshd.clientKey,
      knownHostsFiles: [sshd.knownHosts],
    });
    conns.push(c);
    return c;
  };
  beforeAll(async () => {
    sshd = await startSshd({ address: '127.0.0.41' });
  });
  afterAll(async () => {
    await Promise.all(conns.map((c) => c.close()));
    await sshd?.stop();
  });

  it('a second run waits, then reports the host busy naming the holder; after release it gets the lock', async () => {
    const a = connect();
    const b = connect();
    const releaseA = await acquireHostLock(a, { runId: 'run-A', owner: 'ops@ctl pid 1' });
    const t0 = Date.now();
    const err = await acquireHostLock(b, { runId: 'run-B', timeoutMs: 600 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostBusyError);
    expect((err as Error).message).toMatch(
      /node is busy: another trustplay run \(run-A from ops@ctl pid 1, last seen \d+s ago\) holds \/run\/trustplay.lock; waited 1s/,
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    // While B waits, A releases: B gets it.
    const waiting = acquireHostLock(b, { runId: 'run-B', timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    await releaseA();
    const releaseB = await waiting;
    const owner = await b.readFile('/run/trustplay.lock/owner');
    expect(owner?.toString()).toMatch(/^run-B /);
    // A's release does not remove B's lock.
    await releaseA();
    expect((await b.stat('/run/trustplay.lock')).exists).toBe(true);
    await releaseB();
    expect((await b.stat('/run/trustplay.lock')).exists).toBe(false);
  });

  it('is re-entrant for the same run (two inventory names for one machine)', async () => {
    const a = connect();
    const b = connect();
    const releaseA = await acquireHostLock(a, { runId: 'run-D' });
    const releaseB = await acquireHostLock(b, { runId: 'run-D', timeoutMs: 500 });
    await releaseB();
    expect((await a.stat('/run/trustplay.lock')).exists).toBe(true);
    await releaseA();
    expect((await a.stat('/run/trustplay.lock')).exists).toBe(false);
  });

  it('breaks a stale lock whose owner stopped refreshing it', async () => {
    const c = connect();
    await c.exec({
      script:
        'mkdir -p /run/trustplay.lock && echo "dead-run x" > /run/trustplay.lock/owner && touch -d "@$(( $(date +%s) - 3600 ))" /run/trustplay.lock/owner',
    });
    const release = await acquireHostLock(c, { runId: 'run-C', staleMs: 60_000, timeoutMs: 1000 });
    expect((await c.readFile('/run/trustplay.lock/owner'))?.toString()).toMatch(/^run-C /);
    await release();
  });
});
