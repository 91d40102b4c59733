// The daemon's wiring, in process: a dry run (no firewall touched) over an empty journal
// directory, fed batches directly. Checks what the stages' outputs become: ban/unban lines, one
// firewall batch, catch-up skipping, control requests, SIGHUP-style reloads, the record dump.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon } from '../../src/daemon';
import { Log } from '../../src/log';
import type { JournalEntry } from '../../src/journal';

const SSHD = '/usr/sbin/sshd';
const PATTERNS = [
  {
    filter: `_EXE=${SSHD}`,
    items: [
      { ban: 2, score: 0.1, pattern: '^Failed password for shortban from <IP> port <PORT> ssh2$' },
      { ban: 0, score: 0.5, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' },
    ],
  },
];

function setup(t: { after(fn: () => unknown): void }, extra: string[] = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-daemon-${process.pid}-`));
  const shipped = path.join(dir, 'shipped');
  const local = path.join(dir, 'local');
  const journal = path.join(dir, 'journal');
  for (const d of [shipped, local, journal]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(shipped, 'sshd.json'), JSON.stringify(PATTERNS));
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, [`patterns_dir=${local}`, `state_dir=${dir}/state`, `socket=${dir}/sock`, 'expires=60', 'whitelist=192.0.2.1', ...extra, ''].join('\n'));
  const lines: string[] = [];
  const log = new Log({ journal: false, timestamps: false, write: (_l, s) => lines.push(s) });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { dir, conf, lines, log, opts: { configFile: conf, explicitConfig: true, journalDir: journal, dryRun: true, log, shippedPatterns: shipped } };
}

let seq = 0;
function entry(message: string, ageMs = 0, exe = SSHD): JournalEntry {
  return { cursor: `c${seq++}`, realtime: (Date.now() - ageMs) * 1000, fields: { MESSAGE: message, _EXE: exe } };
}
const failed = (a: string, user = 'root') => entry(`Failed password for ${user} from ${a} port 4242 ssh2`);

test('matches become one ban line and one firewall batch at the threshold; allowlisted and foreign entries never', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  assert.ok(s.lines.some((l) => /^info: journal: directory \S+journal, starting at tail$/.test(l)), s.lines.join('\n'));
  d.process([failed('203.0.113.9'), failed('192.0.2.1'), failed('192.0.2.1'), failed('2001:db8::9', 'x'), entry('Failed password for root from 203.0.113.7 port 1 ssh2', 0, '/usr/bin/logger')]);
  assert.equal(s.lines.filter((l) => l.includes(' ban ')).length, 0);
  // IPv4-mapped IPv6 is the IPv4 address.
  d.process([failed('::ffff:203.0.113.9'), failed('2001:db8::9'), failed('192.0.2.1')]);
  const bans = s.lines.filter((l) => /^info: ban /.test(l));
  assert.deepEqual(bans, [
    'info: ban address=203.0.113.9 seconds=60 score=1 count=2 pattern=sshd.json#2 reason=threshold rule=sshd',
    'info: ban address=2001:db8::9 seconds=60 score=1 count=2 pattern=sshd.json#2 reason=threshold rule=sshd',
  ]);
  const st = d.status();
  assert.equal(st.entries, 8);
  assert.equal(st.matches, 7, 'pattern matches, allowlisted ones included (they are not scored)');
  assert.equal(st.bansActive, 2);
  assert.equal(st.backend, 'dryrun');
  const list = d.list();
  assert.deepEqual(list.map((i) => [i.address, i.count, i.pattern]).sort(), [['2001:db8::9', 2, 'sshd.json#2'], ['203.0.113.9', 2, 'sshd.json#2']]);
});

test('catching up: entries older than expires are skipped', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  const old = (a: string) => entry(`Failed password for root from ${a} port 1 ssh2`, 61_000);
  d.process([old('198.51.100.1'), old('198.51.100.1'), old('198.51.100.1')]);
  assert.equal(s.lines.filter((l) => l.includes(' ban ')).length, 0);
  assert.equal(d.status().skipped, 3);
});

test('an instant ban never shortens a longer one; it is logged as unbanned when its time passes', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  d.process([failed('198.51.100.5', 'shortban')]);
  assert.ok(s.lines.includes('info: ban address=198.51.100.5 seconds=2 score=0.10 count=1 pattern=sshd.json#1 reason=instant rule=sshd'), s.lines.join('\n'));
  await new Promise((r) => setTimeout(r, 2100));
  d.process([]);
  assert.ok(s.lines.includes('info: unban address=198.51.100.5 reason=expired pattern=sshd.json#1 rule=sshd'), s.lines.join('\n'));
  d.process([failed('198.51.100.6'), failed('198.51.100.6')]);
  const n = s.lines.length;
  d.process([failed('198.51.100.6', 'shortban')]);
  assert.equal(s.lines.slice(n).filter((l) => l.includes(' ban ')).length, 0, 'no 2 s ban over a 60 s one');
});

test('control requests: ban, list, unban, status', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  const b = await d.handle({ cmd: 'ban', address: '203.0.113.77', seconds: 120 });
  assert.deepEqual(b, { ok: true, result: { address: '203.0.113.77', family: 4, seconds: 120 } });
  const l = await d.handle({ cmd: 'list' });
  assert.ok(l.ok);
  const items = (l as { result: { address: string; remaining: number; pattern: string }[] }).result;
  assert.equal(items.length, 1);
  assert.equal(items[0].pattern, 'manual');
  assert.ok(items[0].remaining > 110 && items[0].remaining <= 120);
  assert.deepEqual(await d.handle({ cmd: 'unban', address: '203.0.113.77' }), { ok: true, result: { address: '203.0.113.77', family: 4, wasBanned: true, lifted: ['all'] } });
  assert.deepEqual(await d.handle({ cmd: 'list' }), { ok: true, result: [] });
  assert.deepEqual(await d.handle({ cmd: 'unban', address: '203.0.113.78' }), { ok: true, result: { address: '203.0.113.78', family: 4, wasBanned: false, lifted: [] } });
  const bad = await d.handle({ cmd: 'ban', address: 'not-an-address' });
  assert.equal(bad.ok, false);
  const st = await d.handle({ cmd: 'status' });
  assert.ok(st.ok && (st.result as { version: string }).version.length > 0);
});

test('reload: a broken config is refused and the old one keeps working; a good one applies, records kept', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  d.process([failed('198.51.100.9')]);
  const good = fs.readFileSync(s.conf, 'utf8');
  fs.writeFileSync(s.conf, good + 'threshold=abc\n');
  assert.equal(d.reload(), false);
  assert.ok(s.lines.some((l) => /^error: reload refused, still running the previous configuration: \S+tallow\.conf:\d+: threshold: /.test(l)), s.lines.join('\n'));
  fs.writeFileSync(s.conf, good + 'threshold=0.5\n');
  assert.equal(d.reload(), true);
  // The record (0.5 from before) is kept; with threshold 0.5 the next match bans.
  d.process([failed('198.51.100.9')]);
  assert.ok(s.lines.some((l) => l.startsWith('info: ban address=198.51.100.9 seconds=60 score=1 count=2')), s.lines.join('\n'));
  fs.writeFileSync(s.conf, good.replace(/^socket=.*$/m, `socket=${s.dir}/other.sock`));
  assert.equal(d.reload(), true);
  assert.ok(s.lines.some((l) => /take effect only after a restart: socket/.test(l)));
});

test('dump (SIGUSR1): one line per record', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  d.process([failed('198.51.100.20'), failed('2001:db8::20', 'u')]);
  d.dump();
  assert.ok(s.lines.includes('info: record table: 2 records, 0 active bans'));
  assert.equal(s.lines.filter((l) => /^info: record address=(198\.51\.100\.20|2001:db8::20) score=0\.50 count=1 /.test(l)).length, 2, s.lines.join('\n'));
});

test('start-up errors are thrown for the CLI to report: bad config (78), bad patterns (78)', async (t) => {
  const s = setup(t, ['bogus=1']);
  await assert.rejects(Daemon.start(s.opts), (e: Error & { exitCode?: number }) => e.exitCode === 78 && /tallow\.conf:\d+: unknown key 'bogus'/.test(e.message));
  const s2 = setup(t);
  fs.writeFileSync(path.join(s2.dir, 'local', 'x.json'), '[{"filter":"_EXE=/x","items":[{"ban":0,"score":1,"pattern":"(?=a)(a+)$"}]}]');
  await assert.rejects(Daemon.start(s2.opts), (e: Error & { exitCode?: number }) => e.exitCode === 78 && /x\.json/.test(e.message));
});

test('addresses that must never be banned are refused whoever asks: a log line, the socket, the state file', async (t) => {
  const s = setup(t, ['whitelist=192.0.2.1']);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  for (const [address, why] of [['0.0.0.0', /unspecified/], ['::', /unspecified/], ['224.0.0.1', /multicast/], ['255.255.255.255', /broadcast/], ['127.0.0.5', /loopback/], ['ff02::1', /multicast/]] as const) {
    const r = await d.handle({ cmd: 'ban', address });
    assert.equal(r.ok, false, address);
    assert.match(!r.ok ? r.error : '', why, address);
  }
  d.process([failed('0.0.0.0'), failed('0.0.0.0'), failed('203.0.113.30'), failed('203.0.113.30')]);
  assert.ok(s.lines.some((l) => /^warn: not banned, never banned: 0\.0\.0\.0 \(unspecified\)/.test(l)), s.lines.join('\n'));
  assert.deepEqual(d.list().map((i) => i.address), ['203.0.113.30'], 'the others still banned');
  assert.deepEqual(d.ledger.restore([{ address: '127.0.0.1', family: 4, expiry: Date.now() + 60_000, since: Date.now(), origin: 'manual', reason: 'manual', pattern: 'manual', score: 0, count: 0 }], Date.now()), 0);
  assert.equal((d.metrics.json().bans_refused_total as Record<string, number>).unspecified >= 3, true);
});
