// Repeat offenders: a small decision step between the tracker's decision and the ledger. An
// address banned by a threshold again within recidive_window of its previous threshold ban gets
// the next step of bantime_increment (a factor per step, or the next duration of a list, the last
// one repeating), never more than bantime_max. The view it decides from is in memory: loaded
// from the history at start (so steps survive a restart) and kept up to date from ledger events
// (this module's listener), so deciding costs a map lookup, never I/O.
import type { Listener, TallowEvent } from './events';
import type { BantimeIncrement } from './history/settings';
import type { LastBan } from './history/store';
import { MAX_BAN_SECONDS } from './limits';
import type { BanDecision } from './tracker';

export interface StepOptions {
  increment: BantimeIncrement;
  /** seconds */
  max: number;
  /** seconds */
  window: number;
}

export type SteppedDecision = BanDecision & { step?: number };

interface Last {
  since: number;
  step: number;
}

export class BanSteps {
  /** address -> its last threshold ban; insertion-ordered by time, so pruning stops at the first young one */
  private readonly last = new Map<string, Last>();

  constructor(private o: StepOptions) {}

  configure(o: StepOptions): void {
    this.o = o;
  }

  get size(): number {
    return this.last.size;
  }

  /** The step an address would get if banned by a threshold at `now` (0: a first ban). */
  stepFor(address: string, now: number): number {
    const prev = this.last.get(address);
    return prev && now - prev.since <= this.o.window * 1000 ? prev.step + 1 : 0;
  }

  /** The decision with its step's duration. Only threshold bans escalate (not throttles, not manual bans). */
  apply(d: BanDecision, now: number): SteppedDecision {
    const inc = this.o.increment;
    if (inc.kind === 'off' || d.reason !== 'threshold') return d;
    const step = this.stepFor(d.address, now);
    let seconds: number;
    if (inc.kind === 'list') seconds = inc.seconds[Math.min(step, inc.seconds.length - 1)];
    else seconds = d.seconds * inc.factor ** step;
    // bantime_max caps the growth, never a first ban below what tallow.conf gives it.
    if (step > 0) seconds = Math.max(Math.min(seconds, this.o.max), inc.kind === 'list' ? inc.seconds[0] : d.seconds);
    seconds = Math.min(Math.round(seconds), MAX_BAN_SECONDS);
    return step > 0 ? { ...d, seconds, step } : { ...d, seconds };
  }

  /** From the history at start: merged with what events already told (the later ban wins). */
  load(bans: LastBan[], now: number): void {
    for (const b of [...bans].sort((x, y) => x.since - y.since)) {
      const had = this.last.get(b.address);
      if (had && (had.since > b.since || (had.since === b.since && had.step >= b.step))) continue;
      this.last.delete(b.address);
      this.last.set(b.address, { since: b.since, step: b.step });
    }
    this.prune(now);
  }

  /** Forget bans older than the window. */
  prune(now: number): void {
    const oldest = now - this.o.window * 1000;
    for (const [address, l] of this.last) {
      if (l.since >= oldest) break;
      this.last.delete(address);
    }
  }

  /** Keeps the view up to date: every threshold ban (made now or restored at start). */
  listener(): Listener {
    return {
      name: 'recidive',
      immediate: true,
      maxBatch: Infinity,
      handle: (events: TallowEvent[]) => {
        let latest = 0;
        for (const e of events) {
          if (e.kind !== 'ban' || e.cause === 'adopted' || e.ban.reason !== 'threshold') continue;
          latest = Math.max(latest, e.ban.since);
          const b = e.ban;
          const had = this.last.get(b.address);
          if (had && had.since > b.since) continue;
          this.last.delete(b.address);
          this.last.set(b.address, { since: b.since, step: Math.max(b.step ?? 0, had && had.since === b.since ? had.step : 0) });
        }
        // The events' own time, not the clock's: the same view whatever clock a test runs on.
        if (latest) this.prune(latest);
      },
    };
  }
}

export function stepOptions(c: { bantimeIncrement: BantimeIncrement; bantimeMax: number; recidiveWindow: number }): StepOptions {
  return { increment: c.bantimeIncrement, max: c.bantimeMax, window: c.recidiveWindow };
}
