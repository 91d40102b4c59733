// Backend choice, and the queue between the ledger's events and the kernel: everything decided
// while the previous batch was in flight goes out as one batch (through the backend's long-lived
// session), failures are retried with back-off (never dropped), elements the kernel refuses are
// found by splitting the batch and dropped with an error naming them, and what someone else
// flushed or deleted is re-created and re-filled from the ledger's bans.
import { RefusedError, type BanEntry, type FirewallBackend, type KernelBan, type Logger } from './backend';
import { FirewallError } from './choose';
import { missingFamilies, sampleHeld, type HeldBan } from './probe';
import type { Family } from '../address';
import type { Metrics } from '../metrics';
import { clampSeconds, validAddress } from './validate';

export { BACKENDS, FirewallError, backendModule, chooseBackend, firewallSettings } from './choose';

export type { HeldBan };

export interface FirewallOptions {
  /** How often sets and rules are verified with the tools (ms). */
  checkIntervalMs?: number;
  /**
   * How often a few held bans are looked up through the backend's session (no process), so an
   * emptied set is re-filled within seconds (ms); only where the backend cannot see reloads.
   */
  probeIntervalMs?: number;
  /** An element the kernel refused and that was dropped (the ledger should forget that ban). */
  onRefused?: (address: string, family: Family, reason: string) => void;
  /** First retry delay after a failure (ms); doubles up to retryMaxMs. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** setup() attempts in start() before giving up with FirewallError. */
  startAttempts?: number;
  /** The bans the kernel should hold now (the ledger's): what a lost set is re-filled with. */
  held?: () => Iterable<HeldBan>;
  metrics?: Metrics;
}

type Pending = { add: true; family: Family; expiry: number } | { add: false; family: Family };
type Op = [address: string, pending: Pending];

