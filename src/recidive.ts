// Repeat offenders: a small decision step between the tracker's decision and the ledger. An
// address banned by a threshold again within recidive_window of its previous threshold ban gets
// the next step of bantime_increment (a factor per step, or the next duration of a list, the last
// one repeating), never more than bantime_max. The view it decides from is in memory: loaded
// from the history at start (so steps survive a restart) and kept up to date from ledger events
// (this module's listener), so deciding costs a map lookup, never I/O.
//
// Per rule: a rule's own bantime_increment, bantime_max and recidive_window (tallow.patterns(5))
// replace tallow.conf's, and steps are counted per score pool: a rule with a policy of its own
// (any of those keys, a threshold, ports...) counts its own bans, so a second sshd ban doubles
// while the first postfix ban of the same address is a first ban, as each rule's scores are its
// own (fail2ban counts per jail too). Rules without a policy share tallow.conf's pool and count
// together, as in tallow. Across rules, the `recidive` rule below catches a repeat offender.
//
// The `recidive` rule (recidive_bans=N) is decided here too, from the same kind of view: every
// rule's bans (threshold or instant, any scope) of the last recidive_window per address; the Nth
// gives one ban on every port for recidive_bantime. That is how an address that tries sshd, then
// postfix, then dovecot is caught although no single rule sees it often.
//
// Other nodes' bans (origin remote:NODE, the fleet) count towards neither: they are that node's
// decisions, already stepped there (their duration is the publishing node's step), and counting
// them would let N nodes multiply each other's steps (an address banned once on each of ten
// nodes would reach step 9 on all of them), and one node, whatever fleet_quorum says, lengthen
// every other node's own later bans. A remote ban still protects this node for its time; this
// node's own count starts with its own first ban.
import type { Listener, TallowEvent } from './events';
import type { Ban, BanRequest } from './ledger';
import type { BantimeIncrement } from './history/settings';
import type { LastBan } from './history/store';
import { MAX_BAN_SECONDS } from './limits';
import type { Rule } from './rule';
import type { BanDecision } from './tracker';

export interface StepOptions {
  increment: BantimeIncrement;
  /** seconds */
  max: number;
  /** seconds */
  window: number;
  /** the recidive rule: this many bans within `window` -> one ban on every port; 0 off */
  recidiveBans: number;
  /** seconds */
  recidiveBantime: number;
}

export type SteppedDecision = BanDecision & { step?: number };

interface Last {
  since: number;
  step: number;
}

/** One ban the recidive rule counts: when it began and where (two scopes banned in one ms are two bans). */
interface Counted {
  since: number;
  scope: string;
}

/** Another node's ban, applied here through the fleet. */
const remote = (b: { origin?: string }): boolean => b.origin !== undefined && b.origin.startsWith('remote:');

/** Bans the recidive rule counts: this node's rules' own (not manual, adopted, recidive or remote ones). */
const counts = (b: { reason: string; origin?: string }): boolean => (b.reason === 'threshold' || b.reason === 'instant') && !remote(b);

type StepRule = Pick<Rule, 'name' | 'pool' | 'increment' | 'bantimeMax' | 'recidiveWindow'>;

export class BanSteps {
  /** pool+address -> its last threshold ban; insertion-ordered by time, so pruning stops at the first young one */
  private readonly last = new Map<string, Last>();
  /** address -> its counted bans within the window, oldest first (only while recidive_bans is on) */
  private readonly recent = new Map<string, Counted[]>();
  /** rule name -> its rule: its pool and its own keys */
  private rules = new Map<string, StepRule>();
  /** seconds: the longest window of any rule, how long `last` keeps a ban */
  private longest = 0;

  constructor(private o: StepOptions, rules: readonly StepRule[] = []) {
    this.configure(o, rules);
  }

  configure(o: StepOptions, rules: readonly StepRule[] = [...this.rules.values()]): void {
    this.o = o;
    if (o.recidiveBans <= 0) this.recent.clear();
    this.rules = new Map(rules.map((r) => [r.name, r]));
    this.longest = Math.max(o.window, ...rules.map((r) => r.recidiveWindow ?? 0));
  }

  get size(): number {
    return this.last.size;
  }

  /** Seconds back the history must be read at start for every rule's window. */
  get window(): number {
    return this.longest;
  }

  /**
   * Where a rule's steps are counted: its score pool ('' for rules without a policy of their
   * own, and for bans whose rule is unknown now: stored before rules had names, or removed).
   */
  private key(rule: string | null | undefined, address: string): string {
    const pool = rule ? (this.rules.get(rule)?.pool ?? rule) : '';
    return pool ? `${pool} ${address}` : address;
  }

  /** The step an address would get if banned by `rule`'s threshold at `now` (0: a first ban). */
  stepFor(address: string, now: number, rule: string | null = null): number {
    const prev = this.last.get(this.key(rule, address));
    const window = (rule ? this.rules.get(rule)?.recidiveWindow : undefined) ?? this.o.window;
    return prev && now - prev.since <= window * 1000 ? prev.step + 1 : 0;
  }

  /** The decision with its step's duration. Only threshold bans escalate (not throttles, not manual bans). */
  apply(d: BanDecision, now: number): SteppedDecision {
    const r = d.rule ? this.rules.get(d.rule) : undefined;
    const inc = r?.increment ?? this.o.increment;
    if (inc.kind === 'off' || d.reason !== 'threshold') return d;
    const step = this.stepFor(d.address, now, d.rule);
    let seconds: number;
    if (inc.kind === 'list') seconds = inc.seconds[Math.min(step, inc.seconds.length - 1)];
    else seconds = d.seconds * inc.factor ** step;
    // bantime_max caps the growth, never a first ban below what the rule gives it.
    if (step > 0) seconds = Math.max(Math.min(seconds, r?.bantimeMax ?? this.o.max), inc.kind === 'list' ? inc.seconds[0] : d.seconds);
    seconds = Math.min(Math.round(seconds), MAX_BAN_SECONDS);
    return step > 0 ? { ...d, seconds, step } : { ...d, seconds };
  }

