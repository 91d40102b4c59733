// Records and scores -> decisions. No journal or firewall calls; time is passed in (ms), so the
// same inputs always give the same decisions. What is banned is the ledger's to know: the tracker
// only reads it (bannedUntil) to tell a match during a ban from one after it.
import type { Family } from './address';

/** One scored observation: a matched address and the pattern that matched. */
export interface Observation {
  address: string;
  family: Family;
  pattern: { name: string; score: number; ban: number };
}

export interface TrackerRecord {
  address: string;
  family: Family;
  score: number;
  count: number;
  /** ms since epoch */
  first: number;
  last: number;
  /** reached the threshold (or banned by hand); instant bans leave it false */
  banned: boolean;
  /** name of the pattern that caused the last ban */
  pattern: string | null;
}

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
    }
  | { action: 'unban'; address: string; family: Family; reason: 'manual' };

/** What a decision to ban becomes in the ledger. */
export type BanDecision = Extract<Decision, { action: 'ban' }>;

export interface TrackerOptions {
  threshold: number;
  /** seconds */
  expires: number;
  maxRecords: number;
  /** addresses never scored or banned */
  isAllowed(address: string, family: Family): boolean;
  /** ms since epoch until which the address is banned (the ledger's), 0 when it is not */
  bannedUntil(address: string): number;
}

/** Scores are sums of decimals (5 x 0.2, 10 x 0.1): compare with a little slack. */
const EPSILON = 1e-9;

/** Own copy of an address string: a regex capture is a slice that would keep its whole message alive. */
function own(s: string): string {
  return s.length >= 13 ? Buffer.from(s, 'latin1').toString('latin1') : s;
}

function freshRecord(address: string, family: Family, now: number): TrackerRecord {
  return { address: own(address), family, score: 0, count: 0, first: now, last: now, banned: false, pattern: null };
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

  constructor(options: TrackerOptions) {
    this.options = { ...options };
  }

  get size(): number {
    return this.active.size + this.banned.size;
  }
  get evicted(): number {
    return this.evictedCount;
  }

  /** Score one match at time `now` (ms); returns the decisions it causes (usually none). */
  observe(match: Observation, now: number): Decision[] {
    const { address, family, pattern } = match;
    if (this.options.isAllowed(address, family)) return [];
    let rec = this.banned.get(address);
    if (rec !== undefined) {
      this.banned.delete(address);
      if (now < this.options.bannedUntil(address)) {
        // Still banned: count it, no new decision (the kernel entry is there).
        rec.score += pattern.score;
        rec.count++;
        rec.last = now;
        this.banned.set(address, rec);
        return [];
      }
      // The ban ran out while the record lived on: start over.
      rec.banned = false;
      rec.score = 0;
      rec.pattern = null;
    } else {
      rec = this.active.get(address);
      if (rec !== undefined) this.active.delete(address);
    }
    rec ??= freshRecord(address, family, now);
    rec.score += pattern.score;
    rec.count++;
    rec.last = now;

    if (rec.score >= this.options.threshold - EPSILON) {
      rec.banned = true;
      rec.pattern = pattern.name;
      this.banned.set(rec.address, rec);
      return [this.banDecision(rec, this.options.expires, pattern.name, 'threshold')];
    }
    this.active.set(rec.address, rec);
    this.evictOverCap();
    if (pattern.ban > 0) {
      // tallow's throttle: a short ban now, the record keeps scoring towards the real one.
      rec.pattern = pattern.name;
      return [this.banDecision(rec, pattern.ban, pattern.name, 'instant')];
    }
    return [];
  }

  /** Drop records unseen for `expires`, banned ones after expires/2. Returns how many were dropped. */
  prune(now: number): number {
    const ttl = this.options.expires * 1000;
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
    sweep(this.banned, ttl / 2);
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
    rec ??= freshRecord(address, family, now);
    rec.banned = true;
    rec.last = now;
    rec.pattern = 'manual';
    this.banned.set(rec.address, rec);
    return [this.banDecision(rec, seconds, 'manual', 'manual')];
  }

  unban(address: string, family: Family): Decision[] {
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
  restore(record: TrackerRecord): void {
    const rec: TrackerRecord = { ...record, address: own(record.address) };
    this.active.delete(rec.address);
    this.banned.delete(rec.address);
    (rec.banned ? this.banned : this.active).set(rec.address, rec);
    this.unordered = true;
    this.evictOverCap();
  }

  /** New threshold/expires/cap after a reload; records are kept. */
  configure(options: TrackerOptions): void {
    this.options = { ...options };
    this.evictOverCap();
  }

  private evictOverCap(): void {
    // Oldest unbanned first; banned records are never evicted (their count is bounded by the ban
    // rate and they are pruned after expires/2).
    while (this.size > this.options.maxRecords && this.active.size > 0) {
      const oldest = this.unordered ? this.oldestActive() : this.active.keys().next().value!;
      this.active.delete(oldest);
      this.evictedCount++;
    }
  }

  private oldestActive(): string {
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

  private banDecision(rec: TrackerRecord, seconds: number, pattern: string, reason: 'threshold' | 'instant' | 'manual'): Decision {
    return {
      action: 'ban',
      address: rec.address,
      family: rec.family,
      seconds,
      score: rec.score,
      count: rec.count,
      pattern,
      reason,
    };
  }
}
