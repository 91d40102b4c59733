// Scores per rule (issue 14): one Tracker per score pool. A rule with a policy of its own
// (threshold or limit, findtime, bantime, ports, ban prefix) scores in its own pool, so 0.8 on
// sshd and 0.8 on postfix never add up to a ban; rules without one share tallow.conf's pool ''
// and behave exactly as tallow's files always did. What is scored is the rule's target: the
// address, or the network it is in when the rule bans networks.
//
// max_records bounds all pools together: past it, the least recently seen unbanned record of any
// pool goes (O(pools) to find, pools being the rules with their own policy).
import type { Family } from './address';
import type { Config } from './config';
import type { Rule } from './rule';
import { ALL_PORTS, type Scope } from './scope';
import { FULL_PREFIX, targetOf, type Network } from './target';
import { Tracker, type Decision, type Observation, type SavedTrackerRecord, type TrackerOptions, type TrackerRecord } from './tracker';

export interface ScoringOptions {
  /** tallow.conf's: the shared pool's threshold and expires, the overall record cap */
  threshold: number;
  expires: number;
  maxRecords: number;
  /** addresses never scored or banned */
  isAllowed(address: string, family: Family): boolean;
  /**
   * Would a ban of this network cover an allowlisted address? Then the rule scores and bans the
   * address alone (an allowlisted host never loses its traffic to a neighbour's ban).
   */
  coversAllowed?(net: Network): boolean;
  /** ms since epoch until which the target is banned in the scope (the ledger's), 0 when it is not */
  bannedUntil(target: string, scope: string): number;
}

/**
 * A rule with tallow.conf's policy and no keys of its own, as rules.ts makes for tallow's files:
 * the shared pool, tallow's threshold and expires, every port, single addresses (tests, benches).
 */
export function defaultRule(config: Pick<Config, 'threshold' | 'expires'>): Rule {
  return {
    name: 'default',
    pool: '',
    enabled: true,
    noLog: false,
    threshold: config.threshold,
    findtime: 0,
    bantime: config.expires,
    scope: ALL_PORTS,
    prefix: { ...FULL_PREFIX },
    where: 'tallow.conf',
  };
}

/** Every scope the rules ban in, tallow's own first (for the firewall's sets). */
export function scopesOf(rules: Rule[]): Scope[] {
  const out = new Map<string, Scope>([['', ALL_PORTS]]);
  // A rule that is off has no sets or DROP rules of its own: nothing to clutter the firewall with.
  for (const r of rules) if (r.enabled && !out.has(r.scope.id)) out.set(r.scope.id, r.scope);
  return [...out.values()];
}

/** A scope's ports as people read them: `all`, `22`, `25,465,587/tcp`, `8000-8080`. */
export function portsText(scope: Scope | undefined, id: string): string {
  if (!scope) return id === '' ? 'all' : id; // a scope no rule uses any more: its id says it
  if (scope.ports === null) return 'all';
  return scope.ports.join(',') + (scope.protocols.length === 1 ? `/${scope.protocols[0]}` : '');
}

export class Scoring {
  private readonly pools = new Map<string, Tracker>();
  private opts: ScoringOptions;
  /** Evictions counted by pools since dropped (their records all gone). */
  private evictedGone = 0;
  /** Pools with a rule now (others only wait for their records to go). */
  private live = new Set<string>(['']);
  /** Records changed since the state file took them, over every pool (null: nobody asked). */
  private changed: TrackerRecord[] | null = null;

  constructor(opts: ScoringOptions, rules: Rule[] = []) {
    this.opts = opts;
    this.pools.set('', new Tracker(this.trackerOptions(null)));
    this.configure(rules, opts);
  }

  /** New rules and settings (start, reload): pools of rules still there keep their records. */
  configure(rules: Rule[], opts: ScoringOptions = this.opts): void {
    this.opts = opts;
    this.live = new Set<string>(['']);
    this.pools.get('')!.configure(this.trackerOptions(null));
    for (const r of rules) {
      if (this.live.has(r.pool)) continue;
      this.live.add(r.pool);
      const t = this.pools.get(r.pool);
      if (t) t.configure(this.trackerOptions(r));
      else this.pools.set(r.pool, this.tracker(r));
    }
    // A pool whose rule is gone keeps its records until they are pruned (its bans are the
    // ledger's and run out by themselves); nothing new scores there.
    this.capAll();
  }

  get size(): number {
    let n = 0;
    for (const t of this.pools.values()) n += t.size;
    return n;
  }

  get evicted(): number {
    let n = this.evictedGone;
    for (const t of this.pools.values()) n += t.evicted;
    return n;
  }

  /** Score one match of `rule` at `now` (ms) in the rule's pool; the decisions it causes. */
  observe(match: Observation, rule: Rule, now: number): Decision[] {
    let t = this.pools.get(rule.pool);
    if (!t) {
      this.pools.set(rule.pool, (t = this.tracker(rule)));
      this.live.add(rule.pool);
    }
    const before = t.size;
    const decisions = t.observe(match, now, this.targetFor(match.address, match.family, rule), rule.name);
    if (t.size > before) this.capAll();
    return decisions;
  }

