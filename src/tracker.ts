// Records and scores -> decisions. No journal or firewall calls; time is passed in (ms), so the
// same inputs always give the same decisions. What is banned is the ledger's to know: the tracker
// only reads it (bannedUntil) to tell a match during a ban from one after it.
//
// One tracker is one score pool (scoring.ts keeps one per rule with a policy of its own, and one
// for tallow.conf's shared pool): its records, its threshold, its window (findtime), how long its
// bans last and where they apply (scope). With no findtime, a record's score only grows until the
// record is pruned, exactly as in tallow. With findtime, matches older than it no longer count.
import type { Family } from './address';

/** One scored observation: a matched address and the pattern that matched. */
export interface Observation {
  address: string;
  family: Family;
  pattern: { name: string; score: number; ban: number };
}

export interface TrackerRecord {
  /** the target: an address, or a network (`2001:db8::/64`) for a rule with a ban prefix */
  address: string;
  family: Family;
  /** the score pool (rule.ts: '' is tallow.conf's shared one) */
  pool: string;
  score: number;
  count: number;
  /** ms since epoch */
  first: number;
  last: number;
  /** reached the threshold (or banned by hand); instant bans leave it false */
  banned: boolean;
  /** name of the pattern that caused the last ban */
  pattern: string | null;
  /**
   * With findtime: the matches still inside the window, flat [time, score, time, score, ...],
   * oldest first, at most MAX_WINDOW pairs; `score` is their sum. Absent without findtime.
   */
  window?: number[];
  /** In the change list (Tracker.changed) since the state file last took it. */
  dirty?: boolean;
}

/** A record as saved and restored (the pool is '' for files that kept none). */
export type SavedTrackerRecord = Omit<TrackerRecord, 'pool' | 'window' | 'dirty'> & { pool?: string };

export type Decision =
  | {
      action: 'ban';
      address: string;
      family: Family;
      seconds: number;
      score: number;
      count: number;
      pattern: string;
      reason: 'threshold' | 'instant' | 'manual';
      /** where it applies: a Scope id ('' every port) */
      scope: string;
      /** the rule that decided it; null for a manual ban */
      rule: string | null;
    }
  | { action: 'unban'; address: string; family: Family; reason: 'manual' };

/** What a decision to ban becomes in the ledger. */
export type BanDecision = Extract<Decision, { action: 'ban' }>;

export interface TrackerOptions {
  threshold: number;
  /** seconds: records unseen this long are dropped (without findtime); a threshold ban lasts this long unless bantime says */
  expires: number;
  maxRecords: number;
  /** seconds: matches older than this no longer count; 0 or absent: no window (tallow) */
  findtime?: number;
  /** seconds a threshold ban lasts (default: expires) */
  bantime?: number;
  /** the pool's name (default '') and the Scope id its bans apply to (default '': every port) */
  pool?: string;
  scope?: string;
  /** addresses never scored or banned */
  isAllowed(address: string, family: Family): boolean;
  /** ms since epoch until which the target is banned in the scope (the ledger's), 0 when it is not */
  bannedUntil(target: string, scope: string): number;
}

/** Scores are sums of decimals (5 x 0.2, 10 x 0.1): compare with a little slack. */
const EPSILON = 1e-9;

/**
 * Matches kept per record in a findtime window. Past it, the two oldest are merged at the later
 * one's time: a flood of tiny scores then counts a little longer than findtime (never shorter),
 * and a record costs at most 2 x MAX_WINDOW numbers. A `limit` of up to 32 is exact.
 */
export const MAX_WINDOW = 32;

/** Own copy of an address string: a regex capture is a slice that would keep its whole message alive. */
function own(s: string): string {
  return s.length >= 13 ? Buffer.from(s, 'latin1').toString('latin1') : s;
}

function freshRecord(address: string, family: Family, pool: string, now: number): TrackerRecord {
  // window: undefined from the start, so every record has one shape (no hidden-class change later).
  return { address: own(address), family, pool, score: 0, count: 0, first: now, last: now, banned: false, pattern: null, window: undefined, dirty: false };
}

/** Drop what left the window; the score is the sum of what is left. */
function trimWindow(rec: TrackerRecord, now: number, ms: number): void {
  // A record from before findtime was set (a reload, the state file): its score as one match.
  const w = (rec.window ??= rec.score > 0 ? [rec.last, rec.score] : []);
  let drop = 0;
  while (drop < w.length && w[drop] <= now - ms) drop += 2;
  if (drop > 0) w.splice(0, drop);
  let sum = 0;
  for (let i = 1; i < w.length; i += 2) sum += w[i];
  rec.score = sum;
}

