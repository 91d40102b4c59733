// The history in a real SQLite file: what a ban, unban and match become; a retried batch stored
// once; restored and adopted bans not stored twice; the per-address hourly cap on matches;
// retention in small batches; a broken file set aside; migration from a version-1 file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import type { TallowEvent } from '../../src/events';
import { HistoryListener } from '../../src/listeners/history';
import { Metrics } from '../../src/metrics';
import { schemaAt, SCHEMA_VERSION } from '../../src/history/schema';
import { SqliteStore } from '../../src/history/sqlite';
import { SQL } from '../../src/history/store';
import { historyListener } from '../../src/history';
import { parseConfig } from '../../src/config';
import { ban, collect, tmpdir } from './history-helpers';

const T0 = Date.UTC(2026, 10, 20, 10, 0, 0);


function setup(t: { after(fn: () => unknown): void }, over: Partial<{ matchesPerHour: number; days: number }> = {}) {
  const dir = tmpdir(t);
  const log = collect();
  const file = path.join(dir, 'history.sqlite');
  const store = new SqliteStore(file, log);
  const metrics = new Metrics();
  const h = new HistoryListener({ store, log, metrics, matches: true, matchesPerHour: over.matchesPerHour ?? 60, days: over.days ?? 90, maxQueue: 1000 });
  t.after(() => h.close());
  const db = () => new Database(file, { readonly: true });
  /** The listener of the next daemon run on the same store (after a restart). */
  const restarted = () => new HistoryListener({ store, log, metrics, matches: true, matchesPerHour: 60, days: 90, maxQueue: 1000 });
  return { dir, file, log, store, metrics, h, db, restarted };
}

test('bans, unbans and matches become rows with reason, pattern, score, count, duration, origin and step', async (t) => {
  const s = setup(t);
  const b = ban('203.0.113.5', T0, { step: 2 });
  await s.h.handle([
    { kind: 'match', address: '203.0.113.5', family: 4, pattern: 'sshd.json#2', file: 'sshd.json', at: T0 - 10 },
    { kind: 'ban', ban: b, cause: 'new' },
    { kind: 'ban', ban: ban('2001:db8::7', T0, { origin: 'manual', reason: 'manual', pattern: 'manual', score: 0, count: 0, expiry: T0 + 60_000 }), cause: 'new' },
    { kind: 'unban', ban: b, reason: 'expired', at: T0 + 3_600_000 },
  ]);
  const db = s.db();
  t.after(() => db.close());
  const rows = db.prepare('SELECT address, since, expiry, origin, reason, pattern, score, count, step, ended, end_reason FROM bans ORDER BY address').all();
  assert.deepEqual(rows, [
    { address: '2001:db8::7', since: T0, expiry: T0 + 60_000, origin: 'manual', reason: 'manual', pattern: 'manual', score: 0, count: 0, step: 0, ended: null, end_reason: null },
    { address: '203.0.113.5', since: T0, expiry: T0 + 3_600_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5, step: 2, ended: T0 + 3_600_000, end_reason: 'expired' },
  ]);
  assert.deepEqual(db.prepare('SELECT address, at, pattern, n FROM matches').all(), [{ address: '203.0.113.5', at: T0 - 10, pattern: 'sshd.json#2', n: 1 }]);
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  assert.equal(s.metrics.historyRowsStored, 4);
});

test('a batch handed again after an unclear failure is stored once; restored, adopted and re-decided adopted bans are not stored twice', async (t) => {
  const s = setup(t);
  const events: TallowEvent[] = [
    { kind: 'ban', ban: ban('198.51.100.1', T0), cause: 'new' },
    { kind: 'match', address: '198.51.100.2', family: 4, pattern: 'sshd.json#1', file: 'sshd.json', at: T0 },
  ];
  await s.h.handle(events);
  // The dispatcher retries the same events (plus later ones) when it could not tell they were stored.
  await s.h.handle([...events, { kind: 'match', address: '198.51.100.2', family: 4, pattern: 'sshd.json#1', file: 'sshd.json', at: T0 + 1 }]);
  // After a restart: the same ban restored from the state file, then found in the kernel (adopted,
  // with the kernel's rounded time left), and one the history never saw (written just before a kill -9).
  const s2 = s.restarted();
  const later = T0 + 600_000;
  await s2.handle([
    { kind: 'ban', ban: ban('198.51.100.1', T0), cause: 'restored' },
    { kind: 'ban', ban: ban('198.51.100.1', later, { origin: 'adopted', reason: 'adopted', expiry: T0 + 3_600_000 - 400 }), cause: 'adopted' },
    { kind: 'ban', ban: ban('198.51.100.9', later, { origin: 'adopted', reason: 'adopted', pattern: null }), cause: 'adopted' },
    // The journal lines after the saved cursor are read again: the same attack decided again.
    { kind: 'ban', ban: ban('198.51.100.1', later + 5, { count: 6 }), cause: 'new' },
  ]);
  const db = s.db();
  t.after(() => db.close());
  assert.deepEqual(db.prepare('SELECT address, origin, since, expiry, count FROM bans ORDER BY address').all(), [
    { address: '198.51.100.1', origin: 'rule', since: T0, expiry: later + 5 + 3_600_000, count: 6 },
    { address: '198.51.100.9', origin: 'adopted', since: later, expiry: later + 3_600_000, count: 5 },
  ]);
  assert.equal((db.prepare('SELECT count(*) AS n FROM matches').get() as { n: number }).n, 2);
});

