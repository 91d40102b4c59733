// The link to the shared table: one pg connection that publishes this node's queued rows, LISTENs
// for the others' and reads them. A notification is only a wake-up: after every (re)connect, every
// notification and every POLL_MS the node reads `WHERE id > last_seen` (the table is the truth),
// so nothing is missed while it was disconnected or down. A lost connection is made again with
// back-off (1 s doubling to RETRY_MAX_MS, 5 s); meanwhile local bans go on and rows wait in the outbox.
// Maintenance (expired rows, in small batches) is done by whichever node holds an advisory lock.
import { Client } from 'pg';
import { pgClientConfig, type PgSettings } from '../history/postgres';
import { errText } from '../limits';
import type { Logger } from '../log';
import { CHANNEL, FLEET_SQL, MAINTENANCE_LOCK, CATCH_UP_BATCH } from './schema';
import { fleetWhere } from './settings';
import { Intake, rowOf, type Decision, type FleetRow, type IntakeOptions } from './intake';
import type { Outbox } from './publisher';

/** What the link does to this node: through the ledger, like any other ban. */
export interface FleetApply {
  /** Apply a remote ban; false when the ledger did not take it (refused, or banned longer already). */
  ban(d: Extract<Decision, { do: 'ban' }>, now: number): boolean;
  /** Lift the target's bans made before `before` (ms); how many were lifted. */
  unban(address: string, family: 4 | 6, before: number, now: number): number;
}

export interface LinkOptions extends IntakeOptions {
  pg: PgSettings;
  log: Logger;
  outbox: Outbox;
  apply: FleetApply;
  /** ms; tests shorten them */
  retryBaseMs?: number;
  retryMaxMs?: number;
  pollMs?: number;
  maintenanceMs?: number;
}

export interface FleetStatus {
  node: string;
  where: string;
  connected: boolean;
  /** ms since epoch: connected since, or disconnected since (null: never connected yet) */
  since: number | null;
  lastError: string | null;
  nodesSeen: string[];
  lastId: number;
  remoteApplied: number;
  remoteUnbans: number;
  ignoredAllowlisted: number;
  ignoredCapped: number;
  quorumWaiting: number;
  published: number;
  queued: number;
  dropped: number;
  accept: boolean;
  quorum: number;
}

/**
 * The longest wait between two connection attempts. Short on purpose: a node should be back
 * within a few seconds of the server's return, not up to half a minute later (with a cap of
 * 30 s, B and C caught up 28.5 s after the server's return from a 30 s outage). An attempt
 * against a server that is away costs next to nothing (a refused connect or a missing socket;
 * at worst connectionTimeoutMillis, 5 s), so even 1,000 nodes make only ~200 refused connects
 * a second. A separate cheap probe would be the same connect, so none is made. The jitter
 * (+-20%) spreads the nodes' return over ~2 s.
 */
const RETRY_MAX_MS = 5000;
/** Rows per INSERT: one round trip for a burst. */
const PUBLISH_BATCH = 1000;
/** Ids missing from a read (a transaction that took id 10 committing after id 11): looked for again this long. */
const GAP_MS = 30_000;
const MAX_GAPS = 10_000;

export class FleetLink {
  readonly intake: Intake;
  private client: Client | null = null;
  private connecting = false;
  private closed = false;
  private retry: NodeJS.Timeout | null = null;
  private streak = 0;
  private poll: NodeJS.Timeout | null = null;
  private maint: NodeJS.Timeout | null = null;
  /** One operation at a time on the connection. */
  private busy = false;
  private want = { read: false, publish: false };
  private idle: (() => void)[] = [];
  private lastId = 0;
  private started = false;
  private readonly gaps = new Map<number, number>();
  private connectedSince: number | null = null;
  private downSince: number | null = null;
  private lastError: string | null = null;
  private remoteApplied = 0;
  private remoteUnbans = 0;
  readonly where: string;

  constructor(private readonly o: LinkOptions) {
    this.intake = new Intake(o);
    this.where = fleetWhere(o.pg);
  }

  start(): void {
    this.downSince = Date.now();
    void this.connect();
    this.maint = setInterval(() => void this.maintain(), this.o.maintenanceMs ?? 60_000);
    this.maint.unref();
  }

  /** New rows in the outbox: publish them now if connected (else at the next connect). */
  wake(): void {
    this.want.publish = true;
    this.kick();
  }

