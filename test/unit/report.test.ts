// `tallow report` from a real SQLite history: a fixed day of events (report-fixture.ts) gives the
// whole text report below, written out by hand (figures counted from the fixture's list, not
// from the code), with the comparison to the previous day; the JSON's figures; bans per hour at
// the period's edges; rules from a `rule` column when the history has one; escaping of names an
// attacker or a careless file could make hostile; the command line, with the daemon's store open
// for writing beside it or not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../src/history/sqlite';
import type { HistoryRow } from '../../src/history/store';
import { buildReport } from '../../src/report';
import { reportRun } from '../../src/report/cli';
import { bucketMs, networkOf, ruleOf } from '../../src/report/data';
import { collect, tmpdir } from './history-helpers';
import { fixtureRows, P, UNTIL } from './report-fixture';

const H = 3_600_000;

/** The fixture in a history file; `open`: the writer (the daemon) keeps it open, its rows maybe still in the WAL. */
async function history(t: { after(fn: () => unknown): void }, rows: HistoryRow[] = fixtureRows(), open = false) {
  const dir = tmpdir(t);
  const file = path.join(dir, 'state', 'history.sqlite');
  const writer = new SqliteStore(file, collect());
  await writer.write('run-1', rows);
  if (open) t.after(() => writer.close());
  else await writer.close();
  const reader = new SqliteStore(file, collect(), true);
  t.after(() => reader.close());
  return { dir, file, writer, reader };
}

const bar = (n: number) => '#'.repeat(n);

// Written by hand from the fixture's list (see the counts in the JSON test below).
const EXPECTED = `tallow report for gate.example
period    2026-03-10 06:00 to 2026-03-11 06:00 UTC (1d)
previous  2026-03-09 06:00 to 2026-03-10 06:00 UTC

Summary
                  this period  previous  change
bans                       11         4  +7 (+175%)
unbans                      9         4  +5 (+125%)
addresses banned            8         4  +4 (+100%)
addresses seen              9         4  +5 (+125%)
matches                    38        18  +20 (+111%)
unbans by reason: expired 6, manual 2, refused 1

Bans per rule
RULE       BANS  PREVIOUS  UNBANS
sshd          7         3       6
dovecot       2         1       2
(manual)      1         0       1
(adopted)     1         0       0

Top addresses
ADDRESS           BANS  MATCHES  STEP  RULES
203.0.113.5          3       18     2  sshd
2001:db8:1:2::10     2        6     1  sshd
198.51.100.20        1        5     0  sshd
203.0.113.7          1        4     0  sshd
2001:db8:1:2::99     1        2     0  dovecot
203.0.113.9          1        1     0  dovecot
192.0.2.50           1        0     0  (adopted)
198.51.100.7         1        0     0  (manual)
203.0.113.66         0        2     0  sshd

Top networks
NETWORK            BANS  ADDRESSES  MATCHES
203.0.113.0/24        5          4       25
2001:db8:1:2::/64     3          2        8
198.51.100.0/24       2          2        5
192.0.2.0/24          1          1        0

Top patterns
PATTERN         RULE     MATCHES  BANS
sshd.json#2     sshd          16     5
sshd.json#1     sshd           5     1
sshd.json#3     sshd           4     1
dovecot.json#2  dovecot        2     1
dovecot.json#1  dovecot        1     1
10 more matches past history_matches_per_hour (their pattern is not kept)

Repeat offenders: 2 addresses banned more than once
ADDRESS           BANS  STEPS  DURATIONS
203.0.113.5          3  0 1 2  1h 2h 4h
2001:db8:1:2::10     2  0 1    1h 2h

Logins seen by notify rules
none recorded

Bans per hour (UTC)
03-10 06:00  2  ${bar(50)}
03-10 07:00  1  ${bar(25)}
03-10 08:00  1  ${bar(25)}
03-10 09:00  1  ${bar(25)}
03-10 10:00  0
03-10 11:00  2  ${bar(50)}
03-10 12:00  0
03-10 13:00  0
03-10 14:00  1  ${bar(25)}
03-10 15:00  0
03-10 16:00  1  ${bar(25)}
03-10 17:00  0
03-10 18:00  1  ${bar(25)}
03-10 19:00  0
03-10 20:00  0
03-10 21:00  0
03-10 22:00  0
03-10 23:00  0
03-11 00:00  0
03-11 01:00  0
03-11 02:00  0
03-11 03:00  0
03-11 04:00  0
03-11 05:00  1  ${bar(25)}
`;

