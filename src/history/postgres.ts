// The history in PostgreSQL (history=postgresql://... or history=postgresql with the history_*
// keys), through `pg`. The same tables as the SQLite file, in a schema `tallow`, created at the
// first connection when missing (the role needs CREATE on the database for that, or an
// administrator creates the schema for it: tallow.conf(5) lists the grants). One connection,
// one operation at a time (a transaction is never interleaved with a retention DELETE); a lost
// connection is made again at the next write. Every failure message names the setting to look at.
import { Client, type ClientConfig } from 'pg';
import type { Config } from '../config';
import { errText } from '../limits';
import type { Logger } from '../log';
import { readSecretLine } from '../secret-file';
import { migrations } from './schema';
import {
  banFromRow,
  matchFromRow,
  READ_SQL,
  selectRows,
  SQL,
  type BanRow,
  type HistoryBan,
  type HistoryMatch,
  type HistoryRow,
  type HistoryStore,
  type LastBan,
  type RowFilter,
} from './store';

export interface PgSettings {
  /** postgresql://... (history=URL), or null: the keys below */
  url: string | null;
  host: string;
  port: number;
  database: string;
  user: string;
  sslmode: string;
  passwordFile: string;
  /** the tallow.conf key passwordFile came from, for messages (default history_password_file) */
  passwordKey?: string;
}

export function pgSettings(c: Config): PgSettings {
  return {
    url: c.history.startsWith('postgres') && c.history.includes('://') ? c.history : null,
    host: c.historyHost,
    port: c.historyPort,
    database: c.historyDbname,
    user: c.historyUser,
    sslmode: c.historySslmode,
    passwordFile: c.historyPasswordFile,
  };
}

const CONNECT_TIMEOUT_MS = 5000;

/** `?` -> `$1, $2...` (no `?` appears in the shared SQL's literals). */
export function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

/** The password file must be the administrator's secret: root's (or ours), mode 0600 or stricter. `key`: the setting that named it. */
export function readPasswordFile(file: string, key = 'history_password_file'): string {
  return readSecretLine(key, file);
}

/**
 * pg's client settings from PgSettings, for the history store and the fleet alike: a URL, or the
 * host/port/dbname/user keys with TLS from sslmode (require: encrypted, no CA check; verify-*:
 * checked), and the password from the password file when one is set.
 */
export function pgClientConfig(s: PgSettings, extra: Pick<ClientConfig, 'application_name' | 'keepAlive'>): ClientConfig {
  const c: ClientConfig = { connectionTimeoutMillis: CONNECT_TIMEOUT_MS, ...extra };
  if (s.url) c.connectionString = s.url;
  else {
    if (s.host) c.host = s.host;
    c.port = s.port;
    c.database = s.database;
    c.user = s.user;
    if (s.sslmode && s.sslmode !== 'disable' && s.sslmode !== 'prefer') c.ssl = { rejectUnauthorized: s.sslmode !== 'require' };
  }
  // Without a file, pg reads PGPASSWORD, then PGPASSFILE or ~/.pgpass (libpq's rules).
  if (s.passwordFile) c.password = readPasswordFile(s.passwordFile, s.passwordKey);
  return c;
}

