// Repeat offenders on a fake clock: the decision step between the tracker and the ledger gives an
// address banned again within recidive_window the next step (factor or list, capped by
// bantime_max), learns of bans from the ledger's events, and after a restart from the history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Ledger } from '../../src/ledger';
import { BanSteps, stepOptions } from '../../src/recidive';
import { parseConfig } from '../../src/config';
import { SqliteStore } from '../../src/history/sqlite';
import { HistoryListener } from '../../src/listeners/history';
import { Metrics } from '../../src/metrics';
import { Tracker, type BanDecision } from '../../src/tracker';
import { collect, tmpdir } from './history-helpers';

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 20, 0, 0, 0);
const conf = (...lines: string[]) => parseConfig(['expires=3600', ...lines].join('\n'), 'tallow.conf');
const sshd = { name: 'sshd.json#1', score: 1, ban: 0 };

/** Tracker -> steps -> ledger, as the daemon wires them; the ledger's events feed the steps back. */
function world(...lines: string[]) {
  const c = conf(...lines);
  const steps = new BanSteps(stepOptions(c));
  const feed = steps.listener();
  const seen: { address: string; seconds: number; step: number }[] = [];
  const ledger = new Ledger({
    emit: (e) => {
      feed.handle([e]);
      if (e.kind === 'ban') seen.push({ address: e.ban.address, seconds: Math.round((e.ban.expiry - e.ban.since) / 1000), step: e.ban.step ?? 0 });
    },
  });
  const tracker = new Tracker({ threshold: 1, expires: c.expires, maxRecords: 1000, isAllowed: () => false, bannedUntil: (a) => ledger.expiryOf(a) });
  const attack = (address: string, now: number, pattern = sshd) => {
    ledger.expire(now);
    tracker.prune(now);
    for (const d of tracker.observe({ address, family: 4, pattern }, now)) if (d.action === 'ban') ledger.ban({ ...steps.apply(d, now), origin: 'rule' }, now);
  };
  return { steps, ledger, seen, attack };
}

test('factor 2: banned, expired, attacking again -> twice as long, then four times; capped by bantime_max', () => {
  const w = world('bantime_increment=2', 'recidive_window=1d', 'bantime_max=3h');
  w.attack('203.0.113.1', T0);
  w.attack('203.0.113.1', T0 + 2 * H); // the first ban (1 h) is over
  w.attack('203.0.113.1', T0 + 5 * H); // the second (2 h) is over
  w.attack('203.0.113.1', T0 + 9 * H); // 4 h would be the next step: capped at 3 h
  assert.deepEqual(w.seen, [
    { address: '203.0.113.1', seconds: 3600, step: 0 },
    { address: '203.0.113.1', seconds: 7200, step: 1 },
    { address: '203.0.113.1', seconds: 10800, step: 2 },
    { address: '203.0.113.1', seconds: 10800, step: 3 },
  ]);
});

test('a list of steps: 1h,6h,1d, the last repeating; past recidive_window an address starts again', () => {
  const w = world('bantime_increment=1h,6h,1d', 'recidive_window=2d', 'bantime_max=2w');
  const at = [0, 2, 9, 40, 70];
  for (const h of at) w.attack('198.51.100.7', T0 + h * H);
  w.attack('198.51.100.7', T0 + 70 * H + 25 * H + 49 * H); // more than 2 days after the last ban began
  assert.deepEqual(w.seen.map((s) => [s.seconds, s.step]), [[3600, 0], [21600, 1], [86400, 2], [86400, 3], [86400, 4], [3600, 0]]);
});

