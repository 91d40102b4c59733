// `tallow status`'s figures from the history store (issue 15.4): the last 24 hours and 7 days as a
// real SQLite file holds them (matches found by bisecting ids), a store that fails or hangs, the
// lines printed, and a real daemon whose status counts the bans of its previous run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { StatusResult } from '../../src/control-results';
import { formatStatus } from '../../src/ctl-format';
import { Daemon } from '../../src/daemon';
import { FiguresCache, historyFigures } from '../../src/history/figures';
import { SqliteStore } from '../../src/history/sqlite';
import type { BanRow, HistoryRow, HistoryStore, MatchRow } from '../../src/history/store';
import type { JournalEntry } from '../../src/journal';
import { Log } from '../../src/log';
import { collect, tmpdir } from './history-helpers';

const NOW = Date.UTC(2026, 11, 2, 12, 0, 0);
const H = 3_600_000;
const D = 24 * H;

let seq = 0;
const banRow = (address: string, since: number, over: Partial<BanRow> = {}): BanRow => ({
  kind: 'ban', seq: ++seq, address, family: 4, since, expiry: since + H, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5, step: 0, cause: 'new', ...over,
});
const matchRow = (address: string, at: number, n = 1): MatchRow => ({ kind: 'match', seq: ++seq, address, at, pattern: n > 1 ? '*' : 'sshd.json#2', n });

function store(t: { after(fn: () => unknown): void }): SqliteStore {
  const s = new SqliteStore(path.join(tmpdir(t), 'history.sqlite'), collect());
  t.after(() => s.close());
  return s;
}

test('the last 24 hours and 7 days: local, fleet and repeat bans, addresses, matches (summary rows included), oldest', async (t) => {
  const s = store(t);
  const rows: HistoryRow[] = [
    banRow('203.0.113.10', NOW - 10 * D), // outside both windows, the oldest
    banRow('203.0.113.3', NOW - 3 * D),
    banRow('203.0.113.1', NOW - 3 * H),
    banRow('203.0.113.2', NOW - 2 * H, { step: 1 }),
    banRow('203.0.113.1', NOW - 1 * H, { step: 1 }),
    banRow('198.51.100.9', NOW - 1 * H, { origin: 'remote:web2' }),
    banRow('203.0.113.4', NOW + 1 * H), // after `now` (a clock step): not counted
    matchRow('203.0.113.7', NOW - 2 * D),
    matchRow('203.0.113.7', NOW - 2 * D + 1),
    ...Array.from({ length: 5 }, (_, i) => matchRow('203.0.113.1', NOW - 30 * 60_000 + i)),
    matchRow('203.0.113.8', NOW - 2 * H, 40),
  ];
  await s.write('run-1', rows);
  const f = await historyFigures(s, NOW);
  assert.equal(f.where, s.where);
  assert.deepEqual(f.day, { bans: 3, remoteBans: 1, addressesBanned: 3, repeatBans: 2, matches: 45, addressesMatched: 2 });
  assert.deepEqual(f.week, { bans: 4, remoteBans: 1, addressesBanned: 4, repeatBans: 2 });
  assert.equal(f.oldest, NOW - 10 * D);
});

test('an empty store: zeros and no oldest; matches all older than 24 hours: none counted', async (t) => {
  const s = store(t);
  await s.open();
  const empty = await historyFigures(s, NOW);
  assert.deepEqual(empty.day, { bans: 0, remoteBans: 0, addressesBanned: 0, repeatBans: 0, matches: 0, addressesMatched: 0 });
  assert.equal(empty.oldest, null);
  await s.write('run-1', [matchRow('203.0.113.7', NOW - 2 * D), matchRow('203.0.113.7', NOW - 25 * H)]);
  const old = await historyFigures(s, NOW);
  assert.equal(old.day.matches, 0);
  assert.equal(old.oldest, NOW - 2 * D);
});

test('the window of matches is found among thousands of ids, with gaps (pruned rows), at its exact first row', async (t) => {
  const s = store(t);
  // 3,000 matches 1 minute apart ending at NOW (50 hours); every 7th deleted afterwards: holes in the ids.
  const rows = Array.from({ length: 3000 }, (_, i) => matchRow(`203.0.113.${i % 200}`, NOW - (2999 - i) * 60_000));
  for (let i = 0; i < rows.length; i += 1000) await s.write('run-1', rows.slice(i, i + 1000));
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(s.where.replace(/^sqlite /, ''));
  db.prepare('DELETE FROM matches WHERE id % 7 = 0').run();
  const kept = db.prepare('SELECT at FROM matches').all() as { at: number }[];
  db.close();
  const expected = kept.filter((r) => r.at >= NOW - D && r.at <= NOW).length;
  assert.ok(expected > 1000 && expected < 1440, String(expected));
  const f = await historyFigures(s, NOW);
  assert.equal(f.day.matches, expected);
  assert.equal(f.day.addressesMatched, 200);
});

