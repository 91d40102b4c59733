// What a node does with the rows of the shared table, in id order: pure decisions (no I/O, no
// clock of its own), so the policy is tested without a server. A row is
//   - this node's own: skipped (it never applies its own bans twice, nor echoes them);
//   - a ban: checked against fleet_accept, the allowlist (ignored and counted), the quorum
//     (distinct nodes reporting the target, each report live until its expiry) and the
//     per-minute cap, then applied for its remaining time;
//   - an unban (`tallow unban --fleet`): lifts the target's bans made before it, and forgets the
//     reports counted towards its quorum.
import type { BanReason } from '../ledger';
import { canonicalTarget } from '../target';

export interface FleetRow {
  id: number;
  node: string;
  kind: 'ban' | 'unban';
  address: string;
  family: 4 | 6;
  rule: string | null;
  reason: string;
  seconds: number;
  /** ms since epoch: when the publishing node made the ban (or the unban) */
  since: number;
  expiry: number;
}

export type Decision =
  | { do: 'skip'; why: 'own' | 'expired' | 'bad' }
  | { do: 'ignore'; why: 'accept-off' | 'allowlisted' | 'quorum' | 'capped' }
  | { do: 'ban'; row: FleetRow; seconds: number; reason: BanReason; reporters: string[] }
  | { do: 'unban'; row: FleetRow };

export interface IntakeOptions {
  node: string;
  accept: boolean;
  quorum: number;
  /** 0: no cap */
  maxPerMinute: number;
  isAllowed(target: string, family: 4 | 6): boolean;
}

export interface IntakeCounts {
  /** passed every check (the ledger may still find a longer ban there) */
  accepted: number;
  allowlisted: number;
  capped: number;
  /** reports waiting for more nodes (fleet_quorum) */
  quorumWaiting: number;
  unbans: number;
  bad: number;
}

const REASONS: readonly BanReason[] = ['threshold', 'instant', 'manual', 'recidive'];
/** Targets whose reports are kept for the quorum at most: a flood of single reports must not grow memory without end. */
export const MAX_PENDING = 1_000_000;

/** A row from pg (bigints as strings) -> a FleetRow, or null when it is not one. */
export function rowOf(r: Record<string, unknown>): FleetRow | null {
  const id = Number(r.id);
  const kind = r.kind;
  const family = Number(r.family);
  if (!Number.isSafeInteger(id) || (kind !== 'ban' && kind !== 'unban') || (family !== 4 && family !== 6)) return null;
  if (typeof r.node !== 'string' || typeof r.address !== 'string') return null;
  // Another node's text: only a canonical address or network of the family it claims.
  const t = canonicalTarget(r.address);
  if (!t || t.target !== r.address || t.family !== family) return null;
  return {
    id,
    node: r.node,
    kind,
    address: r.address,
    family,
    rule: typeof r.rule === 'string' ? r.rule : null,
    reason: String(r.reason),
    seconds: Number(r.seconds),
    since: Number(r.since),
    expiry: Number(r.expiry),
  };
}

export class Intake {
  readonly counts: IntakeCounts = { accepted: 0, allowlisted: 0, capped: 0, quorumWaiting: 0, unbans: 0, bad: 0 };
  readonly nodes = new Set<string>();
  /** target -> node -> expiry of its report */
  private readonly reports = new Map<string, Map<string, number>>();
  private minute = -1;
  private inMinute = 0;

  constructor(private readonly o: IntakeOptions) {}

  decide(row: FleetRow, now: number): Decision {
    this.nodes.add(row.node);
    if (row.node === this.o.node) return { do: 'skip', why: 'own' };
    if (row.kind === 'unban') {
      // A node that takes no remote bans takes no remote unbans either (its bans are its own).
      if (!this.o.accept) return { do: 'ignore', why: 'accept-off' };
      this.reports.delete(row.address);
      this.counts.unbans++;
      return { do: 'unban', row };
    }
    const reason = REASONS.find((r) => r === row.reason);
    if (!reason || !Number.isFinite(row.expiry)) {
      this.counts.bad++;
      return { do: 'skip', why: 'bad' };
    }
    if (row.expiry <= now) return { do: 'skip', why: 'expired' };
    if (!this.o.accept) return { do: 'ignore', why: 'accept-off' };
    if (this.o.isAllowed(row.address, row.family)) {
      this.counts.allowlisted++;
      return { do: 'ignore', why: 'allowlisted' };
    }
    let reporters: string[] = [row.node];
    if (this.o.quorum > 1) {
      let by = this.reports.get(row.address);
      if (!by) {
        if (this.reports.size >= MAX_PENDING) this.prune(now);
        if (this.reports.size >= MAX_PENDING) return { do: 'ignore', why: 'quorum' };
        this.reports.set(row.address, (by = new Map()));
      }
      by.set(row.node, Math.max(by.get(row.node) ?? 0, row.expiry));
      for (const [n, e] of by) if (e <= now) by.delete(n);
      reporters = [...by.keys()];
      if (by.size < this.o.quorum) {
        this.counts.quorumWaiting++;
        return { do: 'ignore', why: 'quorum' };
      }
    }
    if (this.o.maxPerMinute > 0) {
      const m = Math.floor(now / 60_000);
      if (m !== this.minute) {
        this.minute = m;
        this.inMinute = 0;
      }
      if (this.inMinute >= this.o.maxPerMinute) {
        this.counts.capped++;
        return { do: 'ignore', why: 'capped' };
      }
      this.inMinute++;
    }
    this.counts.accepted++;
    return { do: 'ban', row, seconds: Math.ceil((row.expiry - now) / 1000), reason, reporters };
  }

  /** Reports past their expiry are forgotten. */
  prune(now: number): void {
    for (const [t, by] of this.reports) {
      for (const [n, e] of by) if (e <= now) by.delete(n);
      if (by.size === 0) this.reports.delete(t);
    }
  }

  get pending(): number {
    return this.reports.size;
  }
}
