// The history as a listener: every ban (new, restored, adopted), unban and (unless
// history_matches=0) match becomes a row, written in batches of BATCH in one transaction each,
// a tick after the decision, never in its path. When the store fails (file full, server away,
// wrong password) the dispatcher keeps the events and retries with back-off; past history_queue
// events it drops and counts them (tallow_listener_events_dropped_total{listener="history"},
// and a log line). Bans go on whatever the store does.
//
// The match cap: per address and clock hour, the first history_matches_per_hour matches are
// stored one row each; the rest are counted and stored as one row (pattern '*', n = how many)
// when the address is next seen in a later hour, at the hour's first event, or at close. So a
// flood of 1,000,000 matches from one address stores at most cap+1 rows an hour.
import { randomBytes } from 'node:crypto';
import type { Listener, TallowEvent } from '../events';
import { errText } from '../limits';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import type { HistoryBan, HistoryRow, HistoryStore, LastBan } from '../history/store';
import { banKey } from '../scope';

/** Rows per transaction: large enough to make a flood cheap (bench/history), small enough to hold the loop only briefly. */
export const BATCH = 1000;
/** How long events wait to be written with later ones; the decision never waits for it. */
const GATHER_MS = 100;
const HOUR_MS = 3_600_000;
const PRUNE_EVERY_MS = HOUR_MS;
/** Rows deleted per statement: a short transaction, the daemon's loop free in between. */
const PRUNE_BATCH = 1000;
/** Bans read back for the recidive count at start, newest first: a flood's worth, not a table scan without end. */
const RECENT_BANS = 1_000_000;

export interface HistoryOptions {
  store: HistoryStore;
  log: Logger;
  metrics: Metrics;
  matches: boolean;
  matchesPerHour: number;
  days: number;
  maxQueue: number;
}

export class HistoryListener implements Listener {
  readonly name = 'history';
  readonly wantsMatches: boolean;
  readonly maxQueue: number;
  readonly maxBatch = BATCH;
  /** A flood's events gathered for this long go in one transaction: commits of a few hundred rows cost ~40% more per row (bench/history). */
  readonly gatherMs = GATHER_MS;
  readonly store: HistoryStore;
  /** This daemon run; with each row's sequence number it makes a retried batch idempotent. */
  private readonly run = `${process.pid}-${Date.now()}-${randomBytes(4).toString('hex')}`;
  private seq = 0;
  /** The last batch handed and its rows (`starts`: each event's first row): a retry writes the same rows with the same numbers. */
  private last: { events: TallowEvent[]; rows: HistoryRow[]; starts: number[] } | null = null;
  /**
   * The cap's counts this hour (this.hour): matches stored per address, and matches over the cap.
   * Plain numbers, no object per address (a flood's addresses are mostly seen once); every entry
   * is of the current hour, as rollHour empties both maps when the hour changes.
   */
  private readonly stored = new Map<string, number>();
  private readonly over = new Map<string, number>();
  /** Bans adopted from the kernel at start and still running: banKey(address, scope) -> expiry. */
  private readonly adopted = new Map<string, number>();
  private hour = 0;
  private timer: NodeJS.Timeout | null = null;
  private pruning = false;
  private closed = false;
  private reported = false;

  constructor(private readonly o: HistoryOptions) {
    this.store = o.store;
    this.wantsMatches = o.matches;
    this.maxQueue = o.maxQueue;
  }

  /**
   * Open the store now (so a wrong setting is said at start, not at the first ban) and then hand
   * the repeat-offender view its data. A failure is logged; writes retry it later.
   */
  /** `recent`, when given: every ban since `recidiveSince` (the recidive rule's count, recidive.ts). */
  async start(recidiveSince: number, loaded: (bans: LastBan[]) => void, recent?: (bans: HistoryBan[]) => void): Promise<void> {
    const { log } = this.o;
    try {
      await this.store.open();
      log.info(`history: ${this.store.where}`, { days: String(this.o.days), matches: String(this.o.matches) });
      await this.readSteps(recidiveSince, loaded, recent);
    } catch (e) {
      this.o.metrics.historyStoreErrors++;
      this.reported = true;
      log.error(`history: ${errText(e)}; bans go on, events wait (up to history_queue=${this.maxQueue}) until the store is back`);
      return;
    }
    this.timer = setInterval(() => void this.prune(Date.now()), PRUNE_EVERY_MS);
    this.timer.unref();
    void this.prune(Date.now());
  }

  /** The repeat-offender views' data since `since` (at start, and after a reload that widens them). Throws when the store cannot answer. */
  async readSteps(since: number, loaded: (bans: LastBan[]) => void, recent?: (bans: HistoryBan[]) => void): Promise<void> {
    loaded(await this.store.lastBans(since));
    if (recent) recent(await this.store.bans({ since, limit: RECENT_BANS }));
  }

