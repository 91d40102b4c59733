// `tallow status`'s figures from the history store (issue 15.4): what happened in the last 24 hours
// and 7 days, whatever restarts came in between (the daemon's own counters start again at every
// start). Cheap enough to ask often: the bans are read through their index on `since`; the matches
// table has no index on `at`, so the first row of the window is found by bisecting the ids (they
// grow with time) and only the window's rows are read.
import { firstMatchId, num, selectSql, type SqlArg, type SqlRow } from './select';
import type { HistoryStore } from './store';

const DAY_MS = 86_400_000;

export interface WindowFigures {
  /** bans that started in the window: this node's (rules, by hand, adopted) */
  bans: number;
  /** bans the fleet's other nodes made that were applied here (origin remote:NODE) */
  remoteBans: number;
  /** different addresses banned (either kind) */
  addressesBanned: number;
  /** bans that were a repeat offender's longer step (bantime_increment) */
  repeatBans: number;
}

export interface HistoryFigures {
  /** `sqlite /var/lib/tallow/history.sqlite` */
  where: string;
  /** ms since epoch: the figures' end */
  at: number;
  day: WindowFigures & {
    /** matches stored in the last 24 hours (those summed up past the hourly cap included) */
    matches: number;
    /** different addresses that matched */
    addressesMatched: number;
  };
  week: WindowFigures;
  /** the oldest ban or match still stored (history_days keeps it bounded); null: the store is empty */
  oldest: number | null;
}

export async function historyFigures(store: HistoryStore, now = Date.now()): Promise<HistoryFigures> {
  const q = (sql: string, args: SqlArg[]): Promise<SqlRow[]> => selectSql(store, sql, args);
  const bansSince = async (since: number): Promise<WindowFigures> => {
    const r =
      (
        await q(
          `SELECT sum(CASE WHEN origin LIKE 'remote:%' THEN 0 ELSE 1 END) AS local_bans, sum(CASE WHEN origin LIKE 'remote:%' THEN 1 ELSE 0 END) AS remote_bans,
                  count(DISTINCT address) AS addresses, sum(CASE WHEN step > 0 THEN 1 ELSE 0 END) AS repeat_bans
           FROM bans WHERE since >= ? AND since <= ?`,
          [since, now],
        )
      )[0] ?? {};
    return { bans: num(r.local_bans), remoteBans: num(r.remote_bans), addressesBanned: num(r.addresses), repeatBans: num(r.repeat_bans) };
  };
  const day = await bansSince(now - DAY_MS);
  const week = await bansSince(now - 7 * DAY_MS);
  const first = await firstMatchId(store, now - DAY_MS);
  const m =
    first === null
      ? {}
      : ((await q('SELECT sum(n) AS n, count(DISTINCT address) AS addresses FROM matches WHERE id >= ? AND at >= ? AND at <= ?', [first, now - DAY_MS, now]))[0] ?? {});
  const oldestBan = (await q('SELECT min(since) AS t FROM bans', []))[0]?.t;
  const oldestMatch = (await q('SELECT at AS t FROM matches ORDER BY id LIMIT 1', []))[0]?.t;
  const olds = [oldestBan, oldestMatch].filter((t) => t !== null && t !== undefined).map(Number);
  return {
    where: store.where,
    at: now,
    day: { ...day, matches: num(m.n), addressesMatched: num(m.addresses) },
    week,
    oldest: olds.length ? Math.min(...olds) : null,
  };
}

/** What `status` shows when the store cannot answer (PostgreSQL away, file unreadable). */
export interface FiguresError {
  where: string;
  error: string;
}

/** How long figures are reused: a monitoring script asking every second costs one read in 10 s. */
const FRESH_MS = 10_000;
/** `tallow status` waits this long for the store, then shows the last figures (or none) and why. */
const WAIT_MS = 2_000;

/** The daemon's figures: read at most every FRESH_MS, one read at a time, never holding status long. */
export class FiguresCache {
  private last: HistoryFigures | null = null;
  private pending: Promise<HistoryFigures | FiguresError> | null = null;

  async get(store: HistoryStore, now = Date.now()): Promise<HistoryFigures | FiguresError> {
    if (this.last && this.last.where === store.where && now - this.last.at < FRESH_MS) return this.last;
    this.pending ??= historyFigures(store, now).then(
      (f) => ((this.last = f), f),
      (e: unknown) => ({ where: store.where, error: e instanceof Error ? e.message : String(e) }),
    ).finally(() => (this.pending = null));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<FiguresError>((r) => (timer = setTimeout(() => r({ where: store.where, error: `no answer within ${WAIT_MS / 1000} s` }), WAIT_MS)));
    try {
      return await Promise.race([this.pending, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}
