// State file: round trip, atomic save, and every kind of unreadable file set aside (never a crash,
// never a silent reset).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { StateStore, StateSaver, checkStateDir, liveRecords, type SavedRecord, type State } from '../../src/state';

function tmpdir(t: { after(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-state-${process.pid}-`));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function rec(address: string, extra: Partial<SavedRecord> = {}): SavedRecord {
  return {
    address, family: address.includes(':') ? 6 : 4, pool: '', score: 0.4, count: 2, first: 1_700_000_000_000,
    last: 1_700_000_100_000, banned: false, pattern: null, ...extra,
  };
}

function sample(): State {
  return {
    version: 3,
    saved: 1_700_000_200_000,
    cursor: 's=abc;i=1f;b=def;m=12;t=5f;x=99',
    records: [
      rec('192.0.2.7'),
      rec('2001:db8::7', { last: 1_700_000_200_000, banned: true, score: 1.2, count: 6, pattern: 'sshd.json#2' }),
    ],
    bans: [
      { address: '2001:db8::7', family: 6, scope: '', rule: 'sshd', expiry: 1_700_003_800_000, since: 1_700_000_200_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1.2, count: 6 },
      { address: '203.0.113.9', family: 4, scope: '', rule: null, expiry: 1_700_000_210_000, since: 1_700_000_150_000, origin: 'manual', reason: 'manual', pattern: 'manual', score: 0, count: 0 },
    ],
  };
}

function asideFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.startsWith('state.json.corrupt-'));
}

test('missing file: no state, no problem', (t) => {
  const s = new StateStore(tmpdir(t));
  assert.deepEqual(s.load(), { state: null });
});

test('save then load gives the same state back, file mode 0600, no temp file left', async (t) => {
  const dir = tmpdir(t);
  const s = new StateStore(dir);
  await s.save(sample());
  assert.deepEqual(s.load(), { state: sample() });
  assert.equal(fs.statSync(s.file).mode & 0o777, 0o600);
  assert.equal(fs.statSync(s.logFile).mode & 0o777, 0o600);
  // The snapshot and its (empty) log: state-log.test.ts
  assert.deepEqual(fs.readdirSync(dir).sort(), ['state.json', 'state.log']);
});

test('a second save replaces the first whole', async (t) => {
  const s = new StateStore(tmpdir(t));
  await s.save(sample());
  const next = { ...sample(), cursor: 'later', records: [rec('198.51.100.4')], bans: [] };
  await s.save(next);
  assert.deepEqual(s.load().state, next);
});

test('concurrent saves are serialised; the last one wins', async (t) => {
  const s = new StateStore(tmpdir(t));
  const states = [1, 2, 3, 4, 5].map((n) => ({ ...sample(), cursor: `c${n}` }));
  await Promise.all(states.map((st) => s.save(st)));
  assert.equal(s.load().state?.cursor, 'c5');
});

const bad: [string, (good: string) => string | Buffer, RegExp][] = [
  ['truncated', (g) => g.slice(0, Math.floor(g.length / 2)), /not valid JSON/],
  ['empty', () => '', /is empty/],
  ['garbage', () => Buffer.from([0x00, 0xff, 0x13, 0x37, 0x80, 0x0a]), /not valid JSON/],
  ['wrong version', (g) => g.replace('"version":3', '"version":4'), /version 4 is not 1 to 3/],
  ['an unknown ban origin', (g) => g.replace('"manual","manual",0,', '"hacker","manual",0,'), /ban 2 is malformed/],
  ['no version', () => '{"saved":1,"cursor":null,"records":[],"bans":[]}', /"version" is missing or not 1 to 3/],
  ['a JSON array', () => '[]', /not a JSON object/],
  ['a malformed record', (g) => g.replace('"192.0.2.7"', '"not-an-address"'), /record 1 is malformed/],
  ['a malformed ban', (g) => g.replace('"203.0.113.9",', '"203.0.113.9","x",'), /ban 2 is malformed/],
  ['a network not in canonical form', (g) => g.replace('"192.0.2.7"', '"192.0.2.7/24"'), /record 1 is malformed/],
  ['a bad scope id', (g) => g.replace('"manual",0,0,1700000150000,""', '"manual",0,0,1700000150000,"P 22"'), /ban 2 is malformed/],
];

for (const [name, spoil, why] of bad) {
  test(`${name} state file is reported, moved aside, and the next save works`, async (t) => {
    const dir = tmpdir(t);
    const s = new StateStore(dir);
    await s.save(sample());
    const good = fs.readFileSync(s.file, 'utf8');
    const spoilt = spoil(good);
    fs.writeFileSync(s.file, spoilt);
    const r = s.load();
    assert.equal(r.state, null);
    assert.match(r.problem ?? '', why);
    assert.match(r.problem ?? '', /moved aside to .*state\.json\.corrupt-\d{8}T\d{6}\.\d{3}Z/);
    const aside = asideFiles(dir);
    assert.equal(aside.length, 1);
    assert.deepEqual(fs.readFileSync(path.join(dir, aside[0])), Buffer.from(spoilt), 'the bad file is kept as it was');
    assert.equal(fs.existsSync(s.file), false);
    assert.deepEqual(s.load(), { state: null }, 'after setting aside, a fresh start');
    await s.save(sample());
    assert.deepEqual(s.load().state, sample());
  });
}

test('a problem never repeats what the daemon appends ("starting without saved state")', async (t) => {
  const dir = tmpdir(t);
  const s = new StateStore(dir);
  fs.writeFileSync(s.file, '{"version":1,"saved":1,');
  const r = s.load();
  assert.match(r.problem ?? '', /is damaged: not valid JSON \(it ends too early\); moved aside to /);
  assert.doesNotMatch(r.problem ?? '', /starting without saved state/);
});

// Whatever the damaged file holds (it may be another file's bytes), none of it reaches the log line.
const SECRET = 'root:$6$S3CRETSALT$hashhashhash:19000:0:99999:7:::';
const leaky: [string, string][] = [
  ['text that is not JSON', `${SECRET}\n`],
  ['JSON with a bad token inside', `{"version":1,"saved":${SECRET}}`],
  ['a string version', JSON.stringify({ version: SECRET, saved: 1, cursor: null, records: [], bans: [] })],
];
for (const [name, content] of leaky) {
  test(`a damaged file's bytes never appear in the problem text: ${name}`, (t) => {
    const s = new StateStore(tmpdir(t));
    fs.writeFileSync(s.file, content);
    const r = s.load();
    assert.equal(r.state, null);
    assert.match(r.problem ?? '', /moved aside/);
    for (const piece of ['root:', 'S3CRET', 'hashhash']) assert.ok(!(r.problem ?? '').includes(piece), `leaked ${piece}: ${r.problem}`);
  });
}

