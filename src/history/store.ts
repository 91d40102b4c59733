// What the history keeps and how it is asked, whatever holds it (SQLite file, PostgreSQL). The
// listener turns events into rows; a store writes one batch of rows in one transaction, answers
// queries, deletes old rows in small batches. Rows carry the listener's sequence number: a store
// remembers the last one written per daemon run in the same transaction, so a batch retried after
// an unclear failure (PostgreSQL gone between COMMIT and its answer) is never stored twice.
import type { Family } from '../address';

export interface BanRow {
  kind: 'ban';
  seq: number;
  address: string;
  family: Family;
  /** ms since epoch */
  since: number;
  expiry: number;
  origin: string;
  reason: string;
  pattern: string | null;
  score: number;
  count: number;
  /** repeat-offender step (0: a first ban) */
  step: number;
  /** the rule that made it (null: by hand, adopted, unknown) */
  rule?: string | null;
  /** where it applies: a Scope id ('' every port) */
  scope?: string;
  /**
   * restored: stored already unless lost; adopted: found in the kernel, stored unless a ban in the
   * history covers it; renewed: decided again for an address adopted at start, from journal lines
   * read again after a restart (the same attack): the running row is brought up to date, not doubled.
   */
  cause: 'new' | 'restored' | 'adopted' | 'renewed';
  /** renewed: the adopted ban's expiry (which row is running) */
  covers?: number;
}

export interface UnbanRow {
  kind: 'unban';
  seq: number;
  address: string;
  /** the ended ban's start */
  since: number;
  /** the ended ban's scope ('' every port): one address may be banned in several at once */
  scope?: string;
  at: number;
  reason: string;
}

export interface MatchRow {
  kind: 'match';
  seq: number;
  address: string;
  at: number;
  pattern: string;
  /** 1, or the matches past the hourly cap summed up in one row (pattern '*') */
  n: number;
  /** the rule whose pattern matched (null in a summary row) */
  rule?: string | null;
}

/** A login a notify rule reported (the user name is the client's, as the program logged it). */
export interface LoginRow {
  kind: 'login';
  seq: number;
  at: number;
  address: string;
  username: string;
  method: string;
  /** null: none logged (a password login) */
  fingerprint: string | null;
  rule: string;
}

export type HistoryRow = BanRow | UnbanRow | MatchRow | LoginRow;

/** What rows to read: one address or all, since a time, of one rule. Newest first, at most `limit`. */
export interface RowFilter {
  address?: string;
  /** ms since epoch */
  since?: number;
  /** a pattern (`sshd.json#3`), a pattern file (`sshd.json`) or a rule's name (`sshd`) */
  rule?: string;
  limit: number;
}

/** One line of `tallow history`: a ban (with its end, if any) or matches. */
export interface HistoryBan {
  kind: 'ban';
  address: string;
  since: number;
  expiry: number;
  seconds: number;
  origin: string;
  reason: string;
  pattern: string | null;
  score: number;
  count: number;
  step: number;
  ended: number | null;
  endReason: string | null;
  /** rows before schema version 3: null and '' */
  rule: string | null;
  scope: string;
}

export interface HistoryMatch {
  kind: 'match';
  address: string;
  at: number;
  pattern: string;
  n: number;
}

export type HistoryItem = HistoryBan | HistoryMatch;

export interface TopItem {
  address: string;
  bans: number;
  matches: number;
  lastBan: number | null;
  lastSeen: number;
  /** patterns seen, most frequent first */
  rules: string[];
}

/** The latest repeat-offender step of an address: what the recidive view is loaded from. */
export interface LastBan {
  address: string;
  /** null: stored before rules had names (schema 2) */
  rule: string | null;
  since: number;
  step: number;
}

