/**
 * The per-host lock over a real SSH connection: exclusive, bounded wait (measured honestly), held by
 * a session the node drops when the connection ends, stale locks broken with the holder named, and a
 * lock that cannot be created reported with its errno and path at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalConnection } from '../../src/connection/local.js';
import { SshConnection } from '../../src/connection/ssh.js';
import { acquireHostLock, acquireHostLocks, HostBusyError, LockError } from '../../src/engine/lock.js';
import { startSshd, sshdUnavailable, type Sshd } from '../support/sshd.js';

const unavailable = sshdUnavailable();
if (unavailable && process.env['CI'] === 'true') throw new Error(`host lock tests cannot run in CI: ${unavailable}`);

describe.skipIf(Boolean(unavailable))(`host lock over ssh${unavailable ? ` (not run: ${unavailable})` : ''}`, () => {
  let sshd: Sshd;
  const conns: SshConnection[] = [];
  const connect = (host = 'node') => {
    const c = new SshConnection({
      host,
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
      /node is busy: another trustplay run \(run-A from ops@ctl pid 1, holder alive, last seen \d+s ago\) holds \/run\/trustplay.lock; waited 1s/,
    );
    // It waited the whole timeout, not a sleep's worth less.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(600);
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

  it('breaks a stale lock whose owner stopped refreshing it (a lock of the older format, no holder)', async () => {
    const c = connect();
    await c.exec({
      script:
        'mkdir -p /run/trustplay.lock && echo "dead-run x" > /run/trustplay.lock/owner && touch -d "@$(( $(date +%s) - 3600 ))" /run/trustplay.lock/owner',
    });
    const notices: string[] = [];
    const release = await acquireHostLock(c, {
      runId: 'run-C',
      staleMs: 60_000,
      timeoutMs: 1000,
      onNotice: (m) => notices.push(m),
    });
    expect((await c.readFile('/run/trustplay.lock/owner'))?.toString()).toMatch(/^run-C /);
    expect(notices.join('\n')).toMatch(
      /broke the lock of trustplay run dead-run from x, .*it was not refreshed for \d+s/,
    );
    await release();
  });

  it('the node drops the lock the moment the holding connection ends, and tells a waiter who holds it', async () => {
    const a = connect();
    await acquireHostLock(a, { runId: 'run-E', owner: 'ops@ctl pid 7' });
    const waits: string[] = [];
    const b = connect();
    let told: () => void = () => undefined;
    const toldOnce = new Promise<void>((r) => (told = r));
    const waiting = acquireHostLock(b, {
      runId: 'run-F',
      timeoutMs: 20_000,
      onWait: (m) => {
        waits.push(m);
        told();
      },
    });
    await toldOnce;
    expect(waits).toEqual([
      expect.stringMatching(
        /^waiting for the lock held by trustplay run run-E from ops@ctl pid 7, holder alive, last seen \d+s ago \(up to 20s\)$/,
      ),
    ]);
    // The holder's connection goes away without a release (as when trustplay is killed).
    await a.close();
    // Taken on a later try: the 20 s wait is shorter than the 30 s stale period, so only the node
    // dropping the lock with the connection lets B in.
    const releaseB = await waiting;
    await releaseB();
  });

  it('breaks at once a lock whose holder process is gone, naming the holder', async () => {
    const c = connect();
    await c.exec({
      script:
        'mkdir -p /run/trustplay.lock && printf "dead-run ops@ctl pid 9\\nholder 999999 1\\n" > /run/trustplay.lock/owner',
    });
    const notices: string[] = [];
    const release = await acquireHostLock(c, { runId: 'run-G', timeoutMs: 1000, onNotice: (m) => notices.push(m) });
    expect(notices).toEqual([
      expect.stringMatching(
        /^node: broke the lock of trustplay run dead-run from ops@ctl pid 9, holder gone, .*: its holder is gone$/,
      ),
    ]);
    await release();
  });

  it('breaks a lock whose holder lives but stopped refreshing it (a connection cut without FIN)', async () => {
    const c = connect();
    // A holder process that is alive but whose refreshes stopped long ago.
    await c.exec({
      script:
        'mkdir -p /run/trustplay.lock && (setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $! > /run/trustplay.lock/pid) && p=$(cat /run/trustplay.lock/pid) && set -- $(cat /proc/$p/stat) && printf "frozen-run ops@ctl pid 3\\nholder %s %s\\n" "$p" "${22}" > /run/trustplay.lock/owner && touch -d "@$(( $(date +%s) - 120 ))" /run/trustplay.lock/owner',
    });
    const pid = (await c.readFile('/run/trustplay.lock/pid'))!.toString().trim();
    const notices: string[] = [];
    const release = await acquireHostLock(c, {
      runId: 'run-H',
      refreshMs: 10_000,
      timeoutMs: 1000,
      onNotice: (m) => notices.push(m),
    });
    expect(notices.join('\n')).toMatch(
      /frozen-run from ops@ctl pid 3, holder alive, .*it was not refreshed for 1\d\ds/,
    );
    // The frozen holder was stopped so it can never remove the new lock.
    expect(
      (
        await c.exec({
          script: `sleep 0.2; s=$(cut -d' ' -f3 /proc/${pid}/stat 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ] && echo alive || echo gone`,
        })
      ).stdout
        .toString()
        .trim(),
    ).toBe('gone');
    await release();
  });

  it('a lock that cannot be created says why (errno and path) at once, never "busy"', async () => {
    const c = connect();
    const t0 = Date.now();
    const err = await acquireHostLock(c, { runId: 'run-I', dir: '/nonexistent-dir', timeoutMs: 30_000 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LockError);
    expect((err as Error).message).toBe(
      'could not create the trustplay lock /nonexistent-dir/trustplay.lock on node: No such file or directory (ENOENT) — check that /nonexistent-dir exists and is writable (TRUSTPLAY_LOCK_DIR names it)',
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('locks a batch of hosts together; two runs over overlapping hosts both get theirs, the later one waiting', async () => {
    // Six "hosts" on one sshd, each with its own lock dir; run A takes n1-n4, run B n3-n6.
    const base = (
      await connect().exec({
        script: 'd=$(mktemp -d) && mkdir "$d/n1" "$d/n2" "$d/n3" "$d/n4" "$d/n5" "$d/n6" && echo "$d"',
      })
    ).stdout
      .toString()
      .trim();
    const batch = (run: string, names: string[]) =>
      names.map((h) => ({ conn: connect(h), options: { runId: run, dir: `${base}/${h}`, timeoutMs: 15_000 } }));
    await Promise.all(conns.map((c) => c.connect()));
    const a = await acquireHostLocks(batch('run-J', ['n1', 'n2', 'n3', 'n4']));
    expect([...a.values()].every((r) => typeof r === 'function')).toBe(true);
    const waits: string[] = [];
    const bHosts = batch('run-K', ['n6', 'n5', 'n4', 'n3']);
    for (const b of bHosts) Object.assign(b.options, { onWait: (m: string) => waits.push(`${b.conn.host}: ${m}`) });
    await Promise.all(bHosts.map((b) => b.conn.connect()));
    const waiting = acquireHostLocks(bHosts);
    await new Promise((r) => setTimeout(r, 600));
    // B waits for n3 (its first in order) and holds nothing after it meanwhile: n5 and n6 are free.
    expect(waits).toEqual([expect.stringMatching(/^n3: waiting for the lock held by trustplay run run-J/)]);
    const owners = await connect().exec({
      script: `for h in n3 n4 n5 n6; do printf '%s=%s\\n' $h "$(head -c5 ${base}/$h/trustplay.lock/owner 2>/dev/null)"; done`,
    });
    expect(owners.stdout.toString()).toBe('n3=run-J\nn4=run-J\nn5=\nn6=\n');
    await Promise.all([...a.values()].map((r) => (r as () => Promise<void>)()));
    const b = await waiting;
    expect([...b.keys()].sort()).toEqual(['n3', 'n4', 'n5', 'n6']);
    expect([...b.values()].every((r) => typeof r === 'function')).toBe(true);
    const after = await connect().exec({
      script: `for f in ${base}/n*/trustplay.lock/owner; do head -n1 $f | cut -d' ' -f1; done | sort | uniq -c`,
    });
    expect(after.stdout.toString().trim()).toMatch(/^4 run-K$/);
    await Promise.all([...b.values()].map((r) => (r as () => Promise<void>)()));
    await connect().exec({ script: `rm -rf ${base}` });
  });

  it('a host of the batch whose lock cannot be created fails alone', async () => {
    const hosts = ['p1', 'p2', 'p3'].map((h) => ({
      conn: connect(h),
      options: {
        runId: 'run-L',
        timeoutMs: 5000,
        ...(h === 'p2' ? { dir: '/nonexistent-dir' } : { dir: `/tmp/tp-lock-${h}` }),
      },
    }));
    await connect().exec({ script: 'mkdir -p /tmp/tp-lock-p1 /tmp/tp-lock-p3' });
    await Promise.all(hosts.map((h) => h.conn.connect()));
    const got = await acquireHostLocks(hosts);
    expect(got.get('p2')).toBeInstanceOf(LockError);
    expect(typeof got.get('p1')).toBe('function');
    expect(typeof got.get('p3')).toBe('function');
    await (got.get('p1') as () => Promise<void>)();
    await (got.get('p3') as () => Promise<void>)();
    await connect().exec({ script: 'rmdir /tmp/tp-lock-p1 /tmp/tp-lock-p3' });
  });

  it('keeps refreshing the locks it took while it waits for a busy host after them', async () => {
    const base = (
      await connect().exec({ script: 'd=$(mktemp -d) && mkdir "$d/r1" "$d/r2" "$d/r3" && echo "$d"' })
    ).stdout
      .toString()
      .trim();
    const holder = connect('r3');
    await holder.connect();
    const held = await acquireHostLocks([{ conn: holder, options: { runId: 'run-M', dir: `${base}/r3` } }]);
    const waiters = ['r1', 'r2', 'r3'].map((h) => ({
      conn: connect(h),
      options: { runId: 'run-N', dir: `${base}/${h}`, refreshMs: 300, timeoutMs: 15_000 },
    }));
    await Promise.all(waiters.map((w) => w.conn.connect()));
    const waiting = acquireHostLocks(waiters);
    // r1 and r2 are taken in the first round; r3 is waited for. Without refreshes their owner
    // files would be 3 s old by now (a stale lock another run may break after 3 x refreshMs).
    await new Promise((r) => setTimeout(r, 3000));
    const ages = await connect().exec({
      script: `now=$(date +%s); for h in r1 r2; do echo $((now - $(stat -c %Y ${base}/$h/trustplay.lock/owner))); done`,
    });
    expect(ages.stdout.toString().trim().split('\n').map(Number)).toEqual([
      expect.toSatisfy((n: number) => n <= 1),
      expect.toSatisfy((n: number) => n <= 1),
    ]);
    await (held.get('r3') as () => Promise<void>)();
    const got = await waiting;
    expect([...got.values()].every((r) => typeof r === 'function')).toBe(true);
    await Promise.all([...got.values()].map((r) => (r as () => Promise<void>)()));
    await connect().exec({ script: `rm -rf ${base}` });
  });

  it("one machine under many inventory names, locked in one batch: one takes the lock, the others see it is this run's", async () => {
    // Local connections: their holder sessions start together, so the tries race on one mkdir
    // (the 200-local-host terminal test found a name that took its own run's fresh lock for another's).
    const base = await mkdtemp(join(tmpdir(), 'trustplay-lock-many-'));
    try {
      const waits: string[] = [];
      const batch = Array.from({ length: 60 }, (_, i) => `m${i + 1}`).map((h) => ({
        conn: new LocalConnection({ host: h }),
        options: { runId: 'run-O', dir: base, timeoutMs: 15_000, onWait: (m: string) => waits.push(`${h}: ${m}`) },
      }));
      const got = await acquireHostLocks(batch);
      expect([...got.values()].every((r) => typeof r === 'function')).toBe(true);
      // No name waited: none took the lock its own run had just made for another run's.
      expect(waits).toEqual([]);
      expect(await readFile(join(base, 'trustplay.lock', 'owner'), 'utf8')).toMatch(/^run-O /);
      await Promise.all([...got.values()].map((r) => (r as () => Promise<void>)()));
      await Promise.all(batch.map((b) => b.conn.close()));
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
