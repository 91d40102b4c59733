// `tallow history`: read straight from the SQLite file when the daemon is not running, and over
// the control socket when it is; one address, a network, --since, --rule, --top, --json, and the
// allowlisted addresses that attacked shown apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Allowlist } from '../../src/allowlist';
import { ControlServer } from '../../src/control';
import { historyRun, parseSince } from '../../src/history-cli';
import { historyQuery, type HistoryRequest, type HistoryResult } from '../../src/history/query';
import { SqliteStore } from '../../src/history/sqlite';
import type { HistoryRow } from '../../src/history/store';
import { collect, tmpdir } from './history-helpers';

const NOW = Date.now();
const H = 3_600_000;

async function world(t: { after(fn: () => unknown): void }) {
  const dir = tmpdir(t);
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, [`state_dir=${dir}/state`, `socket=${dir}/none.sock`, 'whitelist=192.0.2.1', ''].join('\n'));
  const store = new SqliteStore(path.join(dir, 'state', 'history.sqlite'), collect());
  let seq = 0;
  const b = (address: string, since: number, pattern: string, step = 0): HistoryRow => ({
    kind: 'ban', seq: ++seq, address, family: 4, since, expiry: since + H, origin: 'rule', reason: 'threshold', pattern, score: 1, count: 5, step, cause: 'new',
  });
  const m = (address: string, at: number, pattern: string, n = 1): HistoryRow => ({ kind: 'match', seq: ++seq, address, at, pattern, n });
  await store.write('r', [
    m('203.0.113.5', NOW - 50 * H, 'sshd.json#2'),
    b('203.0.113.5', NOW - 50 * H, 'sshd.json#2'),
    { kind: 'unban', seq: ++seq, address: '203.0.113.5', since: NOW - 50 * H, at: NOW - 49 * H, reason: 'expired' },
    b('203.0.113.5', NOW - 2 * H, 'sshd.json#2', 1),
    b('203.0.113.6', NOW - 3 * H, 'dovecot.json#1'),
    b('198.51.100.1', NOW - 1 * H, 'sshd.json#1'),
    m('192.0.2.1', NOW - 5 * H, 'sshd.json#2'),
    m('192.0.2.1', NOW - 4 * H, 'sshd.json#2'),
    m('192.0.2.1', NOW - 4 * H, '*', 40),
  ]);
  await store.close();
  const run = async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await historyRun([...args, '--config', conf], { out: (s) => void out.push(s), err: (s) => void err.push(s) });
    return { code, out: out.join(''), err: err.join('') };
  };
  return { dir, conf, store, run };
}

test('one address, the daemon not running: its bans (duration, reason, pattern, step, how it ended) and matches, from the file', async (t) => {
  const w = await world(t);
  const r = await w.run('203.0.113.5');
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  assert.match(lines[0], /^TIME \(UTC\) +ADDRESS +EVENT +DETAILS$/);
  assert.equal(lines.length, 4, r.out);
  assert.match(lines[1], /203\.0\.113\.5 +match +sshd\.json#2$/);
  assert.match(lines[2], /203\.0\.113\.5 +ban +1h 0m 0s, threshold sshd\.json#2, score 1\.00, count 5, ended \S+ \S+ \(expired\)$/);
  assert.match(lines[3], /203\.0\.113\.5 +ban +1h 0m 0s, threshold sshd\.json#2, score 1\.00, count 5, step 1, ran to \S+ \S+$/);
  assert.doesNotMatch(r.out, /allowlisted/);
});

test('a network, --since and --rule narrow what is shown', async (t) => {
  const w = await world(t);
  const net = await w.run('203.0.113.0/24', '--json');
  assert.equal(net.code, 0, net.err);
  const j = JSON.parse(net.out) as HistoryResult;
  assert.deepEqual([...new Set(j.items!.map((i) => i.address))].sort(), ['203.0.113.5', '203.0.113.6']);
  const recent = JSON.parse((await w.run('203.0.113.0/24', '--since', '1d', '--json')).out) as HistoryResult;
  assert.deepEqual(recent.items!.map((i) => [i.address, i.kind]), [['203.0.113.6', 'ban'], ['203.0.113.5', 'ban']]);
  const dove = JSON.parse((await w.run('--rule', 'dovecot.json', '--json')).out) as HistoryResult;
  assert.deepEqual(dove.items!.map((i) => i.address), ['203.0.113.6']);
});

test('--top: most banned first; allowlisted addresses that attacked are listed apart with how often and which rule', async (t) => {
  const w = await world(t);
  const r = await w.run('--top');
  assert.equal(r.code, 0, r.err);
  const lines = r.out.split('\n');
  assert.match(lines[0], /^ADDRESS +BANS +MATCHES +LAST BAN +RULES$/);
  assert.match(lines[1], /^203\.0\.113\.5 +2 +1 /);
  assert.ok(r.out.includes('allowlisted addresses that attacked'), r.out);
  assert.match(r.out, /^192\.0\.2\.1 +42 +\S+ \S+ +sshd\.json#2$/m);
  // A plain query marks it too.
  const one = await w.run('192.0.2.1');
  assert.match(one.out, /192\.0\.2\.1 \(allowlisted\) +match +sshd\.json#2/);
  assert.match(one.out, /192\.0\.2\.1 \(allowlisted\) +match +40 more matches that hour/);
});

test('over the control socket when the daemon runs; bad arguments are refused with exit 64', async (t) => {
  const w = await world(t);
  const store = new SqliteStore(path.join(w.dir, 'state', 'history.sqlite'), collect(), true);
  t.after(() => store.close());
  const seen: HistoryRequest[] = [];
  const sock = path.join(w.dir, 'live.sock');
  const server = await ControlServer.listen(sock, async (req) => {
    if (req.cmd !== 'history') return { ok: false, error: 'no' };
    seen.push(req);
    return { ok: true, result: await historyQuery(store, req, (a, f) => new Allowlist(['192.0.2.1']).has(a, f)) };
  });
  t.after(() => server.close());
  const r = await w.run('::ffff:203.0.113.6', '--since', '2026-01-01', '--socket', sock);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(seen, [{ cmd: 'history', address: '203.0.113.6', since: Date.parse('2026-01-01T00:00') }]);
  assert.match(r.out, /203\.0\.113\.6 +ban +1h 0m 0s, threshold dovecot\.json#1/);

  assert.equal((await w.run('not-an-address')).code, 64);
  assert.match((await w.run('203.0.113.0/40')).err, /not a valid network/);
  assert.match((await w.run('--since', 'yesterday')).err, /--since: expected a time ago/);
  assert.match((await w.run('--rule', 'a b')).err, /"rule" must be a pattern file or pattern/);
  assert.equal(parseSince('2h', 10 * H), 8 * H);
});

test('no history file yet, or history=off: a clear refusal, exit 1', async (t) => {
  const dir = tmpdir(t);
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, `state_dir=${dir}/state\nsocket=${dir}/none.sock\n`);
  const err: string[] = [];
  const io = { out: () => {}, err: (s: string) => void err.push(s) };
  assert.equal(await historyRun(['--config', conf], io), 1);
  assert.match(err.join(''), /no history yet \(\S+history\.sqlite does not exist; the daemon creates it\)/);
  fs.writeFileSync(conf, `state_dir=${dir}/state\nsocket=${dir}/none.sock\nhistory=off\n`);
  assert.equal(await historyRun(['--config', conf], io), 1);
  assert.match(err.join(''), /the history is off \(history=off in tallow\.conf\)/);
});
