// The report as plain text: for a terminal and for the text part of a mail. At most 80 columns,
// no trailing spaces, ASCII around the figures; every text that came from outside (pattern and
// rule names, later user names of logins) has its control characters replaced, so a crafted
// name cannot move the cursor or recolour a terminal.
import type { ReportData, Totals } from './types';

export const WIDTH = 80;
const BAR = 50;
/** The text chart is at most this many lines: longer timelines are summed into wider buckets. */
const MAX_LINES = 48;

/** Control and format characters (escape sequences, bidi overrides) -> `?`; at most `max` characters. */
export function clean(s: string, max = 40): string {
  const t = s.replace(/[\p{Cc}\p{Cf}]/gu, '?');
  return t.length > max ? `${t.slice(0, max - 3)}...` : t;
}

/** `2026-03-10 06:00` (UTC). */
export function minute(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}

/** `03-10 06:00` (UTC). */
export function shortMinute(ms: number): string {
  return minute(ms).slice(5);
}

/** Seconds as the two largest units: `45s`, `10m`, `1h30m`, `1d6h`, `2w`. */
export function span(seconds: number): string {
  let s = Math.max(0, Math.round(seconds));
  const parts: string[] = [];
  for (const [unit, n] of [['w', 604800], ['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (s >= n || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(s / n)}${unit}`);
      s %= n;
    }
    if (parts.length === 2 || (parts.length && s === 0)) break;
  }
  return parts.join('');
}

/** `+7 (+175%)`, `-1 (-25%)`, `0`, `+3 (new)`. */
export function change(now: number, before: number): string {
  const d = now - before;
  if (d === 0) return '0';
  const sign = d > 0 ? '+' : '-';
  const pct = before === 0 ? 'new' : `${sign}${Math.round((Math.abs(d) / before) * 100)}%`;
  return `${sign}${Math.abs(d)} (${pct})`;
}

/** Columns two spaces apart; numbers right-aligned; the last column cut so a line fits WIDTH. */
export function grid(rows: string[][], right: boolean[]): string {
  const last = rows[0].length - 1;
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => i < last && (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const room = Math.max(10, WIDTH - widths.reduce((s, w) => s + w + 2, 0));
  return rows
    .map((r) =>
      r
        .map((c, i) => {
          if (i === last) return right[i] ? c.padStart(Math.max(...rows.map((x) => x[i].length))) : c.length > room ? `${c.slice(0, room - 3)}...` : c;
          return right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]);
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const TOTALS: [keyof Omit<Totals, 'unbansByReason' | 'matchesPastCap'>, string][] = [
  ['bans', 'bans'],
  ['unbans', 'unbans'],
  ['addressesBanned', 'addresses banned'],
  ['addressesSeen', 'addresses seen'],
  ['matches', 'matches'],
];

/** At most 8 steps (`0 1 2 3 4 5 6 7 ...`): the durations beside say the rest. */
const steps = (s: number[]): string => s.slice(0, 8).join(' ') + (s.length > 8 ? ' ...' : '');

const reasons = (r: Record<string, number>): string =>
  Object.entries(r)
    .map(([k, n]) => `${clean(k, 20)} ${n}`)
    .join(', ');

/** The timeline summed into at most MAX_LINES buckets: [start, bans][] and the bucket's seconds. */
export function textTimeline(d: ReportData): { seconds: number; rows: [number, number][] } {
  const b = d.timeline.bans;
  const k = Math.ceil(b.length / MAX_LINES);
  const seconds = d.timeline.bucketSeconds * k;
  const rows: [number, number][] = [];
  for (let i = 0; i < b.length; i += k) rows.push([d.period.since + i * d.timeline.bucketSeconds * 1000, b.slice(i, i + k).reduce((s, n) => s + n, 0)]);
  return { seconds, rows };
}

export function reportText(d: ReportData): string {
  const out: string[] = [];
  const section = (title: string, body: string) => out.push('', title, body);
  const length = (d.period.until - d.period.since) / 1000;

  out.push(`tallow report for ${clean(d.host, 60)}`);
  out.push(`period    ${minute(d.period.since)} to ${minute(d.period.until)} UTC (${span(length)})`);
  out.push(`previous  ${minute(d.previous.since)} to ${minute(d.previous.until)} UTC`);

  const c = d.totals.current;
  const p = d.totals.previous;
  const summary = [['', 'this period', 'previous', 'change'], ...TOTALS.map(([k, label]) => [label, String(c[k]), String(p[k]), change(c[k], p[k])])];
  let body = grid(summary, [false, true, true, false]);
  if (c.unbans) body += `\nunbans by reason: ${reasons(c.unbansByReason)}`;
  section('Summary', body);

  section(
    'Bans per rule',
    d.rules.length ? grid([['RULE', 'BANS', 'PREVIOUS', 'UNBANS'], ...d.rules.map((r) => [clean(r.rule), String(r.bans), String(r.previousBans), String(r.unbans)])], [false, true, true, true]) : 'none',
  );

  section(
    'Top addresses',
    d.addresses.length
      ? grid(
          [['ADDRESS', 'BANS', 'MATCHES', 'STEP', 'RULES'], ...d.addresses.map((a) => [a.address, String(a.bans), String(a.matches), String(a.step), a.rules.map((r) => clean(r)).join(', ')])],
          [false, true, true, true, false],
        )
      : 'none',
  );

  section(
    'Top networks',
    d.networks.length ? grid([['NETWORK', 'BANS', 'ADDRESSES', 'MATCHES'], ...d.networks.map((n) => [n.network, String(n.bans), String(n.addresses), String(n.matches)])], [false, true, true, true]) : 'none',
  );

  const capped = c.matchesPastCap;
  body = d.patterns.length ? grid([['PATTERN', 'RULE', 'MATCHES', 'BANS'], ...d.patterns.map((x) => [clean(x.pattern, 36), clean(x.rule, 20), String(x.matches), String(x.bans)])], [false, false, true, true]) : 'none';
  if (capped > 0) body += `\n${capped} more matches past history_matches_per_hour (their pattern is not kept)`;
  section('Top patterns', body);

  const ro = d.repeatOffenders;
  const roTitle = ro.total ? `Repeat offenders: ${ro.total} ${ro.total === 1 ? 'address' : 'addresses'} banned more than once${ro.total > ro.items.length ? ` (the ${ro.items.length} most banned)` : ''}` : 'Repeat offenders';
  section(
    roTitle,
    ro.items.length
      ? grid(
          [['ADDRESS', 'BANS', 'STEPS', 'DURATIONS'], ...ro.items.map((o) => [o.address, String(o.bans.length), steps(o.bans.map((b) => b.step)), o.bans.map((b) => span(b.seconds)).join(' ')])],
          [false, true, false, false],
        )
      : 'none',
  );

  const lg = d.logins;
  section(
    'Logins seen by notify rules',
    lg.items.length
      ? grid([['TIME (UTC)', 'ADDRESS', 'USER', 'METHOD'], ...lg.items.map((l) => [shortMinute(l.at), l.address, clean(l.user, 12), clean(l.method, 24)])], [false, false, false, false]) + (lg.total > lg.items.length ? `\n(the newest ${lg.items.length} of ${lg.total})` : '')
      : 'none recorded',
  );

  const tl = textTimeline(d);
  const max = Math.max(0, ...tl.rows.map((r) => r[1]));
  const w = String(max).length;
  const bar = (n: number) => (n ? '#'.repeat(Math.max(1, Math.round((n / max) * BAR))) : '');
  section(
    `Bans per ${tl.seconds === 3600 ? 'hour' : span(tl.seconds)} (UTC)`,
    tl.rows.map(([t, n]) => `${shortMinute(t)}  ${String(n).padStart(w)}  ${bar(n)}`.trimEnd()).join('\n'),
  );
  return out.join('\n') + '\n';
}