test('state.json that is a symlink is not followed: set aside, its target neither read nor written', async (t) => {
  const dir = tmpdir(t);
  const outside = tmpdir(t);
  const target = path.join(outside, 'shadow');
  fs.writeFileSync(target, `${SECRET}\n`);
  const s = new StateStore(dir);
  fs.symlinkSync(target, s.file);
  const r = s.load();
  assert.equal(r.state, null);
  assert.match(r.problem ?? '', /is a symbolic link \(not followed\); moved aside to /);
  assert.ok(!(r.problem ?? '').includes('S3CRET'), r.problem);
  const aside = asideFiles(dir);
  assert.equal(aside.length, 1);
  assert.ok(fs.lstatSync(path.join(dir, aside[0])).isSymbolicLink(), 'the link itself was moved, not what it points to');
  await s.save(sample());
  assert.ok(fs.lstatSync(s.file).isFile());
  assert.equal(fs.readFileSync(target, 'utf8'), `${SECRET}\n`, 'the target is untouched');
});

test('a FIFO as state.json is set aside, never waited on', (t) => {
  const dir = tmpdir(t);
  const s = new StateStore(dir);
  const r0 = spawnSync('mkfifo', [s.file]);
  assert.equal(r0.status, 0, String(r0.stderr));
  const r = s.load(); // a blocking open would hang here for ever
  assert.match(r.problem ?? '', /is not a regular file; moved aside/);
});

test('symlinks planted under temp-file names are never followed by a save', async (t) => {
  const dir = tmpdir(t);
  const outside = tmpdir(t);
  const target = path.join(outside, 'victim');
  fs.writeFileSync(target, 'keep me\n');
  // The names a save would have used if they were predictable (pid and a counter).
  for (let i = 1; i <= 4; i++) fs.symlinkSync(target, path.join(dir, `.state.json.${process.pid}.${i}.tmp`));
  const s = new StateStore(dir);
  for (let i = 0; i < 3; i++) await s.save(sample());
  assert.equal(fs.readFileSync(target, 'utf8'), 'keep me\n', 'the target is untouched');
  assert.ok(fs.lstatSync(s.file).isFile(), 'state.json is a regular file, not a planted link');
  assert.deepEqual(s.load().state, sample());
});

const asRoot = { skip: process.geteuid?.() !== 0 ? 'needs root (chown)' : false };

