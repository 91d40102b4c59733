// The fleet's pure parts (issue 17): tallow.conf keys, what a node does with another node's rows
// (allowlist, quorum, cap, unban), what it publishes (never a remote ban), the bounded outbox,
// and the documented SQL being the SQL of the code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, parseConfig } from '../../src/config';
import { validateRequest } from '../../src/control-requests';
import { formatList, formatStatus } from '../../src/ctl-format';
import { Intake, rowOf, type FleetRow } from '../../src/fleet/intake';
import { Outbox, rowFor } from '../../src/fleet/publisher';
import { FLEET_SCHEMA_SQL } from '../../src/fleet/schema';
import { fleetOf, fleetPgSettings } from '../../src/fleet/settings';
import { pgClientConfig, pgSettings } from '../../src/history/postgres';
import type { Ban } from '../../src/ledger';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const NOW = 1_700_000_000_000;

function row(over: Partial<FleetRow>): FleetRow {
  return { id: 1, node: 'a', kind: 'ban', address: '203.0.113.7', family: 4, rule: 'sshd', reason: 'threshold', seconds: 600, since: NOW - 1000, expiry: NOW + 599_000, ...over };
}

function intake(over: Partial<ConstructorParameters<typeof Intake>[0]> = {}): Intake {
  return new Intake({ node: 'c', accept: true, quorum: 1, maxPerMinute: 0, isAllowed: (a) => a === '198.51.100.5', ...over });
}

test('fleet keys: defaults, a URL or the history keys, the fleet password file first; bad values name file, line and key', () => {
  const d = fleetOf(parseConfig('', 'x.conf'));
  assert.deepEqual([d.fleet, d.fleetAccept, d.fleetQuorum, d.fleetMaxPerMinute, d.fleetQueue], ['off', true, 1, 1000, 100000]);
  const c = parseConfig('fleet=postgresql://tallow_web1@db.example/tallow?sslmode=verify-full\nfleet_node=web1\nfleet_quorum=2\nfleet_max_per_minute=0\nfleet_accept=no\nhistory_password_file=/etc/h.secret\n', 'x.conf');
  const f = fleetOf(c);
  assert.deepEqual([f.fleetNode, f.fleetQuorum, f.fleetMaxPerMinute, f.fleetAccept], ['web1', 2, 0, false]);
  const pg = fleetPgSettings(c);
  assert.equal(pg.url, 'postgresql://tallow_web1@db.example/tallow?sslmode=verify-full');
  assert.equal(pg.passwordFile, '/etc/h.secret');
  const k = fleetPgSettings(parseConfig('fleet=postgresql\nhistory_host=/run/pg\nhistory_dbname=fl\nhistory_password_file=/etc/h.secret\nfleet_password_file=/etc/f.secret\n', 'x.conf'));
  assert.deepEqual([k.url, k.host, k.database, k.passwordFile], [null, '/run/pg', 'fl', '/etc/f.secret']);
  const bad: [string, RegExp][] = [
    ['fleet=mysql://x', /^x\.conf:1: fleet: expected off, postgresql/],
    ['\nfleet_node=web 1', /^x\.conf:2: fleet_node: expected a node name/],
    ['fleet_quorum=0', /^x\.conf:1: fleet_quorum: expected a whole number from 1 to 100, got '0'$/],
    ['fleet_accept=maybe', /^x\.conf:1: fleet_accept: expected yes or no/],
    ['fleet_password_file=rel.secret', /^x\.conf:1: fleet_password_file: expected an absolute path or off/],
  ];
  for (const [text, re] of bad) {
    assert.throws(() => parseConfig(text + '\n', 'x.conf'), (e: unknown) => e instanceof ConfigError && re.test(e.message) && e.exitCode === 78, text);
  }
});

