// Actions chosen per rule (issue 16): `"actions": [...]` on a patterns-file block names actions of
// tallow.conf; a rule without it takes `actions=`. A real daemon in process (backend=none, so no
// firewall): each action is a recorder script, and each ban, unban and login must reach exactly
// the actions its rule names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Daemon } from '../../src/daemon';
import type { JournalEntry } from '../../src/journal';
import { Log } from '../../src/log';
import { parseConfig } from '../../src/config';
import { makeEngine } from '../../src/engine';
import { loadPatternFiles, PatternError } from '../../src/patterns';
import { parseRuleKeys } from '../../src/rule-keys';
import { program, tempDir, waitFor } from './actions-helpers';

const SSHD = '/usr/sbin/sshd';
const FAILED = { filter: [[`_EXE=${SSHD}`, '_UID=0']], items: [{ ban: 0, score: 1, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] };
const WEB = { name: 'web', filter: [['SYSLOG_IDENTIFIER=web']], items: [{ ban: 0, score: 1, pattern: '^bad request from <IP>$' }] };
const LOGINS = { name: 'logins', action: 'notify', filter: [[`_EXE=${SSHD}`, '_UID=0']], items: ['^Accepted (?<method>publickey) for (?<user>\\S+) from <IP> port <PORT> ssh2$'] };

interface Setup {
  dir: string;
  conf: string;
  local: string;
  shipped: string;
  ran: (name: string) => string[];
}

/** Three command actions (a, b, c) recording `{event} {address} {rule}`; patterns as given. */
function setup(t: { after(fn: () => void): void }, shippedBlocks: unknown[], localBlocks: unknown[] | null, extra: string[] = []): Setup {
  const dir = tempDir(t, 'act-rules');
  const shipped = path.join(dir, 'shipped');
  const local = path.join(dir, 'local');
  for (const d of [shipped, local, path.join(dir, 'journal')]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(shipped, 'rules.json'), JSON.stringify(shippedBlocks));
  if (localBlocks) fs.writeFileSync(path.join(local, 'local.json'), JSON.stringify(localBlocks));
  const lines = [`patterns_dir=${local}`, `state_dir=${dir}/state`, `socket=${dir}/run/sock`, 'backend=none', 'history=off', 'expires=60'];
  for (const n of ['a', 'b', 'c']) {
    const rec = program(dir, `rec-${n}`, `#!/bin/sh\necho "$*" >> ${dir}/ran-${n}\n`);
    lines.push(`action.${n}.ban_command=${rec} {event} {address} {rule}`, `action.${n}.unban_command=${rec} {event} {address} {rule}`, `action.${n}.notify_command=${rec} {event} {address} {rule} {user}`);
  }
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, [...lines, ...extra, ''].join('\n'));
  const ran = (n: string) => (fs.existsSync(path.join(dir, `ran-${n}`)) ? fs.readFileSync(path.join(dir, `ran-${n}`), 'utf8').split('\n').filter(Boolean).sort() : []);
  return { dir, conf, local, shipped, ran };
}

async function start(t: { after(fn: () => Promise<void>): void }, s: Setup): Promise<{ d: Daemon; lines: string[] }> {
  const lines: string[] = [];
  const log = new Log({ journal: false, timestamps: false, write: (_l, x) => lines.push(x) });
  const d = await Daemon.start({ configFile: s.conf, explicitConfig: true, journalDir: path.join(s.dir, 'journal'), dryRun: false, log, shippedPatterns: s.shipped });
  t.after(() => d.stop());
  return { d, lines };
}

let cursor = 0;
const sshd = (message: string): JournalEntry => ({ cursor: `c${cursor++}`, realtime: Date.now() * 1000, fields: { MESSAGE: message, _EXE: SSHD, _UID: '0' } });
const web = (message: string): JournalEntry => ({ cursor: `c${cursor++}`, realtime: Date.now() * 1000, fields: { MESSAGE: message, SYSLOG_IDENTIFIER: 'web' } });

test('"actions" rule key: a list of action names, each once; anything else refused with the key named', () => {
  assert.deepEqual(parseRuleKeys({ actions: ['admin-mail', 'hook'] }).actions, ['admin-mail', 'hook']);
  assert.deepEqual(parseRuleKeys({ actions: [] }).actions, []);
  for (const bad of ['admin', ['Admin'], ['a', 'a'], [1], 'none', ['a b']]) {
    assert.throws(() => parseRuleKeys({ actions: bad }), /^Error: "actions": expected a list of action names from tallow\.conf/, JSON.stringify(bad));
  }
});

