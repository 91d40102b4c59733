// When the daily report runs: at a configured local time ("06:00"), once per local day, and which
// period it covers (from the previous day's run to this one, so a day of 23 or 25 hours at a
// daylight-saving change is reported whole, nothing twice). Local times come from the JS Date
// constructor, whose rules are fixed by ECMAScript: a time the clock skips (02:30 when 02:00
// jumps to 03:00) is taken with the offset before the jump, i.e. 03:30; a time the clock shows
// twice (02:30 when 03:00 falls back to 02:00) is the first of the two. Pure functions: the
// caller arms one timer for nextRun(...) - now.

export interface DailyTime {
  hour: number;
  minute: number;
}

/** `06:00`, `6:00`, `23:59` -> the time; else a message for tallow.conf's error line. */
export function parseDailyTime(text: string): DailyTime | string {
  const m = /^(\d{1,2}):(\d{2})$/.exec(text.trim());
  if (m && Number(m[1]) <= 23 && Number(m[2]) <= 59) return { hour: Number(m[1]), minute: Number(m[2]) };
  return `expected a local time HH:MM from 00:00 to 23:59, got '${text}'`;
}

/** The run of the local day that `ms` falls on (ms since the epoch). */
function runOfDay(t: DailyTime, ms: number, dayOffset = 0): number {
  const d = new Date(ms);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + dayOffset, t.hour, t.minute, 0, 0).getTime();
}

/**
 * The first run strictly after `after` (ms). Pass the last run's scheduled time (not the clock
 * when its timer fired, which may be a little early) so that one day's run is never made twice.
 */
export function nextRun(t: DailyTime, after: number): number {
  const today = runOfDay(t, after);
  if (today > after) return today;
  // Two days ahead covers a run time in the skipped hour that lands after `after` on the same day.
  for (let k = 1; k <= 2; k++) {
    const next = runOfDay(t, after, k);
    if (next > after) return next;
  }
  throw new Error('nextRun: no run within two days'); // unreachable: a local day is at most 27 hours
}

/** The period a run reports on: from the previous local day's run to this one. */
export function reportPeriod(t: DailyTime, run: number): { since: number; until: number } {
  return { since: runOfDay(t, run, -1), until: run };
}