test('the whole text report of a fixed day, with the previous day beside it, read while the writer holds the file', async (t) => {
  const h = await history(t, fixtureRows(), true);
  const r = await buildReport(h.reader, P, UNTIL, { host: 'gate.example', now: UNTIL });
  assert.equal(r.text, EXPECTED);
  for (const line of r.text.split('\n')) {
    assert.ok(line.length <= 80, `wider than 80 columns: ${line}`);
    assert.equal(line, line.trimEnd(), `trailing space: ${JSON.stringify(line)}`);
  }
});

test('the JSON: version 1 and the figures counted by hand', async (t) => {
  const h = await history(t);
  const d = JSON.parse((await buildReport(h.reader, P, UNTIL, { host: 'gate.example', now: UNTIL })).json);
  assert.equal(d.version, 1);
  assert.deepEqual(d.period, { since: P, until: UNTIL });
  assert.deepEqual(d.previous, { since: P - 24 * H, until: P });
  // The history has the rule column (schema 3); these rows carry no rule: each falls back to its pattern file.
  assert.equal(d.rulesFrom, 'rule');
  // Bans starting in [P, UNTIL): .5 x3, .7, .9, 192.0.2.50, ::10 x2, ::99, 198.51.100.7, 198.51.100.20 (at UNTIL - 1).
  // Unbans ending in it: .8 (banned P - 1), .5 x2, .9, ::10 x2 expired; .7, 198.51.100.7 manual; ::99 refused.
  assert.deepEqual(d.totals.current, { bans: 11, unbans: 9, unbansByReason: { expired: 6, manual: 2, refused: 1 }, addressesBanned: 8, addressesSeen: 9, matches: 38, matchesPastCap: 10 });
  // Previous: .200 (at P - 24h), .5, 198.51.100.20, .8; unbans .201 (banned before the period), .200, .5, 198.51.100.20.
  assert.deepEqual(d.totals.previous, { bans: 4, unbans: 4, unbansByReason: { expired: 4 }, addressesBanned: 4, addressesSeen: 4, matches: 18, matchesPastCap: 4 });
  assert.deepEqual(d.rules, [
    { rule: 'sshd', bans: 7, previousBans: 3, unbans: 6 },
    { rule: 'dovecot', bans: 2, previousBans: 1, unbans: 2 },
    { rule: '(manual)', bans: 1, previousBans: 0, unbans: 1 },
    { rule: '(adopted)', bans: 1, previousBans: 0, unbans: 0 },
  ]);
  assert.deepEqual(d.addresses[0], { address: '203.0.113.5', bans: 3, matches: 18, step: 2, rules: ['sshd'] });
  assert.deepEqual(d.addresses[8], { address: '203.0.113.66', bans: 0, matches: 2, step: 0, rules: ['sshd'] });
  assert.deepEqual(d.networks[1], { network: '2001:db8:1:2::/64', bans: 3, addresses: 2, matches: 8 });
  assert.deepEqual(d.patterns[0], { pattern: 'sshd.json#2', rule: 'sshd', matches: 16, bans: 5 });
  assert.deepEqual(d.repeatOffenders, {
    total: 2,
    items: [
      { address: '203.0.113.5', bans: [{ since: P, seconds: 3600, step: 0, rule: 'sshd' }, { since: P + 3 * H, seconds: 7200, step: 1, rule: 'sshd' }, { since: P + 10 * H, seconds: 14400, step: 2, rule: 'sshd' }] },
      { address: '2001:db8:1:2::10', bans: [{ since: P + 5 * H, seconds: 3600, step: 0, rule: 'sshd' }, { since: P + 8 * H, seconds: 7200, step: 1, rule: 'sshd' }] },
    ],
  });
  // The history has its logins table (schema 3): none in the fixture.
  assert.deepEqual(d.logins, { recorded: true, total: 0, items: [] });
  assert.equal(d.timeline.bucketSeconds, 3600);
  assert.deepEqual(d.timeline.bans, [2, 1, 1, 1, 0, 2, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
});

test('bans per hour at the edges: the first instant in, the end out, an hour boundary in the next bucket, a last short bucket', async (t) => {
  const T = Date.UTC(2026, 0, 1, 0, 0);
  let seq = 0;
  const b = (address: string, since: number): HistoryRow => ({ kind: 'ban', seq: ++seq, address, family: 4, since, expiry: since + H, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#1', score: 1, count: 5, step: 0, cause: 'new' });
  const until = T + 2 * H + 30 * 60_000; // 2h30: three buckets, the last half an hour
  const h = await history(t, [b('192.0.2.1', T - 1), b('192.0.2.2', T), b('192.0.2.3', T + H - 1), b('192.0.2.4', T + H), b('192.0.2.5', T + 2 * H), b('192.0.2.6', until - 1), b('192.0.2.7', until)]);
  const d = (await buildReport(h.reader, T, until, { host: 'h' })).data;
  assert.deepEqual(d.timeline, { bucketSeconds: 3600, bans: [2, 1, 2] });
  // The previous 2h30 holds the ban at T - 1 only.
  assert.equal(d.totals.previous.bans, 1);
  // Longer periods get longer buckets, never more than 200 of them.
  assert.equal(bucketMs(8 * 24 * H), H);
  assert.equal(bucketMs(9 * 24 * H), 3 * H);
  assert.equal(bucketMs(90 * 24 * H), 12 * H);
  assert.equal(bucketMs(365 * 24 * H), 168 * H);
});

test('rules from the rule column when the history has one (per ban; a ban without one falls back to its pattern file)', async (t) => {
  const h = await history(t);
  const db = new Database(h.file);
  db.prepare("UPDATE bans SET rule = 'ssh-strict' WHERE pattern = 'sshd.json#2'").run();
  db.close();
  const d = (await buildReport(h.reader, P, UNTIL, { host: 'h' })).data;
  assert.equal(d.rulesFrom, 'rule');
  // sshd.json#2's bans (.5 x2, ::10 x2, 198.51.100.20; before: .5, .8) now count for ssh-strict.
  assert.deepEqual(d.rules.map((r) => [r.rule, r.bans, r.previousBans, r.unbans]), [
    ['ssh-strict', 5, 2, 5],
    ['dovecot', 2, 1, 2],
    ['sshd', 2, 1, 1],
    ['(manual)', 1, 0, 1],
    ['(adopted)', 1, 0, 0],
  ]);
  assert.deepEqual(d.patterns[0], { pattern: 'sshd.json#2', rule: 'ssh-strict', matches: 16, bans: 5 });
  assert.equal(ruleOf(null, 'postfix-sasl.json#12', 'threshold'), 'postfix-sasl');
  assert.equal(networkOf('2001:db8:aa:bb:cc::1'), '2001:db8:aa:bb::/64');
  assert.equal(networkOf('2001:db8:1:0:5::'), '2001:db8:1::/64');
  assert.equal(networkOf('2001:0:0:1::5'), '2001:0:0:1::/64');
  assert.equal(networkOf('1:2:3:4:5:6:7:8'), '1:2:3:4::/64');
  assert.equal(networkOf('::1'), '::/64');
  assert.equal(networkOf('64:ff9b::192.0.2.1'), '64:ff9b::/64');
  assert.equal(networkOf('198.51.100.200'), '198.51.100.0/24');
});

test('hostile names: escaped in the HTML, control characters gone from the text; nothing in the page to fetch', async (t) => {
  const evil = '<script>alert(1)</script><img src=x onerror=alert(2)>';
  let seq = 0;
  const rows: HistoryRow[] = [
    { kind: 'match', seq: ++seq, address: '203.0.113.9', at: P + H, pattern: `${evil}.json#1`, n: 1 },
    { kind: 'ban', seq: ++seq, address: '203.0.113.9', family: 4, since: P + H, expiry: P + 2 * H, origin: 'rule', reason: 'threshold', pattern: `${evil}.json#1`, score: 1, count: 5, step: 0, cause: 'new' },
    { kind: 'ban', seq: ++seq, address: '203.0.113.10', family: 4, since: P + H, expiry: P + 2 * H, origin: 'rule', reason: 'threshold', pattern: 'x.json#1', score: 1, count: 5, step: 0, cause: 'new' },
  ];
  const h = await history(t, rows);
  const db = new Database(h.file);
  db.prepare('UPDATE bans SET rule = ? WHERE address = ?').run('"><svg onload=alert(3)>\x1b[2J\u202e', '203.0.113.10');
  db.close();
  const r = await buildReport(h.reader, P, UNTIL, { host: 'gate<b>' });
  assert.doesNotMatch(r.html, /<script|<img|<svg onload|<b>/i);
  assert.match(r.html, /&#60;script&#62;alert\(1\)&#60;\/script&#62;&#60;img src=x onerror=alert\(2\)&#62;/);
  assert.match(r.html, /&#34;&#62;&#60;svg onload=alert\(3\)&#62;\?\[2J\?/);
  assert.match(r.html, /tallow report for gate&#60;b&#62;/);
  for (const bad of [/https?:/i, /<[^>]*\s(?:src|href|srcset|background)=/i, /url\(/i, /<link/i, /@import/i, /<script/i, /<iframe|<object|<embed|<img/i]) assert.doesNotMatch(r.html, bad);
  assert.doesNotMatch(r.text, /[\x00-\x08\x0b-\x1f\x7f\u202e]/);
  assert.match(r.text, /"><svg onload=alert\(3\)>\?\[2J\?/);
});

test('logins, once the history stores them: listed newest first; a hostile user name escaped and cleaned', async (t) => {
  const h = await history(t);
  const db = new Database(h.file);
  const add = db.prepare('INSERT INTO logins (at, address, username, method, fingerprint, rule) VALUES (?, ?, ?, ?, ?, ?)');
  add.run(P + H, '198.51.100.3', 'alice', 'publickey', 'SHA256:abc', 'ssh-logins');
  add.run(P + 2 * H, '2001:db8::3', 'r<b>oot\x1b[31m', 'password', null, 'ssh-logins');
  add.run(P - H, '198.51.100.3', 'bob', 'password', null, 'ssh-logins');
  db.close();
  const r = await buildReport(h.reader, P, UNTIL, { host: 'h' });
  assert.deepEqual(r.data.logins, {
    recorded: true,
    total: 2,
    items: [
      { at: P + 2 * H, rule: 'ssh-logins', user: 'r<b>oot\x1b[31m', address: '2001:db8::3', method: 'password', fingerprint: null },
      { at: P + H, rule: 'ssh-logins', user: 'alice', address: '198.51.100.3', method: 'publickey', fingerprint: 'SHA256:abc' },
    ],
  });
  const section = r.text.slice(r.text.indexOf('Logins seen by notify rules'), r.text.indexOf('Bans per hour'));
  assert.equal(
    section,
    [
      'Logins seen by notify rules',
      'TIME (UTC)   ADDRESS       USER          METHOD',
      '03-10 08:00  2001:db8::3   r<b>oot?[31m  password',
      '03-10 07:00  198.51.100.3  alice         publickey',
      '',
      '',
    ].join('\n'),
  );
  assert.match(r.html, /r&#60;b&#62;oot\?\[31m/);
});

test('an empty period: every section says so, the chart is replaced by a sentence', async (t) => {
  const h = await history(t);
  const r = await buildReport(h.reader, P + 400 * 24 * H, P + 401 * 24 * H, { host: 'h' });
  assert.match(r.text, /\nBans per rule\nnone\n\nTop addresses\nnone\n\nTop networks\nnone\n\nTop patterns\nnone\n\nRepeat offenders\nnone\n/);
  assert.match(r.html, /no bans in this period/);
  assert.doesNotMatch(r.html, /<svg/);
});

test('long names and addresses stay within 80 columns', async (t) => {
  let seq = 0;
  const rows: HistoryRow[] = [];
  for (const [i, a] of ['2001:db8:ffff:ffff:ffff:ffff:ffff:fff1', '2001:db8:ffff:ffff:ffff:ffff:ffff:fff2'].entries()) {
    for (const k of [0, 1]) {
      rows.push({ kind: 'ban', seq: ++seq, address: a, family: 6, since: P + (i * 2 + k) * H, expiry: P + (i * 2 + k + 1) * H, origin: 'rule', reason: 'threshold', pattern: `a-very-long-service-name-for-a-rule-file-${i}.json#12345`, score: 1, count: 5, step: k, cause: 'new' });
    }
  }
  // A repeat offender banned twelve times.
  for (let k = 0; k < 12; k++) {
    const a = '2001:db8:ffff:ffff:ffff:ffff:ffff:fff3';
    rows.push({ kind: 'ban', seq: ++seq, address: a, family: 6, since: P + 5 * H + k * 60_000, expiry: P + 5 * H + (k + 1) * 60_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#1', score: 1, count: 5, step: k, cause: 'new' });
  }
  const h = await history(t, rows);
  const db = new Database(h.file);
  db.prepare('INSERT INTO logins (at, address, username, method, fingerprint, rule) VALUES (?, ?, ?, ?, ?, ?)').run(P, rows[0].address, 'a-rather-long-user-name', 'keyboard-interactive/pam', null, 'r'.repeat(60));
  db.close();
  const r = await buildReport(h.reader, P, UNTIL, { host: 'h' });
  for (const line of r.text.split('\n')) assert.ok(line.length <= 80, `wider than 80 columns (${line.length}): ${line}`);
  assert.match(r.text, /a-very-long-service-name-for-a-rule-f\.\.\./);
  assert.match(r.text, /\n2001:db8:ffff:ffff:ffff:ffff:ffff:fff3    12  0 1 2 3 4 5 6 7 \.\.\.  1m 1m 1m/);
});

test('tallow report: the same text from the file with the daemon stopped; --format; bad options and no history', async (t) => {
  const h = await history(t);
  const conf = path.join(h.dir, 'tallow.conf');
  fs.writeFileSync(conf, `state_dir=${path.dirname(h.file)}\nsocket=${h.dir}/none.sock\n`);
  const run = async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await reportRun([...args, '--config', conf], { out: (s) => void out.push(s), err: (s) => void err.push(s) }, UNTIL + 5 * H);
    return { code, out: out.join(''), err: err.join('') };
  };
  const day = ['--since', '2026-03-10T06:00Z', '--until', '2026-03-11T06:00Z'];
  const text = await run(...day);
  assert.equal(text.code, 0, text.err);
  assert.equal(text.out, EXPECTED.replace('gate.example', os.hostname()));
  const json = await run(...day, '--format', 'json', '--top', '2');
  assert.equal(JSON.parse(json.out).addresses.length, 2);
  const html = await run(...day, '--format=html');
  assert.match(html.out, /^<!DOCTYPE html>/);
  // Default: the 24 hours before now (here UNTIL + 5h): the bans from P + 5h on (::10 x2, ::99, .5, 198.51.100.7, 198.51.100.20, .200).
  const last = JSON.parse((await run('--format', 'json')).out);
  assert.deepEqual(last.period, { since: P + 5 * H, until: UNTIL + 5 * H });
  assert.equal(last.totals.current.bans, 7);

  for (const [args, msg] of [
    [['--format', 'pdf'], /--format must be text, json or html, not "pdf"/],
    [['--since', '2026-03-11', '--until', '2026-03-10'], /the period is empty/],
    [['--until', 'yesterday'], /--until: expected a time ago/],
    [['--top', '0'], /--top must be a whole number from 1 to 100/],
    [['extra'], /unexpected argument "extra"/],
  ] as [string[], RegExp][]) {
    const r = await run(...args);
    assert.equal(r.code, 64, args.join(' '));
    assert.match(r.err, msg);
  }
  fs.writeFileSync(conf, `state_dir=${h.dir}/elsewhere\n`);
  const none = await run();
  assert.equal(none.code, 1);
  assert.match(none.err, /no history yet \(.*elsewhere\/history\.sqlite does not exist/);
  fs.writeFileSync(conf, 'history=off\n');
  assert.match((await run()).err, /the history is off/);
});
