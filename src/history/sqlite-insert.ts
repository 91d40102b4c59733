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

/** SQL of one statement of `k` rows: every column bound ('all'), or shared ones from a dictionary ('dict'). */
interface Table {
  name: string;
  /** the table's columns, in the INSERT's order */
  columns: string[];
  /** the columns a flood's rows share */
  shared: Set<string>;
  /** after VALUES */
  suffix: string;
}

const MATCHES: Table = { name: 'matches', columns: ['address', 'at', 'pattern', 'n', 'rule'], shared: new Set(['pattern', 'n', 'rule']), suffix: '' };
const BANS: Table = {
  name: 'bans',
  columns: ['address', 'family', 'since', 'expiry', 'origin', 'reason', 'pattern', 'score', 'count', 'step', 'rule', 'scope'],
  shared: new Set(['origin', 'reason', 'pattern', 'rule', 'scope']),
  suffix: ' ON CONFLICT (address, since) DO NOTHING',
};

function allSql(t: Table, k: number): string {
  const row = `(${t.columns.map(() => '?').join(', ')})`;
  return `INSERT INTO ${t.name} (${t.columns.join(', ')}) VALUES ${Array(k).fill(row).join(', ')}${t.suffix}`;
}

function dictSql(t: Table, k: number): string {
  const own = t.columns.length - t.shared.size;
  const which = `column${own + 1}`;
  const cases = Array.from({ length: DICT }, (_, d) => (d < DICT - 1 ? `WHEN ${d} THEN ?` : 'ELSE ?')).join(' ');
  let o = 0;
  const select = t.columns.map((c) => (t.shared.has(c) ? `CASE ${which} ${cases} END` : `column${++o}`));
  const row = `(${Array(own + 1).fill('?').join(', ')})`;
  // `WHERE true`: SQLite's parser needs it between a SELECT and ON CONFLICT.
  return `INSERT INTO ${t.name} (${t.columns.join(', ')}) SELECT ${select.join(', ')} FROM (VALUES ${Array(k).fill(row).join(', ')}) WHERE true${t.suffix}`;
}

const sameMatch = (a: MatchRow, b: MatchRow): boolean => a.pattern === b.pattern && a.n === b.n && (a.rule ?? null) === (b.rule ?? null);
const sameBan = (a: BanRow, b: BanRow): boolean =>
  a.origin === b.origin && a.reason === b.reason && a.pattern === b.pattern && (a.rule ?? null) === (b.rule ?? null) && (a.scope ?? '') === (b.scope ?? '');

/** One per open database: a transaction's matches and new bans, sent 100 at a time and at its end (flush). */
export class GroupedInserts {
  private readonly m: MatchRow[] = [];
  private readonly b: BanRow[] = [];
  private readonly stmts = new Map<string, Stmt>();
  // Reused for every statement (the loops below are the whole per-row cost: plain, no array per row).
  private readonly args: Value[] = [];
  private readonly which: number[] = [];

  constructor(private readonly db: Database.Database) {
    for (const t of [MATCHES, BANS]) for (const form of ['all', 'dict'] as const) for (const k of SIZES) if (k > 1 || form === 'all') this.stmt(t, form, k);
  }

  match(r: MatchRow): void {
    if (this.m.push(r) === SIZES[0]) this.flushMatches();
  }

  /** A new or restored ban (ON CONFLICT (address, since) DO NOTHING: the first of equal ones is kept). */
  ban(r: BanRow): void {
    if (this.b.push(r) === SIZES[0]) this.flushBans();
  }

  /** Before any statement that may read or change a ban row (unban, adopted, renewed ban). */
  flushBans(): void {
    let i = 0;
    for (const k of SIZES) for (; this.b.length - i >= k; i += k) this.sendBans(i, k);
    this.b.length = 0;
  }

  flush(): void {
    this.flushBans();
    this.flushMatches();
  }

  /** Forget what waits (the transaction failed and is rolled back). */
  clear(): void {
    this.m.length = 0;
    this.b.length = 0;
  }

  private flushMatches(): void {
    let i = 0;
    for (const k of SIZES) for (; this.m.length - i >= k; i += k) this.sendMatches(i, k);
    this.m.length = 0;
  }

  /** Up to DICT rows, each of another kind, and each row's index among them in `which`; null: more kinds than that. */
  private kinds<R>(rows: R[], i: number, k: number, same: (a: R, b: R) => boolean): R[] | null {
    const t: R[] = [];
    const which = this.which;
    which.length = 0;
    for (let j = i; j < i + k; j++) {
      const r = rows[j];
      let d = 0;
      while (d < t.length && !same(t[d], r)) d++;
      if (d === t.length) {
        if (d === DICT) return null;
        t.push(r);
      }
      which.push(d);
    }
    return t;
  }

  private sendMatches(i: number, k: number): void {
    const rows = this.m;
    const args = this.args;
    args.length = 0;
    const t = k > 1 ? this.kinds(rows, i, k, sameMatch) : null;
    if (t) {
      for (let d = 0; d < DICT; d++) args.push(d < t.length ? t[d].pattern : null);
      for (let d = 0; d < DICT; d++) args.push(d < t.length ? t[d].n : null);
      for (let d = 0; d < DICT; d++) args.push(d < t.length ? (t[d].rule ?? null) : null);
      for (let j = i; j < i + k; j++) args.push(rows[j].address, rows[j].at, this.which[j - i]);
    } else {
      for (let j = i; j < i + k; j++) {
        const r = rows[j];
        args.push(r.address, r.at, r.pattern, r.n, r.rule ?? null);
      }
    }
    this.stmt(MATCHES, t ? 'dict' : 'all', k).run(args);
  }

  private sendBans(i: number, k: number): void {
    const rows = this.b;
    const args = this.args;
    args.length = 0;
    const t = k > 1 ? this.kinds(rows, i, k, sameBan) : null;
    if (t) {
      for (let d = 0; d < DICT; d++) args.push(d < t.length ? t[d].origin : null);
      for (let d = 0; d < DICT; d++) args.push(d < t.length ? t[d].reason : null);
      for (let d = 0; d < DICT; d++) args.push(d < t.length ? t[d].pattern : null);
      for (let d = 0; d < DICT; d++) args.push(d < t.length ? (t[d].rule ?? null) : null);
      for (let d = 0; d < DICT; d++) args.push(d < t.length ? (t[d].scope ?? '') : null);
      for (let j = i; j < i + k; j++) {
        const r = rows[j];
        args.push(r.address, r.family, r.since, r.expiry, r.score, r.count, r.step, this.which[j - i]);
      }
    } else {
      for (let j = i; j < i + k; j++) {
        const r = rows[j];
        args.push(r.address, r.family, r.since, r.expiry, r.origin, r.reason, r.pattern, r.score, r.count, r.step, r.rule ?? null, r.scope ?? '');
      }
    }
    this.stmt(BANS, t ? 'dict' : 'all', k).run(args);
  }

  private stmt(t: Table, form: 'all' | 'dict', k: number): Stmt {
    const key = `${t.name}${form}${k}`;
    let s = this.stmts.get(key);
    if (!s) this.stmts.set(key, (s = this.db.prepare(form === 'all' ? allSql(t, k) : dictSql(t, k))));
    return s;
  }
}