test('off by default; instant (throttle) bans and other addresses never escalate', () => {
  const off = world('recidive_window=1d');
  off.attack('203.0.113.2', T0);
  off.attack('203.0.113.2', T0 + 2 * H);
  assert.deepEqual(off.seen.map((s) => s.seconds), [3600, 3600]);

  const w = world('bantime_increment=2');
  const throttle = { name: 'sshd.json#9', score: 0.1, ban: 30 };
  w.attack('203.0.113.3', T0, throttle);
  w.attack('203.0.113.3', T0 + 60_000, throttle);
  w.attack('203.0.113.4', T0);
  w.attack('203.0.113.5', T0 + 1000);
  assert.deepEqual(w.seen.map((s) => [s.address, s.seconds, s.step]), [
    ['203.0.113.3', 30, 0],
    ['203.0.113.3', 30, 0],
    ['203.0.113.4', 3600, 0],
    ['203.0.113.5', 3600, 0],
  ]);
});

test('the step survives a restart: a new daemon loads it from the history and gives the next one', async (t) => {
  const dir = tmpdir(t);
  const log = collect();
  const file = path.join(dir, 'history.sqlite');
  // First run: two bans (step 0, then 1) stored through the history listener.
  const w1 = world('bantime_increment=2', 'recidive_window=1d');
  const h1 = new HistoryListener({ store: new SqliteStore(file, log), log, metrics: new Metrics(), matches: true, matchesPerHour: 60, days: 90, maxQueue: 1000 });
  const l1 = new Ledger({ emit: (e) => void h1.handle([e]) });
  for (const at of [T0, T0 + 2 * H]) {
    const d: BanDecision = { action: 'ban', address: '192.0.2.44', family: 4, seconds: 3600, score: 1, count: 1, pattern: 'sshd.json#1', reason: 'threshold', scope: '', rule: 'sshd' };
    const stepped = w1.steps.apply(d, at);
    w1.steps.listener().handle([{ kind: 'ban', ban: l1.ban({ ...stepped, origin: 'rule' }, at).ok ? l1.get('192.0.2.44')! : assert.fail('not banned'), cause: 'new' }]);
  }
  await new Promise((r) => setImmediate(r));
  await h1.close();

  // Restart, 5 h later: the view is empty until loaded from the file.
  const now = T0 + 7 * H;
  const fresh = new BanSteps(stepOptions(conf('bantime_increment=2', 'recidive_window=1d')));
  assert.equal(fresh.stepFor('192.0.2.44', now), 0, 'nothing known before loading');
  const h2 = new HistoryListener({ store: new SqliteStore(file, log), log, metrics: new Metrics(), matches: true, matchesPerHour: 60, days: 90, maxQueue: 1000 });
  t.after(() => h2.close());
  await h2.start(now - 86_400_000, (bans) => fresh.load(bans, now));
  const d: BanDecision = { action: 'ban', address: '192.0.2.44', family: 4, seconds: 3600, score: 1, count: 1, pattern: 'sshd.json#1', reason: 'threshold', scope: '', rule: 'sshd' };
  assert.deepEqual([fresh.apply(d, now).seconds, fresh.apply(d, now).step], [14400, 2]);
});

test('bantime_increment, bantime_max and recidive_window refuse bad values with file:line', () => {
  assert.throws(() => parseConfig('bantime_increment=1\n', 'a.conf'), /a\.conf:1: bantime_increment: expected a factor above 1/);
  assert.throws(() => parseConfig('\nbantime_increment=1h,30m\n', 'a.conf'), /a\.conf:2: bantime_increment: steps must not get shorter \('30m' after 3600 s\)/);
  assert.throws(() => parseConfig('bantime_increment=1h,soon\n', 'a.conf'), /a\.conf:1: bantime_increment: 'soon' is not a duration/);
  assert.throws(() => parseConfig('bantime_max=forever\n', 'a.conf'), /a\.conf:1: bantime_max: expected a duration/);
  assert.throws(() => parseConfig('recidive_window=-1\n', 'a.conf'), /a\.conf:1: recidive_window: expected a duration/);
  assert.deepEqual(parseConfig('bantime_increment=1h,6h,1d,1w\n', 'a.conf').bantimeIncrement, { kind: 'list', seconds: [3600, 21600, 86400, 604800] });
});
