// Scores per rule (issue 14): each rule with a policy of its own scores in its own pool, with its
// threshold, findtime window, bantime, scope and ban prefix; tallow's files share one pool as in
// tallow. Rules are built by hand here; time is a fake clock (ms) passed in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Family } from '../../src/address';
import { Ledger } from '../../src/ledger';
import type { Rule } from '../../src/rule';
import { ALL_PORTS, type Scope } from '../../src/scope';
import { defaultRule, Scoring, type ScoringOptions } from '../../src/scoring';
import { MAX_WINDOW, type Decision, type Observation } from '../../src/tracker';

const T0 = 1_700_000_000_000;
const S = 1000;
const P22: Scope = { id: 'p22', ports: ['22'], protocols: ['tcp', 'udp'], net: false };
const P25: Scope = { id: 'p25t', ports: ['25'], protocols: ['tcp'], net: false };
const P25NET: Scope = { id: 'p25t_net', ports: ['25'], protocols: ['tcp'], net: true };

function rule(name: string, o: Partial<Rule> = {}): Rule {
  return { name, pool: name, enabled: true, noLog: false, threshold: 1, findtime: 0, bantime: 3600, scope: ALL_PORTS, prefix: { 4: 32, 6: 128 }, where: `${name}.json`, ...o };
}
/** tallow's files: no policy keys, the shared pool and tallow.conf's policy. */
const shared = (name: string): Rule => ({ ...defaultRule({ threshold: 1, expires: 600 }), name, where: `${name}.json` });

/** Scores wired to a ledger that takes their bans, as the daemon does. */
function world(rules: Rule[], o: Partial<ScoringOptions> = {}) {
  const ledger = new Ledger({ emit: () => {} });
  const scoring = new Scoring({ threshold: 1, expires: 600, maxRecords: 1000, isAllowed: () => false, bannedUntil: (t, s) => ledger.expiryOf(t, s), ...o }, rules);
  const bans: Extract<Decision, { action: 'ban' }>[] = [];
  const observe = (r: Rule, address: string, score: number, at: number, ban = 0): number => {
    const family: Family = address.includes(':') ? 6 : 4;
    const m: Observation = { address, family, pattern: { name: `${r.name}.json#1`, score, ban } };
    let n = 0;
    for (const d of scoring.observe(m, r, at)) {
      if (d.action !== 'ban') continue;
      bans.push(d);
      ledger.ban({ ...d, origin: 'rule' }, at);
      n++;
    }
    return n;
  };
  return { ledger, scoring, bans, observe };
}

test('findtime: 4 failures, a pause longer than findtime, 4 more: not banned; 8 inside it: banned', () => {
  const ssh = rule('sshd', { threshold: 8, findtime: 60 });
  const w = world([ssh]);
  let t = T0;
  for (let i = 0; i < 4; i++) assert.equal(w.observe(ssh, '203.0.113.9', 1, (t += 5 * S)), 0);
  t += 61 * S; // the first four are now older than findtime
  for (let i = 0; i < 4; i++) assert.equal(w.observe(ssh, '203.0.113.9', 1, (t += 5 * S)), 0, `match ${i + 5}`);
  assert.equal(w.scoring.get('203.0.113.9', 'sshd')!.score, 4, 'the window holds the last four');
  assert.equal(w.bans.length, 0);
  // Eight inside 60 s: the eighth bans, for the rule's bantime.
  const other = '198.51.100.7';
  for (let i = 0; i < 7; i++) assert.equal(w.observe(ssh, other, 1, T0 + i * 8 * S), 0);
  assert.equal(w.observe(ssh, other, 1, T0 + 56 * S), 1);
  assert.deepEqual([w.bans[0].address, w.bans[0].seconds, w.bans[0].reason, w.bans[0].rule, w.bans[0].count], [other, 3600, 'threshold', 'sshd', 8]);
});

test('findtime: a match exactly findtime old no longer counts; the window is bounded', () => {
  const r = rule('web', { threshold: 2, findtime: 10 });
  const w = world([r]);
  w.observe(r, '203.0.113.5', 1, T0);
  assert.equal(w.observe(r, '203.0.113.5', 1, T0 + 10 * S), 0);
  assert.equal(w.observe(r, '203.0.113.5', 1, T0 + 10 * S + 1), 1);
  // A flood of tiny scores: never more than MAX_WINDOW matches kept, the sum counted on.
  for (let i = 0; i < 1000; i++) w.observe(r, '203.0.113.6', 0.001, T0 + i);
  const rec = w.scoring.get('203.0.113.6', 'web')!;
  assert.ok(rec.window!.length <= 2 * MAX_WINDOW, `window of ${rec.window!.length / 2} matches`);
  assert.ok(Math.abs(rec.score - 1) < 1e-9, `score ${rec.score}`);
});