  async handle(events: TallowEvent[]): Promise<void> {
    // Rows straight into one array, no array or WeakMap entry per event (both showed in a
    // flood's profile). A batch handed again (the dispatcher retries from the head of its queue
    // after a throw, or an unclear failure) starts with the same events as the last one: their
    // rows, with their numbers, are reused, so they are stored and counted against the cap once.
    const rows: HistoryRow[] = [];
    const starts: number[] = [];
    const p = this.last;
    let i = 0;
    if (p) {
      for (; i < events.length && i < p.events.length && events[i] === p.events[i]; i++) {
        starts.push(rows.length);
        const end = i + 1 < p.events.length ? p.starts[i + 1] : p.rows.length;
        for (let k = p.starts[i]; k < end; k++) rows.push(p.rows[k]);
      }
    }
    for (; i < events.length; i++) {
      starts.push(rows.length);
      this.toRows(events[i], rows);
    }
    this.last = { events, rows, starts };
    if (rows.length === 0) return;
    try {
      await this.store.write(this.run, rows);
    } catch (e) {
      this.o.metrics.historyStoreErrors++;
      throw e;
    }
    this.o.metrics.historyRowsStored += rows.length;
    if (this.reported) {
      this.reported = false;
      this.o.log.info(`history: ${this.store.where} reachable again`);
    }
  }

  /** Rows older than history_days, in small batches, yielding to the loop between them. */
  async prune(now: number): Promise<number> {
    if (this.pruning || this.closed) return 0;
    this.pruning = true;
    let total = 0;
    try {
      const before = now - this.o.days * 86_400_000;
      for (let i = 0; i < 10_000 && !this.closed; i++) {
        const n = await this.store.prune(before, PRUNE_BATCH);
        total += n;
        if (n === 0) break;
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      this.o.metrics.historyStoreErrors++;
      this.o.log.warn(`history: deleting rows older than ${this.o.days} days failed: ${errText(e)}; tried again later`);
    } finally {
      this.pruning = false;
    }
    this.o.metrics.historyRowsPruned += total;
    if (total) this.o.log.info(`history: ${total} rows older than ${this.o.days} days deleted`);
    return total;
  }

  /** The event's rows, appended to `out`. */
  private toRows(e: TallowEvent, out: HistoryRow[]): void {
    if (e.kind === 'ban') {
      const b = e.ban;
      // Found in the kernel at start: a new decision for it while it runs is the same attack read
      // again from the journal (the state file was older than the kernel), not a second ban.
      let renewed = false;
      let covers = 0;
      if (this.adopted.size || e.cause === 'adopted') {
        const key = banKey(b.address, b.scope);
        const adopted = this.adopted.get(key);
        this.adopted.delete(key);
        if (e.cause === 'adopted') this.adopted.set(key, b.expiry);
        renewed = e.cause === 'new' && adopted !== undefined && b.since <= adopted;
        covers = adopted ?? 0;
      }
      const row: HistoryRow = {
        kind: 'ban', seq: ++this.seq, address: b.address, family: b.family, since: b.since, expiry: b.expiry, origin: b.origin,
        reason: b.reason, pattern: b.pattern, score: b.score, count: b.count, step: b.step ?? 0, rule: b.rule, scope: b.scope,
        cause: renewed ? 'renewed' : e.cause,
      };
      if (renewed) row.covers = covers;
      out.push(row);
      return;
    }
    if (e.kind === 'unban') {
      if (this.adopted.size) this.adopted.delete(banKey(e.ban.address, e.ban.scope));
      out.push({ kind: 'unban', seq: ++this.seq, address: e.ban.address, since: e.ban.since, scope: e.ban.scope, at: e.at, reason: e.reason });
      return;
    }
    if (e.kind === 'notify') {
      out.push({ kind: 'login', seq: ++this.seq, at: e.at, address: e.address, username: e.user, method: e.method, fingerprint: e.fingerprint || null, rule: e.rule });
      return;
    }
    if (e.noLog) return;
    const hour = Math.floor(e.at / HOUR_MS);
    if (hour !== this.hour) this.rollHour(hour, out);
    const stored = this.stored.get(e.address) ?? 0;
    if (stored < this.o.matchesPerHour) {
      this.stored.set(e.address, stored + 1);
      out.push({ kind: 'match', seq: ++this.seq, address: e.address, at: e.at, pattern: e.pattern, n: 1, rule: e.rule ?? null });
    } else {
      this.over.set(e.address, (this.over.get(e.address) ?? 0) + 1);
      this.o.metrics.historyMatchesCapped++;
    }
  }

  /** A new hour: every address's count starts again; what went over the cap is written now. */
  private rollHour(hour: number, out: HistoryRow[]): void {
    this.overRows(out);
    this.hour = hour;
  }

  /** One summary row per address over the cap this hour (pattern '*', n = how many); the counts start again. */
  private overRows(out: HistoryRow[]): void {
    const at = this.hour * HOUR_MS + HOUR_MS - 1;
    for (const [address, n] of this.over) out.push({ kind: 'match', seq: ++this.seq, address, at, pattern: '*', n });
    this.over.clear();
    this.stored.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    // What went over the cap this hour: one last row each (best effort, the store may be away).
    const rest: HistoryRow[] = [];
    this.overRows(rest);
    try {
      if (rest.length && this.store.isOpen) {
        await this.store.write(this.run, rest);
        this.o.metrics.historyRowsStored += rest.length;
      }
    } catch (e) {
      this.o.log.warn(`history: the last ${rest.length} match summaries were not stored: ${errText(e)}`);
    }
    await this.store.close();
  }
}
