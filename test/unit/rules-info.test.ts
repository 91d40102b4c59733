// `tallow rules` shows what a rule sets beyond its scoring policy (issue 16, 15, fleet): a notify
// rule's action in place of a threshold, the rule's `actions`, `publish: false`, and its own
// bantime_increment, bantime_max and recidive_window; a rule without them looks as before. From a
// real daemon's `rules` request (dry run, no firewall) to the text ctl.ts prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon } from '../../src/daemon';
import { formatRules } from '../../src/ctl-format';
import { Log } from '../../src/log';

const SSHD = '/usr/sbin/sshd';
const SMTPD = '/usr/lib/postfix/sbin/smtpd';
const PLAIN = [{ filter: `_EXE=${SSHD}`, items: [{ ban: 0, score: 0.5, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }];
const BLOCKS = [
  {
    name: 'postfix', filter: `_EXE=${SMTPD}`, threshold: 2, findtime: 600, bantime: 3600, actions: ['hook', 'mail'], publish: false,
    bantime_increment: '1h,6h', bantime_max: '1w', recidive_window: '1d',
    items: [{ ban: 0, score: 1, pattern: '^warning: unknown\\[<IP>\\]: SASL LOGIN authentication failed: .*$' }],
  },
  { name: 'quiet', filter: `_EXE=${SMTPD}`, threshold: 5, bantime_increment: 2, actions: [], items: [{ ban: 0, score: 1, pattern: '^quiet from <IP>$' }] },
  { name: 'logins', action: 'notify', notify_allowlisted: false, actions: ['mail'], filter: `_EXE=${SSHD}`, items: ['^Accepted (?<method>publickey) for (?<user>\\S+) from <IP> port <PORT> ssh2$'] },
];

test('rules: actions, publish, repeat-offender keys and a notify rule, in the JSON and the text', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-rules-info-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const shipped = path.join(dir, 'shipped');
  for (const d of [shipped, path.join(dir, 'journal')]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(shipped, 'sshd.json'), JSON.stringify(PLAIN));
  fs.writeFileSync(path.join(shipped, 'more.json'), JSON.stringify(BLOCKS));
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, [`patterns_dir=${dir}/none`, `state_dir=${dir}/state`, `socket=${dir}/sock`, 'expires=60', 'history=off',
    'action.hook.ban_command=/bin/true {address}', 'action.mail.ban_command=/bin/true {address}', 'action.mail.notify_command=/bin/true {address}', ''].join('\n'));
  const lines: string[] = [];
  const log = new Log({ journal: false, timestamps: false, write: (_l, s) => lines.push(s) });
  const d = await Daemon.start({ configFile: conf, explicitConfig: true, journalDir: path.join(dir, 'journal'), dryRun: true, log, shippedPatterns: shipped });
  t.after(() => d.stop());

  const r = await d.handle({ cmd: 'rules' });
  assert.ok(r.ok, JSON.stringify(r) + lines.join('\n'));
  const byName = new Map((r.result as { name: string }[]).map((i) => [i.name, i as Record<string, unknown>]));
  const pick = (name: string, keys: string[]) => Object.fromEntries(keys.map((k) => [k, byName.get(name)![k]]));
  const KEYS = ['action', 'notifyAllowlisted', 'actions', 'publish', 'bantimeIncrement', 'bantimeMax', 'recidiveWindow'];
  assert.deepEqual(pick('postfix', KEYS), {
    action: undefined, notifyAllowlisted: undefined, actions: ['hook', 'mail'], publish: false,
    bantimeIncrement: { kind: 'list', seconds: [3600, 21600] }, bantimeMax: 604800, recidiveWindow: 86400,
  });
  assert.deepEqual(pick('quiet', KEYS), {
    action: undefined, notifyAllowlisted: undefined, actions: [], publish: undefined,
    bantimeIncrement: { kind: 'factor', factor: 2 }, bantimeMax: undefined, recidiveWindow: undefined,
  });
  assert.deepEqual(pick('logins', KEYS), {
    action: 'notify', notifyAllowlisted: false, actions: ['mail'], publish: undefined, bantimeIncrement: undefined, bantimeMax: undefined, recidiveWindow: undefined,
  });
  // A rule that sets none of them: none of the keys, not even as undefined (the JSON as before).
  const plain = [...byName.keys()].find((n) => !['postfix', 'quiet', 'logins'].includes(n))!;
  assert.deepEqual(KEYS.filter((k) => k in byName.get(plain)!), []);

  const text = formatRules(r.result as Parameters<typeof formatRules>[0]);
  const block = (name: string) => text.split(/\n(?=rule )/).find((b) => b.startsWith(`rule ${name}:`))!.trimEnd();
  assert.equal(block('logins'), [
    'rule logins: enabled',
    `  defined in: ${shipped}/more.json (block 3)`,
    `  filter:     _EXE=${SSHD}`,
    '  action:     notify (each match an alert, never a ban; allowlisted addresses not reported)',
    '  actions:    mail',
    '  matches:    0',
  ].join('\n'));
  assert.equal(block('postfix'), [
    'rule postfix: enabled',
    `  defined in:        ${shipped}/more.json (block 1)`,
    `  filter:            _EXE=${SMTPD}`,
    '  threshold:         2',
    '  findtime:          600 s (10m 0s)',
    '  bantime:           3600 s (1h 0m 0s)',
    '  ports:             all',
    '  target:            the address',
    '  actions:           hook, mail',
    '  publish:           no (its bans are not shared with the fleet)',
    '  bantime_increment: steps 3600 s (1h 0m 0s), 21600 s (6h 0m 0s)',
    '  bantime_max:       604800 s (7d 0h 0m)',
    '  recidive_window:   86400 s (1d 0h 0m)',
    '  matches:           0',
    '  bans made:         0',
    '  bans active:       0',
    '  top addresses: none',
  ].join('\n'));
  assert.match(block('quiet'), /\n {2}actions: +none\n {2}bantime_increment: factor 2 \(each ban 2 times as long as the one before\)\n {2}matches:/);
  assert.doesNotMatch(block(plain), /actions|publish|bantime_increment|bantime_max|recidive_window|action:/);
});