test('matches past history_matches_per_hour for one address are summed up in one row, stored when the hour turns', async (t) => {
  const s = setup(t, { matchesPerHour: 10 });
  const m = (address: string, at: number): TallowEvent => ({ kind: 'match', address, family: 4, pattern: 'sshd.json#1', file: 'sshd.json', at });
  const flood: TallowEvent[] = [];
  for (let i = 0; i < 1000; i++) flood.push(m('203.0.113.66', T0 + i * 1000));
  flood.push(m('203.0.113.67', T0 + 5));
  await s.h.handle(flood);
  await s.h.handle([m('203.0.113.67', T0 + 3_600_000)]); // the next hour
  const db = s.db();
  t.after(() => db.close());
  const rows = db.prepare("SELECT address, pattern, count(*) AS rows, sum(n) AS n FROM matches GROUP BY address, pattern = '*' ORDER BY address, pattern").all();
  assert.deepEqual(rows, [
    { address: '203.0.113.66', pattern: '*', rows: 1, n: 990 },
    { address: '203.0.113.66', pattern: 'sshd.json#1', rows: 10, n: 10 },
    { address: '203.0.113.67', pattern: 'sshd.json#1', rows: 2, n: 2 },
  ]);
  assert.equal(s.metrics.historyMatchesCapped, 990);
});

test('retention: rows older than history_days go, in batches, newer ones stay', async (t) => {
  const s = setup(t, { days: 90, matchesPerHour: 100_000 });
  const now = T0;
  const old = now - 91 * 86_400_000;
  const events: TallowEvent[] = [];
  for (let i = 0; i < 2500; i++) events.push({ kind: 'match', address: `198.51.100.${i % 200}`, family: 4, pattern: 'sshd.json#1', file: 'sshd.json', at: old + i });
  events.push({ kind: 'ban', ban: ban('198.51.100.3', old), cause: 'new' });
  events.push({ kind: 'ban', ban: ban('198.51.100.4', now - 89 * 86_400_000), cause: 'new' });
  for (let i = 0; i < 5; i++) events.push({ kind: 'match', address: '198.51.100.4', family: 4, pattern: 'sshd.json#1', file: 'sshd.json', at: now - 1000 + i });
  for (let i = 0; i < events.length; i += 1000) await s.h.handle(events.slice(i, i + 1000));
  assert.equal(await s.h.prune(now), 2501);
  assert.equal(s.metrics.historyRowsPruned, 2501);
  const db = s.db();
  t.after(() => db.close());
  assert.deepEqual(db.prepare('SELECT address FROM bans').all(), [{ address: '198.51.100.4' }]);
  assert.equal((db.prepare('SELECT count(*) AS n FROM matches').get() as { n: number }).n, 5);
  assert.ok(s.log.lines.some((l) => /^info: history: 2501 rows older than 90 days deleted$/.test(l)), s.log.lines.join('\n'));
});

test('a file that is not a database is moved aside with a log line naming both files, and a fresh one is used', async (t) => {
  const s = setup(t);
  fs.writeFileSync(s.file, 'this is not an SQLite database, just bytes that happen to be here\n'.repeat(100));
  await s.h.handle([{ kind: 'ban', ban: ban('203.0.113.8', T0), cause: 'new' }]);
  const aside = fs.readdirSync(s.dir).filter((f) => f.startsWith('history.sqlite.broken-'));
  assert.equal(aside.length, 1, fs.readdirSync(s.dir).join(' '));
  assert.match(fs.readFileSync(path.join(s.dir, aside[0]), 'utf8'), /^this is not an SQLite database/);
  const line = s.log.lines.find((l) => l.startsWith('error: history: '));
  assert.ok(line?.includes(s.file) && line.includes(aside[0]) && /not a sound SQLite database/.test(line), s.log.lines.join('\n'));
  const db = s.db();
  t.after(() => db.close());
  assert.deepEqual(db.prepare('SELECT address FROM bans').all(), [{ address: '203.0.113.8' }]);
});

