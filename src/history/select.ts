// Read-only SQL on whichever store holds the history, for readers that need aggregates the
// HistoryStore interface does not offer (the report: counts per rule, per hour, per address).
// One SQL text for both stores: `?` placeholders (PostgreSQL's store numbers them) and functions
// both dialects know. Only SELECTs pass: a reader never changes the history.
import type { HistoryStore } from './store';
import { SqliteStore } from './sqlite';

export type SqlArg = string | number;
export type SqlRow = Record<string, unknown>;

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