  /** From the history at start (its query leaves remote bans out): merged with what events already told (the later ban wins). */
  load(bans: LastBan[], now: number): void {
    for (const b of [...bans].sort((x, y) => x.since - y.since)) this.seen(this.key(b.rule, b.address), b.since, b.step);
    this.prune(now);
  }

  /** A threshold ban of a pool: kept when it is the latest (the same one twice: the higher step). */
  private seen(key: string, since: number, step: number): void {
    const had = this.last.get(key);
    if (had && (had.since > since || (had.since === since && had.step >= step))) return;
    this.last.delete(key);
    this.last.set(key, { since, step });
  }

  /** Forget bans older than the window. */
  prune(now: number): void {
    let oldest = now - this.longest * 1000;
    for (const [key, l] of this.last) {
      if (l.since >= oldest) break;
      this.last.delete(key);
    }
    oldest = now - this.o.window * 1000;
    // Re-inserted on every ban, so the map is ordered by each address's latest ban.
    for (const [address, list] of this.recent) {
      if (list[list.length - 1].since >= oldest) break;
      this.recent.delete(address);
    }
  }

  /** Bans the recidive rule counts for an address now (within the window). */
  countFor(address: string, now: number): number {
    const oldest = now - this.o.window * 1000;
    return (this.recent.get(address) ?? []).filter((c) => c.since >= oldest && c.since <= now).length;
  }

  /**
   * The recidive rule, after `ban` went into the ledger: the all-ports ban to add when the
   * address has now been banned recidive_bans times within the window (this ban included, known
   * to the view yet or not), or null. `active`: the address's ban on every port, if any; while it
   * is a recidive ban, none is given again (a later one would only lengthen it).
   */
  recidive(ban: Ban, now: number, active: Ban | undefined): (BanRequest & { scope: string; rule: string }) | null {
    const n = this.o.recidiveBans;
    if (n <= 0 || !counts(ban)) return null;
    if (active && active.reason === 'recidive' && active.expiry > now) return null;
    const known = (this.recent.get(ban.address) ?? []).some((c) => c.since === ban.since && c.scope === ban.scope);
    const count = this.countFor(ban.address, now) + (known ? 0 : 1);
    if (count < n) return null;
    return {
      address: ban.address,
      family: ban.family,
      scope: '',
      rule: 'recidive',
      reason: 'recidive',
      origin: 'rule',
      pattern: ban.pattern,
      score: ban.score,
      count,
      seconds: Math.min(this.o.recidiveBantime, MAX_BAN_SECONDS),
    };
  }

  /** Remembers a ban the recidive rule counts (from an event or the history); the same ban twice once. */
  private remember(b: { address: string; since: number; scope: string; reason: string; origin?: string }): void {
    if (this.o.recidiveBans <= 0 || !counts(b)) return;
    const list = this.recent.get(b.address) ?? [];
    if (list.some((c) => c.since === b.since && c.scope === b.scope)) return;
    list.push({ since: b.since, scope: b.scope });
    list.sort((x, y) => x.since - y.since);
    // Bounded: only the last recidive_bans ever decide.
    if (list.length > this.o.recidiveBans) list.splice(0, list.length - this.o.recidiveBans);
    this.recent.delete(b.address);
    this.recent.set(b.address, list);
  }

  /** From the history at start: every ban of the window, whatever its rule or scope. */
  loadRecent(bans: { address: string; since: number; scope: string; reason: string; origin?: string }[], now: number): void {
    for (const b of [...bans].sort((x, y) => x.since - y.since)) this.remember(b);
    this.prune(now);
  }

  /** Keeps the views up to date: every rule's ban (made now or restored at start). */
  listener(): Listener {
    return {
      name: 'recidive',
      immediate: true,
      maxBatch: Infinity,
      handle: (events: TallowEvent[]) => {
        let latest = 0;
        for (const e of events) {
          if (e.kind !== 'ban' || e.cause === 'adopted' || remote(e.ban)) continue;
          this.remember(e.ban);
          latest = Math.max(latest, e.ban.since);
          if (e.ban.reason !== 'threshold') continue;
          this.seen(this.key(e.ban.rule, e.ban.address), e.ban.since, e.ban.step ?? 0);
        }
        // The events' own time, not the clock's: the same view whatever clock a test runs on.
        if (latest) this.prune(latest);
      },
    };
  }
}

export function stepOptions(c: { bantimeIncrement: BantimeIncrement; bantimeMax: number; recidiveWindow: number; recidiveBans: number; recidiveBantime: number }): StepOptions {
  return { increment: c.bantimeIncrement, max: c.bantimeMax, window: c.recidiveWindow, recidiveBans: c.recidiveBans, recidiveBantime: c.recidiveBantime };
}

/**
 * Start times for bans: the history keeps one ban per address and start time (ms), so two bans of
 * one address decided in the same ms (two rules on other ports in one journal batch, or a rule's
 * ban and the recidive ban it causes) start 1 ms apart, or one of them would not be stored and
 * its repeat-offender step would be lost at the next restart. Only the addresses of the current
 * ms are remembered.
 */
export class BanClock {
  private ms = 0;
  private readonly used = new Map<string, number>();

  at(address: string, now: number): number {
    if (now !== this.ms) {
      this.ms = now;
      this.used.clear();
    }
    const prev = this.used.get(address);
    const at = prev === undefined ? now : prev + 1;
    this.used.set(address, at);
    return at;
  }
}
