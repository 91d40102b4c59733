// The state log (issue 12.3): a save appends only what changed to state.log; a crash mid-append
// loses at most that save; a log that follows another snapshot is ignored; the log is folded into
// a new snapshot once it outgrows the last one; a file of the version before the log loads as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SNAPSHOT_PIECE } from '../../src/state-format';
import { LOG_FLOOR, StateStore, type SavedBan, type SavedRecord, type State, type StateDelta } from '../../src/state';
import { StateListener } from '../../src/listeners/state';
import { Ledger } from '../../src/ledger';
import { Metrics } from '../../src/metrics';
import { defaultRule, Scoring } from '../../src/scoring';

function tmpdir(t: { after(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-statelog-${process.pid}-`));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

const T = 1_764_662_400_000;

function rec(address: string, extra: Partial<SavedRecord> = {}): SavedRecord {
  return { address, family: address.includes(':') ? 6 : 4, pool: '', score: 0.4, count: 2, first: T - 60_000, last: T - 1000, banned: false, pattern: null, ...extra };
}
function ban(address: string, extra: Partial<SavedBan> = {}): SavedBan {
  return { address, family: address.includes(':') ? 6 : 4, scope: '', rule: 'sshd', expiry: T + 3_600_000, since: T, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5, ...extra };
}
const delta = (saved: number, cursor: string, d: Partial<StateDelta>): StateDelta => ({ saved, cursor, records: [], recordsGone: [], bans: [], bansGone: [], ...d });

/** Order-free comparison: the files keep no order anyone relies on. */
function sorted(s: State | null): unknown {
  if (!s) return null;
  const by = (x: { address: string; pool?: string; scope?: string }) => `${x.pool ?? x.scope}|${x.address}`;
  return { ...s, records: [...s.records].sort((a, b) => by(a).localeCompare(by(b))), bans: [...s.bans].sort((a, b) => by(a).localeCompare(by(b))) };
}

// A snapshot and three saves after it, and (written out by hand, not by the code under test) the
// state after each.
const A = '192.0.2.1';
const B = '2001:db8::b';
const C = '198.51.100.3';
const NET = '2001:db8:1::/64';
const S0: State = { version: 3, saved: T, cursor: 'c0', records: [rec(A, { banned: true, score: 1, count: 5, pattern: 'sshd.json#2' }), rec(B)], bans: [ban(A)] };
const B1 = rec(B, { banned: true, score: 1, count: 5, last: T + 1000, pattern: 'sshd.json#2' });
const D1 = delta(T + 2000, 'c1', { records: [B1], bans: [ban(B, { since: T + 1000 })] });
// A unbanned by hand (its record forgotten), C seen once
const D2 = delta(T + 4000, 'c2', { records: [rec(C, { score: 0.2, count: 1 })], recordsGone: [{ address: A, pool: '' }], bansGone: [{ address: A, scope: '' }] });
// B's ban ended; a network of the postfix pool banned on its ports; A seen again
const NETREC = rec(NET, { pool: 'postfix', banned: true, score: 2, count: 4, pattern: 'postfix.json#1' });
const NETBAN = ban(NET, { scope: 'p25_465_587_tcp', rule: 'postfix', pattern: 'postfix.json#1', score: 2, count: 4 });
const D3 = delta(T + 6000, 'c3', { records: [NETREC, rec(A, { score: 0.2, count: 1, first: T + 5000, last: T + 5000 })], bans: [NETBAN], bansGone: [{ address: B, scope: '' }] });
const EXPECTED: State[] = [
  S0,
  { version: 3, saved: T + 2000, cursor: 'c1', records: [rec(A, { banned: true, score: 1, count: 5, pattern: 'sshd.json#2' }), B1], bans: [ban(A), ban(B, { since: T + 1000 })] },
  { version: 3, saved: T + 4000, cursor: 'c2', records: [B1, rec(C, { score: 0.2, count: 1 })], bans: [ban(B, { since: T + 1000 })] },
  { version: 3, saved: T + 6000, cursor: 'c3', records: [B1, rec(C, { score: 0.2, count: 1 }), NETREC, rec(A, { score: 0.2, count: 1, first: T + 5000, last: T + 5000 })], bans: [NETBAN] },
];

async function written(dir: string): Promise<{ snapshot: Buffer; log: Buffer }> {
  const s = new StateStore(dir);
  await s.save(S0);
  for (const d of [D1, D2, D3]) await s.append(d);
  return { snapshot: fs.readFileSync(s.file), log: fs.readFileSync(s.logFile) };
}

test('snapshot + three appended saves load as the state after the third', async (t) => {
  const dir = tmpdir(t);
  await written(dir);
  const r = new StateStore(dir).load();
  assert.equal(r.problem, undefined);
  assert.equal(r.note, undefined);
  assert.deepEqual(sorted(r.state), sorted(EXPECTED[3]));
});

test('the log cut at every byte offset: always the state after the saves whose line is whole, never a crash or a file set aside', async (t) => {
  const { snapshot, log } = await written(tmpdir(t));
  const ends: number[] = [];
  for (let i = 0; i < log.length; i++) if (log[i] === 0x0a) ends.push(i + 1);
  assert.equal(ends.length, 4, 'a first line and one line per save');
  const dir = tmpdir(t);
  for (let cut = 0; cut <= log.length; cut++) {
    fs.writeFileSync(path.join(dir, 'state.json'), snapshot);
    fs.writeFileSync(path.join(dir, 'state.log'), log.subarray(0, cut));
    const store = new StateStore(dir);
    const r = store.load();
    const whole = ends.filter((e) => e <= cut).length;
    const saves = Math.max(0, whole - 1);
    assert.equal(r.problem, undefined, `cut at ${cut}`);
    assert.deepEqual(sorted(r.state), sorted(EXPECTED[saves]), `cut at ${cut}: the state after ${saves} saves`);
    const clean = whole >= 1 && ends.includes(cut);
    assert.equal(store.canAppend, clean, `cut at ${cut}: appends go on only after a whole line`);
    if (!clean) assert.match(r.note ?? '', /cut short|no complete first line|is empty/, `cut at ${cut}`);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['state.json', 'state.log'], `cut at ${cut}: nothing set aside`);
  }
});

test('after a torn last save the next save writes a whole snapshot, and saves append after it again', async (t) => {
  const dir = tmpdir(t);
  const { log } = await written(dir);
  fs.writeFileSync(path.join(dir, 'state.log'), log.subarray(0, log.length - 5));
  const s = new StateStore(dir);
  const loaded = s.load().state!;
  assert.deepEqual(sorted(loaded), sorted(EXPECTED[2]));
  assert.equal(s.canAppend, false);
  await assert.rejects(s.append(D3), /does not follow state\.json/);
  await s.save(loaded);
  assert.equal(s.canAppend, true);
  await s.append(D3);
  assert.deepEqual(sorted(new StateStore(dir).load().state), sorted(EXPECTED[3]));
});

test('a log that follows another snapshot is ignored (a crash between a compaction\'s two renames)', async (t) => {
  const dir = tmpdir(t);
  const s = new StateStore(dir);
  await s.save(S0);
  await s.append(D2); // lifts A's ban
  const old = fs.readFileSync(s.logFile);
  // A new snapshot in which A is banned again; then, as if the crash came before its log replaced the old one:
  const S1: State = { ...S0, saved: T + 9000, cursor: 'c9', bans: [ban(A, { since: T + 8000, expiry: T + 8_000_000 })] };
  await s.save(S1);
  fs.writeFileSync(s.logFile, old);
  const r = new StateStore(dir).load();
  assert.deepEqual(r.state, S1, 'the old log\'s unban is not applied to the newer snapshot');
  assert.match(r.note ?? '', /state\.log does not follow state\.json.*ignored/);
});

test('a log beside a snapshot of the version before the log is ignored', async (t) => {
  const dir = tmpdir(t);
  await written(dir);
  fs.copyFileSync(path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'state-v3-before-log.json'), path.join(dir, 'state.json'));
  const r = new StateStore(dir).load();
  assert.equal(r.state?.cursor, 's=0123456789abcdef;i=2a;b=fedcba98;m=1;t=5f;x=77');
  assert.match(r.note ?? '', /does not follow state\.json/);
});

test('a damaged line with whole saves after it: the log is set aside, the saves before it applied', async (t) => {
  const dir = tmpdir(t);
  const { log } = await written(dir);
  const lines = log.toString('utf8').split('\n');
  lines[2] = lines[2].replace('"c2"', '"cX"'); // the checksum no longer holds
  fs.writeFileSync(path.join(dir, 'state.log'), lines.join('\n'));
  const s = new StateStore(dir);
  const r = s.load();
  assert.deepEqual(sorted(r.state), sorted(EXPECTED[1]));
  assert.match(r.note ?? '', /state log .*state\.log line 3 is damaged; moved aside to .*state\.log\.corrupt-\d{8}T\d{6}\.\d{3}Z; the 1 saves before it were applied/);
  assert.equal(s.canAppend, false);
  const names = fs.readdirSync(dir).sort();
  assert.equal(names.length, 2);
  assert.equal(names[0], 'state.json');
  assert.match(names[1], /^state\.log\.corrupt-/);
  assert.equal(fs.readFileSync(path.join(dir, names[1]), 'utf8'), lines.join('\n'), 'kept as it was');
});

test('a symlink as state.log is not followed: set aside, the snapshot used', async (t) => {
  const dir = tmpdir(t);
  await written(dir);
  const target = path.join(tmpdir(t), 'elsewhere');
  fs.writeFileSync(target, 'secret\n');
  fs.rmSync(path.join(dir, 'state.log'));
  fs.symlinkSync(target, path.join(dir, 'state.log'));
  const s = new StateStore(dir);
  const r = s.load();
  assert.deepEqual(r.state, S0);
  assert.match(r.note ?? '', /is a symbolic link \(not followed\); moved aside/);
  assert.equal(s.canAppend, false);
  await s.save(S0);
  assert.equal(fs.readFileSync(target, 'utf8'), 'secret\n');
  assert.equal(fs.lstatSync(path.join(dir, 'state.log')).isFile(), true);
});

test('a state file written by the version before the log loads unchanged; the first save writes a snapshot and its log', async (t) => {
  const dir = tmpdir(t);
  fs.copyFileSync(path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'state-v3-before-log.json'), path.join(dir, 'state.json'));
  const s = new StateStore(dir);
  const r = s.load();
  const saved = 1_764_662_400_000;
  assert.deepEqual(r, {
    state: {
      version: 3,
      saved,
      cursor: 's=0123456789abcdef;i=2a;b=fedcba98;m=1;t=5f;x=77',
      records: [
        { address: '192.0.2.10', family: 4, pool: '', score: 0.6, count: 3, first: 1764662000000, last: 1764662390000, banned: false, pattern: null },
        { address: '2001:db8::10', family: 6, pool: '', score: 1, count: 5, first: 1764662100000, last: 1764662395000, banned: true, pattern: 'sshd.json#2' },
        { address: '2001:db8:1::/64', family: 6, pool: 'postfix', score: 2, count: 4, first: 1764662200000, last: 1764662399000, banned: true, pattern: 'postfix.json#1' },
      ],
      bans: [
        { address: '2001:db8::10', family: 6, scope: '', rule: 'sshd', expiry: 1764666000000, since: 1764662395000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5 },
        { address: '2001:db8:1::/64', family: 6, scope: 'p25_465_587_tcp', rule: 'postfix', expiry: 1764748799000, since: 1764662399000, origin: 'rule', reason: 'threshold', pattern: 'postfix.json#1', score: 2, count: 4 },
        { address: '203.0.113.5', family: 4, scope: '', rule: null, expiry: 1764749000000, since: 1764662300000, origin: 'manual', reason: 'manual', pattern: 'manual', score: 0, count: 0 },
      ],
    },
  });
  assert.equal(s.canAppend, false, 'no log follows it: the first save is whole');
  await s.save(r.state!);
  await s.append(delta(saved + 1000, 'next', { bansGone: [{ address: '203.0.113.5', scope: '' }] }));
  const again = new StateStore(dir).load().state!;
  assert.equal(again.cursor, 'next');
  assert.deepEqual(again.bans.map((b) => b.address), ['2001:db8::10', '2001:db8:1::/64']);
});

// The listener with a real Scoring and Ledger: what a save writes, and when it compacts.
function daemonLike(dir: string) {
  const metrics = new Metrics();
  const errors: string[] = [];
  let listener: StateListener | null = null;
  const ledger = new Ledger({ emit: (e) => listener?.handle([e]) });
  const scoring = new Scoring({ threshold: 1, expires: 3600, maxRecords: 1_000_000, isAllowed: () => false, bannedUntil: (t, s) => ledger.expiryOf(t, s) });
  const rule = defaultRule({ threshold: 1, expires: 3600 });
  const store = new StateStore(dir);
  listener = new StateListener(store, { cursor: () => 'cur', scoring, ledger }, metrics, (m) => errors.push(m), null);
  const now = Date.now();
  let n = 0;
  /** `count` new attackers, each seen 5 times (0.2 each: the 5th bans). */
  const attack = (count: number) => {
    for (let i = 0; i < count; i++, n++) {
      const address = `2001:db8:${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}::1`;
      for (let k = 0; k < 5; k++) {
        for (const d of scoring.observe({ address, family: 6, pattern: { name: 'sshd.json#2', score: 0.2, ban: 0 } }, rule, now)) {
          if (d.action === 'ban') ledger.ban({ ...d, origin: 'rule' }, now);
        }
      }
    }
  };
  return { store, listener, ledger, scoring, attack, errors };
}

function lastLine(file: string): { r: unknown[]; rx: unknown[]; b: unknown[]; bx: unknown[] } {
  const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
  return JSON.parse(lines[lines.length - 1].slice(17)) as { r: unknown[]; rx: unknown[]; b: unknown[]; bx: unknown[] };
}

test('a save appends only the records and bans that changed; an unban by hand is written as gone', async (t) => {
  const dir = tmpdir(t);
  const d = daemonLike(dir);
  d.attack(50);
  await d.listener.saveNow(); // the first save of a fresh store: a whole snapshot
  const snap = fs.readFileSync(d.store.file);
  assert.equal(fs.readFileSync(d.store.logFile, 'utf8').split('\n').length, 2, 'an empty log: its first line only');
  d.attack(10);
  await d.listener.saveNow();
  assert.deepEqual(fs.readFileSync(d.store.file), snap, 'state.json not rewritten');
  const line = lastLine(d.store.logFile);
  assert.equal(line.b.length, 10, 'the 10 new bans only');
  assert.equal(line.r.length, 10, 'the 10 new records only');
  const victim = [...d.ledger.values()][3].address;
  d.ledger.unbanAll(victim, 'manual', Date.now());
  d.scoring.unban(victim, 6);
  d.listener.changed();
  await d.listener.saveNow();
  const gone = lastLine(d.store.logFile);
  assert.deepEqual([gone.r, gone.b, gone.rx, gone.bx], [[], [], [[victim, '']], [[victim, '']]], 'the unban: its record and ban gone, nothing else');
  const back = new StateStore(dir).load().state!;
  assert.equal(back.bans.length, 59);
  assert.equal(back.records.length, 59);
  assert.equal(back.bans.some((b) => b.address === victim) || back.records.some((r) => r.address === victim), false);
  assert.deepEqual(new Set(back.bans.map((b) => b.address)), new Set([...d.ledger.values()].map((b) => b.address)));
  assert.deepEqual(d.errors, []);
});

test('once the log outgrows its snapshot (and LOG_FLOOR) the next save is a new snapshot and an empty log', async (t) => {
  const dir = tmpdir(t);
  const d = daemonLike(dir);
  d.attack(100);
  await d.listener.saveNow();
  let snapshots = 1;
  let ino = fs.statSync(d.store.file).ino;
  let saves = 1;
  let logBefore = 0;
  while (snapshots < 2) {
    logBefore = fs.statSync(d.store.logFile).size;
    d.attack(500);
    await d.listener.saveNow();
    saves++;
    if (fs.statSync(d.store.file).ino !== ino) {
      snapshots++;
      ino = fs.statSync(d.store.file).ino;
    }
    assert.ok(saves < 100, 'a compaction came');
  }
  assert.ok(logBefore > LOG_FLOOR, `compacted only past the floor (log was ${logBefore} bytes)`);
  assert.ok(saves > 3, 'saves in between appended');
  assert.equal(fs.readFileSync(d.store.logFile, 'utf8').split('\n').length, 2, 'the new log: its first line only');
  const back = new StateStore(dir).load().state!;
  assert.equal(back.bans.length, d.ledger.size);
  assert.deepEqual(new Set(back.bans.map((b) => b.address)), new Set([...d.ledger.values()].map((b) => b.address)));
  assert.equal(back.records.length, d.scoring.size);
  assert.deepEqual(d.errors, []);
});

test('a failed append is followed by a whole snapshot: nothing it held is lost', async (t) => {
  const dir = tmpdir(t);
  const d = daemonLike(dir);
  d.attack(5);
  await d.listener.saveNow();
  d.attack(5);
  fs.rmSync(d.store.logFile); // appends never create the log: this one fails
  await d.listener.saveNow();
  assert.equal(d.errors.length, 1);
  assert.match(d.errors[0], /cannot save state to .*state\.log: ENOENT/);
  await d.listener.saveNow(); // the retry: everything
  const back = new StateStore(dir).load().state!;
  assert.equal(back.bans.length, 10);
  assert.equal(back.records.length, 10);
});

test('a snapshot written in pieces reads back whole: empty lists, one piece, at and across piece boundaries', async (t) => {
  const dir = tmpdir(t);
  const s = new StateStore(dir);
  for (const n of [0, 1, SNAPSHOT_PIECE, SNAPSHOT_PIECE + 1, 2 * SNAPSHOT_PIECE + 3]) {
    const addr = (i: number) => `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::9`;
    const st: State = {
      version: 3,
      saved: T,
      cursor: n ? `c${n}` : null,
      records: Array.from({ length: n }, (_, i) => rec(addr(i), { count: i })),
      bans: Array.from({ length: Math.max(0, n - 1) }, (_, i) => ban(addr(i), { count: i })),
    };
    await s.save(st);
    const back = new StateStore(dir).load();
    assert.equal(back.note, undefined);
    assert.deepEqual(back.state, st, `${n} records, ${Math.max(0, n - 1)} bans`);
  }
});

test('a save of more changes than one piece is still one line, and reads back whole', async (t) => {
  const dir = tmpdir(t);
  const s = new StateStore(dir);
  await s.save(S0);
  const n = 2 * SNAPSHOT_PIECE + 1;
  const addr = (i: number) => `2001:db8:7:${(i & 0xffff).toString(16)}:${(i >> 16).toString(16)}::1`;
  const records = Array.from({ length: n }, (_, i) => rec(addr(i), { count: i }));
  const bans = Array.from({ length: n }, (_, i) => ban(addr(i), { count: i }));
  await s.append(delta(T + 1000, 'big', { records, bans, recordsGone: [{ address: B, pool: '' }] }));
  assert.equal(fs.readFileSync(s.logFile, 'utf8').split('\n').length, 3, 'its first line, one save, the end');
  const back = new StateStore(dir).load();
  assert.equal(back.note, undefined);
  assert.deepEqual(sorted(back.state), sorted({ ...S0, saved: T + 1000, cursor: 'big', records: [S0.records[0], ...records], bans: [...S0.bans, ...bans] }));
});
