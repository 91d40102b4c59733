// Rules per service through the daemon's own wiring (a dry run fed batches directly): each match
// scores in its rule's pool, bans carry the rule's scope and target, and the control requests
// (`rules`, `list`, `status`, `unban`, metrics) show them. The rules come from pattern files with
// policy keys (postfix.json) and without (sshd.json: tallow's shared policy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RuleInfo, ListItem } from '../../src/control-results';
import { Daemon } from '../../src/daemon';
import type { JournalEntry } from '../../src/journal';
import { Log } from '../../src/log';

const SSHD = '/usr/sbin/sshd';
const SMTPD = '/usr/lib/postfix/sbin/smtpd';

const SSHD_RULE = [{ filter: `_EXE=${SSHD}`, items: [{ ban: 0, score: 0.5, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }];
const POSTFIX_RULE = [
  {
    name: 'postfix', filter: `_EXE=${SMTPD}`, threshold: 2, findtime: 600, bantime: 86400, ports: [25], protocol: 'tcp', ban_prefix_v4: 24, ban_prefix_v6: 64,
    items: [{ ban: 0, score: 1, pattern: '^warning: unknown\\[<IP>\\]: SASL LOGIN authentication failed: .*$' }],
  },
];

function setup(t: { after(fn: () => unknown): void }, postfix: object[] = POSTFIX_RULE) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-rules-${process.pid}-`));
  const shipped = path.join(dir, 'shipped');
  const journal = path.join(dir, 'journal');
  for (const d of [shipped, journal]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(shipped, 'sshd.json'), JSON.stringify(SSHD_RULE));
  fs.writeFileSync(path.join(shipped, 'postfix.json'), JSON.stringify(postfix));
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, [`patterns_dir=${dir}/none`, `state_dir=${dir}/state`, `socket=${dir}/sock`, 'expires=60', 'whitelist=192.0.2.1', ''].join('\n'));
  const lines: string[] = [];
  const log = new Log({ journal: false, timestamps: false, write: (_l, s) => lines.push(s) });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { lines, shipped, opts: { configFile: conf, explicitConfig: true, journalDir: journal, dryRun: true, log, shippedPatterns: shipped } };
}

let seq = 0;
const entry = (message: string, exe: string): JournalEntry => ({ cursor: `c${seq++}`, realtime: Date.now() * 1000, fields: { MESSAGE: message, _EXE: exe } });
const ssh = (a: string) => entry(`Failed password for root from ${a} port 4242 ssh2`, SSHD);
const smtp = (a: string) => entry(`warning: unknown[${a}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`, SMTPD);

test('each rule scores apart and bans by its own policy; list, rules, status, metrics and unban show it', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  // 0.5 on sshd and 1 on postfix from one address: no rule reaches its threshold.
  d.process([ssh('198.51.100.3'), smtp('198.51.100.3')]);
  assert.equal(d.ledger.size, 0, s.lines.join('\n'));
  // Two addresses of one /64 are one target for postfix: banned as the network, on its ports, for its bantime.
  d.process([smtp('2001:db8::2'), smtp('2001:db8::3'), ssh('198.51.100.3')]);
  const list = (await d.handle({ cmd: 'list' })) as { ok: true; result: ListItem[] };
  const items = list.result.map((i) => [i.address, i.rule, i.ports, i.scope, i.count, i.remaining > 86390]).sort();
  assert.deepEqual(items, [
    ['198.51.100.3', 'sshd', 'all', '', 2, false],
    ['2001:db8::/64', 'postfix', '25/tcp', 'p25t_net', 2, true],
  ]);
  const r = await d.handle({ cmd: 'rules', name: 'postfix' });
  assert.ok(r.ok);
  const info = (r.result as RuleInfo[])[0];
  assert.deepEqual(info, {
    name: 'postfix', enabled: true, where: `${s.shipped}/postfix.json (block 1)`, filter: `_EXE=${SMTPD}`,
    threshold: 2, findtime: 600, bantime: 86400, ports: '25/tcp', scope: 'p25t_net', prefix: { 4: 24, 6: 64 }, pool: 'postfix',
    matches: 3, bans: 1, bansActive: 1,
    top: [{ address: '2001:db8::/64', score: 2, count: 2, banned: true }, { address: '198.51.100.0/24', score: 1, count: 1, banned: false }],
  });
  const all = (await d.handle({ cmd: 'rules' })) as { ok: true; result: RuleInfo[] };
  assert.deepEqual(all.result.map((i) => [i.name, i.matches, i.bans, i.bansActive, i.top.map((x) => x.address)]), [
    ['postfix', 3, 1, 1, ['2001:db8::/64', '198.51.100.0/24']],
    ['sshd', 2, 1, 1, ['198.51.100.3']],
  ]);
  assert.deepEqual(await d.handle({ cmd: 'rules', name: 'nginx' }), { ok: false, error: 'no rule named "nginx" (rules: postfix, sshd)' });
  assert.deepEqual(d.status().rules, [
    { name: 'postfix', enabled: true, matches: 3, bansActive: 1 },
    { name: 'sshd', enabled: true, matches: 2, bansActive: 1 },
  ]);
  const json = d.metrics.json();
  assert.deepEqual([json.rule_matches_total, json.rule_bans_total, json.rule_bans_active], [{ postfix: 3, sshd: 2 }, { postfix: 1, sshd: 1 }, { postfix: 1, sshd: 1 }]);
  assert.deepEqual(json.matches_total, { 'postfix.json': 3, 'sshd.json': 2 }, 'the series by file as before');
  assert.match(d.metrics.prometheus(), /^tallow_rule_bans_total\{rule="postfix"\} 1$/m);
  // The network is lifted by its text (host bits and all); the address's own ban stays.
  assert.deepEqual(await d.handle({ cmd: 'unban', address: '2001:db8::5/64' }), { ok: true, result: { address: '2001:db8::/64', family: 6, wasBanned: true, lifted: ['25/tcp'] } });
  assert.deepEqual(d.list().map((i) => i.address), ['198.51.100.3']);
  assert.equal(d.scoring.get('2001:db8::/64', 'postfix'), undefined, 'its record is forgotten too');
});

test('a network holding an address no one may ban is refused; the ban line says why', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  d.process([smtp('127.0.0.2'), smtp('127.0.0.3')]);
  assert.equal(d.ledger.size, 0);
  assert.ok(s.lines.some((l) => /^warn: not banned, never banned: 127\.0\.0\.0\/24 \(loopback\)/.test(l)), s.lines.join('\n'));
});

test('reload: a rule removed keeps its bans until they expire, and the log says so; later matches score by the new rules', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  d.process([smtp('203.0.113.7'), smtp('203.0.113.8')]);
  assert.deepEqual(d.list().map((i) => [i.address, i.rule]), [['203.0.113.0/24', 'postfix']]);
  // postfix.json's block becomes rule `smtp` without policy keys: rule postfix is gone.
  fs.writeFileSync(path.join(s.shipped, 'postfix.json'), JSON.stringify([{ ...POSTFIX_RULE[0], name: 'smtp', threshold: undefined, findtime: undefined, bantime: undefined, ports: undefined, protocol: undefined, ban_prefix_v4: undefined, ban_prefix_v6: undefined }]));
  assert.equal(d.reload(), true);
  assert.ok(s.lines.includes('info: rule postfix removed: its 1 active ban stays until it expires'), s.lines.join('\n'));
  assert.deepEqual(d.list().map((i) => [i.address, i.rule]), [['203.0.113.0/24', 'postfix']], 'not lifted');
  d.process([smtp('198.51.100.9')]);
  // The removed rule's ports are still named (the daemon remembers every scope it banned in).
  assert.deepEqual(d.list().map((i) => [i.address, i.rule, i.ports]).sort(), [['198.51.100.9', 'smtp', 'all'], ['203.0.113.0/24', 'postfix', '25/tcp']]);
});

test('tallow\'s files (no policy keys): one rule each, one shared score, tallow.conf\'s policy', async (t) => {
  const s = setup(t, [{ filter: `_EXE=${SMTPD}`, items: POSTFIX_RULE[0].items }]);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  // sshd 0.5 + postfix 1 in the one shared pool: a ban, as tallow would.
  d.process([ssh('203.0.113.20'), smtp('203.0.113.20')]);
  assert.ok(s.lines.includes('info: ban address=203.0.113.20 seconds=60 score=1.50 count=2 pattern=postfix.json#1 reason=threshold rule=postfix'), s.lines.join('\n'));
  const r = (await d.handle({ cmd: 'rules' })) as { ok: true; result: RuleInfo[] };
  assert.deepEqual(r.result.map((i) => [i.name, i.filter, i.threshold, i.bantime, i.ports, i.pool, i.matches, i.bansActive]), [
    ['postfix', `_EXE=${SMTPD}`, 1, 60, 'all', '', 1, 1],
    ['sshd', `_EXE=${SSHD}`, 1, 60, 'all', '', 1, 0],
  ]);
});
