/**
 * Rollout slots as coordination.k8s.io/v1 Leases, the way client-go's leader election uses one:
 * `max-unavailable` Leases named `<prefix>-0` … `<prefix>-(N-1)`; a node holds at most one while
 * it changes (and restarts) its runtime. Every write carries the resourceVersion it read, so two
 * agents racing for the same free Lease cannot both win: the API server answers the second 409.
 *
 * A Lease is free when its holder is empty, or when it has not changed for its whole duration as
 * seen by this agent (client-go's rule: the observer's own clock, so clock skew between nodes
 * never makes a live holder look expired). A crashed agent stops renewing, and its Lease is taken
 * over once it expires.
 */
import { apiMessage, type KubeClient } from './api.js';
import { pause } from './pause.js';

/** A Lease as read (the fields this code uses). */
interface LeaseObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** metav1.MicroTime as the API writes it: RFC 3339 with microseconds. */
export function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface LeasePoolOptions {
  namespace: string;
  /** Names are `<prefix>-<i>`. */
  prefix: string;
  /** How many Leases (max-unavailable). */
  size: number;
  /** Who holds: the node name. */
  identity: string;
  durationSeconds: number;
  /** Between rounds of tries while every Lease is held (default 1 s). */
  retryMs?: number;
  now?: () => number;
}

/** A held Lease: renew it while working, release it when done. */
export interface HeldLease {
  name: string;
  renew(): Promise<void>;
  release(): Promise<void>;
}

/** `max-unavailable` Leases in one namespace, taken one at a time by the agents. */
export class LeasePool {
  /** name → the resourceVersion last seen and when this agent first saw it. */
  private readonly observed = new Map<string, { rv: string; since: number }>();
  private readonly now: () => number;

