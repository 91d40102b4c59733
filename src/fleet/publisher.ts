// The publisher: a listener that turns this node's own bans into rows for the shared table.
// Immediate and synchronous (the row is queued in the same tick as the decision, never waiting
// for the server): only bans made here now (origin rule or manual, cause new) are published,
// never remote ones (no echo loops), never restored or adopted ones (already published, or not
// ours). Unbans are published only when asked (`tallow unban --fleet`). While the server is away
// rows wait in a bounded queue; past fleet_queue they are dropped and counted.
import type { Listener, TallowEvent } from '../events';
import type { Ban } from '../ledger';
import type { FleetRow } from './intake';

/** A row as this node writes it (the node name is added by the link). */
export type OutRow = Omit<FleetRow, 'id' | 'node'>;

/** The row to publish for a ledger event, or null when it is not this node's own new ban. */
export function rowFor(e: TallowEvent, publishes: (rule: string | null) => boolean): OutRow | null {
  if (e.kind !== 'ban' || e.cause !== 'new') return null;
  const b: Ban = e.ban;
  if (b.origin !== 'rule' && b.origin !== 'manual') return null;
  if (b.origin === 'rule' && !publishes(b.rule)) return null;
  return { kind: 'ban', address: b.address, family: b.family, rule: b.rule, reason: b.reason, seconds: Math.max(1, Math.round((b.expiry - b.since) / 1000)), since: b.since, expiry: b.expiry };
}

/** A bounded FIFO of rows: push never blocks; past `max` the newest are dropped and counted. */
export class Outbox {
  private rows: OutRow[] = [];
  private head = 0;
  dropped = 0;
  published = 0;

  constructor(readonly max: number) {}

  get length(): number {
    return this.rows.length - this.head;
  }

  push(r: OutRow): boolean {
    if (this.length >= this.max) {
      this.dropped++;
      return false;
    }
    this.rows.push(r);
    return true;
  }

  /** The oldest rows, up to n, still queued (taken only by done()). */
  peek(n: number): OutRow[] {
    return this.rows.slice(this.head, this.head + n);
  }

  /** The first n rows are in the table. */
  done(n: number): void {
    this.head += n;
    this.published += n;
    if (this.head > 4096 && this.head * 2 > this.rows.length) {
      this.rows = this.rows.slice(this.head);
      this.head = 0;
    }
  }
}

export class FleetPublisher implements Listener {
  readonly name = 'fleet';
  readonly immediate = true;

  constructor(
    private readonly outbox: Outbox,
    private readonly publishes: (rule: string | null) => boolean,
    private readonly wake: () => void,
  ) {}

  handle(events: TallowEvent[]): void {
    let n = 0;
    for (const e of events) {
      const r = rowFor(e, this.publishes);
      if (r && this.outbox.push(r)) n++;
    }
    if (n) this.wake();
  }
}