test('a store that fails or does not answer: status gets why (within 2 s), not an exception; answers are reused for 10 s', async (t) => {
  const failing = { where: 'postgresql tallow@192.0.2.1/tallow', open: () => Promise.reject(new Error('connect ECONNREFUSED 192.0.2.1:5432')) } as unknown as HistoryStore;
  assert.deepEqual(await new FiguresCache().get(failing, NOW), { where: failing.where, error: 'connect ECONNREFUSED 192.0.2.1:5432' });
  const hanging = { where: 'postgresql tallow@192.0.2.1/tallow', open: () => new Promise(() => {}) } as unknown as HistoryStore;
  assert.deepEqual(await new FiguresCache().get(hanging, NOW), { where: hanging.where, error: 'no answer within 2 s' });

  const s = store(t);
  await s.write('run-1', [banRow('203.0.113.1', NOW - H)]);
  const cache = new FiguresCache();
  assert.equal(((await cache.get(s, NOW)) as { day: { bans: number } }).day.bans, 1);
  await s.write('run-1', [banRow('203.0.113.2', NOW - H + 1)]);
  assert.equal(((await cache.get(s, NOW + 5_000)) as { day: { bans: number } }).day.bans, 1, 'reused within 10 s');
  assert.equal(((await cache.get(s, NOW + 11_000)) as { day: { bans: number } }).day.bans, 2, 'read again after 10 s');
});

test('the status lines: where, since when, queue; 24 hours and 7 days; a store that did not answer', () => {
  const base: StatusResult = { version: '1', pid: 1, uptime: 5, backend: 'ipset', entries: 0, matches: 0, bansActive: 0, records: 0, cursor: null };
  const text = formatStatus({
    ...base,
    history: {
      where: 'sqlite /var/lib/tallow/history.sqlite',
      at: NOW,
      oldest: NOW - 10 * D,
      day: { bans: 3, remoteBans: 1, addressesBanned: 3, repeatBans: 2, matches: 45, addressesMatched: 1 },
      week: { bans: 1, remoteBans: 0, addressesBanned: 1, repeatBans: 0 },
      queued: 12,
      dropped: 0,
    },
  });
  assert.match(text, /^history: +sqlite \/var\/lib\/tallow\/history\.sqlite, since 2026-11-22T12:00:00\.000Z; 12 queued, 0 dropped$/m);
  assert.match(text, /^last 24 hours: +3 bans \(2 repeat offenders\) and 1 from the fleet, of 3 addresses; 45 matches from 1 address$/m);
  assert.match(text, /^last 7 days: +1 ban of 1 address$/m);
  const down = formatStatus({ ...base, history: { where: 'postgresql tallow@db/tallow', error: 'no answer within 2 s', queued: 400, dropped: 3 } });
  assert.match(down, /^history: +postgresql tallow@db\/tallow: NO ANSWER \(no answer within 2 s\); 400 queued, 3 dropped$/m);
  assert.doesNotMatch(down, /last 24 hours/);
});

test('a real daemon with its SQLite history: after a restart, status counts the bans of the previous run', async (t) => {
  const dir = tmpdir(t);
  const local = path.join(dir, 'local');
  for (const d of [path.join(dir, 'shipped'), local, path.join(dir, 'journal')]) fs.mkdirSync(d);
  const SSHD = '/usr/sbin/sshd';
  fs.writeFileSync(path.join(dir, 'shipped', 'sshd.json'), JSON.stringify([{ name: 'sshd', filter: `_EXE=${SSHD}`, threshold: 1, bantime: 600, ports: [22], protocol: 'tcp', items: [{ ban: 0, score: 1, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }]));
  fs.writeFileSync(path.join(dir, 'tallow.conf'), [`patterns_dir=${local}`, `state_dir=${dir}/state`, `socket=${dir}/run/sock`, 'backend=none', 'expires=60', ''].join('\n'));
  let n = 0;
  const sshd = (a: string): JournalEntry => ({ cursor: `c${n++}`, realtime: Date.now() * 1000, fields: { MESSAGE: `Failed password for root from ${a} port 4242 ssh2`, _EXE: SSHD } });
  const start = () => {
    const log = new Log({ journal: false, timestamps: false, write: () => {} });
    return Daemon.start({ configFile: path.join(dir, 'tallow.conf'), explicitConfig: true, journalDir: path.join(dir, 'journal'), dryRun: false, log, shippedPatterns: path.join(dir, 'shipped') });
  };
  const status = async (d: Daemon) => ((await d.handle({ cmd: 'status' })) as { ok: true; result: StatusResult & { bans: number } }).result;

  const d1 = await start();
  t.after(() => d1.stop());
  d1.process([sshd('203.0.113.1'), sshd('203.0.113.2')]);
  await d1.events.flush(10_000);
  await d1.stop();

  const d2 = await start();
  t.after(() => d2.stop());
  d2.process([sshd('203.0.113.3')]);
  await d2.events.flush(10_000);
  const s = await status(d2);
  assert.equal(s.bans, 1, "the daemon's own counter starts again");
  assert.ok(s.history && !('error' in s.history), JSON.stringify(s.history));
  assert.deepEqual(s.history.day, { bans: 3, remoteBans: 0, addressesBanned: 3, repeatBans: 0, matches: 3, addressesMatched: 3 });
  assert.match(formatStatus(s), /^last 24 hours: +3 bans of 3 addresses; 3 matches from 3 addresses$/m);
});
