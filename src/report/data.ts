// The report's figures, read from the history store (SQLite or PostgreSQL: the same SQL) into one
// plain object (types.ts). Everything is counted by the database (GROUP BY); what comes back is
// one row per rule, pattern, hour, and per address seen in the period (the lists and networks are
// made from those here, so a flood of 100,000 addresses is 100,000 small rows, not millions).
import * as os from 'node:os';
import { Address6 } from 'ip-address';
import { MAX_BAN_SECONDS } from '../limits';
import { hasColumn, matchIdRange, num, selectSql, type SqlArg, type SqlRow } from '../history/select';
import type { HistoryStore } from '../history/store';
import {
  REPORT_VERSION,
  type AddressLine,
  type Login,
  type NetworkLine,
  type PatternLine,
  type Period,
  type RepeatOffender,
  type ReportData,
  type RuleLine,
  type Totals,
} from './types';

export interface ReportOptions {
  /** the machine's name in the title (default: os.hostname()) */
  host?: string;
  /** when the report is made (default: now) */
  now?: number;
  /** length of the lists (default 10) */
  top?: number;
}

export const DEFAULT_TOP = 10;
const HOUR = 3_600_000;
const BUCKET_HOURS = [1, 3, 6, 12, 24, 168];
const MAX_BUCKETS = 200;

/** The chart's bucket for a period: an hour while that makes at most 200 bars, else longer. */
export function bucketMs(length: number): number {
  for (const h of BUCKET_HOURS) if (Math.ceil(length / (h * HOUR)) <= MAX_BUCKETS) return h * HOUR;
  return Math.ceil(length / MAX_BUCKETS / (168 * HOUR)) * 168 * HOUR;
}

