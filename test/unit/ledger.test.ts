// The ledger: the one list of bans. Never-shorten, expiry order, restore with remaining time,
// adoption without re-banning, refusals; events in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ledger, type BanRequest, type LedgerEvent } from '../../src/ledger';

const T0 = 1_700_000_000_000;
function ledger(refuse?: (a: string) => string | null) {
  const events: LedgerEvent[] = [];
  const l = new Ledger({ emit: (e) => events.push(e), refuse: refuse ? (a) => refuse(a) : undefined });
  return { l, events };
}
const req = (address: string, seconds: number, over: Partial<BanRequest> = {}): BanRequest => ({
  address, family: address.includes(':') ? 6 : 4, seconds, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5, ...over,
});

test('ledger: a ban never shortens a longer one; a manual ban replaces it; a longer one extends', () => {
  const { l, events } = ledger();
  assert.equal(l.ban(req('203.0.113.1', 3600), T0).ok, true);
  const shorter = l.ban(req('203.0.113.1', 30, { reason: 'instant' }), T0 + 1000);
  assert.equal(shorter.ok, false);
  assert.match(!shorter.ok ? shorter.why : '', /already banned for longer \(3599 s left\)/);
  assert.equal(l.expiryOf('203.0.113.1'), T0 + 3600_000);
  assert.equal(l.ban(req('203.0.113.1', 7200), T0 + 1000).ok, true);
  assert.equal(l.expiryOf('203.0.113.1'), T0 + 1000 + 7200_000);
  assert.equal(l.ban(req('203.0.113.1', 60, { origin: 'manual', reason: 'manual' }), T0 + 2000, true).ok, true);
  assert.equal(l.expiryOf('203.0.113.1'), T0 + 62_000);
  assert.equal(l.get('203.0.113.1')?.origin, 'manual');
  assert.deepEqual(events.map((e) => [e.kind, e.kind === 'ban' ? e.cause : e.reason]), [['ban', 'new'], ['ban', 'new'], ['ban', 'new']]);
});

test('ledger: bans end in expiry order, one expired event each, and not before their time', () => {
  const { l, events } = ledger();
  l.ban(req('203.0.113.3', 30), T0);
  l.ban(req('203.0.113.1', 10), T0);
  l.ban(req('2001:db8::2', 20), T0);
  events.length = 0;
  assert.equal(l.expire(T0 + 9_999), 0);
  assert.equal(l.expire(T0 + 10_000), 1);
  assert.equal(l.expire(T0 + 25_000), 1);
  assert.equal(l.expire(T0 + 29_000), 0);
  assert.equal(l.expire(T0 + 31_000), 1);
  assert.deepEqual(events.map((e) => e.kind === 'unban' && [e.ban.address, e.reason, e.at]), [
    ['203.0.113.1', 'expired', T0 + 10_000],
    ['2001:db8::2', 'expired', T0 + 25_000],
    ['203.0.113.3', 'expired', T0 + 31_000],
  ]);
  assert.equal(l.size, 0);
});

test('ledger: a manual unban removes the ban with one event; unbanning nothing says so', () => {
  const { l, events } = ledger();
  l.ban(req('198.51.100.4', 100), T0);
  assert.equal(l.unban('198.51.100.4', 'manual', T0 + 1)?.address, '198.51.100.4');
  assert.equal(l.unban('198.51.100.4', 'manual', T0 + 2), undefined);
  assert.deepEqual(events.map((e) => e.kind), ['ban', 'unban']);
  // the earliest-expiry shortcut must not keep a removed ban alive
  assert.equal(l.expire(T0 + 200_000), 0);
});

test('ledger: restore keeps origin, reason and expiry; skips what ended or is refused', () => {
  const { l, events } = ledger((a) => (a === '127.0.0.1' ? 'loopback' : null));
  const saved = [
    { address: '203.0.113.9', family: 4 as const, expiry: T0 + 500_000, since: T0 - 100_000, origin: 'manual' as const, reason: 'manual' as const, pattern: 'manual', score: 0, count: 0 },
    { address: '2001:db8::9', family: 6 as const, expiry: T0 - 1, since: T0 - 100_000, origin: 'rule' as const, reason: 'threshold' as const, pattern: 'x#1', score: 1, count: 5 },
    { address: '127.0.0.1', family: 4 as const, expiry: T0 + 500_000, since: T0, origin: 'rule' as const, reason: 'threshold' as const, pattern: 'x#1', score: 1, count: 5 },
  ];
  assert.equal(l.restore(saved, T0), 1);
  assert.deepEqual(l.get('203.0.113.9'), { ...saved[0], scope: '', rule: null }, 'a ban saved before rules: every port, no rule');
  assert.deepEqual(events.map((e) => e.kind === 'ban' && [e.ban.address, e.cause]), [['203.0.113.9', 'restored']]);
});

test('ledger: kernel entries are adopted with their remaining time, as adopted (not sent back); known and permanent ones left', () => {
  const { l, events } = ledger();
  l.ban(req('203.0.113.1', 100), T0);
  events.length = 0;
  const n = l.adopt(
    [
      { address: '203.0.113.1', family: 4, remaining: 5 }, // known: the ledger's own time holds
      { address: '198.51.100.8', family: 4, remaining: 42 },
      { address: '2001:db8::8', family: 6, remaining: Infinity }, // no timeout: someone else's, for good
    ],
    T0,
    (a) => (a === '198.51.100.8' ? { pattern: 'sshd.json#1', score: 0.6, count: 3 } : undefined),
  );
  assert.equal(n, 1);
  assert.equal(l.expiryOf('203.0.113.1'), T0 + 100_000);
  assert.deepEqual(l.get('198.51.100.8'), { address: '198.51.100.8', family: 4, scope: '', rule: null, expiry: T0 + 42_000, since: T0, origin: 'adopted', reason: 'adopted', pattern: 'sshd.json#1', score: 0.6, count: 3 });
  assert.equal(l.get('2001:db8::8'), undefined);
  assert.deepEqual(events.map((e) => e.kind === 'ban' && e.cause), ['adopted']);
});

