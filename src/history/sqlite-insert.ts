// New matches and bans in multi-row INSERTs that bind what a flood's rows share once per
// statement. A flood's rows differ in address and time; their text (pattern, rule, origin,
// reason, scope) is the same few strings, and binding a string costs a copy and a UTF-8
// conversion per row. Rows are grouped by those columns; each group goes in as
//   INSERT ... SELECT column1, ?, ... FROM (VALUES (?, ?), (?, ?), ...)
// with the shared values bound once: ~15-20% less CPU per stored row than binding every column
// of every row (bench/README, "history CPU during a flood").
//
// Order: rows of one address keep their order (a ban whose address is already waiting sends the
// waiting bans first: the first of two equal (address, since) is the one kept, and the later
// ban of an address gets the higher id, which banRenew reads). Matches of different patterns in
// one transaction may take ids out of arrival order; their times are their own.
import type Database from 'better-sqlite3';
import type { BanRow, MatchRow } from './store';

type Stmt = Database.Statement<unknown[]>;
type Value = string | number | null;

/** Rows per statement; a group's rest goes in by tens, then one by one (a handful of statements, each prepared once). */
const SIZES = [100, 10, 1] as const;

/** Values of each row: matches (address, at; shared: pattern, n, rule), bans (address, family, since, expiry, score, count, step; shared: origin, reason, pattern, rule, scope). */
const MATCH_OWN = 2;
const BAN_OWN = 7;

function matchSql(k: number): string {
  return `INSERT INTO matches (address, at, pattern, n, rule) SELECT column1, column2, ?, ?, ? FROM (VALUES ${Array(k).fill('(?, ?)').join(', ')})`;
}

function banSql(k: number): string {
  // `WHERE true`: SQLite's parser needs it between a SELECT and ON CONFLICT.
  return (
    'INSERT INTO bans (address, family, since, expiry, origin, reason, pattern, score, count, step, rule, scope) ' +
    `SELECT column1, column2, column3, column4, ?, ?, ?, column5, column6, column7, ?, ? FROM (VALUES ${Array(k).fill('(?, ?, ?, ?, ?, ?, ?)').join(', ')}) ` +
    'WHERE true ON CONFLICT (address, since) DO NOTHING'
  );
}

/** Rows sharing `shared`; `own` holds each row's own values, one after the other. */
interface Group {
  shared: Value[];
  own: Value[];
}

class Groups {
  private readonly groups: Group[] = [];
  private last: Group | null = null;
  private readonly stmts = new Map<number, Stmt>();

  constructor(
    private readonly db: Database.Database,
    private readonly sql: (k: number) => string,
    private readonly perRow: number,
  ) {}

  /** The group of rows sharing these values (compared by ===: the same strings come again and again). */
  group(a: Value, b: Value, c: Value, d?: Value, e?: Value): Group {
    const l = this.last;
    if (l && same(l.shared, a, b, c, d, e)) return l;
    for (const g of this.groups) {
      if (same(g.shared, a, b, c, d, e)) return (this.last = g);
    }
    const g: Group = { shared: d === undefined ? [a, b, c] : [a, b, c, d, e ?? null], own: [] };
    this.groups.push(g);
    return (this.last = g);
  }

  /** Sends a group once it holds the largest statement's rows. */
  full(g: Group): void {
    const k = SIZES[0];
    if (g.own.length < k * this.perRow) return;
    this.stmt(k).run([...g.shared, ...g.own]);
    g.own.length = 0;
  }

  /** Every waiting row, in statements of 100, 10, 1. */
  flush(): void {
    for (const g of this.groups) {
      let i = 0;
      const rows = g.own.length / this.perRow;
      for (const k of SIZES) {
        for (; rows - i >= k; i += k) {
          const args = g.shared.slice();
          for (let j = i * this.perRow; j < (i + k) * this.perRow; j++) args.push(g.own[j]);
          this.stmt(k).run(args);
        }
      }
    }
    this.clear();
  }

  clear(): void {
    this.groups.length = 0;
    this.last = null;
  }

  private stmt(k: number): Stmt {
    let s = this.stmts.get(k);
    if (!s) this.stmts.set(k, (s = this.db.prepare(this.sql(k))));
    return s;
  }
}

function same(s: Value[], a: Value, b: Value, c: Value, d?: Value, e?: Value): boolean {
  return s[0] === a && s[1] === b && s[2] === c && (d === undefined || (s[3] === d && s[4] === (e ?? null)));
}

/** One per open database: matches and new bans of a transaction, sent before commit (flush). */
export class GroupedInserts {
  private readonly matches: Groups;
  private readonly bans: Groups;
  /** Addresses of the bans waiting: a second ban of one of them sends those first (order kept). */
  private readonly banned = new Set<string>();

  constructor(db: Database.Database) {
    this.matches = new Groups(db, matchSql, MATCH_OWN);
    this.bans = new Groups(db, banSql, BAN_OWN);
  }

  match(r: MatchRow): void {
    const g = this.matches.group(r.pattern, r.n, r.rule ?? null);
    g.own.push(r.address, r.at);
    this.matches.full(g);
  }

  /** A new or restored ban (ON CONFLICT (address, since) DO NOTHING). */
  ban(r: BanRow): void {
    if (this.banned.has(r.address)) this.flushBans();
    this.banned.add(r.address);
    const g = this.bans.group(r.origin, r.reason, r.pattern, r.rule ?? null, r.scope ?? '');
    g.own.push(r.address, r.family, r.since, r.expiry, r.score, r.count, r.step);
    this.bans.full(g);
  }

  /** Before any statement that may read or change a ban row (unban, adopted, renewed ban). */
  flushBans(): void {
    this.bans.flush();
    this.banned.clear();
  }

  flush(): void {
    this.flushBans();
    this.matches.flush();
  }

  /** Forget what waits (the transaction failed and is rolled back). */
  clear(): void {
    this.bans.clear();
    this.matches.clear();
    this.banned.clear();
  }
}
