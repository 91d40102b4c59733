// Backend choice, and the queue between the ledger's events and the kernel: everything decided
// in one tick goes out in one process, failures are retried with back-off (never dropped), and
// what someone else flushed or deleted is re-created and re-filled from the ledger's bans.
import type { Config } from '../config';
import type { BanEntry, BackendModule, FirewallBackend, FirewallSettings, KernelBan, Logger } from './backend';
import type { Family } from '../address';
import type { Metrics } from '../metrics';
import { dryrunBackend } from './dryrun';
import { firewalldBackend } from './firewalld';
import { ipsetBackend } from './ipset';
import { nftablesBackend } from './nftables';
import { clampSeconds, validAddress } from './validate';

/** No usable firewall: the daemon exits with EX_UNAVAILABLE. */
export class FirewallError extends Error {
  readonly exitCode = 69;
}

/** In backend=auto preference order. Adding a backend is adding its module here. */
export const BACKENDS: readonly BackendModule[] = [firewalldBackend, ipsetBackend, nftablesBackend];

/** The part of tallow.conf the backends read. */
export function firewallSettings(config: Config): FirewallSettings {
  const { expires, ipv6, nocreate, maxelem, iptPath, nftPath, fwcmdPath } = config;
  return { expires, ipv6, nocreate, maxelem, iptPath, nftPath, fwcmdPath };
}

/** The module running (or to run) for this configuration's `backend` key, if it names one. */
export function backendModule(name: string): BackendModule | undefined {
  return [...BACKENDS, dryrunBackend].find((b) => b.name === name);
}

/** backend=auto: firewalld if running, else ipset+iptables if present, else nftables. dryRun: log only. */
export async function chooseBackend(config: Config, log: Logger, dryRun: boolean): Promise<FirewallBackend> {
  const settings = firewallSettings(config);
  if (dryRun) return dryrunBackend.create(settings, log);
  if (config.backend === 'auto') {
    for (const m of BACKENDS) {
      if (await m.available(settings)) return m.create(settings, log);
    }
    throw new FirewallError(`no firewall backend available: ${BACKENDS.map((m) => m.unavailableWhy(settings)).join(', ')}`);
  }
  const m = BACKENDS.find((b) => b.name === config.backend);
  if (!m) throw new FirewallError(`unknown firewall backend "${config.backend}" (expected auto, ${BACKENDS.map((b) => b.name).join(', ')})`);
  if (!(await m.available(settings))) {
    throw new FirewallError(`backend=${m.name} is configured but not usable here: ${m.unavailableWhy(settings)}`);
  }
  return m.create(settings, log);
}

/** A ban the firewall should hold: what the ledger knows (expiry in ms since epoch). */
export interface HeldBan {
  address: string;
  family: Family;
  expiry: number;
}

export interface FirewallOptions {
  /** How often sets, rules and contents are verified (ms). */
  checkIntervalMs?: number;
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

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Firewall {
  private readonly opts: Required<Omit<FirewallOptions, 'metrics'>>;
  private readonly metrics: Metrics | undefined;
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

  constructor(
    readonly backend: FirewallBackend,
    private readonly log: Logger,
    opts: FirewallOptions = {},
  ) {
    const { metrics, ...rest } = opts;
    this.metrics = metrics;
    this.opts = { checkIntervalMs: 30_000, retryBaseMs: 1000, retryMaxMs: 60_000, startAttempts: 4, held: () => [], ...rest };
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
    }
    this.schedule();
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
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.checkTimer = this.retryTimer = null;
    if (this.running) await this.running;
    if (this.pending.size) this.log.warn('firewall closing with changes not applied', { count: String(this.pending.size) });
    this.wake();
  }

  private delay(failures: number): number {
    return Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** Math.max(0, failures - 1));
  }

  /** The ledger's bans still running, by family. */
  private held(now: number): HeldBan[] {
    const out: HeldBan[] = [];
    for (const b of this.opts.held()) if (b.expiry > now) out.push(b);
    return out;
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
        await this.send(batch);
        if (this.failures) this.log.info('firewall working again', { backend: this.backend.name });
        this.failures = 0;
      } catch (e) {
        if (batch) {
          // Put the failed batch back; anything decided since about the same address wins.
          for (const [a, v] of this.pending) batch.set(a, v);
          this.pending = batch;
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
    const add: BanEntry[] = [];
    const remove: { address: string; family: Family }[] = [];
    for (const [address, p] of batch) {
      if (!p.add) remove.push({ address, family: p.family });
      else if (p.expiry > now) add.push({ address, family: p.family, seconds: Math.ceil((p.expiry - now) / 1000) });
      // else: expired while queued, nothing to add
    }
    if (add.length === 0 && remove.length === 0) return;
    await this.backend.apply(add, remove);
    if (this.metrics) {
      this.metrics.firewallBatches++;
      this.metrics.firewallElements += add.length + remove.length;
    }
  }

  /**
   * Sets or rules gone (a firewall reload, a flush by hand): re-create them and re-fill every ban we
   * still hold. A set that exists but holds none of our bans of its family was flushed: re-fill it.
   * (Single entries removed by an administrator are left removed.)
   */
  private async repair(): Promise<void> {
    const now = Date.now();
    const held = this.held(now);
    if (!(await this.backend.check())) {
      this.log.warn('firewall sets or rules missing (flushed or reloaded from outside?); re-creating them', { backend: this.backend.name });
      await this.backend.setup();
      if (!(await this.backend.check())) throw new FirewallError('sets or rules still missing after set-up');
      if (this.metrics) this.metrics.firewallRepairs++;
      this.refill(held, new Set<Family>([4, 6]));
    } else if (held.length) {
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