test('ledger: an address that must never be banned is refused, whoever asks, with the reason', () => {
  const { l, events } = ledger((a) => (a === '0.0.0.0' ? 'unspecified address' : null));
  const r = l.ban(req('0.0.0.0', 60, { origin: 'manual', reason: 'manual' }), T0, true);
  assert.deepEqual(r, { ok: false, why: 'unspecified address' });
  assert.equal(l.adopt([{ address: '0.0.0.0', family: 4, remaining: 60 }], T0), 0);
  assert.equal(l.size, 0);
  assert.deepEqual(events, []);
});

test('ledger: an extended ban ends at its new time only, once; many short bans end in order', () => {
  const { l, events } = ledger();
  l.ban(req('203.0.113.5', 10), T0);
  l.ban(req('203.0.113.5', 100), T0 + 1000);
  events.length = 0;
  assert.equal(l.expire(T0 + 11_000), 0, 'the old expiry of an extended ban is stale');
  assert.equal(l.expire(T0 + 101_000), 1);
  assert.equal(l.expire(T0 + 500_000), 0);
  // 2,000 bans of shuffled lengths end exactly in expiry order.
  const secs = Array.from({ length: 2000 }, (_, i) => ((i * 7919) % 2000) + 1);
  secs.forEach((s, i) => l.ban(req(`2001:db8::${(i + 1).toString(16)}`, s), T0));
  events.length = 0;
  for (let t = 0; t <= 2001; t += 7) l.expire(T0 + t * 1000);
  l.expire(T0 + 2001_000);
  const ends = events.map((e) => (e.kind === 'unban' ? e.ban.expiry : NaN));
  assert.equal(ends.length, 2000);
  assert.deepEqual(ends, [...ends].sort((a, b) => a - b));
  assert.equal(l.size, 0);
});

test('ledger: one address banned in two scopes at once (sshd on 22, postfix on 25); never-shorten holds per scope', () => {
  const { l, events } = ledger();
  assert.equal(l.ban(req('198.51.100.3', 3600, { scope: 'p22', rule: 'sshd' }), T0).ok, true);
  assert.equal(l.ban(req('198.51.100.3', 60, { scope: 'p25t', rule: 'postfix' }), T0).ok, true, 'a shorter ban elsewhere is its own');
  assert.equal(l.size, 2);
  assert.equal(l.expiryOf('198.51.100.3', 'p22'), T0 + 3600_000);
  assert.equal(l.expiryOf('198.51.100.3', 'p25t'), T0 + 60_000);
  assert.equal(l.expiryOf('198.51.100.3'), 0, 'not banned on every port');
  assert.equal(l.ban(req('198.51.100.3', 30, { scope: 'p22', rule: 'sshd' }), T0 + 1).ok, false, 'never shorter on 22');
  assert.deepEqual([l.get('198.51.100.3', 'p25t')?.rule, l.get('198.51.100.3', 'p22')?.rule], ['postfix', 'sshd']);
  // Expiry ends the one that ran out only.
  assert.equal(l.expire(T0 + 60_000), 1);
  assert.deepEqual(l.allOf('198.51.100.3').map((b) => b.scope), ['p22']);
  assert.deepEqual(events.filter((e) => e.kind === 'unban').map((e) => e.ban.scope), ['p25t']);
});

test('ledger: unbanAll lifts every ban of the address, in every scope, one event each; a network is its own target', () => {
  const { l, events } = ledger();
  l.ban(req('198.51.100.3', 3600, { scope: 'p22', rule: 'sshd' }), T0);
  l.ban(req('198.51.100.3', 600, { scope: 'p25t', rule: 'postfix' }), T0);
  l.ban(req('198.51.100.3', 60, { origin: 'manual', reason: 'manual' }), T0);
  l.ban(req('198.51.100.0/24', 600, { scope: 'p25t_net', rule: 'postfix' }), T0);
  l.ban(req('203.0.113.1', 600, { scope: 'p22', rule: 'sshd' }), T0);
  events.length = 0;
  const lifted = l.unbanAll('198.51.100.3', 'manual', T0 + 1);
  assert.deepEqual(lifted.map((b) => b.scope).sort(), ['', 'p22', 'p25t']);
  assert.deepEqual(events.map((e) => e.kind === 'unban' && [e.ban.address, e.ban.scope, e.reason]).length, 3);
  assert.deepEqual([...l.values()].map((b) => `${b.address}@${b.scope}`).sort(), ['198.51.100.0/24@p25t_net', '203.0.113.1@p22']);
  assert.deepEqual(l.unbanAll('198.51.100.0/24', 'manual', T0 + 2).map((b) => b.rule), ['postfix']);
  assert.deepEqual(l.unbanAll('198.51.100.3', 'manual', T0 + 3), []);
  // Nothing left behind to expire later.
  assert.equal(l.expire(T0 + 4000_000), 1);
  assert.equal(l.size, 0);
});
