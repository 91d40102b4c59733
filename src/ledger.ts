// The ledger: the one list of what is banned. Every ban and unban, whoever asks (a rule's
// decision, the control socket, the state file at start, the kernel's own sets at start, later a
// remote node), passes through here; here are the rules that hold for all of them (never shorten
// a ban, never ban an address that must never be banned), and here the events start that every
// listener (firewall, log, state, history, actions, metrics) reacts to. No I/O.
//
// A ban is keyed by its target and scope (banKey): one address may be banned on port 22 by sshd
// and on port 25 by postfix at once, each with its own time; a network (`2001:db8::/64`) is a
// target like an address.
import type { Family } from './address';
import { banKey } from './scope';

/** Where a ban came from. */
export type Origin = 'rule' | 'manual' | 'adopted' | `remote:${string}`;

/**
 * Why a ban was made: a rule's threshold, a pattern's instant ban, by hand, found in the kernel,
 * or the `recidive` rule (recidive_bans bans within recidive_window: every port, recidive.ts).
 */
export type BanReason = 'threshold' | 'instant' | 'manual' | 'adopted' | 'recidive';

/** Why a ban ended. */
/** `refused`: the kernel would not hold it (dropped by the firewall queue, logged there). */
export type UnbanReason = 'expired' | 'manual' | 'refused';

export interface Ban {
  /** the target: an address, or a network (`2001:db8::/64`) banned by a rule with a ban prefix */
  address: string;
  family: Family;
  /** where it applies: a Scope id ('' every port, tallow's sets) */
  scope: string;
  /** the rule that decided it (`sshd`), null for a manual, adopted or older saved ban */
  rule: string | null;
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

/** A ban as asked for: the ban's own fields, with a duration instead of its times (scope '' and rule null unless given). */
export type BanRequest = Omit<Ban, 'expiry' | 'since' | 'scope' | 'rule'> & { seconds: number; scope?: string; rule?: string | null };

/** A ban as saved (state files before version 3 kept no scope or rule). */
export type SavedBan = Omit<Ban, 'scope' | 'rule'> & { scope?: string; rule?: string | null };

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
  private readonly heap: { at: number; key: string }[] = [];
  /** Bans per scope id, so "every ban of this address" looks up one key per scope in use. */
  private readonly perScope = new Map<string, number>();

  constructor(private readonly opts: LedgerOptions) {}

  get size(): number {
    return this.bans.size;
  }

  get(address: string, scope = ''): Ban | undefined {
    return this.bans.get(banKey(address, scope));
  }

  /** Every ban of a target, whatever its scope. */
  allOf(address: string): Ban[] {
    const out: Ban[] = [];
    for (const scope of this.perScope.keys()) {
      const b = this.bans.get(banKey(address, scope));
      if (b) out.push(b);
    }
    return out;
  }

  /** Why no one may ban this address (loopback, the host's own...), or null. */
  refusal(address: string, family: Family): string | null {
    return this.opts.refuse?.(address, family) ?? null;
  }

  /** ms since epoch the target stays banned until in the scope, 0 when it is not banned there. */
  expiryOf(address: string, scope = ''): number {
    return this.bans.get(banKey(address, scope))?.expiry ?? 0;
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
    const scope = req.scope ?? '';
    const had = this.bans.get(banKey(req.address, scope));
    if (had && had.expiry >= expiry && !replace) return { ok: false, why: `already banned for longer (${Math.ceil((had.expiry - now) / 1000)} s left)` };
    const ban: Ban = {
      address: req.address,
      family: req.family,
      scope,
      rule: req.rule ?? null,
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
  unban(address: string, reason: UnbanReason, now: number, scope = ''): Ban | undefined {
    const ban = this.bans.get(banKey(address, scope));
    if (!ban) return undefined;
    this.remove(ban);
    this.opts.emit({ kind: 'unban', ban, reason, at: now });
    return ban;
  }

  /** Lift every ban of a target, in every scope (`tallow unban`). Returns the bans lifted. */
  unbanAll(address: string, reason: UnbanReason, now: number): Ban[] {
    const out = this.allOf(address);
    for (const ban of out) {
      this.remove(ban);
      this.opts.emit({ kind: 'unban', ban, reason, at: now });
    }
    return out;
  }

  /** Bans whose time has passed: forgotten, one `expired` event each, earliest first. */
  expire(now: number): number {
    let n = 0;
    const h = this.heap;
    while (h.length > 0 && h[0].at <= now) {
      const top = this.popHeap();
      const b = this.bans.get(top.key);
      if (!b || b.expiry !== top.at) continue; // lifted or extended since
      this.remove(b);
      n++;
      this.opts.emit({ kind: 'unban', ban: b, reason: 'expired', at: now });
    }
    return n;
  }

  /**
   * Bans saved before a restart, still running: back in the ledger as they were (same origin,
   * reason, expiry). Returns how many were taken; refused or expired ones are skipped.
   */
  restore(saved: Iterable<SavedBan>, now: number): number {
    let n = 0;
    for (const b of saved) {
      const ban: Ban = { ...b, scope: b.scope ?? '', rule: b.rule ?? null };
      if (b.expiry <= now || this.bans.has(banKey(ban.address, ban.scope)) || this.opts.refuse?.(b.address, b.family)) continue;
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
  adopt(
    kernel: Iterable<{ address: string; family: Family; remaining: number; scope?: string }>,
    now: number,
    known?: (address: string, scope: string) => { pattern: string | null; score: number; count: number; rule?: string | null } | undefined,
  ): number {
    let n = 0;
    for (const k of kernel) {
      const scope = k.scope ?? '';
      if (this.bans.has(banKey(k.address, scope)) || !Number.isFinite(k.remaining) || k.remaining <= 0) continue;
      if (this.opts.refuse?.(k.address, k.family)) continue;
      const rec = known?.(k.address, scope);
      const ban: Ban = {
        address: k.address,
        family: k.family,
        scope,
        rule: rec?.rule ?? null,
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
    const key = banKey(ban.address, ban.scope);
    const had = this.bans.get(key);
    this.bans.set(key, ban);
    if (!had) this.perScope.set(ban.scope, (this.perScope.get(ban.scope) ?? 0) + 1);
    const h = this.heap;
    let i = h.push({ at: ban.expiry, key }) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent].at <= h[i].at) break;
      [h[parent], h[i]] = [h[i], h[parent]];
      i = parent;
    }
  }

  private remove(ban: Ban): void {
    if (!this.bans.delete(banKey(ban.address, ban.scope))) return;
    const n = (this.perScope.get(ban.scope) ?? 1) - 1;
    if (n > 0) this.perScope.set(ban.scope, n);
    else this.perScope.delete(ban.scope);
  }

  private popHeap(): { at: number; key: string } {
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
