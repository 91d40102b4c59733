// The `recidive` rule (recidive_bans / recidive_bantime, issue 15.3): an address banned N times
// within recidive_window, by any rule on any ports, gets one ban on every port. Decided in
// recidive.ts from the bans it remembers (fake clock here), applied after the rule's ban as
// daemon.process does, loaded back from the history after a restart; and once through the
// daemon's own wiring.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ListItem } from '../../src/control-results';
import { parseConfig } from '../../src/config';
import { Daemon } from '../../src/daemon';
import { SqliteStore } from '../../src/history/sqlite';
import type { JournalEntry } from '../../src/journal';
import { Ledger, type Ban, type BanReason } from '../../src/ledger';
import { HistoryListener } from '../../src/listeners/history';
import { Log } from '../../src/log';
import { Metrics } from '../../src/metrics';
import { BanSteps, stepOptions } from '../../src/recidive';
import { StateStore, type State } from '../../src/state';
import { collect, tmpdir } from './history-helpers';

const M = 60_000;
const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 20, 0, 0, 0);
const conf = (...lines: string[]) => parseConfig(lines.join('\n'), 'tallow.conf');

/** A ledger whose events feed the steps; `ban` is a rule's ban followed by the recidive rule's, as in daemon.process. */
function world(c: ReturnType<typeof conf>, emit: (e: Parameters<ConstructorParameters<typeof Ledger>[0]['emit']>[0]) => void = () => {}) {
  const steps = new BanSteps(stepOptions(c));
  const feed = steps.listener();
  const bans: Ban[] = [];
  const ledger = new Ledger({
    emit: (e) => {
      feed.handle([e]);
      emit(e);
      if (e.kind === 'ban') bans.push(e.ban);
    },
  });
  const ban = (address: string, now: number, rule = 'sshd', scope = '', reason: BanReason = 'threshold') => {
    ledger.expire(now);
    const origin = reason === 'manual' ? 'manual' : 'rule';
    const out = ledger.ban({ address, family: 4, seconds: 600, score: 1, count: 3, pattern: `${rule}.json#1`, reason, origin, rule, scope }, now);
    assert.ok(out.ok, `${address} ${rule} at +${(now - T0) / M} min: ${out.ok ? '' : out.why}`);
    const r = steps.recidive(out.ban, now, ledger.get(address, ''));
    if (r) ledger.ban(r, now + 1);
  };
  const recidives = () => bans.filter((b) => b.reason === 'recidive');
  return { steps, ledger, ban, recidives };
}

test('N-1 bans give no recidive ban; the Nth gives one on every port for recidive_bantime; never a second while it lasts', () => {
  const w = world(conf('recidive_bans=3', 'recidive_window=1d', 'recidive_bantime=2d'));
  w.ban('203.0.113.1', T0);
  w.ban('203.0.113.1', T0 + 20 * M); // the first (10 min) is over
  w.ban('203.0.113.1', T0 + 30 * M, 'manual', '', 'manual'); // by hand: not counted
  assert.deepEqual(w.recidives(), [], 'two bans of three');
  w.ban('203.0.113.1', T0 + 50 * M);
  const [r, ...more] = w.recidives();
  assert.equal(more.length, 0);
  assert.deepEqual(
    { address: r.address, scope: r.scope, rule: r.rule, reason: r.reason, origin: r.origin, count: r.count, seconds: (r.expiry - r.since) / 1000 },
    { address: '203.0.113.1', scope: '', rule: 'recidive', reason: 'recidive', origin: 'rule', count: 3, seconds: 172800 },
  );
  assert.equal(w.ledger.get('203.0.113.1', '')?.reason, 'recidive');
  // While it lasts, another rule's ban (its own ports) gives none again.
  w.ban('203.0.113.1', T0 + 2 * H, 'postfix', 'p25t');
  assert.equal(w.recidives().length, 1);
  // Another address is counted apart.
  w.ban('203.0.113.2', T0 + 2 * H);
  assert.equal(w.recidives().length, 1);
});

test('bans older than recidive_window do not count', () => {
  const w = world(conf('recidive_bans=3', 'recidive_window=1h', 'recidive_bantime=1d'));
  w.ban('198.51.100.5', T0);
  w.ban('198.51.100.5', T0 + 50 * M);
  w.ban('198.51.100.5', T0 + 61 * M, 'postfix', 'p25t'); // the first is 61 min old: two in the window
  assert.deepEqual(w.recidives(), []);
  assert.equal(w.steps.countFor('198.51.100.5', T0 + 61 * M), 2);
  w.ban('198.51.100.5', T0 + 100 * M, 'dovecot', 'p993t'); // 50, 61, 100: three within the hour
  assert.deepEqual(w.recidives().map((b) => [b.address, b.count, (b.since - T0) / M]), [['198.51.100.5', 3, 100 + 1 / M]]);
});