test('checkStateDir: refuses a state_dir owned by another user, even with a symlink planted in it', asRoot, (t) => {
  const dir = path.join(tmpdir(t), 'state');
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.symlinkSync('/etc/passwd', path.join(dir, 'state.json'));
  fs.chownSync(dir, 65534, 65534); // nobody
  assert.throws(() => checkStateDir(dir), (e: Error & { exitCode?: number }) => {
    assert.equal(e.message, `state_dir ${dir}: owned by uid 65534, not uid 0 (the daemon's user): that user could plant files in it (chown 0 ${dir}); refusing to use it`);
    assert.equal(e.exitCode, 78);
    return true;
  });
  // And had the daemon gone on, the planted link is still not followed.
  const r = new StateStore(dir).load();
  assert.match(r.problem ?? '', /symbolic link \(not followed\)/);
});

test('checkStateDir: refuses group/world-writable directories, and writable parents unless sticky', asRoot, (t) => {
  const base = tmpdir(t);
  const dir = path.join(base, 'state');
  fs.mkdirSync(dir, { mode: 0o700 });
  checkStateDir(dir); // 0700, root: fine
  for (const [mode, what] of [[0o777, 'group and others'], [0o770, 'its group'], [0o703, 'others']] as const) {
    fs.chmodSync(dir, mode);
    assert.throws(() => checkStateDir(dir), { message: `state_dir ${dir}: writable by ${what} (mode 0${mode.toString(8)}) (chmod go-w ${dir}); refusing to use it` });
  }
  fs.chmodSync(dir, 0o755);
  checkStateDir(dir);
  // A parent anyone can write could swap the directory itself.
  fs.chmodSync(base, 0o777);
  assert.throws(() => checkStateDir(dir), { message: `state_dir ${dir}: ${base} above it is writable by group and others (mode 0777) and not sticky (chmod go-w ${base}); refusing to use it` });
  fs.chmodSync(base, 0o1777); // like /tmp: others cannot rename what is not theirs
  checkStateDir(dir);
  fs.chmodSync(base, 0o700);
  // Through a symlink: the real directory is checked.
  const link = path.join(base, 'link');
  fs.symlinkSync(dir, link);
  fs.chmodSync(dir, 0o777);
  assert.throws(() => checkStateDir(link), { message: /^state_dir .*\/link: writable by group and others/ });
  fs.chmodSync(dir, 0o700);
  checkStateDir(link);
  // Missing: created 0700.
  const fresh = path.join(base, 'a', 'b');
  checkStateDir(fresh);
  assert.equal(fs.statSync(fresh).mode & 0o777, 0o700);
  // Not a directory.
  fs.writeFileSync(path.join(base, 'file'), '');
  assert.throws(() => checkStateDir(path.join(base, 'file')), /cannot create it: EEXIST|is not a directory/);
});

test('a state file that is a directory is moved aside too', (t) => {
  const dir = tmpdir(t);
  fs.mkdirSync(path.join(dir, 'state.json'));
  const r = new StateStore(dir).load();
  assert.equal(r.state, null);
  assert.match(r.problem ?? '', /is a directory/);
  assert.equal(asideFiles(dir).length, 1);
});

test('save into a missing directory fails with a message naming the file', async (t) => {
  const dir = path.join(tmpdir(t), 'nope');
  await assert.rejects(new StateStore(dir).save(sample()), /cannot save state to .*nope\/state\.json: ENOENT/);
});

test('a failed save leaves the previous file intact and no temp file behind', async (t) => {
  const dir = tmpdir(t);
  const s = new StateStore(dir);
  await s.save(sample());
  // A state JSON cannot encode a BigInt: encoding throws before anything is written.
  const broken = { ...sample(), saved: 10n as unknown as number };
  await assert.rejects(s.save(broken), /cannot save state .*BigInt/);
  assert.deepEqual(s.load().state, sample());
  // The rename target is a non-empty directory: rename fails after the temp file was written.
  const other = new StateStore(path.join(dir, 'sub'));
  fs.mkdirSync(path.join(dir, 'sub', 'state.json', 'x'), { recursive: true });
  await assert.rejects(other.save(sample()), /cannot save state/);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'sub')), ['state.json']);
});

test('a version 1 file (before the ledger) still loads: bans get their origin and reason', (t) => {
  const dir = tmpdir(t);
  const s = new StateStore(dir);
  fs.writeFileSync(
    s.file,
    JSON.stringify({
      version: 1, saved: 1_700_000_200_000, cursor: 'c1',
      records: [['192.0.2.7', 0.4, 2, 1_700_000_000_000, 1_700_000_100_000, 0, 0, null], ['2001:db8::7', 1.2, 6, 1_700_000_000_000, 1_700_000_200_000, 1, 1_700_003_800_000, 'sshd.json#2']],
      bans: [['2001:db8::7', 1_700_003_800_000, 'sshd.json#2'], ['203.0.113.9', 1_700_000_210_000, 'manual']],
    }),
  );
  const st = s.load().state!;
  assert.ok(st, 'loaded');
  assert.deepEqual(st.records, sample().records);
  assert.deepEqual(st.bans.map((b) => [b.address, b.expiry, b.origin, b.reason, b.pattern, b.since]), [
    ['2001:db8::7', 1_700_003_800_000, 'rule', 'threshold', 'sshd.json#2', 1_700_000_200_000],
    ['203.0.113.9', 1_700_000_210_000, 'manual', 'manual', 'manual', 1_700_000_200_000],
  ]);
});