test('a limit rule (threshold N, each match 1) bans on the Nth match, not on tallow.conf\'s threshold', () => {
  const pf = rule('postfix', { threshold: 3, scope: P25 });
  const w = world([pf]);
  assert.equal(w.observe(pf, '198.51.100.4', 1, T0), 0, 'tallow.conf threshold 1 would ban here');
  assert.equal(w.observe(pf, '198.51.100.4', 1, T0 + 1), 0);
  assert.equal(w.observe(pf, '198.51.100.4', 1, T0 + 2), 1);
  assert.deepEqual([w.bans[0].scope, w.bans[0].rule, w.bans[0].seconds], ['p25t', 'postfix', 3600]);
});

test('scores per rule do not add up; rules of the shared pool do, as in tallow', () => {
  const ssh = rule('sshd', { scope: P22 });
  const pf = rule('postfix', { scope: P25 });
  const w = world([ssh, pf]);
  assert.equal(w.observe(ssh, '203.0.113.7', 0.8, T0), 0);
  assert.equal(w.observe(pf, '203.0.113.7', 0.8, T0 + 1), 0, '0.8 on sshd and 0.8 on postfix');
  assert.equal(w.bans.length, 0);
  const a = shared('sshd');
  const b = shared('dovecot');
  const v = world([a, b]);
  v.observe(a, '203.0.113.7', 0.8, T0);
  assert.equal(v.observe(b, '203.0.113.7', 0.8, T0 + 1), 1, "tallow's files share one score");
  assert.deepEqual([v.bans[0].scope, v.bans[0].rule, v.bans[0].seconds], ['', 'dovecot', 600]);
});

test('ban prefix /64: 2001:db8::2 and ::3 are one target, the ban is the network; an allowlisted neighbour keeps it to the address', () => {
  const r = rule('postfix', { scope: P25NET, prefix: { 4: 24, 6: 64 } });
  const w = world([r]);
  assert.equal(w.observe(r, '2001:db8::2', 0.5, T0), 0);
  assert.equal(w.observe(r, '2001:db8::3', 0.5, T0 + 1), 1);
  assert.deepEqual([w.bans[0].address, w.bans[0].family, w.bans[0].scope, w.bans[0].count], ['2001:db8::/64', 6, 'p25t_net', 2]);
  assert.equal(w.ledger.expiryOf('2001:db8::/64', 'p25t_net'), T0 + 1 + 3600 * S);
  // Another address of the network while it is banned: counted, no second ban.
  assert.equal(w.observe(r, '2001:db8::99', 1, T0 + 2), 0);
  assert.equal(w.scoring.get('2001:db8::/64', 'postfix')!.count, 3);
  // IPv4 /24.
  w.observe(r, '198.51.100.7', 0.5, T0);
  assert.equal(w.observe(r, '198.51.100.200', 0.5, T0 + 1), 1);
  assert.equal(w.bans[1].address, '198.51.100.0/24');
  // A network that holds an allowlisted address is never banned: each address scores alone.
  const v = world([r], { coversAllowed: (net) => net.base === '203.0.113.0' });
  v.observe(r, '203.0.113.8', 0.5, T0);
  assert.equal(v.observe(r, '203.0.113.9', 0.5, T0 + 1), 0);
  assert.equal(v.observe(r, '203.0.113.9', 0.5, T0 + 2), 1);
  assert.equal(v.bans[0].address, '203.0.113.9');
});

test('bantime per rule: a threshold ban lasts the rule\'s bantime; the shared pool keeps expires', () => {
  const scan = rule('sshd-scan', { bantime: 120 });
  const long = rule('postfix', { bantime: 86400, scope: P25 });
  const ssh = shared('sshd');
  const w = world([scan, long, ssh]);
  w.observe(scan, '203.0.113.1', 1, T0);
  w.observe(long, '203.0.113.2', 1, T0);
  w.observe(ssh, '203.0.113.3', 1, T0);
  assert.deepEqual(w.bans.map((b) => [b.address, b.seconds]), [['203.0.113.1', 120], ['203.0.113.2', 86400], ['203.0.113.3', 600]]);
});