  /** The target a rule scores and bans for an address: the address, or its network. */
  targetFor(address: string, family: Family, rule: Pick<Rule, 'prefix'>): string {
    const prefix = rule.prefix[family];
    if (prefix >= FULL_PREFIX[family]) return address;
    const target = targetOf(address, family, prefix);
    const base = target.slice(0, target.indexOf('/'));
    if (this.opts.coversAllowed?.({ base, family, prefix })) return address;
    return target;
  }

  /** A manual ban (control socket): tallow's pool, every port. */
  ban(address: string, family: Family, seconds: number, now: number): Decision[] {
    const t = this.pools.get('')!;
    const before = t.size;
    const d = t.ban(address, family, seconds, now);
    if (t.size > before) this.capAll();
    return d;
  }

  /** Forget the target in every pool (a manual unban). */
  unban(target: string, family: Family): Decision[] {
    for (const t of this.pools.values()) t.unban(target, family);
    return [{ action: 'unban', address: target, family, reason: 'manual' }];
  }

  /** Drop old records in every pool; pools of removed rules go once empty. Returns how many. */
  prune(now: number): number {
    let n = 0;
    for (const [pool, t] of this.pools) {
      n += t.prune(now);
      if (pool !== '' && t.size === 0 && !this.live.has(pool)) {
        this.evictedGone += t.evicted;
        this.pools.delete(pool);
      }
    }
    return n;
  }

  get(target: string, pool = ''): TrackerRecord | undefined {
    return this.pools.get(pool)?.get(target);
  }

  *records(): IterableIterator<TrackerRecord> {
    for (const t of this.pools.values()) yield* t.records();
  }

  /**
   * From now on, every record scored, banned or unbanned is remembered until takeChanged() (the
   * state log's delta). Off unless a state file is kept: nothing would ever empty the list.
   */
  trackChanges(): void {
    this.changed ??= [];
    for (const t of this.pools.values()) t.changed = this.changed;
  }

  /** The records changed since the last call (a record no longer held was removed). */
  takeChanged(): TrackerRecord[] {
    if (!this.changed) return [];
    const out = this.changed.slice(); // the pools keep the same list
    this.changed.length = 0;
    for (const r of out) r.dirty = false;
    return out;
  }

  /** Put back a saved record into its pool; false (not restored) when no rule scores there now. */
  restore(record: SavedTrackerRecord): boolean {
    const t = this.pools.get(record.pool ?? '');
    if (!t) return false;
    t.restore(record);
    this.capAll();
    return true;
  }

  /**
   * The `n` highest scores of a pool now (findtime honoured), highest first: `tallow rules`.
   * One pass over the pool, no sort of all its records.
   */
  top(pool: string, n: number, now: number, findtime = 0): { address: string; score: number; count: number; banned: boolean }[] {
    const t = this.pools.get(pool);
    if (!t || n <= 0) return [];
    const best: { address: string; score: number; count: number; banned: boolean }[] = [];
    for (const r of t.records()) {
      let score = r.score;
      if (findtime > 0 && !r.banned && r.window) {
        score = 0;
        for (let i = 0; i < r.window.length; i += 2) if (r.window[i] > now - findtime * 1000) score += r.window[i + 1];
      } else if (findtime > 0 && !r.banned && now - r.last >= findtime * 1000) score = 0;
      if (score <= 0) continue;
      if (best.length === n && score <= best[n - 1].score) continue;
      const item = { address: r.address, score, count: r.count, banned: r.banned };
      let i = best.length;
      while (i > 0 && best[i - 1].score < score) i--;
      best.splice(i, 0, item);
      if (best.length > n) best.pop();
    }
    return best;
  }

  private tracker(rule: Rule): Tracker {
    const t = new Tracker(this.trackerOptions(rule));
    t.changed = this.changed;
    return t;
  }

  private trackerOptions(rule: Rule | null): TrackerOptions {
    const o = this.opts;
    const common = {
      // The cap is kept here, over every pool (capAll).
      maxRecords: Infinity,
      isAllowed: o.isAllowed,
      bannedUntil: o.bannedUntil,
    };
    if (rule === null) return { ...common, threshold: o.threshold, expires: o.expires, pool: '', scope: '' };
    return {
      ...common,
      threshold: rule.threshold,
      // An unseen record of a rule's own pool is kept as long as tallow's (expires), unless the
      // rule's window says when its matches stop counting.
      expires: o.expires,
      findtime: rule.findtime,
      bantime: rule.bantime,
      pool: rule.pool,
      scope: rule.scope.id,
    };
  }

  /** max_records over every pool's unbanned records (see Tracker.evictOverCap): the least recently seen goes first. */
  private capAll(): void {
    let size = 0;
    for (const t of this.pools.values()) size += t.activeSize;
    while (size > this.opts.maxRecords) {
      let oldest: Tracker | null = null;
      let at = Infinity;
      for (const t of this.pools.values()) {
        const a = t.oldestActive();
        if (a < at) (at = a), (oldest = t);
      }
      if (!oldest || !oldest.evictOne()) break;
      size--;
    }
  }
}
