// The history in an SQLite file (default: state_dir/history.sqlite) through better-sqlite3:
// WAL, so `tallow history` reads while the daemon writes, and synchronous=NORMAL, which survives
// a killed process (not a power cut: the last transactions may then be lost, never the file).
// A file that is not a database, or turns out corrupt, is moved aside with a log line and a fresh
// one is made: the history restarts, the daemon never stops over it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { errText } from '../limits';
import type { Logger } from '../log';
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

export const HISTORY_FILE = 'history.sqlite';
const MULTI = 100;

/** SQLite's codes for a file that is not (or no longer) a sound database. */
const BROKEN = new Set(['SQLITE_NOTADB', 'SQLITE_CORRUPT', 'SQLITE_CORRUPT_INDEX', 'SQLITE_CORRUPT_VTAB', 'SQLITE_CORRUPT_SEQUENCE']);

export function isBroken(e: unknown): boolean {
  return BROKEN.has(String((e as { code?: unknown })?.code));
}

type Stmt = Database.Statement<unknown[]>;

export class SqliteStore implements HistoryStore {
  private db: Database.Database | null = null;
  private stmts: Record<keyof typeof SQL, Stmt> | null = null;
  /** Files moved aside since start (tests, metrics). */
  setAside = 0;

  constructor(
    readonly file: string,
    private readonly log: Logger,
    private readonly readonly = false,
  ) {}

  get where(): string {
    return `sqlite ${this.file}`;
  }
  get isOpen(): boolean {
    return this.db !== null;
  }

  async open(): Promise<void> {
    if (this.db) return;
    if (this.readonly) {
      this.db = new Database(this.file, { readonly: true, fileMustExist: true });
      this.db.pragma('query_only = ON');
      return;
    }
    try {
      this.openFile();
    } catch (e) {
      if (!isBroken(e)) throw e;
      this.moveAside(e);
      this.openFile();
    }
  }