  constructor(
    private readonly api: KubeClient,
    private opts: LeasePoolOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  private path(name?: string): string {
    const base = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.opts.namespace)}/leases`;
    return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
  }

  private spec(transitions: number, acquired: string): LeaseObject['spec'] {
    return {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: this.opts.durationSeconds,
      acquireTime: acquired,
      renewTime: microTime(new Date(this.now())),
      leaseTransitions: transitions,
    };
  }

  /** How many Leases there are. */
  get size(): number {
    return this.opts.size;
  }

  /** Changes how many Leases there are (a percentage of a cluster that grew or shrank). */
  resize(size: number): void {
    this.opts = { ...this.opts, size };
  }

  /** Takes one free Lease, waiting (retrying every retryMs) until one is free; undefined when aborted. */
  async acquire(signal?: AbortSignal): Promise<HeldLease | undefined> {
    for (;;) {
      for (let i = 0; i < this.opts.size; i++) {
        if (signal?.aborted) return undefined;
        const got = await this.claim(`${this.opts.prefix}-${i}`);
        if ('lease' in got) return got.lease;
      }
      await pause(this.opts.retryMs ?? 1000, signal);
      if (signal?.aborted) return undefined;
    }
  }

  /**
   * One try on one Lease (any name in the namespace): created, taken over when free or expired, or
   * the identity that holds it (`''` when another agent won the race for it just now).
   */
  async claim(name: string): Promise<{ lease: HeldLease } | { holder: string }> {
    const got = await this.api.get(this.path(name));
    const now = new Date(this.now());
    if (got.code === 404) {
      const created = await this.api.post(this.path(), {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace: this.opts.namespace },
        spec: this.spec(0, microTime(now)),
      });
      if (created.code === 409) return { holder: '' };
      if (created.code !== 201) throw new Error(`cannot create Lease ${name}: ${apiMessage(created)}`);
      return { lease: this.held(created.body as unknown as LeaseObject) };
    }
    if (got.code !== 200) throw new Error(`cannot read Lease ${name}: ${apiMessage(got)}`);
    const lease = got.body as unknown as LeaseObject;
    const holder = lease.spec?.holderIdentity ?? '';
    const rv = lease.metadata.resourceVersion ?? '';
    const seen = this.observed.get(name);
    if (seen?.rv !== rv) this.observed.set(name, { rv, since: this.now() });
    const since = this.observed.get(name)?.since ?? this.now();
    const duration = (lease.spec?.leaseDurationSeconds ?? this.opts.durationSeconds) * 1000;
    const mine = holder === this.opts.identity;
    const expired = this.now() - since >= duration;
    if (holder !== '' && !mine && !expired) return { holder };
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (mine ? 0 : 1);
    const acquired = mine && lease.spec?.acquireTime !== undefined ? lease.spec.acquireTime : microTime(now);
    const put = await this.api.put(this.path(name), {
      ...lease,
      spec: this.spec(transitions, acquired),
    });
    if (put.code === 409) return { holder: '' };
    if (put.code !== 200) throw new Error(`cannot take Lease ${name}: ${apiMessage(put)}`);
    return { lease: this.held(put.body as unknown as LeaseObject) };
  }

  private held(initial: LeaseObject): HeldLease {
    let current = initial;
    const name = initial.metadata.name;
    // One write at a time, each from the Lease as the one before it left it: a release that starts
    // while a renewal is in flight waits for it, instead of sending the resourceVersion the renewal
    // just made stale (409, a Lease never given back).
    let last: Promise<unknown> = Promise.resolve();
    const write = (spec: () => LeaseObject['spec'], what: string): Promise<void> => {
      const done = last.then(async () => {
        const put = await this.api.put(this.path(name), { ...current, spec: spec() });
        if (put.code !== 200) throw new Error(`cannot ${what} Lease ${name}: ${apiMessage(put)}`);
        current = put.body as unknown as LeaseObject;
      });
      last = done.catch(() => undefined);
      return done;
    };
    return {
      name,
      renew: () =>
        write(
          () =>
            this.spec(
              current.spec?.leaseTransitions ?? 0,
              current.spec?.acquireTime ?? microTime(new Date(this.now())),
            ),
          'renew',
        ),
      // As client-go's ReleaseOnCancel: no holder, and a duration of 1 s, so any reader sees it free.
      release: () =>
        write(
          () => ({
            ...current.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            renewTime: microTime(new Date(this.now())),
          }),
          'release',
        ),
    };
  }
}

/**
 * The fleet leader: one Lease (`trustplay-leader`), held by whichever agent finds it free and
 * renewed by it every third of its duration for as long as it lives; an agent that dies stops
 * renewing, and the next agent to look once it expired leads. Tasks that act on the cluster rather
 * than the node (k8s.sa.clear) run on the leader only, so they run once per fleet.
 */
export class FleetLeader {
  private held: { lease: HeldLease; timer: NodeJS.Timeout } | undefined;

  constructor(
    private readonly pool: LeasePool,
    private readonly name: string,
    private readonly durationSeconds: number,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /** Whether this agent leads now. */
  get leading(): boolean {
    return this.held !== undefined;
  }

  /**
   * Takes the Lease if it is free or expired (or keeps it, if this agent holds it). Returns
   * undefined when this agent leads, else the holder's identity.
   */
  async holder(): Promise<string | undefined> {
    if (this.held !== undefined) return undefined;
    let got = await this.pool.claim(this.name);
    // Lost a race for it just now (409): read again, to name the winner.
    if ('holder' in got && got.holder === '') got = await this.pool.claim(this.name);
    if ('holder' in got) return got.holder || 'another agent';
    const lease = got.lease;
    const timer = setInterval(
      () => {
        lease.renew().catch((e: unknown) => {
          // Lost (taken over after a renewal came too late, or deleted): no longer the leader.
          this.log(
            `renewing ${this.name} failed, no longer the fleet leader: ${e instanceof Error ? e.message : String(e)}`,
          );
          if (this.held?.lease === lease) this.drop();
        });
      },
      (this.durationSeconds * 1000) / 3,
    );
    timer.unref();
    this.held = { lease, timer };
    this.log(`holds Lease ${this.name}: the fleet leader`);
    return undefined;
  }

  private drop(): void {
    if (this.held !== undefined) clearInterval(this.held.timer);
    this.held = undefined;
  }

  /** Stops renewing and gives the Lease back (a graceful exit), so another agent leads at once. */
  async resign(): Promise<void> {
    const held = this.held;
    this.drop();
    if (held !== undefined) await held.lease.release();
  }
}
