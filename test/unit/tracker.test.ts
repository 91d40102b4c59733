import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tracker } from '../../src/tracker';
import type { Observation, TrackerOptions } from '../../src/tracker';
import { Ledger } from '../../src/ledger';
import type { Family } from '../../src/address';

// What is banned is the ledger's: the tracker reads it. A tracker here comes with a ledger that
// takes its ban decisions, as the daemon wires them.
const opts = (o: Partial<TrackerOptions> = {}): TrackerOptions => ({
  threshold: 1.0, expires: 3600, maxRecords: 1000, isAllowed: () => false, bannedUntil: () => 0, ...o,
});
function tracked(o: Partial<TrackerOptions> = {}): { t: Tracker; ledger: Ledger } {
  const ledger = new Ledger({ emit: () => {} });
  const t = new Tracker(opts({ bannedUntil: (a) => ledger.expiryOf(a), ...o }));
  const observe = t.observe.bind(t);
  t.observe = (m, now) => {
    const ds = observe(m, now);
    for (const d of ds) if (d.action === 'ban') ledger.ban({ ...d, origin: 'rule' }, now);
    return ds;
  };
  return { t, ledger };
}
const match = (address: string, score: number, ban = 0, family: Family = 4): Observation => ({
  address, family, pattern: { name: `t.json#${score}/${ban}`, score, ban },
});
const T0 = 1_700_000_000_000;

test('tracker: five matches of 0.2 ban on the fifth, for expires seconds, once', () => {
  const { t, ledger } = tracked();
  for (let i = 0; i < 4; i++) assert.deepEqual(t.observe(match('203.0.113.9', 0.2), T0 + i), []);
  const d = t.observe(match('203.0.113.9', 0.2), T0 + 4);
  assert.equal(d.length, 1);
  assert.deepEqual(d[0], { action: 'ban', address: '203.0.113.9', family: 4, seconds: 3600, score: d[0].action === 'ban' ? d[0].score : 0, count: 5, pattern: 't.json#0.2/0', reason: 'threshold', scope: '', rule: null });
  const r = t.get('203.0.113.9')!;
  assert.equal(r.banned, true);
  assert.equal(ledger.expiryOf('203.0.113.9'), T0 + 4 + 3600_000);
  // no repeated decisions while banned, but still counted
  assert.deepEqual(t.observe(match('203.0.113.9', 0.2, 10), T0 + 5), []);
  assert.equal(t.get('203.0.113.9')!.count, 6);
});

test('tracker: ten matches of 0.1 reach a threshold of 1.0 (float sums)', () => {
  const t = new Tracker(opts());
  let decisions = 0;
  for (let i = 0; i < 10; i++) decisions += t.observe(match('203.0.113.9', 0.1), T0).length;
  assert.equal(decisions, 1);
});

test('tracker: a ban:10 pattern bans for 10 s without marking the record banned', () => {
  const { t, ledger } = tracked();
  const d = t.observe(match('198.51.100.7', 0.2, 10), T0);
  assert.equal(d.length, 1);
  assert.equal(d[0].action === 'ban' && d[0].seconds, 10);
  assert.equal(d[0].action === 'ban' && d[0].reason, 'instant');
  const r = t.get('198.51.100.7')!;
  assert.equal(r.banned, false);
  assert.equal(ledger.expiryOf('198.51.100.7'), T0 + 10_000);
  // the next throttle is decided again (tallow re-throttles on every such match)
  assert.equal(t.observe(match('198.51.100.7', 0.2, 10), T0 + 20_000).length, 1);
});

test('tracker: allowlisted addresses are never scored', () => {
  const t = new Tracker(opts({ isAllowed: (a) => a === '10.0.0.1' }));
  for (let i = 0; i < 10; i++) assert.deepEqual(t.observe(match('10.0.0.1', 0.5, 30), T0), []);
  assert.equal(t.size, 0);
});

test('tracker: prune drops records unseen for expires, banned ones after expires/2', () => {
  const t = new Tracker(opts({ expires: 100 }));
  t.observe(match('203.0.113.1', 0.2), T0);          // active
  t.observe(match('203.0.113.2', 1.0), T0);          // banned
  t.observe(match('203.0.113.3', 0.2), T0 + 80_000); // active, younger
  assert.equal(t.prune(T0 + 50_000), 0);
  assert.equal(t.prune(T0 + 50_001), 1);
  assert.equal(t.get('203.0.113.2'), undefined);
  assert.ok(t.get('203.0.113.1'));
  assert.equal(t.prune(T0 + 100_001), 1);
  assert.equal(t.get('203.0.113.1'), undefined);
  assert.ok(t.get('203.0.113.3'));
  assert.equal(t.prune(T0 + 180_001), 1);
  assert.equal(t.size, 0);
});

