// Backend choice, and the queue between the ledger's events and the kernel: everything decided
// while the previous batch was in flight goes out as one batch (through the backend's long-lived
// session), failures are retried with back-off (never dropped), elements the kernel refuses are
// found by splitting the batch and dropped with an error naming them (send.ts), and what someone
// else flushed or deleted is re-created and re-filled from the ledger's bans (repair.ts). A ban
// is an address (or network) in a scope: the queue keys everything by banKey(address, scope).
import { type BanEntry, type BanRemoval, type FirewallBackend, type KernelBan, type Logger } from './backend';
import { FirewallError } from './choose';
import type { HeldBan } from './probe';
import { repair, sampledMissing, type QueueView } from './repair';
import type { Family } from '../address';
import type { Metrics } from '../metrics';
import { banKey, setName, type Scope } from '../scope';
import { classify, scopeList, scopeMap, type Target } from './scopes';
import { sendBatch, type Pending } from './send';
import { clampSeconds } from './validate';

export { BACKEND_NAMES, FirewallError, backendModule, chooseBackend, firewallSettings } from './choose';

export type { HeldBan };

export interface FirewallOptions {
  /** How often sets and rules are verified with the tools (ms). */
  checkIntervalMs?: number;
  /**
   * How often a few held bans are looked up through the backend's session (no process), so an
   * emptied set is re-filled within seconds (ms); only where the backend cannot see reloads.
   */
  probeIntervalMs?: number;
  /**
   * An element the kernel refused (or whose scope is not held) and that was dropped: the ledger
   * should forget that ban (banKey(address, scope)).
   */
  onRefused?: (address: string, family: Family, reason: string, scope: string) => void;
  /** First retry delay after a failure (ms); doubles up to retryMaxMs. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** setup() attempts in start() before giving up with FirewallError. */
  startAttempts?: number;
  /** The bans the kernel should hold now (the ledger's): what a lost set is re-filled with. */
  held?: () => Iterable<HeldBan>;
  /** The scopes bans may name; default: the backend's (ALL_PORTS when it has none). */
  scopes?: Scope[];
  metrics?: Metrics;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Firewall {
  private readonly opts: Required<Omit<FirewallOptions, 'metrics' | 'onRefused' | 'scopes'>>;
  private readonly metrics: Metrics | undefined;
  private readonly onRefused: FirewallOptions['onRefused'];
  /** Bans (banKey) whose last change the kernel refused: not probed, not re-filled, until changed again. */
  private refused = new Map<string, string>();
  /** The scopes bans may name, by id. */
  private scopes: Map<string, Scope>;
  /** A setScopes() in progress: no batch goes out meanwhile (set-ups must not overlap). */
  private settingUp: Promise<void> | null = null;
  /** Callers of outcome() waiting for a ban's change to land (by banKey). */
  private outcomes = new Map<string, ((why: string | null) => void)[]>();
  /** Sampled bans were missing: the next check compares the sets with the ledger. */
  private suspect = false;
  private probeTimer: NodeJS.Timeout | null = null;
  private probing = false;
  /** Changes not yet sent (by banKey); the latest decision about a ban wins. */
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
  /** What repair.ts sees of this queue. */
  private readonly view: QueueView;
  /** The batch being sent (outcome() waits for its addresses too). */
  private inflight: Map<string, Pending> | null = null;

  constructor(
    readonly backend: FirewallBackend,
    private readonly log: Logger,
    opts: FirewallOptions = {},
  ) {
    const { metrics, onRefused, scopes, ...rest } = opts;
    this.metrics = metrics;
    this.onRefused = onRefused;
    this.scopes = scopeMap(scopeList(scopes ?? backend.scopes));
    this.view = {
      backend,
      log,
      metrics,
      held: () => this.opts.held(),
      holds: (scope) => this.scopes.has(scope),
      queued: (key) => this.pending.has(key),
      refused: (key) => this.refused.has(key),
      queue: (key, p) => this.pending.set(key, p),
      syncScopes: () => this.syncScopes(),
    };
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
        // Scopes given to the queue and not to the backend: the backend holds them too.
        await this.backend.setScopes?.([...this.scopes.values()]);
        await this.backend.setup();
        this.syncScopes();
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
      const t = this.target(e, 'ban');
      if (!t || seconds === null) {
        if (t) this.log.warn('refusing an invalid ban (not sent to the firewall)', { address: String(e?.address), family: String(e?.family), seconds: String(e?.seconds) });
        continue;
      }
      const key = banKey(t.address, t.scope);
      this.pending.set(key, { ...t, add: true, expiry: now + seconds * 1000 });
      this.refused.delete(key);
    }
    this.schedule();
  }

  unban(entries: BanRemoval[]): void {
    for (const e of entries) {
      const t = this.target(e, 'unban');
      if (!t) continue;
      const key = banKey(t.address, t.scope);
      this.pending.set(key, { ...t, add: false });
      this.refused.delete(key);
    }
    this.schedule();
  }

