// New matches and bans in multi-row INSERTs that bind the text a flood's rows share once per
// statement. A flood's rows differ in address and time; their text (pattern, rule, origin,
// reason, scope) is a few strings again and again, and binding a string costs a copy and a
// UTF-8 conversion per row. A statement of up to 100 rows with at most DICT distinct such tuples
// binds the tuples once and, per row, its own values and which tuple it has:
//   INSERT ... SELECT column1, column2, CASE column3 WHEN 0 THEN ? WHEN 1 THEN ? ... END, ...
//     FROM (VALUES (?, ?, ?), (?, ?, ?), ...)
// (bench/README, "history CPU during a flood"). Rows go in in the order they came (ids grow with
// arrival: the report bisects matches by id); a statement's rows with more distinct tuples go in
// with every column bound, as before.
import type Database from 'better-sqlite3';
import type { BanRow, MatchRow } from './store';

type Stmt = Database.Statement<unknown[]>;
type Value = string | number | null;

/** Rows per statement; the rest at the end of a transaction goes in by tens, then one by one. */
const SIZES = [100, 10, 1] as const;
/** Distinct shared tuples one statement can name. */
const DICT = 4;

interface Spec<R> {
  table: string;
  /** the table's columns, in the INSERT's order */
  columns: string[];
  /** the columns most rows of a flood share (the rest are each row's own) */
  shared: Set<string>;
  /** a row's own values, in `columns` order without the shared ones */
  own(r: R, out: Value[]): void;
  /** a row's shared values, in `columns` order */
  tuple(r: R): Value[];
  /** whether the row's shared values are `t` (no array made per row) */
  has(r: R, t: Value[]): boolean;
  /** after VALUES */
  suffix: string;
}

const MATCHES: Spec<MatchRow> = {
  table: 'matches',
  columns: ['address', 'at', 'pattern', 'n', 'rule'],
  shared: new Set(['pattern', 'n', 'rule']),
  own: (r, out) => void out.push(r.address, r.at),
  tuple: (r) => [r.pattern, r.n, r.rule ?? null],
  has: (r, t) => r.pattern === t[0] && r.n === t[1] && (r.rule ?? null) === t[2],
  suffix: '',
};

const BANS: Spec<BanRow> = {
  table: 'bans',
  columns: ['address', 'family', 'since', 'expiry', 'origin', 'reason', 'pattern', 'score', 'count', 'step', 'rule', 'scope'],
  shared: new Set(['origin', 'reason', 'pattern', 'rule', 'scope']),
  own: (r, out) => void out.push(r.address, r.family, r.since, r.expiry, r.score, r.count, r.step),
  tuple: (r) => [r.origin, r.reason, r.pattern, r.rule ?? null, r.scope ?? ''],
  has: (r, t) => r.origin === t[0] && r.reason === t[1] && r.pattern === t[2] && (r.rule ?? null) === t[3] && (r.scope ?? '') === t[4],
  suffix: ' ON CONFLICT (address, since) DO NOTHING',
};

class Pending<R> {
  private readonly rows: R[] = [];
  private readonly stmts = new Map<string, Stmt>();
  private readonly ownCount: number;

  constructor(
    private readonly db: Database.Database,
    private readonly spec: Spec<R>,
  ) {
    this.ownCount = spec.columns.length - spec.shared.size;
  }

  add(r: R): void {
    this.rows.push(r);
    if (this.rows.length === SIZES[0]) this.flush();
  }

  flush(): void {
    let i = 0;
    for (const k of SIZES) for (; this.rows.length - i >= k; i += k) this.send(i, k);
    this.rows.length = 0;
  }

  clear(): void {
    this.rows.length = 0;
  }

  /** rows[i, i+k) in one statement. */
  private send(i: number, k: number): void {
    const { spec } = this;
    const tuples: Value[][] = [];
    const which: number[] = [];
    if (k > 1) {
      for (let j = i; j < i + k && tuples.length <= DICT; j++) which.push(this.indexOf(tuples, this.rows[j]));
    }
    const args: Value[] = [];
    if (k === 1 || tuples.length > DICT) {
      // Every column of every row, in column order.
      for (let j = i; j < i + k; j++) {
        const own: Value[] = [];
        spec.own(this.rows[j], own);
        const t = spec.tuple(this.rows[j]);
        let o = 0;
        let s = 0;
        for (const c of spec.columns) args.push(spec.shared.has(c) ? t[s++] : own[o++]);
      }
      this.stmt('all', k).run(args);
      return;
    }
    // The dictionary: per shared column, DICT values (unused ones null).
    for (let s = 0; s < spec.shared.size; s++) for (let d = 0; d < DICT; d++) args.push(d < tuples.length ? tuples[d][s] : null);
    for (let j = i; j < i + k; j++) {
      spec.own(this.rows[j], args);
      args.push(which[j - i]);
    }
    this.stmt('dict', k).run(args);
  }

  /** The row's tuple's index among `tuples`, added if new. */
  private indexOf(tuples: Value[][], r: R): number {
    for (let d = 0; d < tuples.length; d++) if (this.spec.has(r, tuples[d])) return d;
    tuples.push(this.spec.tuple(r));
    return tuples.length - 1;
  }

  private stmt(form: 'all' | 'dict', k: number): Stmt {
    const key = `${form}${k}`;
    let s = this.stmts.get(key);
    if (!s) this.stmts.set(key, (s = this.db.prepare(form === 'all' ? this.allSql(k) : this.dictSql(k))));
    return s;
  }

  private allSql(k: number): string {
    const { spec } = this;
    const row = `(${spec.columns.map(() => '?').join(', ')})`;
    return `INSERT INTO ${spec.table} (${spec.columns.join(', ')}) VALUES ${Array(k).fill(row).join(', ')}${spec.suffix}`;
  }

  private dictSql(k: number): string {
    const { spec } = this;
    const which = `column${this.ownCount + 1}`;
    const cases = Array.from({ length: DICT }, (_, d) => (d < DICT - 1 ? `WHEN ${d} THEN ?` : 'ELSE ?')).join(' ');
    let o = 0;
    const select = spec.columns.map((c) => (spec.shared.has(c) ? `CASE ${which} ${cases} END` : `column${++o}`));
    const row = `(${Array(this.ownCount + 1).fill('?').join(', ')})`;
    // `WHERE true`: SQLite's parser needs it between a SELECT and ON CONFLICT.
    return `INSERT INTO ${spec.table} (${spec.columns.join(', ')}) SELECT ${select.join(', ')} FROM (VALUES ${Array(k).fill(row).join(', ')}) WHERE true${spec.suffix}`;
  }
}

/** One per open database: a transaction's matches and new bans, sent 100 at a time and at its end (flush). */
export class GroupedInserts {
  private readonly matches: Pending<MatchRow>;
  private readonly bans: Pending<BanRow>;

  constructor(db: Database.Database) {
    this.matches = new Pending(db, MATCHES);
    this.bans = new Pending(db, BANS);
  }

  match(r: MatchRow): void {
    this.matches.add(r);
  }

  /** A new or restored ban (ON CONFLICT (address, since) DO NOTHING: the first of equal ones is kept). */
  ban(r: BanRow): void {
    this.bans.add(r);
  }

  /** Before any statement that may read or change a ban row (unban, adopted, renewed ban). */
  flushBans(): void {
    this.bans.flush();
  }

  flush(): void {
    this.bans.flush();
    this.matches.flush();
  }

  /** Forget what waits (the transaction failed and is rolled back). */
  clear(): void {
    this.bans.clear();
    this.matches.clear();
  }
}
