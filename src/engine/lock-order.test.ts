/**
 * lockInOrder, the order in which a run takes its hosts' locks, over in-memory locks (the holder
 * protocol itself runs against a real sshd in test/e2e/host-lock.test.ts; two real runs over
 * overlapping fleets are the chaos suite's). What matters here: uncontended it is one parallel round;
 * it never waits for a lock while holding one that sorts after it; two runs that take overlapping
 * fleets in opposite orders both finish.
 */
import { describe, expect, it } from 'vitest';
import { lockInOrder, type OrderedLock } from './lock.js';

/** A fleet of in-memory locks; a wait that lasts 2 s is a deadlock and fails. */
class Fleet {
  readonly owner = new Map<string, string>();
  private wakers: Array<() => void> = [];
  inFlight = 0;
  maxInFlight = 0;
  attempts = 0;
  violations: string[] = [];

  constructor(private readonly jitter: () => number = () => 0) {}

  held(run: string): string[] {
    return [...this.owner].filter(([, r]) => r === run).map(([k]) => k);
  }

  free(run: string, key: string): void {
    if (this.owner.get(key) === run) this.owner.delete(key);
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }

  lock(run: string, key: string): OrderedLock {
    const pause = () => new Promise<void>((r) => setTimeout(r, this.jitter()));
    return {
      attempt: async () => {
        this.attempts++;
        this.inFlight++;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        await pause();
        this.inFlight--;
        if (!this.owner.has(key)) this.owner.set(key, run);
        return this.owner.get(key) === run;
      },
      unlock: async () => {
        await pause();
        this.free(run, key);
      },
      wait: async () => {
        const after = this.held(run).filter((k) => k > key);
        if (after.length) this.violations.push(`${run} waits for ${key} holding ${after.join(',')}`);
        const deadline = Date.now() + 2000;
        while (this.owner.has(key) && this.owner.get(key) !== run) {
          if (Date.now() > deadline) throw new Error(`${run}: deadlock waiting for ${key}`);
          await new Promise<void>((r) => {
            this.wakers.push(r);
            setTimeout(r, 50);
          });
        }
        this.owner.set(key, run);
      },
    };
  }
}

const hosts = (n: number) => Array.from({ length: n }, (_, i) => `n${String(i + 1).padStart(2, '0')}`);

describe('lockInOrder', () => {
  it('takes uncontended locks in one parallel round: one try each, all in flight at once', async () => {
    const fleet = new Fleet(() => 5);
    const failed = await lockInOrder(hosts(20), (k) => fleet.lock('A', k));
    expect(failed.size).toBe(0);
    expect(fleet.attempts).toBe(20);
    expect(fleet.maxInFlight).toBe(20);
    expect(fleet.held('A').sort()).toEqual(hosts(20));
  });

  it('gives back the locks after a busy one before waiting for it, then takes them again', async () => {
    const fleet = new Fleet();
    fleet.owner.set('n04', 'B');
    setTimeout(() => fleet.free('B', 'n04'), 100);
    const failed = await lockInOrder(hosts(9), (k) => fleet.lock('A', k));
    expect(failed.size).toBe(0);
    expect(fleet.violations).toEqual([]);
    expect(fleet.held('A').sort()).toEqual(hosts(9));
    // One round of 9, then the 5 after n04 again.
    expect(fleet.attempts).toBe(14);
  });

  it('a lock that fails is reported and the others are still taken', async () => {
    const fleet = new Fleet();
    const failed = await lockInOrder(hosts(5), (k) => {
      const l = fleet.lock('A', k);
      return k === 'n02' ? { ...l, attempt: () => Promise.reject(new Error('read-only /run')) } : l;
    });
    expect([...failed.keys()]).toEqual(['n02']);
    expect(fleet.held('A').sort()).toEqual(['n01', 'n03', 'n04', 'n05']);
  });

  it('a busy lock that stays busy fails alone', async () => {
    const fleet = new Fleet();
    fleet.owner.set('n03', 'B');
    const failed = await lockInOrder(hosts(5), (k) => {
      const l = fleet.lock('A', k);
      return k === 'n03' ? { ...l, wait: () => Promise.reject(new Error('n03 is busy')) } : l;
    });
    expect([...failed.keys()]).toEqual(['n03']);
    expect(fleet.held('A').sort()).toEqual(['n01', 'n02', 'n04', 'n05']);
    expect(fleet.violations).toEqual([]);
  });

  it('two runs over overlapping fleets both finish, whatever the timing (no deadlock)', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      let x = seed;
      const rand = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) % 7) + 0;
      const fleet = new Fleet(rand);
      const all = hosts(12);
      const run = async (name: string, keys: string[]) => {
        const failed = await lockInOrder(keys, (k) => fleet.lock(name, k));
        // Hold a moment, as a run does, then release everything.
        await new Promise((r) => setTimeout(r, rand()));
        for (const k of keys) fleet.free(name, k);
        return failed;
      };
      const [a, b] = await Promise.all([run('A', all.slice(0, 9)), run('B', [...all.slice(3)].reverse())]);
      expect({ seed, a: [...a.keys()], b: [...b.keys()] }).toEqual({ seed, a: [], b: [] });
      expect(fleet.violations).toEqual([]);
    }
  });
});