test('"still banned?" asks for the target in the rule\'s scope: banned on 22 by sshd, postfix still bans on 25', () => {
  const ssh = rule('sshd', { scope: P22 });
  const pf = rule('postfix', { threshold: 2, scope: P25 });
  const w = world([ssh, pf]);
  assert.equal(w.observe(ssh, '198.51.100.3', 1, T0), 1);
  w.observe(pf, '198.51.100.3', 1, T0 + 1);
  assert.equal(w.observe(pf, '198.51.100.3', 1, T0 + 2), 1);
  assert.deepEqual(w.ledger.allOf('198.51.100.3').map((b) => [b.scope, b.rule]).sort(), [['p22', 'sshd'], ['p25t', 'postfix']]);
  // While banned on 22, more sshd matches make no new decision.
  assert.equal(w.observe(ssh, '198.51.100.3', 1, T0 + 3), 0);
});

test('max_records bounds every pool together: the least recently seen unbanned record goes first', () => {
  const a = rule('a');
  const b = rule('b');
  const w = world([a, b], { maxRecords: 3 });
  w.observe(a, '203.0.113.1', 0.1, T0);
  w.observe(b, '203.0.113.2', 0.1, T0 + 1);
  w.observe(a, '203.0.113.3', 0.1, T0 + 2);
  w.observe(b, '203.0.113.4', 0.1, T0 + 3);
  assert.equal(w.scoring.size, 3);
  assert.equal(w.scoring.evicted, 1);
  assert.equal(w.scoring.get('203.0.113.1', 'a'), undefined, 'the oldest, in pool a');
  w.observe(a, '203.0.113.3', 0.1, T0 + 4); // refreshed: .2 (pool b) is now the oldest
  w.observe(a, '203.0.113.5', 0.1, T0 + 5);
  assert.equal(w.scoring.get('203.0.113.2', 'b'), undefined);
  assert.deepEqual([...w.scoring.records()].map((r) => `${r.pool}:${r.address}`).sort(), ['a:203.0.113.3', 'a:203.0.113.5', 'b:203.0.113.4']);
});

test('reload: a new policy applies to later matches, records kept; a removed rule\'s pool empties by pruning', () => {
  const r1 = rule('web', { threshold: 3 });
  const w = world([r1]);
  w.observe(r1, '203.0.113.1', 1, T0);
  const r2 = { ...r1, threshold: 2 };
  w.scoring.configure([r2]);
  assert.equal(w.observe(r2, '203.0.113.1', 1, T0 + 1), 1, 'the record kept its 1, the new threshold is 2');
  w.observe(r2, '203.0.113.9', 1, T0 + 2);
  w.scoring.configure([]);
  assert.equal(w.scoring.get('203.0.113.9', 'web')!.score, 1, 'kept until pruned');
  assert.equal(w.scoring.prune(T0 + 601 * S), 1, 'unseen for expires');
  assert.ok(w.scoring.get('203.0.113.1', 'web')?.banned, 'banned: kept for half its bantime');
  assert.equal(w.scoring.prune(T0 + 1802 * S), 1);
  assert.equal(w.scoring.restore({ address: '203.0.113.9', family: 4, pool: 'web', score: 1, count: 1, first: T0, last: T0, banned: false, pattern: null }), false, 'the pool is gone');
  assert.equal(w.scoring.restore({ address: '203.0.113.9', family: 4, score: 1, count: 1, first: T0, last: T0, banned: false, pattern: null }), true, 'no pool: the shared one');
});

test('top: the highest scores of a pool now, findtime honoured', () => {
  const r = rule('web', { threshold: 10, findtime: 60 });
  const w = world([r]);
  w.observe(r, '203.0.113.1', 3, T0);
  w.observe(r, '203.0.113.2', 1, T0 + 50 * S);
  w.observe(r, '203.0.113.3', 2, T0 + 50 * S);
  assert.deepEqual(w.scoring.top('web', 2, T0 + 55 * S, 60).map((t) => [t.address, t.score]), [['203.0.113.1', 3], ['203.0.113.3', 2]]);
  // 65 s later the first has left the window.
  assert.deepEqual(w.scoring.top('web', 5, T0 + 65 * S, 60).map((t) => [t.address, t.score]), [['203.0.113.3', 2], ['203.0.113.2', 1]]);
});