test("intake: own rows skipped, another node's ban applied for its remaining time, allowlisted ignored and counted", () => {
  const i = intake();
  assert.deepEqual(i.decide(row({ node: 'c' }), NOW), { do: 'skip', why: 'own' });
  const d = i.decide(row({}), NOW);
  assert.equal(d.do, 'ban');
  assert.equal(d.do === 'ban' && d.seconds, 599);
  assert.deepEqual(i.decide(row({ address: '198.51.100.5' }), NOW), { do: 'ignore', why: 'allowlisted' });
  assert.equal(i.counts.allowlisted, 1);
  assert.deepEqual(i.decide(row({ expiry: NOW - 1 }), NOW), { do: 'skip', why: 'expired' });
  assert.deepEqual(i.decide(row({ reason: 'adopted' }), NOW), { do: 'skip', why: 'bad' });
  assert.deepEqual([...i.nodes].sort(), ['a', 'c']);
  assert.deepEqual(intake({ accept: false }).decide(row({}), NOW), { do: 'ignore', why: 'accept-off' });
  assert.deepEqual(intake({ accept: false }).decide(row({ kind: 'unban' }), NOW), { do: 'ignore', why: 'accept-off' });
});

test('intake: quorum 2 needs two distinct live reports; the same node twice or an ended report does not count; an unban forgets them', () => {
  const i = intake({ quorum: 2 });
  assert.deepEqual(i.decide(row({ node: 'a' }), NOW), { do: 'ignore', why: 'quorum' });
  assert.deepEqual(i.decide(row({ node: 'a', id: 2 }), NOW), { do: 'ignore', why: 'quorum' });
  const d = i.decide(row({ node: 'b', id: 3 }), NOW);
  assert.equal(d.do, 'ban');
  assert.deepEqual(d.do === 'ban' && d.reporters.sort(), ['a', 'b']);
  // A report whose ban has ended no longer counts.
  const j = intake({ quorum: 2 });
  j.decide(row({ node: 'a', expiry: NOW + 1000 }), NOW);
  assert.deepEqual(j.decide(row({ node: 'b' }), NOW + 2000), { do: 'ignore', why: 'quorum' });
  // An unban in between: the first report is forgotten.
  const k = intake({ quorum: 2 });
  k.decide(row({ node: 'a' }), NOW);
  assert.equal(k.decide(row({ node: 'a', kind: 'unban', id: 2 }), NOW).do, 'unban');
  assert.deepEqual(k.decide(row({ node: 'b', id: 3 }), NOW), { do: 'ignore', why: 'quorum' });
});

test('intake: fleet_max_per_minute caps the bans applied in one clock minute, counted; the next minute applies again', () => {
  const i = intake({ maxPerMinute: 2 });
  const m0 = Math.floor(NOW / 60_000) * 60_000;
  assert.equal(i.decide(row({ address: '203.0.113.1' }), m0 + 1).do, 'ban');
  assert.equal(i.decide(row({ address: '203.0.113.2' }), m0 + 2).do, 'ban');
  assert.deepEqual(i.decide(row({ address: '203.0.113.3' }), m0 + 3), { do: 'ignore', why: 'capped' });
  assert.equal(i.counts.capped, 1);
  assert.equal(i.decide(row({ address: '203.0.113.4' }), m0 + 60_000).do, 'ban');
});

test("rowOf: another node's text is taken only as a canonical address or network of its family", () => {
  const base = { id: '5', node: 'a', kind: 'ban', family: 6, rule: null, reason: 'manual', seconds: 60, since: '1', expiry: '2' };
  assert.equal(rowOf({ ...base, address: '2001:db8::1' })?.id, 5);
  assert.equal(rowOf({ ...base, address: '2001:db8::/64' })?.address, '2001:db8::/64');
  assert.equal(rowOf({ ...base, address: '2001:DB8::1' }), null);
  assert.equal(rowOf({ ...base, address: '2001:db8::1/64' }), null);
  assert.equal(rowOf({ ...base, address: '203.0.113.1' }), null, 'family 6 claimed for an IPv4 address');
  assert.equal(rowOf({ ...base, address: '-1; DROP TABLE x' }), null);
  assert.equal(rowOf({ ...base, kind: 'other', address: '2001:db8::1' }), null);
});