  /**
   * The entry's address, family and scope when the scope is held and its set can hold the
   * address; else null, logged. A ban in a scope not held (one the backend was never given) is
   * dropped as a refused element is: named, and reported to onRefused so the ledger forgets it.
   */
  private target(e: BanRemoval | undefined, what: 'ban' | 'unban'): Target | null {
    const t = classify(e, this.scopes);
    if (t.kind === 'ok') return t.target;
    if (t.kind === 'unknown scope') {
      const { address, family, scope } = t.target;
      const why = `no firewall set for scope ${JSON.stringify(scope)} (not among the scopes set up)`;
      this.log.error(`the firewall refused ${what === 'ban' ? 'a ban' : 'an unban'}; dropped`, { backend: this.backend.name, address, scope, error: why });
      this.refused.set(banKey(address, scope), why);
      // Not from inside the ledger's own event (this runs in its listener): after it.
      queueMicrotask(() => this.onRefused?.(address, family, why, scope));
    } else {
      this.log.warn(`refusing an invalid ${what} (not sent to the firewall)`, { address: String(e?.address), family: String(e?.family), scope: String(e?.scope ?? '') });
    }
    return null;
  }

  /**
   * Resolves once the queued change of the address in this scope reached the kernel (null), or
   * with why not: the kernel refused it (dropped), or the firewall failed and it waits for a
   * retry. Nothing queued: null at once. For `tallow ban`/`unban`, after ban()/unban().
   */
  outcome(address: string, scope = ''): Promise<string | null> {
    const key = banKey(address, scope);
    if (!this.pending.has(key) && !this.inflight?.has(key)) return Promise.resolve(this.refused.get(key) ?? null);
    if (!this.started || this.closed) return Promise.resolve('the firewall is not running');
    if (this.retryTimer) return Promise.resolve(`not in the firewall yet: retrying after a failure (backend ${this.backend.name})`);
    return new Promise((resolve) => {
      const list = this.outcomes.get(key);
      if (list) list.push(resolve);
      else this.outcomes.set(key, [resolve]);
    });
  }

  private settle(key: string, why: string | null): void {
    const list = this.outcomes.get(key);
    if (!list) return;
    this.outcomes.delete(key);
    for (const f of list) f(why);
  }

  /**
   * Adds scopes (a reload with new rules): their sets and rules are set up before this resolves,
   * then bans may name them. Scopes held already stay (their bans expire by themselves). No
   * batch goes out meanwhile. Throws (and holds no new scope) when the set-up fails.
   */
  async setScopes(scopes: Scope[]): Promise<void> {
    scopeList(scopes); // a bad scope throws here, before anything waits
    while (this.settingUp) await this.settingUp;
    const all = scopeList(this.scopes.values(), scopes);
    const added = all.slice(this.scopes.size);
    if (!added.length || this.closed) return;
    const run = (async () => {
      // The batch in flight finishes first: set-up and sends never overlap.
      while (this.running) await this.running;
      if (this.backend.setScopes) await this.backend.setScopes(all);
    })();
    this.settingUp = run.catch(() => {});
    try {
      await run;
      this.scopes = scopeMap(all);
      this.syncScopes();
      const held = added.filter((s) => this.scopes.has(s.id)).map((s) => s.id);
      if (held.length) this.log.info('firewall scopes added', { backend: this.backend.name, scopes: held.join(',') });
    } finally {
      this.settingUp = null;
      // A set-up may have reloaded the firewall (firewalld empties its ipsets): check soon.
      this.needsCheck = true;
      this.schedule();
    }
  }

  /** The backend's word on the scopes it holds (nocreate: only those whose sets exist). */
  private syncScopes(): void {
    if (this.backend.scopes) this.scopes = scopeMap(scopeList(this.backend.scopes));
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

  /** The periodic cheap look: sampled bans missing means a flushed set; the next check re-fills. */
  private async probe(): Promise<void> {
    if (this.probing || this.closed || this.running || this.retryTimer || this.settingUp) return;
    this.probing = true;
    try {
      if ((await sampledMissing(this.view, Date.now())).size) {
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
    if (!this.started || this.closed || this.scheduled || this.running || this.retryTimer || this.settingUp) return;
    if (this.pending.size === 0 && !this.needsCheck) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      // setScopes() schedules again when its set-up is done.
      if (this.settingUp || this.closed) return;
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
        if (this.needsCheck) {
          const suspect = this.suspect;
          this.suspect = false;
          await repair(this.view, suspect);
          this.needsCheck = false;
        }
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

  /** Sends one batch (send.ts); refused elements are dropped with an error naming them. */
  private send(batch: Map<string, Pending>): Promise<void> {
    return sendBatch(this.backend, batch, {
      expired: (key) => this.settle(key, null),
      landed: (ops) => {
        if (this.metrics) {
          this.metrics.firewallBatches++;
          this.metrics.firewallElements += ops.length;
        }
        for (const [key] of ops) this.settle(key, null);
      },
      refused: ([key, p], why) => {
        this.refused.set(key, why);
        this.log.error(p.add ? 'the firewall refused a ban; dropped' : 'the firewall refused an unban; dropped', {
          backend: this.backend.name,
          address: p.address,
          set: setName(p.family, p.scope),
          error: why,
        });
        this.settle(key, why);
        this.onRefused?.(p.address, p.family, why, p.scope);
      },
    });
  }
}