export interface HistoryStore {
  /** `sqlite /var/lib/tallow/history.sqlite`, `postgresql tallow@host/db`: for log lines */
  readonly where: string;
  readonly isOpen: boolean;
  /** Connect, create or migrate the schema. Throws (with a clear message) when it cannot. */
  open(): Promise<void>;
  /** One transaction; rows with seq at or below what this run stored already are skipped. */
  write(run: string, rows: HistoryRow[]): Promise<void>;
  /** Delete up to `limit` rows older than `before` (ms); returns how many went. */
  prune(before: number, limit: number): Promise<number>;
  bans(f: RowFilter): Promise<HistoryBan[]>;
  matches(f: RowFilter): Promise<HistoryMatch[]>;
  /** Every address with a ban or a match since `since`. */
  addresses(since: number): Promise<string[]>;
  /** Addresses by number of bans since `since`, most first. */
  topBanned(since: number, rule: string | undefined, limit: number): Promise<{ address: string; bans: number; lastBan: number }[]>;
  /** Matches of one address since `since`, per pattern, most first. */
  matchSummary(address: string, since: number): Promise<{ pattern: string; n: number; last: number }[]>;
  /** Threshold bans since `since` (ms): the last one per address, for the repeat-offender view. */
  lastBans(since: number): Promise<LastBan[]>;
  close(): Promise<void>;
}

/** The SQL both stores share; `?` placeholders (PostgreSQL's store numbers them). */
export const SQL = {
  progressGet: 'SELECT seq FROM progress WHERE run = ?',
  progressPut: 'INSERT INTO progress (run, seq, at) VALUES (?, ?, ?) ON CONFLICT (run) DO UPDATE SET seq = excluded.seq, at = excluded.at',
  banInsert:
    'INSERT INTO bans (address, family, since, expiry, origin, reason, pattern, score, count, step, rule, scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (address, since) DO NOTHING',
  // Found in the kernel at start: already stored when a ban of the address in the history still runs then.
  banAdopt:
    'INSERT INTO bans (address, family, since, expiry, origin, reason, pattern, score, count, step, rule, scope) SELECT CAST(? AS TEXT), CAST(? AS INTEGER), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION), CAST(? AS INTEGER), CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS TEXT) WHERE NOT EXISTS (SELECT 1 FROM bans WHERE address = ? AND scope = ? AND expiry >= ?) ON CONFLICT (address, since) DO NOTHING',
  banRenew:
    'UPDATE bans SET expiry = ?, origin = ?, reason = ?, pattern = ?, score = ?, count = ?, step = ?, rule = ? WHERE id = (SELECT max(id) FROM bans WHERE address = ? AND scope = ? AND ended IS NULL AND expiry >= ?)',
  // A fleet's ban over one adopted at start: the running row is this node's own ban (its origin,
  // rule and step count for repeat offenders after the next restart); only its end moves.
  banExtend:
    'UPDATE bans SET expiry = CASE WHEN expiry > ? THEN expiry ELSE ? END WHERE id = (SELECT max(id) FROM bans WHERE address = ? AND scope = ? AND ended IS NULL AND expiry >= ?)',
  // The latest ban of the address in the scope that started at or before the ended one (an
  // adopted ban's own row may have been skipped as covered by the original).
  unban:
    'UPDATE bans SET ended = ?, end_reason = ? WHERE address = ? AND scope = ? AND ended IS NULL AND since = (SELECT max(since) FROM bans WHERE address = ? AND scope = ? AND since <= ?)',
  matchInsert: 'INSERT INTO matches (address, at, pattern, n, rule) VALUES (?, ?, ?, ?, ?)',
  loginInsert: 'INSERT INTO logins (at, address, username, method, fingerprint, rule) VALUES (?, ?, ?, ?, ?, ?)',
  pruneLogins: 'DELETE FROM logins WHERE id IN (SELECT id FROM logins ORDER BY id LIMIT ?) AND at < ?',
  // Oldest rows first by id (ids grow with time): no index on `at` is needed, a clock step
  // backwards only keeps a few rows a little longer.
  pruneMatches: 'DELETE FROM matches WHERE id IN (SELECT id FROM matches ORDER BY id LIMIT ?) AND at < ?',
  pruneBans: 'DELETE FROM bans WHERE id IN (SELECT id FROM bans ORDER BY id LIMIT ?) AND since < ?',
  pruneProgress: 'DELETE FROM progress WHERE at < ?',
  // The latest threshold ban of each address and rule (the repeat-offender view maps rules to
  // their score pools and keeps the latest of each pool; the daemon alone knows the pools); this
  // node's own bans only, not the fleet's (remote:NODE: recidive.ts says why).
  lastBans:
    "SELECT address, rule, since, step FROM bans b WHERE reason = 'threshold' AND origin NOT LIKE 'remote:%' AND since >= ? AND since = (SELECT max(since) FROM bans c WHERE c.address = b.address AND c.reason = 'threshold' AND c.origin NOT LIKE 'remote:%' AND (c.rule = b.rule OR (c.rule IS NULL AND b.rule IS NULL)))",
};