test('version 3: networks, pools, scopes and rules go round the file', async (t) => {
  const s = new StateStore(tmpdir(t));
  const st = sample();
  st.records.push(rec('2001:db8:1::/64', { pool: 'postfix', banned: true, score: 3, count: 3, pattern: 'postfix.json#1' }));
  // One address banned twice at once: on port 22 by sshd, on 25 by postfix.
  st.bans.push(
    { address: '2001:db8:1::/64', family: 6, scope: 'p25_net', rule: 'postfix', expiry: 1_700_003_800_000, since: 1_700_000_200_000, origin: 'rule', reason: 'threshold', pattern: 'postfix.json#1', score: 3, count: 3 },
    { address: '198.51.100.3', family: 4, scope: 'p22', rule: 'sshd', expiry: 1_700_003_800_000, since: 1_700_000_200_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5 },
    { address: '198.51.100.3', family: 4, scope: 'p25', rule: 'postfix', expiry: 1_700_001_800_000, since: 1_700_000_200_000, origin: 'rule', reason: 'threshold', pattern: 'postfix.json#1', score: 3, count: 3 },
  );
  await s.save(st);
  const raw = JSON.parse(fs.readFileSync(s.file, 'utf8'));
  assert.equal(raw.version, 3);
  assert.deepEqual(raw.records[2], ['2001:db8:1::/64', 3, 3, 1_700_000_000_000, 1_700_000_100_000, 1, 'postfix.json#1', 'postfix']);
  assert.deepEqual(raw.bans[2], ['2001:db8:1::/64', 1_700_003_800_000, 'postfix.json#1', 'rule', 'threshold', 3, 3, 1_700_000_200_000, 'p25_net', 'postfix']);
  assert.deepEqual(s.load(), { state: st });
});

test('a version 2 file still loads: no pool, scope or rule (tallow\'s pool, every port)', (t) => {
  const s = new StateStore(tmpdir(t));
  fs.writeFileSync(
    s.file,
    JSON.stringify({
      version: 2, saved: 1_700_000_200_000, cursor: 's=abc;i=1f;b=def;m=12;t=5f;x=99',
      records: [['192.0.2.7', 0.4, 2, 1_700_000_000_000, 1_700_000_100_000, 0, null], ['2001:db8::7', 1.2, 6, 1_700_000_000_000, 1_700_000_200_000, 1, 'sshd.json#2']],
      bans: [
        ['2001:db8::7', 1_700_003_800_000, 'sshd.json#2', 'rule', 'threshold', 1.2, 6, 1_700_000_200_000],
        ['203.0.113.9', 1_700_000_210_000, 'manual', 'manual', 'manual', 0, 0, 1_700_000_150_000],
      ],
    }),
  );
  const want = sample();
  want.bans[0].rule = null; // version 2 did not know which rule
  assert.deepEqual(s.load(), { state: want });
  // A network was never a target before version 3.
  fs.writeFileSync(s.file, JSON.stringify({ version: 2, saved: 1, cursor: null, records: [], bans: [['2001:db8::/64', 2, null, 'rule', 'threshold', 1, 1, 1]] }));
  assert.match(s.load().problem ?? '', /ban 1 is malformed/);
});

test('liveRecords prunes the downtime', () => {
  const st = sample();
  const now = 1_700_000_205_500;
  // expires 3600 s: the unbanned record (last seen at ...100_000) survives until ...3_700_000
  assert.equal(liveRecords(st, now, 3600).length, 2);
  assert.deepEqual(liveRecords(st, 1_700_003_700_001, 3600).map((r) => r.address), ['2001:db8::7']);
  assert.deepEqual(liveRecords(st, 1_700_003_800_000, 7200).map((r) => r.address), ['192.0.2.7']);
});

test('StateSaver coalesces many changes into few writes and flush writes the last', async (t) => {
  const s = new StateStore(tmpdir(t));
  let n = 0;
  const saver = new StateSaver(s, () => ({ ...sample(), cursor: `c${n}` }), 200);
  for (n = 1; n <= 50; n++) saver.markDirty();
  n = 50;
  await new Promise((r) => setTimeout(r, 50));
  for (let i = 0; i < 10; i++) saver.markDirty();
  n = 77;
  saver.markDirty();
  await saver.flush();
  assert.equal(s.load().state?.cursor, 'c77');
  assert.ok(saver.saves <= 2, `expected at most 2 writes, got ${saver.saves}`);
  assert.ok(saver.saves >= 1);
});