  private openFile(): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const db = new Database(this.file);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      // Checkpoints (the WAL copied into the file) at 4,000 pages instead of 1,000: a flood's
      // index pages are copied once, not four times; ~25% less CPU per row on a file of a few
      // hundred thousand rows (bench/README). The WAL file grows to about 16 MB.
      db.pragma('wal_autocheckpoint = 4000');
      // A reader (`tallow history`) holding the file briefly must not fail a write.
      db.pragma('busy_timeout = 2000');
      const from = Number(db.pragma('user_version', { simple: true }));
      const steps = migrations(from, 'sqlite');
      if (steps.length) {
        db.transaction(() => {
          for (const m of steps) {
            for (const s of m.statements) db.exec(s);
            db.pragma(`user_version = ${m.version}`);
          }
        })();
        this.log.info(from === 0 ? 'history: new database created' : `history: schema migrated from version ${from} to ${steps[steps.length - 1].version}`, { file: this.file });
      }
      const stmts = {} as Record<keyof typeof SQL, Stmt>;
      for (const [k, sql] of Object.entries(SQL)) stmts[k as keyof typeof SQL] = db.prepare(sql);
      this.stmts = stmts;
      this.db = db;
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** history.sqlite -> history.sqlite.broken-<time> (with its -wal and -shm), then a log line. */
  private moveAside(e: unknown): void {
    const aside = `${this.file}.broken-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      this.db?.close();
    } catch {
      /* closing a broken handle may fail too: the rename below is what matters */
    }
    this.db = null;
    this.stmts = null;
    this.multiMatch = null;
    this.multiBan = null;
    this.tx = null;
    fs.renameSync(this.file, aside);
    for (const ext of ['-wal', '-shm']) {
      if (fs.existsSync(this.file + ext)) fs.renameSync(this.file + ext, aside + ext);
    }
    this.setAside++;
    this.log.error(`history: ${this.file} is not a sound SQLite database (${errText(e)}); moved aside to ${aside}, starting a new one`);
  }

  async write(run: string, rows: HistoryRow[]): Promise<void> {
    await this.open();
    try {
      this.writeSync(run, rows);
    } catch (e) {
      if (!isBroken(e)) throw e;
      // Corrupted while running: set aside, reopen fresh, and let the batch be retried into it.
      this.moveAside(e);
      this.openFile();
      throw e;
    }
  }

  /** INSERT of MULTI matches in one statement: about 1.5 times the rows per second of one by one (bench/README). */
  private multiMatch: Stmt | null = null;
  /** The same for new bans (most of a flood's rows after matches). */
  private multiBan: Stmt | null = null;
  /** db.transaction() makes a new wrapper each call: one, made once per open database. */
  private tx: ((run: string, rows: HistoryRow[]) => void) | null = null;

  private writeSync(run: string, rows: HistoryRow[]): void {
    if (!this.tx) {
      const db = this.db!;
      this.multiMatch = db.prepare(`INSERT INTO matches (address, at, pattern, n, rule) VALUES ${Array(MULTI).fill('(?, ?, ?, ?, ?)').join(', ')}`);
      this.multiBan = db.prepare(SQL.banInsert.replace(/VALUES \(.*?\)/, `VALUES ${Array(MULTI).fill(`(${Array(12).fill('?').join(', ')})`).join(', ')}`));
      this.tx = db.transaction((r: string, x: HistoryRow[]) => this.writeRows(r, x));
    }
    this.tx(run, rows);
  }

  private writeRows(run: string, rows: HistoryRow[]): void {
    const s = this.stmts!;
    const multi = this.multiMatch!;
    const multiBan = this.multiBan!;
    const done = Number((s.progressGet.get(run) as { seq?: number } | undefined)?.seq ?? 0);
    let last = done;
    // Matches gather here until MULTI of them go in at once; bans and unbans do not wait for
    // them (the order of match rows against ban rows means nothing). New bans gather too, but go
    // in before any statement that may touch a ban row (an unban, an adopted or renewed ban).
    const pending: (string | number | null)[] = [];
    const bans: (string | number | null)[] = [];
    // A renewal by this node's rules brings the running row up to date; one from the fleet only moves its end (store.ts).
    const renew = (r: BanRow, scope: string) =>
      r.origin.startsWith('remote:')
        ? s.banExtend.run(r.expiry, r.expiry, r.address, scope, (r.covers ?? 0) - 2000)
        : s.banRenew.run(r.expiry, r.origin, r.reason, r.pattern, r.score, r.count, r.step, r.rule ?? null, r.address, scope, (r.covers ?? 0) - 2000);
    const flushBans = () => {
      for (let i = 0; i < bans.length; i += 12) s.banInsert.run(bans.slice(i, i + 12));
      bans.length = 0;
    };
    for (const r of rows) {
      if (r.seq <= done) continue;
      if (r.seq > last) last = r.seq;
      if (r.kind === 'match') {
        pending.push(r.address, r.at, r.pattern, r.n, r.rule ?? null);
        if (pending.length === MULTI * 5) {
          multi.run(pending);
          pending.length = 0;
        }
        continue;
      }
      if (r.kind === 'ban' && (r.cause === 'new' || r.cause === 'restored')) {
        bans.push(r.address, r.family, r.since, r.expiry, r.origin, r.reason, r.pattern, r.score, r.count, r.step, r.rule ?? null, r.scope ?? '');
        if (bans.length === MULTI * 12) {
          multiBan.run(bans);
          bans.length = 0;
        }
        continue;
      }
      flushBans();
      if (r.kind === 'unban') s.unban.run(r.at, r.reason, r.address, r.scope ?? '', r.address, r.scope ?? '', r.since);
      else if (r.kind === 'login') s.loginInsert.run(r.at, r.address, r.username, r.method, r.fingerprint, r.rule);
      else {
        const scope = r.scope ?? '';
        const v = [r.address, r.family, r.since, r.expiry, r.origin, r.reason, r.pattern, r.score, r.count, r.step, r.rule ?? null, scope];
        if (r.cause === 'adopted') s.banAdopt.run(...v, r.address, scope, r.expiry - 2000);
        else if (renew(r, scope).changes === 0) s.banInsert.run(...v);
      }
    }
    flushBans();
    for (let i = 0; i < pending.length; i += 5) s.matchInsert.run(pending.slice(i, i + 5));
    if (last > done) s.progressPut.run(run, last, Date.now());
  }

  async prune(before: number, limit: number): Promise<number> {
    await this.open();
    const s = this.stmts!;
    const n = s.pruneMatches.run(limit, before).changes + s.pruneBans.run(limit, before).changes + s.pruneLogins.run(limit, before).changes;
    s.pruneProgress.run(before);
    return n;
  }

  private all(sql: string, args: (string | number)[]): Record<string, unknown>[] {
    return this.db!.prepare(sql).all(...args) as Record<string, unknown>[];
  }

  async bans(f: RowFilter): Promise<HistoryBan[]> {
    await this.open();
    const q = selectRows('bans', f);
    return this.all(q.sql, q.args).map(banFromRow);
  }

  async matches(f: RowFilter): Promise<HistoryMatch[]> {
    await this.open();
    const q = selectRows('matches', f);
    return this.all(q.sql, q.args).map(matchFromRow);
  }

  async addresses(since: number): Promise<string[]> {
    await this.open();
    return this.all(READ_SQL.addresses, [since, since]).map((r) => String(r.address));
  }

  async topBanned(since: number, rule: string | undefined, limit: number): Promise<{ address: string; bans: number; lastBan: number }[]> {
    await this.open();
    const q = READ_SQL.topBanned(rule);
    return this.all(q.sql, [since, ...q.args, limit]).map((r) => ({ address: String(r.address), bans: Number(r.bans), lastBan: Number(r.last_ban) }));
  }

  async matchSummary(address: string, since: number): Promise<{ pattern: string; n: number; last: number }[]> {
    await this.open();
    return this.all(READ_SQL.matchSummary, [address, since]).map((r) => ({ pattern: String(r.pattern), n: Number(r.n), last: Number(r.last) }));
  }

  async lastBans(since: number): Promise<LastBan[]> {
    await this.open();
    return this.all(SQL.lastBans, [since]).map((r) => ({ address: String(r.address), rule: r.rule == null ? null : String(r.rule), since: Number(r.since), step: Number(r.step) }));
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = null;
    this.stmts = null;
    this.multiMatch = null;
    this.multiBan = null;
    this.tx = null;
  }
}