/** `sshd.json` means every pattern of that file; `sshd.json#3` that one pattern; `sshd` the rule of that name. */
export function ruleClause(column: string, rule: string | undefined): { sql: string; args: (string | number)[] } {
  if (!rule) return { sql: '', args: [] };
  return { sql: ` AND (${column} = ? OR substr(${column}, 1, ?) = ? OR rule = ?)`, args: [rule, rule.length + 1, `${rule}#`, rule] };
}

/** SELECTs for bans() and matches(), from a filter; newest first. */
export function selectRows(kind: 'bans' | 'matches', f: RowFilter): { sql: string; args: (string | number)[] } {
  const time = kind === 'bans' ? 'since' : 'at';
  const cols =
    kind === 'bans'
      ? 'address, since, expiry, origin, reason, pattern, score, count, step, ended, end_reason, rule, scope'
      : 'address, at, pattern, n';
  let sql = `SELECT ${cols} FROM ${kind} WHERE 1 = 1`;
  const args: (string | number)[] = [];
  if (f.address !== undefined) (sql += ' AND address = ?'), args.push(f.address);
  if (f.since !== undefined) (sql += ` AND ${time} >= ?`), args.push(f.since);
  const r = ruleClause('pattern', f.rule);
  sql += r.sql;
  args.push(...r.args);
  // Without an address, the newest matches are the highest ids (no index on `at`).
  sql += f.address === undefined && kind === 'matches' ? ' ORDER BY id DESC' : ` ORDER BY ${time} DESC`;
  sql += ' LIMIT ?';
  args.push(f.limit);
  return { sql, args };
}

export const READ_SQL = {
  addresses: 'SELECT address FROM bans WHERE since >= ? UNION SELECT address FROM matches WHERE at >= ?',
  topBanned: (rule: string | undefined) => {
    const r = ruleClause('pattern', rule);
    return {
      sql: `SELECT address, count(*) AS bans, max(since) AS last_ban FROM bans WHERE since >= ?${r.sql} GROUP BY address ORDER BY count(*) DESC, max(since) DESC LIMIT ?`,
      args: r.args,
    };
  },
  matchSummary: 'SELECT pattern, sum(n) AS n, max(at) AS last FROM matches WHERE address = ? AND at >= ? GROUP BY pattern ORDER BY sum(n) DESC',
};

/** A database row of bans as the query returns it (PostgreSQL gives BIGINT as text). */
export function banFromRow(r: Record<string, unknown>): HistoryBan {
  const since = Number(r.since);
  const expiry = Number(r.expiry);
  return {
    kind: 'ban',
    address: String(r.address),
    since,
    expiry,
    seconds: Math.round((expiry - since) / 1000),
    origin: String(r.origin),
    reason: String(r.reason),
    pattern: r.pattern === null ? null : String(r.pattern),
    score: Number(r.score),
    count: Number(r.count),
    step: Number(r.step),
    ended: r.ended === null ? null : Number(r.ended),
    endReason: r.end_reason === null ? null : String(r.end_reason),
    rule: r.rule === null || r.rule === undefined ? null : String(r.rule),
    scope: r.scope === null || r.scope === undefined ? '' : String(r.scope),
  };
}

export function matchFromRow(r: Record<string, unknown>): HistoryMatch {
  return { kind: 'match', address: String(r.address), at: Number(r.at), pattern: String(r.pattern), n: Number(r.n) };
}