/** A ban's rule: the stored rule, else the pattern's file (`sshd.json#3` -> `sshd`), else `(manual)`, `(adopted)`. */
export function ruleOf(rule: unknown, pattern: unknown, reason: unknown): string {
  if (typeof rule === 'string' && rule !== '') return rule;
  if (typeof pattern === 'string' && pattern !== '' && pattern !== 'manual') return pattern.replace(/#\d+$/, '').replace(/\.json$/, '') || pattern;
  return `(${pattern === 'manual' ? 'manual' : String(reason ?? 'unknown')})`;
}

/** The /24 of an IPv4 address, the /64 of an IPv6 one (canonical text in, canonical text out). */
export function networkOf(address: string): string {
  if (!address.includes(':')) return address.replace(/\.\d+$/, '.0/24');
  // RFC 5952 text without a dotted tail (what the history holds): the first four groups, their
  // trailing zeros folded into the `::` (the longest run of zeros is then the tail). Address6 is
  // the slow general path: a flood's 100,000 addresses cost seconds there.
  if (!address.includes('.')) {
    const [head, tail] = address.split('::');
    const h = head ? head.split(':') : [];
    const t = tail === undefined ? [] : tail ? tail.split(':') : [];
    const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    const net = groups.slice(0, 4);
    while (net.length && net[net.length - 1] === '0') net.pop();
    return `${net.join(':')}::/64`;
  }
  try {
    return `${new Address6(`${address}/64`).startAddress().correctForm()}/64`;
  } catch {
    return address;
  }
}

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function addTo(m: Map<string, number>, k: string, n: number): void {
  m.set(k, (m.get(k) ?? 0) + n);
}

/** `?, ?, ?` for an IN list. */
const marks = (n: number): string => Array(n).fill('?').join(', ');

export async function reportData(store: HistoryStore, since: number, until: number, opts: ReportOptions = {}): Promise<ReportData> {
  if (!Number.isFinite(since) || !Number.isFinite(until) || since < 0 || until <= since) {
    throw new Error(`report: the period must end after it starts (since ${new Date(since).toISOString()}, until ${new Date(until).toISOString()})`);
  }
  const top = opts.top ?? DEFAULT_TOP;
  const cur: Period = { since, until };
  const prev: Period = { since: since - (until - since), until: since };
  const q = (sql: string, args: SqlArg[]): Promise<SqlRow[]> => selectSql(store, sql, args);
  const hasRule = await hasColumn(store, 'bans', 'rule');
  const R = hasRule ? 'rule, ' : '';
  const rule = (r: SqlRow): string => ruleOf(r.rule, r.pattern, r.reason);
  const span = (p: Period): SqlArg[] => [p.since, p.until];
  // The matches of each period by their ids too (no index on `at`: without them every query reads the whole table).
  const curIds = await matchIdRange(store, cur.since, cur.until);
  const prevIds = await matchIdRange(store, prev.since, prev.until);
  const inMatches = (p: Period): SqlArg[] => [...(p === cur ? curIds : prevIds), p.since, p.until];
  const M = 'id >= ? AND id < ? AND at >= ? AND at < ?';

  // Bans and unbans per (rule,) pattern and reason, in both periods.
  const bansBy = (p: Period) => q(`SELECT ${R}pattern, reason, count(*) AS n FROM bans WHERE since >= ? AND since < ? GROUP BY ${R}pattern, reason`, span(p));
  // An unban ends a ban that started at most MAX_BAN_SECONDS before: that bound lets the index on `since` serve.
  const unbansBy = (p: Period) =>
    q(`SELECT ${R}pattern, reason, end_reason, count(*) AS n FROM bans WHERE since >= ? AND ended >= ? AND ended < ? GROUP BY ${R}pattern, reason, end_reason`, [
      p.since - MAX_BAN_SECONDS * 1000,
      p.since,
      p.until,
    ]);
  const [bansNow, bansPrev, unbansNow, unbansPrev] = [await bansBy(cur), await bansBy(prev), await unbansBy(cur), await unbansBy(prev)];

  const rules = new Map<string, RuleLine>();
  const ruleLine = (name: string): RuleLine => {
    let l = rules.get(name);
    if (!l) rules.set(name, (l = { rule: name, bans: 0, previousBans: 0, unbans: 0 }));
    return l;
  };
  const patternRule = new Map<string, string>();
  const patternBans = new Map<string, number>();
  for (const r of bansNow) {
    ruleLine(rule(r)).bans += num(r.n);
    if (typeof r.pattern === 'string' && r.pattern !== 'manual') {
      addTo(patternBans, r.pattern, num(r.n));
      patternRule.set(r.pattern, rule(r));
    }
  }
  for (const r of bansPrev) ruleLine(rule(r)).previousBans += num(r.n);
  for (const r of unbansNow) ruleLine(rule(r)).unbans += num(r.n);

  const byReason = (rows: SqlRow[]): Record<string, number> => {
    const m = new Map<string, number>();
    for (const r of rows) addTo(m, String(r.end_reason), num(r.n));
    return Object.fromEntries([...m].sort((a, b) => b[1] - a[1] || byName(a[0], b[0])));
  };
  const sum = (rows: SqlRow[]): number => rows.reduce((s, r) => s + num(r.n), 0);

  // Per address in the period: bans (and highest step), matches.
  const addr = new Map<string, { bans: number; matches: number; step: number }>();
  const entry = (a: string) => {
    let e = addr.get(a);
    if (!e) addr.set(a, (e = { bans: 0, matches: 0, step: 0 }));
    return e;
  };
  for (const r of await q('SELECT address, count(*) AS n, max(step) AS step FROM bans WHERE since >= ? AND since < ? GROUP BY address', span(cur))) {
    const e = entry(String(r.address));
    e.bans = num(r.n);
    e.step = num(r.step);
  }
  for (const r of await q(`SELECT address, sum(n) AS n FROM matches WHERE ${M} GROUP BY address`, inMatches(cur))) entry(String(r.address)).matches = num(r.n);

  // Matches per pattern; the hourly cap's summary rows (pattern '*') only count in the totals.
  const patternMatches = new Map<string, number>();
  let pastCap = 0;
  for (const r of await q(`SELECT pattern, sum(n) AS n FROM matches WHERE ${M} GROUP BY pattern`, inMatches(cur))) {
    if (r.pattern === '*') pastCap += num(r.n);
    else patternMatches.set(String(r.pattern), num(r.n));
  }
  // The previous period in one pass over its matches (no index on `at`: each pass reads the table).
  const before =
    (
      await q(
        `SELECT count(*) AS seen, sum(banned) AS banned, sum(m) AS matches, sum(c) AS capped FROM (
           SELECT address, max(b) AS banned, sum(m) AS m, sum(c) AS c FROM (
             SELECT address, 0 AS b, n AS m, CASE WHEN pattern = '*' THEN n ELSE 0 END AS c FROM matches WHERE ${M}
             UNION ALL SELECT address, 1, 0, 0 FROM bans WHERE since >= ? AND since < ?) x
           GROUP BY address) y`,
        [...inMatches(prev), ...span(prev)],
      )
    )[0] ?? {};
  const current: Totals = {
    bans: sum(bansNow),
    unbans: sum(unbansNow),
    unbansByReason: byReason(unbansNow),
    addressesBanned: [...addr.values()].filter((e) => e.bans > 0).length,
    addressesSeen: addr.size,
    matches: [...addr.values()].reduce((s, e) => s + e.matches, 0),
    matchesPastCap: pastCap,
  };
  const previous: Totals = {
    bans: sum(bansPrev),
    unbans: sum(unbansPrev),
    unbansByReason: byReason(unbansPrev),
    addressesBanned: num(before.banned),
    addressesSeen: num(before.seen),
    matches: num(before.matches),
    matchesPastCap: num(before.capped),
  };

  // Top addresses, with the rules of their bans and matches.
  const ranked = [...addr].sort((a, b) => b[1].bans - a[1].bans || b[1].matches - a[1].matches || byName(a[0], b[0]));
  const topAddrs = ranked.slice(0, top).map(([a]) => a);
  const rulesOf = new Map<string, Map<string, number>>(topAddrs.map((a) => [a, new Map()]));
  if (topAddrs.length) {
    const inList = [...span(cur), ...topAddrs];
    for (const r of await q(`SELECT address, ${R}pattern, reason, count(*) AS n FROM bans WHERE since >= ? AND since < ? AND address IN (${marks(topAddrs.length)}) GROUP BY address, ${R}pattern, reason`, inList)) {
      addTo(rulesOf.get(String(r.address))!, rule(r), num(r.n));
    }
    for (const r of await q(`SELECT address, pattern, sum(n) AS n FROM matches WHERE ${M} AND address IN (${marks(topAddrs.length)}) AND pattern <> '*' GROUP BY address, pattern`, [...inMatches(cur), ...topAddrs])) {
      addTo(rulesOf.get(String(r.address))!, patternRule.get(String(r.pattern)) ?? ruleOf(null, r.pattern, null), num(r.n));
    }
  }
  const addresses: AddressLine[] = topAddrs.map((a) => {
    const e = addr.get(a)!;
    const rs = [...rulesOf.get(a)!].sort((x, y) => y[1] - x[1] || byName(x[0], y[0])).map(([r]) => r);
    return { address: a, bans: e.bans, matches: e.matches, step: e.step, rules: rs };
  });

  // Networks: /24 and /64 of every address seen.
  const nets = new Map<string, NetworkLine>();
  for (const [a, e] of addr) {
    const n = networkOf(a);
    let l = nets.get(n);
    if (!l) nets.set(n, (l = { network: n, bans: 0, addresses: 0, matches: 0 }));
    l.bans += e.bans;
    l.addresses++;
    l.matches += e.matches;
  }
  const networks = [...nets.values()].sort((a, b) => b.bans - a.bans || b.matches - a.matches || byName(a.network, b.network)).slice(0, top);

  // Patterns, by matches, with their bans.
  const patterns: PatternLine[] = [...new Set([...patternMatches.keys(), ...patternBans.keys()])]
    .map((p) => ({ pattern: p, rule: patternRule.get(p) ?? ruleOf(null, p, null), matches: patternMatches.get(p) ?? 0, bans: patternBans.get(p) ?? 0 }))
    .sort((a, b) => b.matches - a.matches || b.bans - a.bans || byName(a.pattern, b.pattern))
    .slice(0, top);

  // Repeat offenders: banned more than once in the period, each ban with its step.
  const repeated = ranked.filter(([, e]) => e.bans > 1).sort((a, b) => b[1].bans - a[1].bans || byName(a[0], b[0]));
  const repeatAddrs = repeated.slice(0, top).map(([a]) => a);
  const steps = new Map<string, RepeatOffender>(repeatAddrs.map((a) => [a, { address: a, bans: [] }]));
  if (repeatAddrs.length) {
    const rows = await q(
      `SELECT address, since, expiry, step, ${R}pattern, reason FROM bans WHERE since >= ? AND since < ? AND address IN (${marks(repeatAddrs.length)}) ORDER BY address, since`,
      [...span(cur), ...repeatAddrs],
    );
    for (const r of rows) {
      steps.get(String(r.address))!.bans.push({ since: num(r.since), seconds: Math.round((num(r.expiry) - num(r.since)) / 1000), step: num(r.step), rule: rule(r) });
    }
  }

  // Bans per bucket of the period.
  const bucket = bucketMs(until - since);
  const timeline = new Array<number>(Math.ceil((until - since) / bucket)).fill(0);
  // The casts: better-sqlite3 binds a JS number as REAL, and a REAL quotient is no bucket number.
  const perBucket = await q('SELECT CAST(since - ? AS BIGINT) / CAST(? AS BIGINT) AS b, count(*) AS n FROM bans WHERE since >= ? AND since < ? GROUP BY 1', [since, bucket, ...span(cur)]);
  for (const r of perBucket) timeline[Math.min(timeline.length - 1, Math.max(0, Math.floor(num(r.b))))] += num(r.n);

  return {
    version: REPORT_VERSION,
    host: opts.host ?? os.hostname(),
    generated: opts.now ?? Date.now(),
    period: cur,
    previous: prev,
    rulesFrom: hasRule ? 'rule' : 'pattern-file',
    totals: { current, previous },
    rules: [...rules.values()].sort((a, b) => b.bans - a.bans || b.previousBans - a.previousBans || b.unbans - a.unbans || byName(a.rule, b.rule)),
    addresses,
    networks,
    patterns,
    repeatOffenders: { total: repeated.length, items: repeatAddrs.map((a) => steps.get(a)!) },
    logins: await logins(store, cur, top),
    timeline: { bucketSeconds: bucket / 1000, bans: timeline },
    top,
  };
}

/**
 * Successful logins seen by notify rules (issue 16.4), once the history stores them: a table
 * `logins (at, address, username, method, fingerprint, rule)`. Until then: none recorded.
 */
async function logins(store: HistoryStore, p: Period, top: number): Promise<ReportData['logins']> {
  if (!(await hasColumn(store, 'logins', 'username'))) return { recorded: false, total: 0, items: [] };
  const span = [p.since, p.until];
  const total = num((await selectSql(store, 'SELECT count(*) AS n FROM logins WHERE at >= ? AND at < ?', span))[0]?.n);
  const rows = await selectSql(store, 'SELECT at, rule, username, address, method, fingerprint FROM logins WHERE at >= ? AND at < ? ORDER BY at DESC LIMIT ?', [...span, top]);
  const items: Login[] = rows.map((r) => ({
    at: num(r.at),
    rule: String(r.rule ?? ''),
    user: String(r.username ?? ''),
    address: String(r.address ?? ''),
    method: String(r.method ?? ''),
    fingerprint: r.fingerprint === null || r.fingerprint === undefined ? null : String(r.fingerprint),
  }));
  return { recorded: true, total, items };
}