export class PgStore implements HistoryStore {
  private client: Client | null = null;
  private opening: Promise<void> | null = null;
  /** One operation at a time on the one connection. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly s: PgSettings,
    private readonly log: Logger,
  ) {}

  get where(): string {
    if (this.s.url) {
      try {
        const u = new URL(this.s.url);
        return `postgresql ${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.host || 'localhost'}${u.pathname}`;
      } catch {
        return 'postgresql (history=URL)';
      }
    }
    return `postgresql ${this.s.user}@${this.s.host || 'localhost'}${this.s.host.startsWith('/') ? '' : `:${this.s.port}`}/${this.s.database}`;
  }

  get isOpen(): boolean {
    return this.client !== null;
  }

  open(): Promise<void> {
    if (this.client) return Promise.resolve();
    this.opening ??= this.connect().finally(() => (this.opening = null));
    return this.opening;
  }

  private config(): ClientConfig {
    if (this.s.url && new URL(this.s.url).password) this.log.warn('history: the URL in tallow.conf holds a password; history_password_file or PGPASSFILE keep it out of a readable file');
    return pgClientConfig(this.s, { application_name: 'tallow' });
  }

  private async connect(): Promise<void> {
    let client: Client;
    try {
      client = new Client(this.config());
    } catch (e) {
      throw new Error(this.explain(e));
    }
    // A server going away later is an 'error' event: the next operation connects again.
    client.on('error', (e) => {
      if (this.client === client) this.client = null;
      this.log.warn(`history: lost the connection to ${this.where}: ${errText(e)}`);
    });
    client.on('end', () => {
      if (this.client === client) this.client = null;
    });
    try {
      await client.connect();
      await this.migrate(client);
    } catch (e) {
      await client.end().catch(() => {});
      throw new Error(this.explain(e));
    }
    this.client = client;
  }

  private async migrate(c: Client): Promise<void> {
    await c.query('BEGIN');
    try {
      // Two daemons on one database (a fleet) must not both create the schema.
      await c.query("SELECT pg_advisory_xact_lock(hashtext('tallow-history'))");
      const has = await c.query("SELECT 1 FROM pg_namespace WHERE nspname = 'tallow'");
      if (has.rowCount === 0) await c.query('CREATE SCHEMA tallow');
      await c.query('SET LOCAL search_path TO tallow');
      await c.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
      const v = await c.query('SELECT version FROM schema_version');
      const from = v.rowCount ? Number(v.rows[0].version) : 0;
      const steps = migrations(from, 'postgresql');
      for (const m of steps) for (const s of m.statements) await c.query(s);
      if (steps.length) {
        await c.query('DELETE FROM schema_version');
        await c.query('INSERT INTO schema_version (version) VALUES ($1)', [steps[steps.length - 1].version]);
      }
      await c.query('COMMIT');
      if (steps.length) this.log.info(from === 0 ? `history: schema created in ${this.where}` : `history: schema migrated from version ${from} to ${steps[steps.length - 1].version} in ${this.where}`);
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    }
    await c.query('SET search_path TO tallow');
  }

  /** A pg or socket error as a sentence naming what to check in tallow.conf. */
  private explain(e: unknown): string {
    const code = String((e as { code?: unknown })?.code ?? '');
    const msg = errText(e);
    const user = this.s.url ? 'in history=' : `history_user=${this.s.user}`;
    const pw = this.s.passwordFile ? `history_password_file=${this.s.passwordFile}` : process.env.PGPASSFILE ? `PGPASSFILE=${process.env.PGPASSFILE}` : 'no history_password_file set';
    if (code === '28P01') return `${this.where}: password refused for the role (${user}; password from ${pw}): ${msg}`;
    if (code === '28000') return `${this.where}: login refused (${user}; see pg_hba.conf): ${msg}`;
    if (code === '3D000') return `${this.where}: ${msg} (${this.s.url ? 'history=' : `history_dbname=${this.s.database}`})`;
    if (code === '42501') return `${this.where}: permission denied; the role needs the grants listed in tallow.conf(5) (HISTORY IN POSTGRESQL): ${msg}`;
    if (/ECONNREFUSED|ENOENT|ETIMEDOUT|EHOSTUNREACH|timeout/i.test(code + msg)) return `${this.where}: cannot reach the server (${this.s.url ? 'history=' : `history_host=${this.s.host || 'localhost'}, history_port=${this.s.port}`}): ${msg}`;
    return `${this.where}: ${msg}`;
  }