test('bans of different rules and scopes (and instant bans) count together; off by default', () => {
  const w = world(conf('recidive_bans=3'));
  w.ban('192.0.2.7', T0, 'sshd', 'p22t');
  w.ban('192.0.2.7', T0 + M, 'postfix', 'p25t', 'instant');
  assert.deepEqual(w.recidives(), []);
  w.ban('192.0.2.7', T0 + 2 * M, 'dovecot', 'p993t');
  const r = w.recidives();
  assert.deepEqual(r.map((b) => [b.scope, b.rule, b.count, (b.expiry - b.since) / 1000]), [['', 'recidive', 3, 7 * 86400]]);
  // The rules' own bans are still there beside it.
  assert.deepEqual(w.ledger.allOf('192.0.2.7').map((b) => b.rule).sort(), ['dovecot', 'postfix', 'recidive', 'sshd']);

  const off = world(conf('recidive_window=1d'));
  for (let i = 0; i < 10; i++) off.ban('192.0.2.8', T0 + i * 20 * M);
  assert.deepEqual(off.recidives(), []);
});

test('after a restart the count continues from the history', async (t) => {
  const dir = tmpdir(t);
  const log = collect();
  const file = path.join(dir, 'history.sqlite');
  const c = conf('recidive_bans=3', 'recidive_window=1d');
  const opts = { log, metrics: new Metrics(), matches: true, matchesPerHour: 60, days: 90, maxQueue: 1000 };
  // First run: two bans of two rules, stored through the history listener.
  const h1 = new HistoryListener({ store: new SqliteStore(file, log), ...opts });
  const w1 = world(c, (e) => void h1.handle([e]));
  w1.ban('192.0.2.44', T0, 'sshd', 'p22t');
  w1.ban('192.0.2.44', T0 + H, 'postfix', 'p25t');
  await new Promise((r) => setImmediate(r));
  await h1.close();

  // Restart 2 h later: a new view knows nothing until loaded from the file.
  const now = T0 + 3 * H;
  const w2 = world(c);
  assert.equal(w2.steps.countFor('192.0.2.44', now), 0, 'nothing known before loading');
  const h2 = new HistoryListener({ store: new SqliteStore(file, log), ...opts });
  t.after(() => h2.close());
  await h2.start(now - c.recidiveWindow * 1000, (bans) => w2.steps.load(bans, now), (bans) => w2.steps.loadRecent(bans, now));
  assert.equal(w2.steps.countFor('192.0.2.44', now), 2);
  w2.ban('192.0.2.44', now, 'dovecot', 'p993t');
  assert.deepEqual(w2.recidives().map((b) => [b.address, b.rule, b.count]), [['192.0.2.44', 'recidive', 3]]);
});

test('recidive_bans and recidive_bantime refuse bad values with file:line', () => {
  assert.throws(() => parseConfig('recidive_bans=-1\n', 'a.conf'), /^Error: a\.conf:1: recidive_bans: expected a whole number from 0 to 1000000, got '-1'/);
  assert.throws(() => parseConfig('\n\nrecidive_bans=three\n', 'a.conf'), /a\.conf:3: recidive_bans: expected a whole number/);
  assert.throws(() => parseConfig('recidive_bantime=4w\n', 'a.conf'), /a\.conf:1: recidive_bantime: expected a duration .* up to 2147483 s, got '4w'/);
  assert.throws(() => parseConfig('\nrecidive_bantime=0\n', 'a.conf'), /a\.conf:2: recidive_bantime: expected a duration/);
  const c = parseConfig('recidive_bans=5\nrecidive_bantime=2w\n', 'a.conf');
  assert.deepEqual([c.recidiveBans, c.recidiveBantime], [5, 1_209_600]);
  const d = parseConfig('', 'a.conf');
  assert.deepEqual([d.recidiveBans, d.recidiveBantime], [0, 604_800]);
});

const SSHD = '/usr/sbin/sshd';
const SMTPD = '/usr/lib/postfix/sbin/smtpd';

