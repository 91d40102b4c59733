// A fixed day of events for the report tests (unit, Chromium, PostgreSQL): the period is
// 2026-03-10 06:00 to 2026-03-11 06:00 UTC, the previous one the day before. Events sit on the
// edges on purpose: a ban at the period's first instant, one a millisecond before an hour ends,
// one at the hour, one a millisecond before the period ends, one at its end (next period's), one a
// millisecond before the period (previous period's, unbanned in this one), one a millisecond before
// the previous period (in neither). Every figure the tests expect is counted by hand from this list.
import type { HistoryRow } from '../../src/history/store';

export const P = Date.UTC(2026, 2, 10, 6, 0); // 2026-03-10 06:00 UTC
export const UNTIL = P + 24 * 3_600_000;
const H = 3_600_000;
const M = 60_000;

export function fixtureRows(): HistoryRow[] {
  let seq = 0;
  const rows: HistoryRow[] = [];
  const ban = (address: string, since: number, pattern: string | null, seconds: number, o: { step?: number; reason?: string; origin?: string } = {}) =>
    rows.push({
      kind: 'ban', seq: ++seq, address, family: address.includes(':') ? 6 : 4, since, expiry: since + seconds * 1000,
      origin: o.origin ?? 'rule', reason: o.reason ?? 'threshold', pattern, score: 1, count: 5, step: o.step ?? 0, cause: 'new',
    });
  const unban = (address: string, since: number, at: number, reason: string) => rows.push({ kind: 'unban', seq: ++seq, address, since, at, reason });
  const match = (address: string, at: number, pattern: string, times = 1, n = 1) => {
    for (let i = 0; i < times; i++) rows.push({ kind: 'match', seq: ++seq, address, at: at + i * 1000, pattern, n });
  };

  // Before the previous period: in neither (its unban, in the previous period, counts there).
  match('203.0.113.201', P - 24 * H - 1, 'sshd.json#1');
  ban('203.0.113.201', P - 24 * H - 1, 'sshd.json#1', 3600);
  unban('203.0.113.201', P - 24 * H - 1, P - 23 * H - 30 * M, 'expired');

  // The previous period.
  match('203.0.113.200', P - 24 * H, 'sshd.json#1', 3);
  ban('203.0.113.200', P - 24 * H, 'sshd.json#1', 3600);
  unban('203.0.113.200', P - 24 * H, P - 23 * H, 'expired');
  match('203.0.113.5', P - 20 * H, 'sshd.json#2', 5);
  ban('203.0.113.5', P - 20 * H, 'sshd.json#2', 3600);
  unban('203.0.113.5', P - 20 * H, P - 19 * H, 'expired');
  match('198.51.100.20', P - 10 * H, 'dovecot.json#1');
  ban('198.51.100.20', P - 10 * H, 'dovecot.json#1', 600, { reason: 'instant' });
  unban('198.51.100.20', P - 10 * H, P - 10 * H + 10 * M, 'expired');
  match('203.0.113.8', P - 30 * M, 'sshd.json#2', 5);
  match('203.0.113.8', P - 30 * M, '*', 1, 4);
  ban('203.0.113.8', P - 1, 'sshd.json#2', 3600);
  // ... ended in this period.
  unban('203.0.113.8', P - 1, P + H - 1, 'expired');

  // This period.
  match('203.0.113.5', P, 'sshd.json#2', 5);
  ban('203.0.113.5', P, 'sshd.json#2', 3600);
  unban('203.0.113.5', P, P + H, 'expired');
  match('203.0.113.7', P + 58 * M, 'sshd.json#3', 4);
  ban('203.0.113.7', P + H - 1, 'sshd.json#3', 3600);
  unban('203.0.113.7', P + H - 1, P + H + 30 * M, 'manual');
  match('203.0.113.9', P + H, 'dovecot.json#1');
  ban('203.0.113.9', P + H, 'dovecot.json#1', 600, { reason: 'instant' });
  unban('203.0.113.9', P + H, P + H + 10 * M, 'expired');
  ban('192.0.2.50', P + 2 * H, null, 3600, { reason: 'adopted', origin: 'adopted' });
  ban('203.0.113.5', P + 3 * H, 'sshd.json#2', 7200, { step: 1 });
  unban('203.0.113.5', P + 3 * H, P + 5 * H, 'expired');
  match('2001:db8:1:2::10', P + 4 * H + 59 * M, 'sshd.json#2', 3);
  ban('2001:db8:1:2::10', P + 5 * H, 'sshd.json#2', 3600);
  unban('2001:db8:1:2::10', P + 5 * H, P + 6 * H, 'expired');
  match('2001:db8:1:2::99', P + 5 * H + 29 * M, 'dovecot.json#2', 2);
  ban('2001:db8:1:2::99', P + 5 * H + 30 * M, 'dovecot.json#2', 3600);
  unban('2001:db8:1:2::99', P + 5 * H + 30 * M, P + 5 * H + 30 * M, 'refused');
  match('2001:db8:1:2::10', P + 7 * H + 59 * M, 'sshd.json#2', 3);
  ban('2001:db8:1:2::10', P + 8 * H, 'sshd.json#2', 7200, { step: 1 });
  unban('2001:db8:1:2::10', P + 8 * H, P + 10 * H, 'expired');
  match('203.0.113.5', P + 9 * H + 50 * M, 'sshd.json#1', 3);
  match('203.0.113.5', P + 10 * H, '*', 1, 10);
  ban('203.0.113.5', P + 10 * H, 'sshd.json#1', 14400, { step: 2 });
  ban('198.51.100.7', P + 12 * H, 'manual', 86400, { reason: 'manual', origin: 'manual' });
  unban('198.51.100.7', P + 12 * H, P + 13 * H, 'manual');
  match('203.0.113.66', P + 15 * H, 'sshd.json#1', 2);
  match('198.51.100.20', P + 23 * H + 54 * M, 'sshd.json#2', 5);
  ban('198.51.100.20', UNTIL - 1, 'sshd.json#2', 3600);

  // The next period: in neither.
  match('203.0.113.200', UNTIL, 'sshd.json#1');
  ban('203.0.113.200', UNTIL, 'sshd.json#1', 3600);
  return rows;
}