  status(): FleetStatus {
    const c = this.intake.counts;
    return {
      node: this.o.node,
      where: this.where,
      connected: this.client !== null,
      since: this.client ? this.connectedSince : this.downSince,
      lastError: this.lastError,
      nodesSeen: [...this.intake.nodes].sort(),
      lastId: this.lastId,
      remoteApplied: this.remoteApplied,
      remoteUnbans: this.remoteUnbans,
      ignoredAllowlisted: c.allowlisted,
      ignoredCapped: c.capped,
      quorumWaiting: this.intake.pending,
      published: this.o.outbox.published,
      queued: this.o.outbox.length,
      dropped: this.o.outbox.dropped,
      accept: this.o.accept,
      quorum: this.o.quorum,
    };
  }

  private async connect(): Promise<void> {
    if (this.closed || this.client || this.connecting) return;
    this.connecting = true;
    // Each attempt, for --verbose (the error itself is logged once per new message).
    this.o.log.debug(`fleet: connecting to ${this.where}`, { attempt: String(this.streak + 1) });
    let client: Client | null = null;
    try {
      client = new Client(pgClientConfig(this.o.pg, { application_name: 'tallow-fleet', keepAlive: true }));
      client.on('error', (e) => this.lost(client!, e));
      client.on('end', () => this.lost(client!, new Error('connection closed')));
      client.on('notification', () => {
        this.want.read = true;
        this.kick();
      });
      await client.connect();
      await client.query(FLEET_SQL.check);
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (e) {
      this.connecting = false;
      await client?.end().catch(() => {});
      this.failed(e);
      return;
    }
    this.connecting = false;
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    this.connectedSince = Date.now();
    this.o.log.info(`fleet: connected to ${this.where} as node ${this.o.node}`, { last_id: String(this.lastId), queued: String(this.o.outbox.length) });
    this.streak = 0;
    this.lastError = null;
    // Catch up with what happened while away, and publish what waited.
    this.want.read = true;
    this.want.publish = true;
    this.kick();
    this.poll ??= setInterval(() => {
      this.want.read = true;
      this.kick();
    }, this.o.pollMs ?? 30_000);
    this.poll.unref();
  }

  private lost(client: Client, e: unknown): void {
    if (this.client !== client) return;
    this.client = null;
    this.downSince = Date.now();
    this.lastError = errText(e);
    this.o.log.warn(`fleet: disconnected from ${this.where}: ${this.lastError}; local bans go on, ${this.o.outbox.length} rows wait to be published`);
    void client.end().catch(() => {});
    this.schedule();
  }

  private failed(e: unknown): void {
    const msg = explain(e, this.where, this.o.pg);
    if (msg !== this.lastError || this.streak === 0) this.o.log.error(`fleet: ${msg}; local bans go on, retrying`);
    this.lastError = msg;
    this.schedule();
  }

  private schedule(): void {
    if (this.closed || this.retry) return;
    const base = this.o.retryBaseMs ?? 1000;
    const delay = Math.min(this.o.retryMaxMs ?? RETRY_MAX_MS, base * 2 ** Math.min(this.streak++, 20));
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.connect();
    }, delay * (0.8 + Math.random() * 0.4));
    this.retry.unref();
  }

  /** Run whatever is wanted, one operation at a time. */
  private kick(): void {
    if (this.busy || !this.client || this.closed) return;
    this.busy = true;
    void this.work().finally(() => {
      this.busy = false;
      if (this.client && (this.want.read || this.want.publish)) this.kick();
      else for (const r of this.idle.splice(0)) r();
    });
  }

  private async work(): Promise<void> {
    const c = this.client;
    if (!c) return;
    try {
      while (this.want.publish || this.want.read) {
        if (this.want.publish) {
          this.want.publish = false;
          await this.publish(c);
        }
        if (this.want.read) {
          this.want.read = false;
          await this.read(c);
        }
        if (this.client !== c) return;
      }
    } catch (e) {
      if (this.client === c) this.lost(c, new Error(explain(e, this.where, this.o.pg)));
    }
  }

  private async publish(c: Client): Promise<void> {
    const box = this.o.outbox;
    while (box.length) {
      const rows = box.peek(PUBLISH_BATCH);
      const col = <K extends keyof (typeof rows)[number]>(k: K) => rows.map((r) => r[k]);
      await c.query(FLEET_SQL.insert, [this.o.node, col('kind'), col('address'), col('family'), col('rule'), col('reason'), col('seconds'), col('since'), col('expiry')]);
      box.done(rows.length);
    }
  }

  private async read(c: Client): Promise<void> {
    for (;;) {
      const now = Date.now();
      // At start, expired rows change nothing: only live ones are read.
      const res = await c.query(FLEET_SQL.catchUp, [this.lastId, now]);
      let prev = this.lastId;
      for (const raw of res.rows as Record<string, unknown>[]) {
        const id = Number(raw.id);
        if (this.started) for (let g = prev + 1; g < id && this.gaps.size < MAX_GAPS; g++) this.gaps.set(g, now);
        prev = Math.max(prev, id);
        const row = rowOf(raw);
        if (row) this.take(row, Date.now());
        else this.intake.counts.bad++;
      }
      this.lastId = Math.max(this.lastId, prev);
      if (res.rows.length < CATCH_UP_BATCH) break;
      // Let the loop breathe between large batches.
      await new Promise((r) => setImmediate(r));
    }
    this.started = true;
    if (this.gaps.size) await this.fillGaps(c);
  }

  /** Ids skipped by a read: a row whose transaction committed late appears here once. */
  private async fillGaps(c: Client): Promise<void> {
    const now = Date.now();
    for (const [id, at] of this.gaps) if (now - at > GAP_MS) this.gaps.delete(id);
    if (!this.gaps.size) return;
    const res = await c.query(FLEET_SQL.catchUp.replace('WHERE id > $1 AND expiry > $2', 'WHERE id = ANY($1::bigint[]) AND expiry > $2'), [[...this.gaps.keys()], now]);
    for (const raw of res.rows as Record<string, unknown>[]) {
      const row = rowOf(raw);
      if (!row || !this.gaps.delete(row.id)) continue;
      this.take(row, Date.now());
    }
    // Still missing: rolled back or not yet committed; the poll looks again.
  }

  private take(row: FleetRow, now: number): void {
    const d = this.intake.decide(row, now);
    if (d.do === 'ban') {
      if (this.o.apply.ban(d, now)) this.remoteApplied++;
    } else if (d.do === 'unban') {
      this.remoteUnbans += this.o.apply.unban(row.address, row.family, row.since, now) > 0 ? 1 : 0;
    }
  }

  /** Expired rows, in small batches, by the node that holds the lock. */
  async maintain(): Promise<number> {
    const c = this.client;
    if (!c || this.busy || this.closed) return 0;
    this.busy = true;
    let total = 0;
    try {
      const got = await c.query(`SELECT pg_try_advisory_lock(${MAINTENANCE_LOCK}) AS ok`);
      if (!got.rows[0]?.ok) return 0;
      try {
        for (let i = 0; i < 100 && !this.closed; i++) {
          const r = await c.query(FLEET_SQL.prune, [Date.now()]);
          total += r.rowCount ?? 0;
          if ((r.rowCount ?? 0) === 0) break;
        }
      } finally {
        await c.query(`SELECT pg_advisory_unlock(${MAINTENANCE_LOCK})`);
      }
      this.intake.prune(Date.now());
      if (total) this.o.log.info(`fleet: ${total} expired rows deleted`);
    } catch (e) {
      this.o.log.warn(`fleet: maintenance failed: ${explain(e, this.where, this.o.pg)}`);
    } finally {
      this.busy = false;
      this.kick();
    }
    return total;
  }

  /** Resolves when nothing is being published or read (tests, stop). */
  settled(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  async close(): Promise<void> {
    // What is queued gets one chance to go out (a short stop: the table is the truth, not us).
    if (this.client && this.o.outbox.length) {
      this.wake();
      await Promise.race([this.settled(), new Promise((r) => setTimeout(r, 3000).unref())]);
    }
    this.closed = true;
    for (const t of [this.retry, this.poll]) if (t) clearTimeout(t);
    if (this.maint) clearInterval(this.maint);
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => {});
  }
}

/** A pg or socket error as a sentence naming what to check. */
export function explain(e: unknown, where: string, s?: PgSettings): string {
  const code = String((e as { code?: unknown })?.code ?? '');
  const msg = errText(e);
  if (msg.startsWith(where)) return msg;
  const pw = s?.passwordFile ? `${s.passwordKey ?? 'history_password_file'}=${s.passwordFile}` : process.env.PGPASSFILE ? `PGPASSFILE=${process.env.PGPASSFILE}` : 'no fleet_password_file or history_password_file set';
  if (code === '28P01') return `${where}: password refused for the role (password from ${pw}): ${msg}`;
  if (code === '28000') return `${where}: login refused (see pg_hba.conf): ${msg}`;
  if (code === '42P01' || code === '3F000') return `${where}: the fleet table is missing: create it with the SQL in tallow.conf(5), FLEET: ${msg}`;
  if (code === '42501') return `${where}: permission denied: the role needs the grants and its row in tallow_fleet.nodes (tallow.conf(5), FLEET): ${msg}`;
  if (/ECONNREFUSED|ENOENT|ETIMEDOUT|EHOSTUNREACH|timeout/i.test(code + msg)) return `${where}: cannot reach the server: ${msg}`;
  return `${where}: ${msg}`;
}