function addToWindow(rec: TrackerRecord, now: number, score: number): void {
  const w = rec.window!;
  if (score > 0) w.push(now, score);
  if (w.length > 2 * MAX_WINDOW) w.splice(0, 4, w[2], w[1] + w[3]);
  rec.score += score;
}

export class Tracker {
  // Two insertion-ordered maps, re-inserted on every update, so each is ordered by last-seen:
  // eviction takes the first unbanned record in O(1), and pruning stops at the first young record.
  private readonly active = new Map<string, TrackerRecord>();
  private readonly banned = new Map<string, TrackerRecord>();
  /** Set by restore(): the maps may be out of last-seen order until the next full prune. */
  private unordered = false;
  private options: TrackerOptions;
  private evictedCount = 0;
  /**
   * Records scored, banned or unbanned since the state file last took them (set by Scoring when
   * a state file is kept; null otherwise): the state log appends only these. Each is listed once
   * (its `dirty` flag: a flag and a push cost less on the hot path than a Set). Pruned and
   * evicted records are not listed: loading applies the same pruning, and restore() the cap.
   */
  changed: TrackerRecord[] | null = null;

  constructor(options: TrackerOptions) {
    this.options = { ...options };
  }

  get size(): number {
    return this.active.size + this.banned.size;
  }
  get evicted(): number {
    return this.evictedCount;
  }
  get pool(): string {
    return this.options.pool ?? '';
  }
  get scope(): string {
    return this.options.scope ?? '';
  }

  /**
   * Score one match at time `now` (ms); returns the decisions it causes (usually none). `target`:
   * what is scored and banned (default the address; a rule's network); `rule`: named in decisions.
   */
  observe(match: Observation, now: number, target: string = match.address, rule: string | null = null): Decision[] {
    const { address, family, pattern } = match;
    if (this.options.isAllowed(address, family)) return [];
    const key = target;
    const findMs = (this.options.findtime ?? 0) * 1000;
    let rec = this.banned.get(key);
    if (rec !== undefined) {
      this.banned.delete(key);
      if (now < this.options.bannedUntil(key, this.scope)) {
        // Still banned: count it, no new decision (the kernel entry is there).
        rec.score += pattern.score;
        rec.count++;
        rec.last = now;
        this.banned.set(key, rec);
        this.mark(rec);
        return [];
      }
      // The ban ran out while the record lived on: start over.
      rec.banned = false;
      rec.score = 0;
      rec.pattern = null;
      if (rec.window) rec.window = [];
    } else {
      rec = this.active.get(key);
      if (rec !== undefined) this.active.delete(key);
    }
    rec ??= freshRecord(key, family, this.pool, now);
    if (findMs > 0) {
      trimWindow(rec, now, findMs);
      addToWindow(rec, now, pattern.score);
    } else {
      rec.score += pattern.score;
    }
    rec.count++;
    rec.last = now;
    this.mark(rec);

    if (rec.score >= this.options.threshold - EPSILON) {
      rec.banned = true;
      rec.pattern = pattern.name;
      rec.window = undefined; // a ban starts over when it ends
      this.banned.set(rec.address, rec);
      return [this.banDecision(rec, this.options.bantime ?? this.options.expires, pattern.name, 'threshold', rule)];
    }
    this.active.set(rec.address, rec);
    this.evictOverCap();
    if (pattern.ban > 0) {
      // tallow's throttle: a short ban now, the record keeps scoring towards the real one.
      rec.pattern = pattern.name;
      return [this.banDecision(rec, pattern.ban, pattern.name, 'instant', rule)];
    }
    return [];
  }

  /**
   * Drop records unseen for `expires` (with findtime: for findtime, when nothing of them counts
   * any more), banned ones after half their ban time. Returns how many were dropped.
   */
  prune(now: number): number {
    const o = this.options;
    const ttl = (o.findtime ? o.findtime : o.expires) * 1000;
    let dropped = 0;
    const sweep = (map: Map<string, TrackerRecord>, age: number) => {
      for (const [key, rec] of map) {
        if (now - rec.last > age) {
          map.delete(key);
          dropped++;
        } else if (!this.unordered) {
          break; // ordered by last-seen: the rest are younger
        }
      }
    };
    sweep(this.active, ttl);
    sweep(this.banned, ((o.bantime ?? o.expires) * 1000) / 2);
    if (this.unordered) {
      this.reorder(this.active);
      this.reorder(this.banned);
      this.unordered = false;
    }
    return dropped;
  }

