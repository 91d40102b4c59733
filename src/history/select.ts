// Read-only SQL on whichever store holds the history, for readers that need aggregates the
// HistoryStore interface does not offer (the report: counts per rule, per hour, per address).
// One SQL text for both stores: `?` placeholders (PostgreSQL's store numbers them) and functions
// both dialects know. Only SELECTs pass: a reader never changes the history.
import type { HistoryStore } from './store';
import { SqliteStore } from './sqlite';

export type SqlArg = string | number;
export type SqlRow = Record<string, unknown>;

/** A column's value as a number (PostgreSQL gives BIGINT and sums as text; NULL and absent are 0). */
export const num = (v: unknown): number => Number(v ?? 0) || 0;

/** The stores' own row readers (private there: the one connection each store already manages). */
interface RowReaders {
  all?: (sql: string, args: SqlArg[]) => SqlRow[];
  rows?: (sql: string, args: SqlArg[]) => Promise<SqlRow[]>;
}

export async function selectSql(store: HistoryStore, sql: string, args: SqlArg[]): Promise<SqlRow[]> {
  if (!/^\s*SELECT\s/i.test(sql) || sql.includes(';')) throw new Error('history: only one SELECT may be read this way');
  await store.open();
  const r = store as unknown as RowReaders;
  if (store instanceof SqliteStore && r.all) return r.all.call(store, sql, args);
  if (typeof r.rows === 'function') return r.rows.call(store, sql, args);
  throw new Error(`${store.where}: this store cannot answer SQL`);
}

/** Whether `table` has `column` (a later schema's column, e.g. bans.rule, or a later table). */
export async function hasColumn(store: HistoryStore, table: string, column: string): Promise<boolean> {
  // Asked of the catalogue, not by selecting the column: a failed SELECT is an ERROR line in
  // PostgreSQL's log at every report. The PostgreSQL store's search_path is its schema.
  const sql =
    store instanceof SqliteStore
      ? 'SELECT count(*) AS n FROM pragma_table_info(?) WHERE name = ?'
      : 'SELECT count(*) AS n FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?';
  return Number((await selectSql(store, sql, [table, column]))[0]?.n ?? 0) > 0;
}

/**
 * The lowest id of a match at or after `since` (ms), or null when there is none. The matches table
 * has no index on `at` (one less B-tree per row in a flood); its ids grow with time, so a
 * bisection over ids (each step one primary-key lookup) finds where a period starts without
 * reading the table. A clock stepped backwards can misplace a few rows near the boundary.
 */
export async function firstMatchId(store: HistoryStore, since: number): Promise<number | null> {
  // Two statements: min() and max() in one make SQLite read the whole table (each alone is one lookup).
  const first = (await selectSql(store, 'SELECT id FROM matches ORDER BY id LIMIT 1', []))[0];
  const last = (await selectSql(store, 'SELECT id FROM matches ORDER BY id DESC LIMIT 1', []))[0];
  if (!first || !last) return null;
  const span = { lo: first.id, hi: last.id };
  const atOf = async (id: number): Promise<{ id: number; at: number } | null> => {
    const r = (await selectSql(store, 'SELECT id, at FROM matches WHERE id >= ? ORDER BY id LIMIT 1', [id]))[0];
    return r ? { id: num(r.id), at: num(r.at) } : null;
  };
  let lo = num(span.lo);
  let hi = num(span.hi);
  if (num((await atOf(hi))?.at) < since) return null;
  // The first row at or after `hi` is in the period; find the lowest such id.
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const row = await atOf(mid);
    if (row && row.at >= since) hi = mid; // no id between mid and row.id exists
    else lo = (row ? row.id : mid) + 1;
  }
  return lo;
}

/** `id >= ? AND id < ?` bounds of the matches of [since, until), for a query that also filters on `at`. */
export async function matchIdRange(store: HistoryStore, since: number, until: number): Promise<[number, number]> {
  const lo = await firstMatchId(store, since);
  if (lo === null) return [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
  return [lo, (await firstMatchId(store, until)) ?? Number.MAX_SAFE_INTEGER];
}