  /** Run `fn` on the connection when the previous operation is over; connects first if needed. */
  private serial<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const run = this.tail.then(async () => {
      await this.open();
      return fn(this.client!);
    });
    this.tail = run.catch(() => {});
    return run;
  }

  write(run: string, rows: HistoryRow[]): Promise<void> {
    return this.serial(async (c) => {
      await c.query('BEGIN');
      try {
        const got = await c.query(numbered(SQL.progressGet), [run]);
        const done = got.rowCount ? Number(got.rows[0].seq) : 0;
        const fresh = rows.filter((r) => r.seq > done);
        if (fresh.length) {
          await this.insert(c, fresh);
          await c.query(numbered(SQL.progressPut), [run, Math.max(...fresh.map((r) => r.seq)), Date.now()]);
        }
        await c.query('COMMIT');
      } catch (e) {
        await c.query('ROLLBACK').catch(() => {});
        // Whatever went wrong, the next try starts on a fresh connection.
        if (this.client === c) this.client = null;
        await c.end().catch(() => {});
        throw new Error(this.explain(e));
      }
    });
  }

  /** Bans, then unbans, then matches, each kind in one statement over arrays (one round trip). */
  private async insert(c: Client, rows: HistoryRow[]): Promise<void> {
    // Renewed bans first, one by one (a few, after a restart): those with no running row to update join the inserts.
    const bans: BanRow[] = [];
    for (const r of rows) {
      if (r.kind !== 'ban' || r.cause === 'adopted') continue;
      if (r.cause === 'renewed') {
        const u = r.origin.startsWith('remote:')
          ? await c.query(numbered(SQL.banExtend), [r.expiry, r.expiry, r.address, r.scope ?? '', (r.covers ?? 0) - 2000])
          : await c.query(numbered(SQL.banRenew), [r.expiry, r.origin, r.reason, r.pattern, r.score, r.count, r.step, r.rule ?? null, r.address, r.scope ?? '', (r.covers ?? 0) - 2000]);
        if (u.rowCount) continue;
      }
      bans.push(r);
    }
    if (bans.length) {
      const col = <K extends keyof BanRow>(k: K) => bans.map((b) => b[k]);
      await c.query(
        `INSERT INTO bans (address, family, since, expiry, origin, reason, pattern, score, count, step, rule, scope)
         SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::float8[], $9::int[], $10::int[], $11::text[], $12::text[])
         ON CONFLICT (address, since) DO NOTHING`,
        [col('address'), col('family'), col('since'), col('expiry'), col('origin'), col('reason'), col('pattern'), col('score'), col('count'), col('step'), bans.map((b) => b.rule ?? null), bans.map((b) => b.scope ?? '')],
      );
    }
    for (const b of rows) {
      if (b.kind !== 'ban' || b.cause !== 'adopted') continue;
      await c.query(numbered(SQL.banAdopt), [b.address, b.family, b.since, b.expiry, b.origin, b.reason, b.pattern, b.score, b.count, b.step, b.rule ?? null, b.scope ?? '', b.address, b.scope ?? '', b.expiry - 2000]);
    }
    const unbans = rows.filter((r) => r.kind === 'unban');
    if (unbans.length) {
      await c.query(
        `UPDATE bans b SET ended = u.at, end_reason = u.reason
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[]) AS u(address, since, at, reason, scope)
         WHERE b.address = u.address AND b.scope = u.scope AND b.ended IS NULL
           AND b.since = (SELECT max(since) FROM bans c WHERE c.address = u.address AND c.scope = u.scope AND c.since <= u.since)`,
        [unbans.map((u) => u.address), unbans.map((u) => u.since), unbans.map((u) => u.at), unbans.map((u) => u.reason), unbans.map((u) => u.scope ?? '')],
      );
    }
    // Logins are few (one per session): one statement each.
    for (const r of rows) if (r.kind === 'login') await c.query(numbered(SQL.loginInsert), [r.at, r.address, r.username, r.method, r.fingerprint, r.rule]);
    const matches = rows.filter((r) => r.kind === 'match');
    if (matches.length) {
      await c.query('INSERT INTO matches (address, at, pattern, n, rule) SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::int[], $5::text[])', [
        matches.map((m) => m.address),
        matches.map((m) => m.at),
        matches.map((m) => m.pattern),
        matches.map((m) => m.n),
        matches.map((m) => m.rule ?? null),
      ]);
    }
  }

  private rows(sql: string, args: unknown[]): Promise<Record<string, unknown>[]> {
    return this.serial(async (c) => {
      try {
        return (await c.query(numbered(sql), args)).rows as Record<string, unknown>[];
      } catch (e) {
        throw new Error(this.explain(e));
      }
    });
  }

  async prune(before: number, limit: number): Promise<number> {
    return this.serial(async (c) => {
      const a = await c.query(numbered(SQL.pruneMatches), [limit, before]);
      const b = await c.query(numbered(SQL.pruneBans), [limit, before]);
      const l = await c.query(numbered(SQL.pruneLogins), [limit, before]);
      await c.query(numbered(SQL.pruneProgress), [before]);
      return (a.rowCount ?? 0) + (b.rowCount ?? 0) + (l.rowCount ?? 0);
    });
  }

  async bans(f: RowFilter): Promise<HistoryBan[]> {
    const q = selectRows('bans', f);
    return (await this.rows(q.sql, q.args)).map(banFromRow);
  }

  async matches(f: RowFilter): Promise<HistoryMatch[]> {
    const q = selectRows('matches', f);
    return (await this.rows(q.sql, q.args)).map(matchFromRow);
  }

  async addresses(since: number): Promise<string[]> {
    return (await this.rows(READ_SQL.addresses, [since, since])).map((r) => String(r.address));
  }

  async topBanned(since: number, rule: string | undefined, limit: number): Promise<{ address: string; bans: number; lastBan: number }[]> {
    const q = READ_SQL.topBanned(rule);
    return (await this.rows(q.sql, [since, ...q.args, limit])).map((r) => ({ address: String(r.address), bans: Number(r.bans), lastBan: Number(r.last_ban) }));
  }

  async matchSummary(address: string, since: number): Promise<{ pattern: string; n: number; last: number }[]> {
    return (await this.rows(READ_SQL.matchSummary, [address, since])).map((r) => ({ pattern: String(r.pattern), n: Number(r.n), last: Number(r.last) }));
  }

  async lastBans(since: number): Promise<LastBan[]> {
    return (await this.rows(SQL.lastBans, [since])).map((r) => ({ address: String(r.address), rule: r.rule == null ? null : String(r.rule), since: Number(r.since), step: Number(r.step) }));
  }

  async close(): Promise<void> {
    await this.tail;
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => {});
  }
}
