// The ledger: the one list of what is banned. Every ban and unban, whoever asks (a rule's
// decision, the control socket, the state file at start, the kernel's own sets at start, later a
// remote node), passes through here; here are the rules that hold for all of them (never shorten
// a ban, never ban an address that must never be banned), and here the events start that every
// listener (firewall, log, state, history, actions, metrics) reacts to. No I/O.
import type { Family } from './address';

/** Where a ban came from. */
export type Origin = 'rule' | 'manual' | 'adopted' | `remote:${string}`;

/** Why a ban was made: a rule's threshold, a pattern's instant ban, by hand, found in the kernel. */
export type BanReason = 'threshold' | 'instant' | 'manual' | 'adopted';

/** Why a ban ended. */
/** `refused`: the kernel would not hold it (dropped by the firewall queue, logged there). */
export type UnbanReason = 'expired' | 'manual' | 'refused';

export interface Ban {
  address: string;
  family: Family;
  /** ms since epoch */
  expiry: number;
  /** ms since epoch: when this ban (or its latest extension) was made */
  since: number;
  origin: Origin;
  reason: BanReason;
  /** the pattern (`sshd.json#3`), 'manual', or null when unknown (adopted from the kernel) */
  pattern: string | null;
  score: number;
  count: number;
  /** repeat-offender step (bantime_increment): absent or 0 for a first ban */
  step?: number;
}

/**
 * What listeners receive. `cause` says why a ban event is sent: `new` (decided now, or a longer
 * ban replacing a shorter one), `restored` (from the state file at start: the kernel may have lost
 * it, e.g. after a reboot), `adopted` (found in the kernel at start: nothing to send there).
 */
export type LedgerEvent =
  | { kind: 'ban'; ban: Ban; cause: 'new' | 'restored' | 'adopted' }
  | { kind: 'unban'; ban: Ban; reason: UnbanReason; at: number };

/** A ban as asked for: the ban's own fields, with a duration instead of its times. */
export type BanRequest = Omit<Ban, 'expiry' | 'since'> & { seconds: number };

export interface LedgerOptions {
  /** Addresses no one may ban (unspecified, loopback, the host's own...): the reason, or null. */
  refuse?(address: string, family: Family): string | null;
  /** Every event, in order, as it happens. */
  emit(event: LedgerEvent): void;
}

export type BanOutcome = { ok: true; ban: Ban } | { ok: false; why: string };

export class Ledger {
  private readonly bans = new Map<string, Ban>();
  /**
   * Expiries in a binary min-heap: a flood of short instant bans makes the earliest one due every
   * few ms, and a walk over every ban each time is quadratic. Entries of bans lifted or extended
   * since stay until their time and are skipped then (their expiry no longer matches).
   */
  private readonly heap: { at: number; address: string }[] = [];

  constructor(private readonly opts: LedgerOptions) {}

  get size(): number {
    return this.bans.size;
  }

  get(address: string): Ban | undefined {
    return this.bans.get(address);
  }

  /** Why no one may ban this address (loopback, the host's own...), or null. */
  refusal(address: string, family: Family): string | null {
    return this.opts.refuse?.(address, family) ?? null;
  }

  /** ms since epoch the address stays banned until, 0 when it is not banned. */
  expiryOf(address: string): number {
    return this.bans.get(address)?.expiry ?? 0;
  }

  values(): IterableIterator<Ban> {
    return this.bans.values();
  }

  /**
   * A new ban. A ban never shortens a longer one (an instant 30 s ban does not cut a 1 h ban);
   * `replace` (a manual ban) sets the time whatever it was.
   */
  ban(req: BanRequest, now: number, replace = false): BanOutcome {
    const refused = this.refusal(req.address, req.family);
    if (refused) return { ok: false, why: refused };
    const expiry = now + req.seconds * 1000;
    const had = this.bans.get(req.address);
    if (had && had.expiry >= expiry && !replace) return { ok: false, why: `already banned for longer (${Math.ceil((had.expiry - now) / 1000)} s left)` };
    const ban: Ban = {
      address: req.address,
      family: req.family,
      expiry,
      since: now,
      origin: req.origin,
      reason: req.reason,
      pattern: req.pattern,
      score: req.score,
      count: req.count,
    };
    if (req.step) ban.step = req.step;
    this.put(ban);
    this.opts.emit({ kind: 'ban', ban, cause: 'new' });
    return { ok: true, ban };
  }

  /** Lift a ban by hand (or any future reason but expiry). Returns the ban lifted, if there was one. */
  unban(address: string, reason: UnbanReason, now: number): Ban | undefined {
    const ban = this.bans.get(address);
    if (!ban) return undefined;
    this.bans.delete(address);
    this.opts.emit({ kind: 'unban', ban, reason, at: now });
    return ban;
  }

  /** Bans whose time has passed: forgotten, one `expired` event each, earliest first. */
  expire(now: number): number {
    let n = 0;
    const h = this.heap;
    while (h.length > 0 && h[0].at <= now) {
      const top = this.popHeap();
      const b = this.bans.get(top.address);
      if (!b || b.expiry !== top.at) continue; // lifted or extended since
      this.bans.delete(top.address);
      n++;
      this.opts.emit({ kind: 'unban', ban: b, reason: 'expired', at: now });
    }
    return n;
  }

  /**
   * Bans saved before a restart, still running: back in the ledger as they were (same origin,
   * reason, expiry). Returns how many were taken; refused or expired ones are skipped.
   */
  restore(saved: Iterable<Ban>, now: number): number {
    let n = 0;
    for (const b of saved) {
      if (b.expiry <= now || this.bans.has(b.address) || this.opts.refuse?.(b.address, b.family)) continue;
      const ban = { ...b };
      this.put(ban);
      this.opts.emit({ kind: 'ban', ban, cause: 'restored' });
      n++;
    }
    return n;
  }

  /**
   * Entries found in the kernel sets that the ledger does not know (a crash between a ban and
   * the next save, or added by hand): adopted with the time the kernel has left on them, so they
   * are listed and re-filled if a set is lost. Not sent back to the kernel. An entry without a
   * timeout was put there by someone else, for good, and is left alone.
   */
  adopt(kernel: Iterable<{ address: string; family: Family; remaining: number }>, now: number, known?: (address: string) => { pattern: string | null; score: number; count: number } | undefined): number {
    let n = 0;
    for (const k of kernel) {
      if (this.bans.has(k.address) || !Number.isFinite(k.remaining) || k.remaining <= 0) continue;
      if (this.opts.refuse?.(k.address, k.family)) continue;
      const rec = known?.(k.address);
      const ban: Ban = {
        address: k.address,
        family: k.family,
        expiry: now + k.remaining * 1000,
        since: now,
        origin: 'adopted',
        reason: 'adopted',
        pattern: rec?.pattern ?? null,
        score: rec?.score ?? 0,
        count: rec?.count ?? 0,
      };
      this.put(ban);
      this.opts.emit({ kind: 'ban', ban, cause: 'adopted' });
      n++;
    }
    return n;
  }

  private put(ban: Ban): void {
    this.bans.set(ban.address, ban);
    const h = this.heap;
    let i = h.push({ at: ban.expiry, address: ban.address }) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent].at <= h[i].at) break;
      [h[parent], h[i]] = [h[i], h[parent]];
      i = parent;
    }
  }

  private popHeap(): { at: number; address: string } {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l].at < h[m].at) m = l;
        if (r < h.length && h[r].at < h[m].at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}