/** Elements per request to the tool. */
const SLICE = 20_000;

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Firewall {
  private readonly opts: Required<Omit<FirewallOptions, 'metrics' | 'onRefused'>>;
  private readonly metrics: Metrics | undefined;
  private readonly onRefused: FirewallOptions['onRefused'];
  /** Addresses whose last change the kernel refused: not probed, not re-filled, until changed again. */
  private refused = new Map<string, string>();
  /** Callers of outcome() waiting for an address's change to land. */
  private outcomes = new Map<string, ((why: string | null) => void)[]>();
  /** Sampled bans were missing: the next check compares the sets with the ledger. */
  private suspect = false;
  private probeTimer: NodeJS.Timeout | null = null;
  private probing = false;
  /** Changes not yet sent; the latest decision about an address wins. */
  private pending = new Map<string, Pending>();
  private started = false;
  private closed = false;
  private running: Promise<void> | null = null;
  private scheduled = false;
  private needsCheck = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private checkTimer: NodeJS.Timeout | null = null;
  private waiters: (() => void)[] = [];
  /** The batch being sent (outcome() waits for its addresses too). */
  private inflight: Map<string, Pending> | null = null;

  constructor(
    readonly backend: FirewallBackend,
    private readonly log: Logger,
    opts: FirewallOptions = {},
  ) {
    const { metrics, onRefused, ...rest } = opts;
    this.metrics = metrics;
    this.onRefused = onRefused;
    this.opts = { checkIntervalMs: 30_000, probeIntervalMs: 2000, retryBaseMs: 1000, retryMaxMs: 60_000, startAttempts: 4, held: () => [], ...rest };
  }

  /** Changes waiting to be sent. */
  get queued(): number {
    return this.pending.size;
  }

  /** setup() with retry/back-off logging; resolves once sets and rules are in place (or throws FirewallError). */
  async start(): Promise<void> {
    let last: unknown;
    for (let attempt = 1; attempt <= this.opts.startAttempts; attempt++) {
      try {
        await this.backend.setup();
        last = undefined;
        break;
      } catch (e) {
        last = e;
        if (attempt === this.opts.startAttempts) break;
        const delay = this.delay(attempt);
        this.log.error('firewall set-up failed; retrying', { backend: this.backend.name, error: errText(e), attempt: String(attempt), retry_in_ms: String(delay) });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    if (last !== undefined) {
      throw new FirewallError(`firewall set-up failed (backend ${this.backend.name}) after ${this.opts.startAttempts} attempts: ${errText(last)}`);
    }
    this.started = true;
    this.log.info('firewall ready', { backend: this.backend.name, what: this.backend.describe() });
    this.checkTimer = setInterval(() => {
      this.needsCheck = true;
      this.schedule();
    }, this.opts.checkIntervalMs);
    this.checkTimer.unref();
    // A reload seen as it happens: compare with the ledger at once.
    const seen = await this.backend.watch?.(() => {
      this.needsCheck = true;
      this.suspect = true;
      this.schedule();
    });
    // Without such events, a cheap look every few seconds (measured: ~0.1 CPU-s a minute, so
    // not when the events do the job).
    if (this.backend.present && !seen && !this.closed) {
      this.probeTimer = setInterval(() => void this.probe(), this.opts.probeIntervalMs);
      this.probeTimer.unref();
    }
    this.schedule();
  }

  /** Queue bans; all queued together go out in one process. Never throws: failures are logged and retried. */
  ban(entries: BanEntry[]): void {
    const now = Date.now();
    for (const e of entries) {
      const seconds = clampSeconds(e?.seconds);
      if (!e || !validAddress(e.address, e.family) || seconds === null) {
        this.log.warn('refusing an invalid ban (not sent to the firewall)', { address: String(e?.address), family: String(e?.family), seconds: String(e?.seconds) });
        continue;
      }
      this.pending.set(e.address, { add: true, family: e.family, expiry: now + seconds * 1000 });
      this.refused.delete(e.address);
    }
    this.schedule();
  }

  unban(entries: { address: string; family: Family }[]): void {
    for (const e of entries) {
      if (!e || !validAddress(e.address, e.family)) {
        this.log.warn('refusing an invalid unban (not sent to the firewall)', { address: String(e?.address), family: String(e?.family) });
        continue;
      }
      this.pending.set(e.address, { add: false, family: e.family });
      this.refused.delete(e.address);
    }
    this.schedule();
  }

  /**
   * Resolves once the address's queued change reached the kernel (null), or with why not: the
   * kernel refused it (dropped), or the firewall failed and it waits for a retry. Nothing
   * queued: null at once. For `tallow ban`/`unban`, after ban()/unban().
   */
  outcome(address: string): Promise<string | null> {
    if (!this.pending.has(address) && !this.inflight?.has(address)) return Promise.resolve(this.refused.get(address) ?? null);
    if (!this.started || this.closed) return Promise.resolve('the firewall is not running');
    if (this.retryTimer) return Promise.resolve(`not in the firewall yet: retrying after a failure (backend ${this.backend.name})`);
    return new Promise((resolve) => {
      const list = this.outcomes.get(address);
      if (list) list.push(resolve);
      else this.outcomes.set(address, [resolve]);
    });
  }

  private settle(address: string, why: string | null): void {
    const list = this.outcomes.get(address);
    if (!list) return;
    this.outcomes.delete(address);
    for (const f of list) f(why);
  }

  /** Resolves when everything queued so far reached the kernel (or failed and was re-queued). */
  flush(): Promise<void> {
    if (!this.started || this.closed) return Promise.resolve();
    if (!this.running && !this.scheduled && (this.pending.size === 0 || this.retryTimer)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  list(): Promise<KernelBan[]> {
    return this.backend.list();
  }

  /** Stop timers; bans stay in the kernel to expire by themselves. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.checkTimer) clearInterval(this.checkTimer);
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.checkTimer = this.retryTimer = this.probeTimer = null;
    if (this.running) await this.running;
    if (this.pending.size) this.log.warn('firewall closing with changes not applied', { count: String(this.pending.size) });
    for (const a of [...this.outcomes.keys()]) this.settle(a, 'the firewall closed before it was applied');
    this.wake();
    await this.backend.close?.();
  }

  private delay(failures: number): number {
    return Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** Math.max(0, failures - 1));
  }

  /** The ledger's bans still running, minus those the kernel refused. */
  private held(now: number): HeldBan[] {
    const out: HeldBan[] = [];
    for (const b of this.opts.held()) if (b.expiry > now && !this.refused.has(b.address)) out.push(b);
    return out;
  }

  /** Families whose sampled held bans are all missing from the kernel. */
  private missingFamilies(now: number): Promise<Set<Family>> {
    const sample = sampleHeld(this.opts.held(), (a) => this.pending.has(a) || this.refused.has(a), now);
    return missingFamilies(this.backend, sample);
  }

  /** The periodic cheap look: sampled bans missing means a flushed set; the next check re-fills. */
  private async probe(): Promise<void> {
    if (this.probing || this.closed || this.running || this.retryTimer) return;
    this.probing = true;
    try {
      if ((await this.missingFamilies(Date.now())).size) {
        this.needsCheck = true;
        this.suspect = true;
        this.schedule();
      }
    } catch {
      // A failing session: let the full check find out what is wrong.
      this.needsCheck = true;
      this.schedule();
    } finally {
      this.probing = false;
    }
  }

  /** One drain per tick, none while a batch is in flight (it picks up the new work) or a retry waits. */
  private schedule(): void {
    if (!this.started || this.closed || this.scheduled || this.running || this.retryTimer) return;
    if (this.pending.size === 0 && !this.needsCheck) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.running = this.drain().finally(() => {
        this.running = null;
        this.wake();
        // Work queued while the last step of the drain was awaiting.
        this.schedule();
      });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async drain(): Promise<void> {
    while (!this.closed) {
      let batch: Map<string, Pending> | null = null;
      try {
        if (this.needsCheck) await this.repair();
        if (this.pending.size === 0) return;
        batch = this.pending;
        this.pending = new Map();
        this.inflight = batch;
        await this.send(batch);
        this.inflight = null;
        if (this.failures) this.log.info('firewall working again', { backend: this.backend.name });
        this.failures = 0;
      } catch (e) {
        this.inflight = null;
        if (batch) {
          // Put the failed batch back; anything decided since about the same address wins.
          for (const [a, v] of this.pending) batch.set(a, v);
          this.pending = batch;
          for (const a of batch.keys()) this.settle(a, `not in the firewall yet: ${errText(e)} (will retry)`);
        }
        this.failures++;
        if (this.metrics) this.metrics.firewallFailures++;
        this.needsCheck = true;
        const delay = this.delay(this.failures);
        this.log.error('firewall update failed; will retry', {
          backend: this.backend.name,
          error: errText(e),
          queued: String(this.pending.size),
          retry_in_ms: String(delay),
        });
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.schedule();
        }, delay);
        return;
      }
    }
  }

  /** Sends one batch; each ban carries its REMAINING time (a retried ban does not get extended). */
  private async send(batch: Map<string, Pending>): Promise<void> {
    const now = Date.now();
    const ops: Op[] = [];
    for (const [address, p] of batch) {
      if (!p.add || p.expiry > now) ops.push([address, p]);
      else this.settle(address, null); // expired while queued, nothing to add
    }
    // Slices keep each request to the tool well inside its timeout (a million bans at once took
    // longer than the 120 s a request may take) and let a failure lose only a slice's progress.
    for (let i = 0; i < ops.length; i += SLICE) await this.sendOps(ops.slice(i, i + SLICE), now);
  }

  /**
   * A batch the kernel refuses in part is halved until the refused elements are alone; they are
   * dropped with an error naming them, everything else lands. Other errors go up (batch retried).
   */
  private async sendOps(ops: Op[], now: number): Promise<void> {
    const add: BanEntry[] = [];
    const remove: { address: string; family: Family }[] = [];
    for (const [address, p] of ops) {
      if (p.add) add.push({ address, family: p.family, seconds: Math.max(1, Math.ceil((p.expiry - now) / 1000)) });
      else remove.push({ address, family: p.family });
    }
    try {
      await this.backend.apply(add, remove);
    } catch (e) {
      if (!(e instanceof RefusedError)) throw e;
      if (ops.length > 1) {
        const mid = ops.length >>> 1;
        await this.sendOps(ops.slice(0, mid), now);
        await this.sendOps(ops.slice(mid), now);
        return;
      }
      const [address, p] = ops[0];
      this.refused.set(address, e.message);
      this.log.error(p.add ? 'the firewall refused a ban; dropped' : 'the firewall refused an unban; dropped', {
        backend: this.backend.name,
        address,
        error: e.message,
      });
      this.settle(address, e.message);
      this.onRefused?.(address, p.family, e.message);
      return;
    }
    if (this.metrics) {
      this.metrics.firewallBatches++;
      this.metrics.firewallElements += ops.length;
    }
    for (const [address] of ops) this.settle(address, null);
  }

  /**
   * Sets or rules gone (a firewall reload, a flush by hand): re-create them and re-fill every ban we
   * still hold. A set that exists but holds none of our bans of its family was flushed: re-fill it.
   * (Single entries removed by an administrator are left removed.) The sets are listed only when
   * sampled bans were missing, or when the backend cannot look bans up cheaply.
   */
  private async repair(): Promise<void> {
    const suspect = this.suspect;
    this.suspect = false;
    if (!(await this.backend.check())) {
      this.log.warn('firewall sets or rules missing (flushed or reloaded from outside?); re-creating them', { backend: this.backend.name });
      await this.backend.setup();
      if (!(await this.backend.check())) throw new FirewallError('sets or rules still missing after set-up');
      if (this.metrics) this.metrics.firewallRepairs++;
      this.refill(this.held(Date.now()), new Set<Family>([4, 6]));
    } else if (!this.backend.present || suspect || (await this.missingFamilies(Date.now())).size) {
      const held = this.held(Date.now());
      if (held.length) {
        const inKernel = new Set((await this.backend.list()).map((k) => k.address));
        const emptied = new Set<Family>();
        for (const f of [4, 6] as Family[]) {
          const ours = held.filter((b) => b.family === f && !this.pending.has(b.address));
          if (ours.length && !ours.some((b) => inKernel.has(b.address))) emptied.add(f);
        }
        if (emptied.size) {
          this.log.warn('firewall set emptied from outside; re-filling it', { backend: this.backend.name, families: [...emptied].join(',') });
          if (this.metrics) this.metrics.firewallRepairs++;
          this.refill(held, emptied);
        }
      }
    }
    this.needsCheck = false;
  }

  private refill(held: HeldBan[], fams: Set<Family>): void {
    let n = 0;
    for (const b of held) {
      if (!fams.has(b.family) || this.pending.has(b.address)) continue;
      this.pending.set(b.address, { add: true, family: b.family, expiry: b.expiry });
      n++;
    }
    if (n) this.log.info('re-filling bans into the firewall', { count: String(n) });
  }
}