test('a version-1 file (written by the first schema) is migrated at open, its rows kept', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'history.sqlite');
  const old = new Database(file);
  for (const s of schemaAt(1, 'sqlite')) old.exec(s);
  old.pragma('user_version = 1');
  old.prepare("INSERT INTO bans (address, family, since, expiry, origin, reason, pattern, score, count) VALUES ('203.0.113.1', 4, ?, ?, 'rule', 'threshold', 'sshd.json#1', 1, 5)").run(T0, T0 + 3_600_000);
  old.prepare("INSERT INTO matches (address, at, pattern) VALUES ('203.0.113.1', ?, 'sshd.json#1')").run(T0 - 1);
  old.close();
  const log = collect();
  const store = new SqliteStore(file, log);
  t.after(() => store.close());
  await store.open();
  assert.ok(log.lines.includes(`info: history: schema migrated from version 1 to ${SCHEMA_VERSION}`), log.lines.join('\n'));
  const bans = await store.bans({ limit: 10 });
  assert.deepEqual(bans.map((b) => [b.address, b.step, b.seconds, b.pattern]), [['203.0.113.1', 0, 3600, 'sshd.json#1']]);
  assert.deepEqual((await store.matches({ limit: 10 })).map((m) => [m.address, m.n]), [['203.0.113.1', 1]]);
  // And the new columns work: a ban of step 1 after it.
  await store.write('run', [{ kind: 'ban', seq: 1, address: '203.0.113.1', family: 4, since: T0 + 7_200_000, expiry: T0 + 14_400_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#1', score: 1, count: 5, step: 1, cause: 'new' }]);
  assert.deepEqual(await store.lastBans(T0), [{ address: '203.0.113.1', rule: null, since: T0 + 7_200_000, step: 1 }]);
});

test('a version-4 file is migrated to 5: bans_reason_since dropped (a fourth B-tree per ban row), the repeat-offender view read through bans_since', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'history.sqlite');
  const old = new Database(file);
  for (const s of schemaAt(4, 'sqlite')) old.exec(s);
  old.pragma('user_version = 4');
  old.prepare("INSERT INTO bans (address, family, since, expiry, origin, reason, pattern, score, count, step, rule) VALUES ('203.0.113.2', 4, ?, ?, 'rule', 'threshold', 'sshd.json#1', 1, 5, 1, 'sshd')").run(T0, T0 + 3_600_000);
  old.close();
  const store = new SqliteStore(file, collect());
  t.after(() => store.close());
  await store.open();
  assert.deepEqual(await store.lastBans(T0), [{ address: '203.0.113.2', rule: 'sshd', since: T0, step: 1 }]);
  const db = new Database(file, { readonly: true });
  t.after(() => db.close());
  assert.equal(db.pragma('user_version', { simple: true }), 5);
  const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'bans' ORDER BY name").all();
  assert.deepEqual(indexes, [{ name: 'bans_since' }, { name: 'sqlite_autoindex_bans_1' }]);
  const plan = db.prepare(`EXPLAIN QUERY PLAN ${SQL.lastBans}`).all(T0) as { detail: string }[];
  assert.ok(plan.some((p) => /USING INDEX bans_since/.test(p.detail)), JSON.stringify(plan));
});

test('a file from a newer tallow is refused with a clear message, not overwritten', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'history.sqlite');
  const db = new Database(file);
  db.pragma('user_version = 99');
  db.close();
  const store = new SqliteStore(file, collect());
  await assert.rejects(store.open(), /written by a newer tallow \(schema version 99, this one knows up to \d+\)/);
  assert.ok(fs.existsSync(file));
});

test('history keys: off and dry runs keep no store; bad values are refused with file:line', () => {
  const log = collect();
  const metrics = new Metrics();
  assert.equal(historyListener(parseConfig('history=off\n', 'a.conf'), log, metrics, false), null);
  assert.equal(historyListener(parseConfig('', 'a.conf'), log, metrics, true), null, 'a dry run');
  assert.ok(historyListener(parseConfig('state_dir=/nonexistent-tallow\n', 'a.conf'), log, metrics, false) instanceof HistoryListener);
  assert.throws(() => parseConfig('\nhistory=mysql://x\n', 'a.conf'), /a\.conf:2: history: expected sqlite, off, postgresql/);
  assert.throws(() => parseConfig('history_password_file=db.secret\n', 'a.conf'), /a\.conf:1: history_password_file: expected an absolute path or off/);
  assert.throws(() => parseConfig('history_days=0\n', 'a.conf'), /a\.conf:1: history_days: expected a whole number from 1 to 36500/);
  assert.throws(() => parseConfig('history_sslmode=maybe\n', 'a.conf'), /a\.conf:1: history_sslmode: expected disable, prefer, require/);
  const pg = parseConfig('history=postgresql://tallow@db.example/tallow\n', 'a.conf');
  assert.equal(pg.history, 'postgresql://tallow@db.example/tallow');
});

