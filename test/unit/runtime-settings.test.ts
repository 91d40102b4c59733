// `tallow set`/`get`/`reload`/`ban --rule`/`unban --all` through the daemon's own wiring (a dry run
// fed batches directly, as daemon-rules.test.ts): a value set changes what the next matches do,
// an administrator's override of the same key is no conflict, a refused set changes nothing, a
// reload goes back to the files, and a reload of a broken configuration is refused with exit 78.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ControlResponse } from '../../src/control';
import type { ListItem, SettingResult } from '../../src/control-results';
import { Daemon } from '../../src/daemon';
import type { JournalEntry } from '../../src/journal';
import { Log } from '../../src/log';
import { parseSettingValue, splitKey } from '../../src/runtime-settings';

const SSHD = '/usr/sbin/sshd';
const SMTPD = '/usr/lib/postfix/sbin/smtpd';
const SSHD_RULE = [{ filter: `_EXE=${SSHD}`, items: [{ ban: 0, score: 0.5, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }];
const POSTFIX_RULE = [{ name: 'postfix', filter: `_EXE=${SMTPD}`, limit: 2, findtime: 600, bantime: 86400, ports: [25], protocol: 'tcp', items: [{ ban: 0, score: 1, pattern: '^warning: unknown\\[<IP>\\]: SASL LOGIN authentication failed: .*$' }] }];

function setup(t: { after(fn: () => unknown): void }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-set-${process.pid}-`));
  const shipped = path.join(dir, 'shipped');
  const admin = path.join(dir, 'admin');
  for (const d of [shipped, admin, path.join(dir, 'journal')]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(shipped, 'sshd.json'), JSON.stringify(SSHD_RULE));
  fs.writeFileSync(path.join(shipped, 'postfix.json'), JSON.stringify(POSTFIX_RULE));
  // The administrator's override of postfix's bantime: a runtime value of the same key wins without a conflict.
  fs.writeFileSync(path.join(admin, 'postfix-longer.json'), JSON.stringify([{ name: 'postfix', bantime: 172800 }]));
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, [`patterns_dir=${admin}`, `state_dir=${dir}/state`, `socket=${dir}/sock`, 'expires=60', ''].join('\n'));
  const lines: string[] = [];
  const log = new Log({ journal: false, timestamps: false, write: (_l, s) => lines.push(s) });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { lines, conf, opts: { configFile: conf, explicitConfig: true, journalDir: path.join(dir, 'journal'), dryRun: true, log, shippedPatterns: shipped } };
}

let seq = 0;
const entry = (message: string, exe: string): JournalEntry => ({ cursor: `c${seq++}`, realtime: Date.now() * 1000, fields: { MESSAGE: message, _EXE: exe } });
const ssh = (a: string) => entry(`Failed password for root from ${a} port 4242 ssh2`, SSHD);
const smtp = (a: string) => entry(`warning: unknown[${a}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`, SMTPD);
const ok = <T>(r: ControlResponse): T => {
  assert.equal(r.ok, true, JSON.stringify(r));
  return (r as { result: T }).result;
};

test('keys and values: RULE.setting split at the last dot; durations and scores checked', () => {
  assert.deepEqual(splitKey('sshd.bantime'), { rule: 'sshd', setting: 'bantime' });
  assert.deepEqual(splitKey('my.app.findtime'), { rule: 'my.app', setting: 'findtime' });
  assert.deepEqual(splitKey('sshd#2.threshold'), { rule: 'sshd#2', setting: 'threshold' });
  for (const bad of ['sshd', 'sshd.', '.bantime', 'sshd.ports', 'a b.bantime', 7]) assert.ok('error' in (splitKey(bad) as object), String(bad));
  assert.equal(parseSettingValue('bantime', '2h'), 7200);
  assert.equal(parseSettingValue('findtime', '90'), 90);
  assert.equal(parseSettingValue('threshold', '2.5'), 2.5);
  for (const [s, v] of [['bantime', '0'], ['bantime', '2.5'], ['bantime', '25d'], ['findtime', -1], ['threshold', '0'], ['threshold', '1e3'], ['threshold', 'x']] as const) {
    assert.equal(typeof parseSettingValue(s, v), 'object', `${s} ${v}`);
  }
});

test('set: the next matches score by the new threshold and ban for the new bantime; get says it is a runtime value', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  let g = ok<SettingResult>(await d.handle({ cmd: 'get', key: 'sshd.threshold' }));
  assert.deepEqual([g.value, g.runtime, g.shared], [1, false, true]);
  const set = ok<SettingResult>(await d.handle({ cmd: 'set', key: 'sshd.threshold', value: '1.5' }));
  assert.deepEqual([set.previous, set.value, set.runtime, set.shared], [1, 1.5, true, false]);
  assert.deepEqual(set.changes, ['rule sshd policy changed: threshold 1 -> 1.5, scores shared -> its own']);
  // Two matches of 0.5 reached the old threshold; now it takes three.
  d.process([ssh('198.51.100.3'), ssh('198.51.100.3')]);
  assert.equal(d.ledger.size, 0, s.lines.join('\n'));
  d.process([ssh('198.51.100.3')]);
  assert.deepEqual(d.list().map((i) => [i.address, i.rule, i.remaining <= 60]), [['198.51.100.3', 'sshd', true]]);
  ok(await d.handle({ cmd: 'set', key: 'sshd.bantime', value: '2h' }));
  d.process([ssh('198.51.100.4'), ssh('198.51.100.4'), ssh('198.51.100.4')]);
  assert.ok(d.list().find((i) => i.address === '198.51.100.4')!.remaining > 7100);
  g = ok<SettingResult>(await d.handle({ cmd: 'get', key: 'sshd.threshold' }));
  assert.deepEqual([g.value, g.runtime], [1.5, true]);
  assert.ok(s.lines.includes('info: tallow set sshd.bantime 7200 (until the next reload or restart)'), s.lines.join('\n'));

  // An administrator's override of the same key: the runtime value wins, no conflict; limit N becomes the threshold.
  assert.equal(ok<SettingResult>(await d.handle({ cmd: 'get', key: 'postfix.bantime' })).value, 172800);
  assert.equal(ok<SettingResult>(await d.handle({ cmd: 'set', key: 'postfix.bantime', value: 600 })).value, 600);
  assert.equal(ok<SettingResult>(await d.handle({ cmd: 'set', key: 'postfix.threshold', value: 3 })).value, 3);
  d.process([smtp('203.0.113.7'), smtp('203.0.113.7')]);
  assert.equal(d.list().some((i) => i.rule === 'postfix'), false, 'limit 2 is threshold 3 now');
  d.process([smtp('203.0.113.7')]);
  const pf = d.list().find((i) => i.rule === 'postfix')!;
  assert.ok(pf.remaining <= 600 && pf.remaining > 590, String(pf.remaining));

  // Refused: nothing changes.
  const before = d.engine;
  for (const [req, why] of [
    [{ cmd: 'set', key: 'nosuch.bantime', value: 60 }, /^no rule named "nosuch" \(rules: postfix, sshd\)$/],
    [{ cmd: 'get', key: 'nosuch.bantime' }, /^no rule named "nosuch"/],
  ] as const) {
    const r = await d.handle(req);
    assert.equal(r.ok, false);
    assert.match((r as { error: string }).error, why);
  }
  assert.equal(d.engine, before);

  // A reload goes back to the files and says which runtime values it dropped.
  const r = ok<{ changes: string[]; dropped: string[]; restart: string[] }>(await d.handle({ cmd: 'reload' }));
  assert.deepEqual(r.dropped, ['sshd.threshold', 'sshd.bantime', 'postfix.bantime', 'postfix.threshold']);
  assert.deepEqual(r.restart, []);
  assert.deepEqual(r.changes.sort(), ['rule postfix policy changed: threshold 3 -> 2, bantime 600 -> 172800', 'rule sshd policy changed: threshold 1.5 -> 1, bantime 7200 -> 60, scores its own -> shared']);
  g = ok<SettingResult>(await d.handle({ cmd: 'get', key: 'sshd.threshold' }));
  assert.deepEqual([g.value, g.runtime, g.shared], [1, false, true]);
});

test('reload of a broken configuration: refused with file:line and exit 78, the running one kept', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  ok(await d.handle({ cmd: 'set', key: 'sshd.bantime', value: 600 }));
  const good = fs.readFileSync(s.conf, 'utf8');
  fs.writeFileSync(s.conf, good + 'expires=5\nbogus=1\n');
  const r = await d.handle({ cmd: 'reload' });
  assert.equal(r.ok, false);
  assert.equal((r as { exitCode?: number }).exitCode, 78);
  assert.match((r as { error: string }).error, new RegExp(`^reload refused, still running the previous configuration: ${s.conf.replace(/\./g, '\\.')}:6: unknown key 'bogus'`));
  assert.equal(d.engine.config.expires, 60);
  assert.equal(ok<SettingResult>(await d.handle({ cmd: 'get', key: 'sshd.bantime' })).value, 600, 'runtime values kept too');
});

test('ban --rule, ban NETWORK, list --rule, unban --all through the ledger', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  const b = ok<{ seconds: number; ports: string; rule: string }>(await d.handle({ cmd: 'ban', address: '203.0.113.9', rule: 'postfix' }));
  assert.deepEqual([b.seconds, b.ports, b.rule], [172800, '25/tcp', 'postfix']);
  ok(await d.handle({ cmd: 'ban', address: '2001:db8:5::/48', seconds: 60 }));
  assert.deepEqual(await d.handle({ cmd: 'ban', address: '2001:db8:6::/48', rule: 'postfix' }), {
    ok: false,
    error: 'rule postfix bans addresses, not networks (no ban_prefix): ban 2001:db8:6::/48 without --rule (every port)',
  });
  ok(await d.handle({ cmd: 'ban', address: '203.0.113.9' }));
  assert.deepEqual(d.list().map((i) => [i.address, i.rule, i.scope, i.origin]).sort(), [
    ['2001:db8:5::/48', null, 'net', 'manual'],
    ['203.0.113.9', null, '', 'manual'],
    ['203.0.113.9', 'postfix', 'p25t', 'manual'],
  ]);
  assert.deepEqual(ok<ListItem[]>(await d.handle({ cmd: 'list', rule: 'postfix' })).map((i) => i.address), ['203.0.113.9']);
  assert.deepEqual(ok<ListItem[]>(await d.handle({ cmd: 'list', rule: 'sshd' })), []);
  assert.match((await d.handle({ cmd: 'list', rule: 'nginx' }) as { error: string }).error, /no rule named "nginx"/);
  assert.deepEqual(ok(await d.handle({ cmd: 'unban', all: true })), { all: true, lifted: 3, targets: 2 });
  assert.equal(d.ledger.size, 0);
  assert.equal(d.scoring.get('203.0.113.9'), undefined, 'its record is forgotten');
});