  /** Manual ban/unban (control socket); unban also forgets the record. */
  ban(address: string, family: Family, seconds: number, now: number): Decision[] {
    // Allowlisted addresses are never banned, not even by hand (the control socket
    // reports the refusal).
    if (this.options.isAllowed(address, family)) return [];
    let rec = this.active.get(address) ?? this.banned.get(address);
    this.active.delete(address);
    this.banned.delete(address);
    rec ??= freshRecord(address, family, this.pool, now);
    rec.banned = true;
    rec.last = now;
    rec.pattern = 'manual';
    rec.window = undefined;
    this.banned.set(rec.address, rec);
    this.mark(rec);
    return [this.banDecision(rec, seconds, 'manual', 'manual', null)];
  }

  unban(address: string, family: Family): Decision[] {
    const rec = this.get(address);
    if (rec) this.mark(rec); // gone: the state log records its removal
    this.active.delete(address);
    this.banned.delete(address);
    return [{ action: 'unban', address, family, reason: 'manual' }];
  }

  get(address: string): TrackerRecord | undefined {
    return this.active.get(address) ?? this.banned.get(address);
  }

  *records(): IterableIterator<TrackerRecord> {
    yield* this.banned.values();
    yield* this.active.values();
  }

  /** Put back a saved record (state restore). */
  restore(record: SavedTrackerRecord): void {
    const r = record;
    const rec: TrackerRecord = { address: own(r.address), family: r.family, pool: this.pool, score: r.score, count: r.count, first: r.first, last: r.last, banned: r.banned, pattern: r.pattern, window: undefined, dirty: false };
    this.active.delete(rec.address);
    this.banned.delete(rec.address);
    (rec.banned ? this.banned : this.active).set(rec.address, rec);
    this.unordered = true;
    this.evictOverCap();
  }

  /** New threshold/expires/window/cap after a reload; records are kept. */
  configure(options: TrackerOptions): void {
    // Without a window now: what the window held stays as the score, and counts on as tallow's.
    if (!options.findtime && this.options.findtime) for (const r of this.records()) r.window = undefined;
    this.options = { ...options };
    this.evictOverCap();
  }

  /** ms since epoch of the least recently seen unbanned record (Infinity: none). O(1) unless just restored. */
  oldestActive(): number {
    if (this.active.size === 0) return Infinity;
    if (!this.unordered) return this.active.values().next().value!.last;
    return this.active.get(this.oldestActiveKey())!.last;
  }

  /** Drop the least recently seen unbanned record (a cap over several pools); false when there is none. */
  evictOne(): boolean {
    if (this.active.size === 0) return false;
    this.active.delete(this.unordered ? this.oldestActiveKey() : this.active.keys().next().value!);
    this.evictedCount++;
    return true;
  }

  /** Records not banned: the ones max_records caps. */
  get activeSize(): number {
    return this.active.size;
  }

  private mark(rec: TrackerRecord): void {
    if (this.changed !== null && !rec.dirty) {
      rec.dirty = true;
      this.changed.push(rec);
    }
  }

  private evictOverCap(): void {
    // Oldest unbanned first. Only unbanned records count against the cap: banned ones are never
    // evicted and are bounded by the kernel sets (maxelem); counting them let 100,000 bans (the
    // shipped max_records) evict every new attacker on sight, so none was banned any more.
    while (this.active.size > this.options.maxRecords && this.evictOne());
  }

  private oldestActiveKey(): string {
    let key = '';
    let last = Infinity;
    for (const [k, r] of this.active) if (r.last < last) (last = r.last), (key = k);
    return key;
  }

  private reorder(map: Map<string, TrackerRecord>): void {
    const recs = [...map.values()].sort((a, b) => a.last - b.last);
    map.clear();
    for (const r of recs) map.set(r.address, r);
  }

  private banDecision(rec: TrackerRecord, seconds: number, pattern: string, reason: 'threshold' | 'instant' | 'manual', rule: string | null): Decision {
    return {
      action: 'ban',
      address: rec.address,
      family: rec.family,
      seconds,
      score: rec.score,
      count: rec.count,
      pattern,
      reason,
      scope: reason === 'manual' ? '' : this.scope,
      rule,
    };
  }
}