test('each ban, unban and login reaches only its rule\'s actions; a rule without "actions" takes actions=', async (t) => {
  // sshd: [a]; web: none given -> actions=b,c; logins (notify): [c]. Manual bans (no rule): actions=.
  const s = setup(t, [{ name: 'sshd', actions: ['a'], ...FAILED }, WEB, { ...LOGINS, actions: ['c'] }], null, ['actions=b,c']);
  const { d, lines } = await start(t, s);
  assert.ok(lines.includes('info: action.a: command on ban and unban and notify, one run per address, 4 at once; for rules sshd'), lines.join('\n'));
  d.process([sshd('Failed password for root from 203.0.113.7 port 4242 ssh2'), web('bad request from 198.51.100.9'), sshd('Accepted publickey for alice from 192.0.2.44 port 5555 ssh2')]);
  assert.equal((await d.handle({ cmd: 'ban', address: '203.0.113.99', seconds: 60 })).ok, true);
  await waitFor('every run', () => s.ran('a').length + s.ran('b').length + s.ran('c').length >= 6);
  await d.events.flush();
  assert.deepEqual(s.ran('a'), ['ban 203.0.113.7 sshd']);
  assert.deepEqual(s.ran('b'), ['ban 198.51.100.9 web', 'ban 203.0.113.99 ']);
  assert.deepEqual(s.ran('c'), ['ban 198.51.100.9 web', 'ban 203.0.113.99 ', 'notify 192.0.2.44 logins alice']);
  // An unban goes where its ban went.
  assert.equal((await d.handle({ cmd: 'unban', address: '203.0.113.7' })).ok, true);
  await waitFor('the unban', () => s.ran('a').length === 2);
  await d.events.flush();
  assert.deepEqual(s.ran('a'), ['ban 203.0.113.7 sshd', 'unban 203.0.113.7 sshd']);
  assert.equal(s.ran('b').length + s.ran('c').length, 5);
});

test('"actions" from an override block in patterns_dir; a reload changes the choice at once, and [] sends to none', async (t) => {
  const s = setup(t, [{ name: 'sshd', ...FAILED }], [{ name: 'sshd', actions: ['b'] }]);
  const { d, lines } = await start(t, s);
  d.process([sshd('Failed password for root from 203.0.113.1 port 1 ssh2')]);
  await waitFor('b ran', () => s.ran('b').length === 1);
  fs.writeFileSync(path.join(s.local, 'local.json'), JSON.stringify([{ name: 'sshd', actions: ['a', 'c'] }]));
  assert.equal(d.reload(), true);
  assert.ok(lines.includes('info: rule sshd policy changed: actions [b] -> [a,c]'), lines.join('\n'));
  d.process([sshd('Failed password for root from 203.0.113.2 port 1 ssh2')]);
  await waitFor('a and c ran', () => s.ran('a').length === 1 && s.ran('c').length === 1);
  fs.writeFileSync(path.join(s.local, 'local.json'), JSON.stringify([{ name: 'sshd', actions: [] }]));
  assert.equal(d.reload(), true);
  d.process([sshd('Failed password for root from 203.0.113.3 port 1 ssh2')]);
  assert.ok(d.ledger.get('203.0.113.3', ''), 'still banned');
  await d.events.flush();
  assert.deepEqual([s.ran('a'), s.ran('b'), s.ran('c')], [['ban 203.0.113.2 sshd'], ['ban 203.0.113.1 sshd'], ['ban 203.0.113.2 sshd']]);
});

test('an unknown action name: exit 78 at start naming the file, block and rule; a reload refuses it and keeps the old choice', async (t) => {
  const s = setup(t, [{ name: 'sshd', ...FAILED }], [{ name: 'sshd', actions: ['a', 'admin-mial'] }]);
  await assert.rejects(
    Daemon.start({ configFile: s.conf, explicitConfig: true, journalDir: path.join(s.dir, 'journal'), dryRun: false, log: new Log({ journal: false, timestamps: false, write: () => {} }), shippedPatterns: s.shipped }),
    (e: unknown) => e instanceof PatternError && e.exitCode === 78 && e.message === `${s.local}/local.json: block 1: "actions": rule "sshd": no action named "admin-mial" in ${s.conf} (defined: a, b, c; define it with action.admin-mial.KEY=...)`,
  );
  fs.writeFileSync(path.join(s.local, 'local.json'), JSON.stringify([{ name: 'sshd', actions: ['a'] }]));
  const { d, lines } = await start(t, s);
  fs.writeFileSync(path.join(s.local, 'local.json'), JSON.stringify([{ name: 'sshd', actions: ['zz'] }]));
  assert.equal(d.reload(), false);
  assert.ok(lines.some((l) => l.startsWith('error: reload refused, still running the previous configuration: ') && l.includes('"actions": rule "sshd": no action named "zz"')), lines.join('\n'));
  d.process([sshd('Failed password for root from 203.0.113.5 port 1 ssh2')]);
  await waitFor('a ran', () => s.ran('a').length === 1);
  await d.events.flush();
  assert.deepEqual([s.ran('b'), s.ran('c')], [[], []]);
});

test('blocks of one rule must agree on "actions"; names are checked against tallow.conf in the engine', (t) => {
  const s = setup(t, [{ name: 'sshd', actions: ['a'], ...FAILED }, { name: 'sshd', actions: ['b'], ...FAILED }], null);
  const config = parseConfig(fs.readFileSync(s.conf, 'utf8'), s.conf);
  assert.throws(() => makeEngine(config, loadPatternFiles(s.shipped, s.local)), /rules\.json: block 2: "actions" is \["b"\] here but \["a"\] in block 1/);
  fs.writeFileSync(path.join(s.shipped, 'rules.json'), JSON.stringify([{ name: 'sshd', actions: ['a'], ...FAILED }]));
  assert.deepEqual(makeEngine(config, loadPatternFiles(s.shipped, s.local)).rules[0].actions, ['a']);
  // A tallow.conf with no actions: any name is unknown.
  assert.throws(() => makeEngine(parseConfig('', 'empty.conf'), loadPatternFiles(s.shipped, s.local)), /no action named "a" in empty\.conf \(defined: none;/);
});