test('rules per service (schema 3): each ban keeps its rule and scope, each match its rule; an unban ends the ban of its own scope; --rule takes a rule name', async (t) => {
  const s = setup(t);
  const on22 = ban('198.51.100.3', T0, { rule: 'sshd', scope: 'p22' });
  const on25 = ban('198.51.100.3', T0 + 1, { rule: 'postfix', scope: 'p25t', pattern: 'postfix.json#1' });
  await s.h.handle([
    { kind: 'match', address: '198.51.100.3', family: 4, pattern: 'postfix.json#1', file: 'postfix.json', rule: 'postfix', at: T0 - 10 },
    { kind: 'ban', ban: on22, cause: 'new' },
    { kind: 'ban', ban: on25, cause: 'new' },
    { kind: 'ban', ban: ban('2001:db8::/64', T0, { rule: 'postfix', scope: 'p25t_net', pattern: 'postfix.json#1' }), cause: 'new' },
    // The later ban ends first: only its own row is ended.
    { kind: 'unban', ban: on25, reason: 'manual', at: T0 + 5 },
  ]);
  const db = s.db();
  t.after(() => db.close());
  assert.deepEqual(db.prepare('SELECT address, rule, scope, end_reason FROM bans ORDER BY address, since').all(), [
    { address: '198.51.100.3', rule: 'sshd', scope: 'p22', end_reason: null },
    { address: '198.51.100.3', rule: 'postfix', scope: 'p25t', end_reason: 'manual' },
    { address: '2001:db8::/64', rule: 'postfix', scope: 'p25t_net', end_reason: null },
  ]);
  assert.deepEqual(db.prepare('SELECT rule FROM matches').all(), [{ rule: 'postfix' }]);
  const bans = await s.store.bans({ rule: 'postfix', limit: 10 });
  assert.deepEqual(bans.map((b) => [b.address, b.rule, b.scope]).sort(), [['198.51.100.3', 'postfix', 'p25t'], ['2001:db8::/64', 'postfix', 'p25t_net']]);
});

test('a rule with no_log: its matches are not stored, its bans are; other rules\' matches are', async (t) => {
  const s = setup(t);
  const m = (address: string, at: number, rule: string, noLog?: true): TallowEvent => ({ kind: 'match', address, family: 4, pattern: `${rule}.json#1`, file: `${rule}.json`, rule, ...(noLog ? { noLog } : {}), at });
  await s.h.handle([m('203.0.113.70', T0, 'noisy', true), m('203.0.113.70', T0 + 1, 'noisy', true), m('203.0.113.71', T0 + 2, 'sshd')]);
  await s.h.handle([{ kind: 'ban', cause: 'new', ban: ban('203.0.113.70', T0 + 3, { rule: 'noisy', pattern: 'noisy.json#1' }) }]);
  const db = s.db();
  t.after(() => db.close());
  assert.deepEqual(db.prepare('SELECT address, rule FROM matches ORDER BY id').all(), [{ address: '203.0.113.71', rule: 'sshd' }]);
  assert.deepEqual(db.prepare('SELECT address, rule FROM bans').all(), [{ address: '203.0.113.70', rule: 'noisy' }]);
});

test("a fleet's ban over a ban adopted at start only moves the running row's end: its origin, rule and step stay this node's", async (t) => {
  const s = setup(t);
  await s.h.handle([{ kind: 'ban', ban: ban('198.51.100.1', T0, { step: 2, rule: 'sshd' }), cause: 'new' }]);
  // After a restart without the state file: found in the kernel, then another node's longer ban of it.
  const s2 = s.restarted();
  const later = T0 + 600_000;
  await s2.handle([
    { kind: 'ban', ban: ban('198.51.100.1', later, { origin: 'adopted', reason: 'adopted', pattern: null, expiry: T0 + 3_600_000 - 400 }), cause: 'adopted' },
    { kind: 'ban', ban: ban('198.51.100.1', later + 5, { origin: 'remote:web2', pattern: null, step: 0, rule: 'sshd', expiry: later + 7_200_000 }), cause: 'new' },
  ]);
  const db = s.db();
  t.after(() => db.close());
  assert.deepEqual(db.prepare('SELECT address, origin, rule, step, since, expiry, pattern FROM bans').all(), [
    { address: '198.51.100.1', origin: 'rule', rule: 'sshd', step: 2, since: T0, expiry: later + 7_200_000, pattern: 'sshd.json#2' },
  ]);
  // So the repeat-offender view read at the next start still sees this node's step 2.
  assert.deepEqual(await s.store.lastBans(0), [{ address: '198.51.100.1', rule: 'sshd', since: T0, step: 2 }]);
});