test('publisher: only this node\'s new rule and manual bans, never a remote, restored or adopted one, nor a rule with publish false', () => {
  const ban = (over: Partial<Ban>): Ban => ({ address: '203.0.113.9', family: 4, scope: '', rule: 'sshd', expiry: NOW + 600_000, since: NOW, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#1', score: 1, count: 5, ...over });
  const all = () => true;
  assert.deepEqual(rowFor({ kind: 'ban', ban: ban({}), cause: 'new' }, all), { kind: 'ban', address: '203.0.113.9', family: 4, rule: 'sshd', reason: 'threshold', seconds: 600, since: NOW, expiry: NOW + 600_000 });
  assert.equal(rowFor({ kind: 'ban', ban: ban({ origin: 'manual', rule: null, reason: 'manual' }), cause: 'new' }, all)?.reason, 'manual');
  assert.equal(rowFor({ kind: 'ban', ban: ban({ origin: 'remote:a' }), cause: 'new' }, all), null);
  assert.equal(rowFor({ kind: 'ban', ban: ban({}), cause: 'restored' }, all), null);
  assert.equal(rowFor({ kind: 'ban', ban: ban({ origin: 'adopted' }), cause: 'adopted' }, all), null);
  assert.equal(rowFor({ kind: 'unban', ban: ban({}), reason: 'manual', at: NOW }, all), null);
  assert.equal(rowFor({ kind: 'ban', ban: ban({}), cause: 'new' }, (r) => r !== 'sshd'), null);
});

test('outbox: bounded; past its size rows are dropped and counted; taken only once published', () => {
  const o = new Outbox(3);
  const r = (i: number) => ({ kind: 'ban' as const, address: `203.0.113.${i}`, family: 4 as const, rule: null, reason: 'manual', seconds: 1, since: 0, expiry: 1 });
  for (let i = 1; i <= 5; i++) o.push(r(i));
  assert.deepEqual([o.length, o.dropped], [3, 2]);
  assert.deepEqual(o.peek(2).map((x) => x.address), ['203.0.113.1', '203.0.113.2']);
  assert.equal(o.length, 3, 'peek takes nothing');
  o.done(2);
  assert.deepEqual([o.length, o.published, o.peek(5)[0].address], [1, 2, '203.0.113.3']);
});

test('control and client: unban --fleet is a request field; status shows the fleet; list shows a remote origin', () => {
  assert.deepEqual(validateRequest({ cmd: 'unban', address: '203.0.113.9', fleet: true }), { req: { cmd: 'unban', address: '203.0.113.9', fleet: true } });
  assert.deepEqual(validateRequest({ cmd: 'unban', address: '203.0.113.9' }), { req: { cmd: 'unban', address: '203.0.113.9' } });
  assert.deepEqual(validateRequest({ cmd: 'unban', address: '203.0.113.9', fleet: 'yes' }), { error: 'unban: "fleet" must be true or false' });
  const base = { version: '1', pid: 1, uptime: 1, backend: 'ipset', entries: 0, matches: 0, bansActive: 0, records: 0, cursor: null };
  const fleet = { node: 'web1', where: 'postgresql tallow_web1@db/tallow', connected: false, since: Date.UTC(2026, 0, 2, 3, 4, 5), lastError: 'connect ECONNREFUSED', nodesSeen: ['web1', 'web2'], lastId: 42, remoteApplied: 7, remoteUnbans: 0, ignoredAllowlisted: 1, ignoredCapped: 0, quorumWaiting: 0, published: 3, queued: 2, dropped: 0, quorum: 1, accept: true };
  const text = formatStatus({ ...base, fleet });
  assert.match(text, /^fleet: +DISCONNECTED since 2026-01-02T03:04:05\.000Z \(connect ECONNREFUSED\); node web1, postgresql tallow_web1@db\/tallow$/m);
  assert.match(text, /^fleet nodes seen: +web1, web2$/m);
  assert.match(text, /^fleet remote bans: +7 applied, 1 allowlisted, 0 over fleet_max_per_minute$/m);
  assert.match(text, /^fleet published: +3, 2 queued, 0 dropped; last id 42$/m);
  const list = formatList([{ address: '203.0.113.9', family: 4, rule: 'sshd', ports: 'all', remaining: 60, score: 0, count: 0, pattern: null, origin: 'remote:web2' }]);
  assert.match(list, /^ADDRESS +RULE +PORTS +ORIGIN +REMAINING/);
  assert.match(list, /^203\.0\.113\.9 +sshd +all +remote:web2 +1m 0s/m);
});

test('tallow.conf(5) FLEET shows the very statements the code documents (schema.ts)', () => {
  const r = spawnSync('mandoc', ['-T', 'utf8', '-O', 'width=300', path.join(ROOT, 'man', 'tallow.conf.5')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const page = r.stdout.replace(/.\x08/g, '');
  const fleet = page.slice(page.indexOf('\nFLEET'), page.indexOf('\nFILES'));
  const norm = (s: string) => s.replace(/\s+/g, ' ').trim();
  const text = norm(fleet);
  for (const stmt of FLEET_SCHEMA_SQL) assert.ok(text.includes(norm(stmt) + ';'), `missing from the page: ${stmt}`);
});

test('the rule key publish: true or false, anything else named; false is carried to the rule', async () => {
  const { parseRuleKeys } = await import('../../src/rule-keys');
  const { parsePatternFile } = await import('../../src/patterns');
  const { resolveRules } = await import('../../src/rules');
  assert.deepEqual(parseRuleKeys({ publish: false }), { publish: false });
  assert.throws(() => parseRuleKeys({ publish: 'no' }), /^Error: "publish": expected true \(its bans are shared with the fleet, the default\) or false, got "no"$/);
  const file = JSON.stringify([{ name: 'local', filter: '_SYSTEMD_UNIT=a.service', publish: false, items: [{ ban: 0, score: 1, pattern: '^fail <IP>$' }] }, { name: 'shared', filter: '_SYSTEMD_UNIT=b.service', items: [{ ban: 0, score: 1, pattern: '^fail <IP>$' }] }]);
  const rules = resolveRules([parsePatternFile(file, 'x.json', '/etc/tallow/x.json')].flat(), { threshold: 1, expires: 600 }).rules;
  assert.deepEqual(rules.map((r) => [r.name, r.publish]), [['local', false], ['shared', undefined]]);
});

test("the fleet's connection is the history store's (one pgClientConfig); a bad password file names the key that named it", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-fleet-pw-'));
  try {
    const open = path.join(dir, 'open.secret');
    fs.writeFileSync(open, 'pw\n', { mode: 0o644 });
    fs.chmodSync(open, 0o644);
    const ok = path.join(dir, 'ok.secret');
    fs.writeFileSync(ok, 'pw-ok\nignored\n', { mode: 0o600 });
    const conf = (extra: string) => parseConfig(`fleet=postgresql\nhistory=postgresql\nhistory_host=/run/pg\nhistory_dbname=fl\nhistory_user=u\nhistory_sslmode=require\n${extra}`, 'x.conf');
    assert.throws(() => pgClientConfig(fleetPgSettings(conf(`fleet_password_file=${open}\n`)), {}), /^Error: fleet_password_file=\S+open\.secret: readable by others \(mode 644\); chmod 600 it$/);
    assert.throws(() => pgClientConfig(fleetPgSettings(conf(`history_password_file=${open}\n`)), {}), /^Error: history_password_file=\S+open\.secret: readable by others/);
    assert.throws(() => pgClientConfig(fleetPgSettings(conf(`fleet_password_file=${dir}/none\n`)), {}), /^Error: fleet_password_file=\S+\/none: cannot read it: ENOENT$/);
    const c = conf(`fleet_password_file=${ok}\nhistory_password_file=${ok}\n`);
    const fleet = pgClientConfig(fleetPgSettings(c), { application_name: 'tallow-fleet', keepAlive: true });
    const history = pgClientConfig(pgSettings(c), { application_name: 'tallow-fleet', keepAlive: true });
    assert.deepEqual(fleet, history);
    assert.deepEqual([fleet.host, fleet.database, fleet.user, fleet.password, fleet.ssl], ['/run/pg', 'fl', 'u', 'pw-ok', { rejectUnauthorized: false }]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
