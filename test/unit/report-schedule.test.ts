// When the daily report runs, in local time, across daylight-saving changes: fixed dates in
// Europe/Paris (2026: clocks go 02:00 -> 03:00 on 29 March, 03:00 -> 02:00 on 25 October) and
// America/New_York (8 March, 1 November). Expected instants are written as UTC by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextRun, parseDailyTime, reportPeriod, type DailyTime } from '../../src/report/schedule';

// Node reads TZ again when it changes; this file runs in a process of its own (node --test).
const savedTz = process.env.TZ;
function inZone(tz: string, fn: () => void): void {
  process.env.TZ = tz;
  try {
    fn();
  } finally {
    if (savedTz === undefined) delete process.env.TZ;
    else process.env.TZ = savedTz;
  }
}

const at = (text: string): DailyTime => {
  const t = parseDailyTime(text);
  assert.ok(typeof t !== 'string', String(t));
  return t as DailyTime;
};
const utc = (s: string): number => Date.parse(s);
const iso = (ms: number): string => new Date(ms).toISOString();

test('parseDailyTime: HH:MM from 00:00 to 23:59, else a message', () => {
  assert.deepEqual(parseDailyTime('06:00'), { hour: 6, minute: 0 });
  assert.deepEqual(parseDailyTime('6:05'), { hour: 6, minute: 5 });
  assert.deepEqual(parseDailyTime('23:59'), { hour: 23, minute: 59 });
  for (const bad of ['24:00', '12:60', '6', '06:00:00', 'noon', '']) assert.match(String(parseDailyTime(bad)), /expected a local time HH:MM from 00:00 to 23:59/, bad);
});

test('an ordinary day: later today, or tomorrow once today\'s time has come', () => {
  inZone('Europe/Paris', () => {
    // 2026-03-10 is CET (UTC+1): 06:00 local is 05:00Z.
    assert.equal(iso(nextRun(at('06:00'), utc('2026-03-10T04:00:00Z'))), '2026-03-10T05:00:00.000Z');
    assert.equal(iso(nextRun(at('06:00'), utc('2026-03-10T05:00:00Z'))), '2026-03-11T05:00:00.000Z');
    assert.equal(iso(nextRun(at('06:00'), utc('2026-03-10T04:59:59.999Z'))), '2026-03-10T05:00:00.000Z');
    assert.deepEqual(reportPeriod(at('06:00'), utc('2026-03-11T05:00:00Z')), { since: utc('2026-03-10T05:00:00Z'), until: utc('2026-03-11T05:00:00Z') });
  });
});

test('spring forward (Paris, 29 March 2026): 06:00 comes 23 hours after the day before, and the report covers those 23', () => {
  inZone('Europe/Paris', () => {
    const run = nextRun(at('06:00'), utc('2026-03-28T05:00:00Z'));
    assert.equal(iso(run), '2026-03-29T04:00:00.000Z'); // 06:00 CEST
    assert.deepEqual(reportPeriod(at('06:00'), run), { since: utc('2026-03-28T05:00:00Z'), until: utc('2026-03-29T04:00:00Z') });
    // 02:30 does not exist that day: run at 03:30 CEST (the offset before the jump), once.
    const skipped = nextRun(at('02:30'), utc('2026-03-28T01:30:00Z'));
    assert.equal(iso(skipped), '2026-03-29T01:30:00.000Z');
    assert.equal(iso(nextRun(at('02:30'), skipped)), '2026-03-30T00:30:00.000Z'); // 02:30 CEST
    assert.deepEqual(reportPeriod(at('02:30'), utc('2026-03-30T00:30:00Z')), { since: skipped, until: utc('2026-03-30T00:30:00Z') });
  });
});

test('fall back (Paris, 25 October 2026): 25 hours between runs; a time shown twice runs once, at the first', () => {
  inZone('Europe/Paris', () => {
    const run = nextRun(at('06:00'), utc('2026-10-24T04:00:00Z'));
    assert.equal(iso(run), '2026-10-25T05:00:00.000Z'); // 06:00 CET
    assert.deepEqual(reportPeriod(at('06:00'), run), { since: utc('2026-10-24T04:00:00Z'), until: utc('2026-10-25T05:00:00Z') });
    // 02:30 is shown at 00:30Z (CEST) and again at 01:30Z (CET): the first, then the next day.
    const first = nextRun(at('02:30'), utc('2026-10-24T23:00:00Z'));
    assert.equal(iso(first), '2026-10-25T00:30:00.000Z');
    assert.equal(iso(nextRun(at('02:30'), first)), '2026-10-26T01:30:00.000Z');
    // Started in the repeated hour after the first 02:30: not again that day.
    assert.equal(iso(nextRun(at('02:30'), utc('2026-10-25T01:10:00Z'))), '2026-10-26T01:30:00.000Z');
  });
});

test('New York (8 March and 1 November 2026) and a run at midnight', () => {
  inZone('America/New_York', () => {
    assert.equal(iso(nextRun(at('06:00'), utc('2026-03-07T11:00:00Z'))), '2026-03-08T10:00:00.000Z'); // EST -> EDT
    assert.equal(iso(nextRun(at('06:00'), utc('2026-10-31T10:00:00Z'))), '2026-11-01T11:00:00.000Z'); // EDT -> EST
    assert.equal(iso(nextRun(at('00:00'), utc('2026-12-31T05:00:00Z'))), '2027-01-01T05:00:00.000Z');
  });
});