test('tracker: a ban that ran out while the record lived on starts over', () => {
  const { t } = tracked({ expires: 100 });
  t.observe(match('203.0.113.1', 1.0), T0);
  // seen again inside the ban: no decision; after the ban expired: scored afresh
  assert.deepEqual(t.observe(match('203.0.113.1', 0.2), T0 + 40_000), []);
  assert.deepEqual(t.observe(match('203.0.113.1', 0.2), T0 + 100_000), []);
  assert.equal(t.get('203.0.113.1')!.banned, false);
  assert.equal(t.observe(match('203.0.113.1', 1.0), T0 + 100_001).length, 1);
});

test('tracker: cap (on unbanned records) evicts the oldest unbanned records, never a banned one', () => {
  const t = new Tracker(opts({ maxRecords: 2 }));
  t.observe(match('203.0.113.1', 1.0), T0);     // banned, oldest
  t.observe(match('203.0.113.2', 0.2), T0 + 1);
  t.observe(match('203.0.113.3', 0.2), T0 + 2);
  t.observe(match('203.0.113.2', 0.2), T0 + 3); // refreshed: .3 is now the oldest unbanned
  t.observe(match('203.0.113.4', 0.2), T0 + 4);
  assert.equal(t.size, 3);
  assert.equal(t.evicted, 1);
  assert.ok(t.get('203.0.113.1')?.banned);
  assert.equal(t.get('203.0.113.3'), undefined);
  assert.ok(t.get('203.0.113.2') && t.get('203.0.113.4'));
});

test('tracker: banned records do not count against the cap: past max_records bans, a new attacker is still banned', () => {
  const t = new Tracker(opts({ maxRecords: 3 }));
  for (let i = 1; i <= 10; i++) t.observe(match(`203.0.113.${i}`, 1.0), T0 + i);
  assert.equal(t.size, 10);
  assert.equal(t.evicted, 0);
  // A new attacker scores twice: its record must survive its first match to be banned at its second.
  assert.deepEqual(t.observe(match('198.51.100.7', 0.5), T0 + 20), []);
  const d = t.observe(match('198.51.100.7', 0.5), T0 + 21);
  assert.equal(d.length, 1);
  assert.equal(d[0].action === 'ban' && d[0].address, '198.51.100.7');
});

test('tracker: a flood of distinct addresses stays within the cap', () => {
  const t = new Tracker(opts({ maxRecords: 1000 }));
  for (let i = 0; i < 20_000; i++) t.observe(match(`2001:db8::${i.toString(16)}`, 0.2, 0, 6), T0 + i);
  assert.equal(t.size, 1000);
  assert.equal(t.evicted, 19_000);
});

test('tracker: manual ban and unban; unban forgets', () => {
  const t = new Tracker(opts());
  const d = t.ban('2001:db8::1', 6, 60, T0);
  assert.deepEqual(d, [{ action: 'ban', address: '2001:db8::1', family: 6, seconds: 60, score: 0, count: 0, pattern: 'manual', reason: 'manual', scope: '', rule: null }]);
  assert.equal(t.get('2001:db8::1')!.banned, true);
  assert.deepEqual(t.unban('2001:db8::1', 6), [{ action: 'unban', address: '2001:db8::1', family: 6, reason: 'manual' }]);
  assert.equal(t.get('2001:db8::1'), undefined);
});

test('tracker: a manual ban of an allowlisted address is refused and leaves no record', () => {
  const t = new Tracker(opts({ isAllowed: (a) => a === '192.0.2.7' }));
  assert.deepEqual(t.ban('192.0.2.7', 4, 60, T0), []);
  assert.equal(t.get('192.0.2.7'), undefined);
  assert.equal(t.ban('192.0.2.8', 4, 60, T0).length, 1);
});

test('tracker: restore keeps records and prune still works on restored order', () => {
  const t = new Tracker(opts({ expires: 100 }));
  t.restore({ address: '203.0.113.5', family: 4, score: 0.4, count: 2, first: T0, last: T0 + 90_000, banned: false, pattern: null });
  t.restore({ address: '203.0.113.6', family: 4, score: 0.4, count: 2, first: T0, last: T0, banned: false, pattern: null });
  t.restore({ address: '203.0.113.7', family: 4, score: 1.2, count: 6, first: T0, last: T0, banned: true, pattern: 'x' });
  assert.equal(t.size, 3);
  assert.equal(t.prune(T0 + 100_001), 2);
  assert.deepEqual([...t.records()].map((r) => r.address), ['203.0.113.5']);
  // restored score counts on
  assert.equal(t.observe(match('203.0.113.5', 0.6), T0 + 100_002).length, 1);
});

test('tracker: configure changes threshold and cap, keeps records', () => {
  const t = new Tracker(opts());
  t.observe(match('203.0.113.1', 0.2), T0);
  t.observe(match('203.0.113.2', 0.2), T0 + 1);
  t.configure(opts({ threshold: 0.3, maxRecords: 1 }));
  assert.equal(t.size, 1);
  assert.equal(t.observe(match('203.0.113.2', 0.2), T0 + 2).length, 1);
});