/** A daemon's directories with two shipped rules, sshd on port 22 and postfix on 25, one failure each bans. */
function twoServices(dir: string): { shipped: string; journal: string } {
  const shipped = path.join(dir, 'shipped');
  const journal = path.join(dir, 'journal');
  for (const d of [shipped, journal]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(shipped, 'sshd.json'), JSON.stringify([{ name: 'sshd', filter: `_EXE=${SSHD}`, threshold: 1, bantime: 600, ports: [22], protocol: 'tcp', items: [{ ban: 0, score: 1, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }]));
  fs.writeFileSync(path.join(shipped, 'postfix.json'), JSON.stringify([{ name: 'postfix', filter: `_EXE=${SMTPD}`, threshold: 1, bantime: 600, ports: [25], protocol: 'tcp', items: [{ ban: 0, score: 1, pattern: '^warning: unknown\\[<IP>\\]: SASL LOGIN authentication failed: .*$' }] }]));
  return { shipped, journal };
}

test('through the daemon: sshd on port 22 then postfix on port 25 -> a recidive ban on every port, listed and logged', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-recidive-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { shipped, journal } = twoServices(dir);
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, [`patterns_dir=${dir}/none`, `state_dir=${dir}/state`, `socket=${dir}/sock`, 'expires=60', 'recidive_bans=2', 'recidive_bantime=3d', ''].join('\n'));
  const lines: string[] = [];
  const log = new Log({ journal: false, timestamps: false, write: (_l, s) => lines.push(s) });
  const d = await Daemon.start({ configFile: conf, explicitConfig: true, journalDir: journal, dryRun: true, log, shippedPatterns: shipped });
  t.after(() => d.stop());
  let seq = 0;
  const entry = (message: string, exe: string): JournalEntry => ({ cursor: `c${seq++}`, realtime: Date.now() * 1000, fields: { MESSAGE: message, _EXE: exe } });
  d.process([entry('Failed password for root from 203.0.113.9 port 4242 ssh2', SSHD)]);
  assert.equal(d.ledger.get('203.0.113.9', ''), undefined, 'one ban of two: no recidive ban');
  d.process([entry('warning: unknown[203.0.113.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6', SMTPD)]);
  const list = (await d.handle({ cmd: 'list' })) as { ok: true; result: ListItem[] };
  const items = list.result.map((i) => [i.rule, i.ports, i.reason, i.remaining > 3 * 86400 - 60]).sort();
  assert.deepEqual(items, [
    ['postfix', '25/tcp', 'threshold', false],
    ['recidive', 'all', 'recidive', true],
    ['sshd', '22/tcp', 'threshold', false],
  ]);
  assert.ok(lines.some((l) => /\bban\b.*address=203\.0\.113\.9.*reason=recidive.*rule=recidive/.test(l)), lines.join('\n'));
});

test('a recidive ban is saved in the state file and read back (restored after a restart, not dropped as corrupt)', async (t) => {
  const dir = tmpdir(t);
  const store = new StateStore(dir);
  const state: State = {
    version: 3, saved: T0, cursor: null, records: [],
    bans: [{ address: '203.0.113.9', family: 4, scope: '', rule: 'recidive', expiry: T0 + 7 * 86_400_000, since: T0, origin: 'rule', reason: 'recidive', pattern: 'sshd.json#1', score: 1, count: 3 }],
  };
  await store.save(state);
  assert.deepEqual(store.load(), { state });
});

test('recidive_bans turned on by a reload: the bans made before it count (read again from the SQLite history)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-recidive-reload-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { shipped, journal } = twoServices(dir);
  const conf = path.join(dir, 'tallow.conf');
  const base = [`patterns_dir=${dir}/none`, `state_dir=${dir}/state`, `socket=${dir}/sock`, 'backend=none', 'expires=60'];
  fs.writeFileSync(conf, [...base, ''].join('\n'));
  const lines: string[] = [];
  const log = new Log({ journal: false, timestamps: false, write: (_l, s) => lines.push(s) });
  // Not a dry run: a dry run keeps no history. backend=none: no firewall.
  const d = await Daemon.start({ configFile: conf, explicitConfig: true, journalDir: journal, dryRun: false, log, shippedPatterns: shipped });
  t.after(() => d.stop());
  let seq = 0;
  const entry = (message: string, exe: string): JournalEntry => ({ cursor: `c${seq++}`, realtime: Date.now() * 1000, fields: { MESSAGE: message, _EXE: exe } });
  d.process([entry('Failed password for root from 203.0.113.9 port 4242 ssh2', SSHD)]);
  await d.events.flush(10_000);
  fs.writeFileSync(conf, [...base, 'recidive_bans=2', 'recidive_bantime=3d', ''].join('\n'));
  assert.equal(d.reload(), true);
  for (let i = 0; i < 100 && !lines.some((l) => l.includes('counted again from the history')); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(lines.some((l) => /repeat offenders: bans since .* counted again from the history after the reload/.test(l)), lines.join('\n'));
  d.process([entry('warning: unknown[203.0.113.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6', SMTPD)]);
  const r = d.ledger.get('203.0.113.9', '');
  assert.equal(r?.reason, 'recidive', 'the sshd ban before the reload and the postfix ban after it: two bans\n' + lines.join('\n'));
});
