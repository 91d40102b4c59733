// Rules in the engine (issue 14): disabled rules cost nothing (no journal match, no matcher block),
// Match.rule, tallow-C's own files keep their meaning; bad rule keys stop `tallow test` and the
// daemon with exit 78 naming file and block, and are refused on reload; a reload says what changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../../src/config';
import { Daemon } from '../../src/daemon';
import { makeEngine } from '../../src/engine';
import { Log } from '../../src/log';
import { loadPatternFiles, parsePatternFile } from '../../src/patterns';
import { ALL_PORTS } from '../../src/scope';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const TALLOW_C = path.join(ROOT, 'test', 'fixtures', 'tallow-c');
const CONF = parseConfig('threshold = 2\nexpires = 600\npatterns_dir = /nonexistent/tallow-rules\n', '/etc/tallow.conf');
const entry = (fields: Record<string, string>) => ({ cursor: 'c', realtime: 1, fields });

function tmp(t: { after(fn: () => unknown): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-rules-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('engine: a disabled rule is in engine.rules only: no journal match, no field, no matcher block', () => {
  const doc = [
    { filter: [['_EXE=/usr/sbin/sshd', '_UID=0']], items: [{ ban: 0, score: 0.5, pattern: '^fail <IP>$' }] },
    { name: 'web', unit: 'nginx', enabled: false, limit: 3, items: ['^fail <IP>$'] },
    { name: 'mail', filter: [['SYSLOG_IDENTIFIER=postfix/smtpd', '_UID=0']], enabled: false, items: [{ ban: 0, score: 1, pattern: '^fail <IP>$' }] },
  ];
  const e = makeEngine(CONF, parsePatternFile(JSON.stringify(doc), 'x.json', '/etc/tallow/x.json'));
  assert.deepEqual(e.rules.map((r) => [r.name, r.enabled]), [['x#1', true], ['web', false], ['mail', false]]);
  assert.deepEqual(e.matches, [['_EXE=/usr/sbin/sshd', '_UID=0']]);
  assert.deepEqual(e.fields.sort(), ['MESSAGE', '_EXE', '_UID']);
  assert.deepEqual(e.blocks.map((b) => b.rule.name), ['x#1']);
  assert.equal(e.matcher.match(entry({ _SYSTEMD_UNIT: 'nginx.service', MESSAGE: 'fail 203.0.113.1' })), null);
  assert.equal(e.matcher.match(entry({ SYSLOG_IDENTIFIER: 'postfix/smtpd', _UID: '0', MESSAGE: 'fail 203.0.113.1' })), null);
  const m = e.matcher.match(entry({ _EXE: '/usr/sbin/sshd', _UID: '0', MESSAGE: 'fail 203.0.113.1' }));
  assert.equal(m?.rule, e.rules[0], 'Match.rule is the engine\'s rule object');

  // The same rule enabled by an override block in another file: now read and matched.
  const on = parsePatternFile('[{"name": "web", "enabled": true}]', 'web-on.json', '/etc/tallow/web-on.json');
  const e2 = makeEngine(CONF, [...parsePatternFile(JSON.stringify(doc), 'x.json', '/etc/tallow/x.json'), ...on]);
  assert.deepEqual(e2.matches, [['_EXE=/usr/sbin/sshd', '_UID=0'], ['_SYSTEMD_UNIT=nginx.service']]);
  assert.deepEqual(e2.fields.sort(), ['MESSAGE', '_EXE', '_SYSTEMD_UNIT', '_UID']);
  const w = e2.matcher.match(entry({ _SYSTEMD_UNIT: 'nginx.service', MESSAGE: 'fail 203.0.113.1' }));
  assert.deepEqual([w?.address, w?.pattern.name, w?.pattern.score, w?.file, w?.rule.name, w?.rule.threshold, w?.rule.pool], ['203.0.113.1', 'x.json#2', 1, 'x.json', 'web', 3, 'web']);
});

test('tallow-C\'s own files (format and style) load as rules in the shared pool with tallow.conf\'s policy, matching as before', () => {
  const files = loadPatternFiles(TALLOW_C, '/nonexistent/tallow-rules');
  const e = makeEngine(CONF, files);
  assert.deepEqual(e.rules, [
    { name: 'dovecot', pool: '', enabled: true, noLog: false, threshold: 2, findtime: 0, bantime: 600, scope: ALL_PORTS, prefix: { 4: 32, 6: 128 }, where: `${TALLOW_C}/dovecot.json (block 1)` },
    { name: 'sshd', pool: '', enabled: true, noLog: false, threshold: 2, findtime: 0, bantime: 600, scope: ALL_PORTS, prefix: { 4: 32, 6: 128 }, where: `${TALLOW_C}/sshd.json (block 1)` },
  ]);
  assert.deepEqual(e.matches, [['SYSLOG_IDENTIFIER=auth'], ['SYSLOG_IDENTIFIER=sshd']]);
  // Line -> address, pattern (file#item, score, ban), worked out by hand from the files.
  const sshd = (MESSAGE: string) => ({ SYSLOG_IDENTIFIER: 'sshd', MESSAGE });
  const cases: Array<[Record<string, string>, [string, string, number, number] | null]> = [
    [sshd('Failed password for root from 203.0.113.5 port 4711 ssh2'), ['203.0.113.5', 'sshd.json#1', 0.2, 0]],
    [sshd('Failed password for invalid user admin from 198.51.100.20 port 50000 ssh2'), ['198.51.100.20', 'sshd.json#1', 0.2, 0]],
    [sshd('Invalid user admin from 198.51.100.20 port 50000'), ['198.51.100.20', 'sshd.json#2', 0.2, 10]],
    [sshd('Did not receive identification string from 2001:db8::5 port 22'), ['2001:db8::5', 'sshd.json#3', 0.3, 10]],
    [sshd('Connection closed by authenticating user root 203.0.113.7 port 2222 [preauth]'), ['203.0.113.7', 'sshd.json#4', 0.4, 15]],
    [sshd('Unable to negotiate with 192.0.2.44 port 50123: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1'), ['192.0.2.44', 'sshd.json#5', 0.6, 60]],
    [{ SYSLOG_IDENTIFIER: 'auth', MESSAGE: 'pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=bob@example.org rhost=203.0.113.50' }, ['203.0.113.50', 'dovecot.json#1', 0.6, 50]],
    [sshd('Accepted publickey for alice from 192.0.2.10 port 50022 ssh2: ED25519 SHA256:x'), null],
    // each file's patterns only for its own filter's entries
    [{ SYSLOG_IDENTIFIER: 'auth', MESSAGE: 'Invalid user admin from 198.51.100.20 port 50000' }, null],
    [{ SYSLOG_IDENTIFIER: 'sshd', MESSAGE: 'pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=b rhost=203.0.113.50' }, null],
  ];
  for (const [fields, want] of cases) {
    const m = e.matcher.match(entry(fields));
    assert.deepEqual(m && [m.address, m.pattern.name, m.pattern.score, m.pattern.ban], want, fields.MESSAGE);
    if (m) assert.equal(m.rule.pool, '', 'one score per address across both files, as in tallow');
  }
});

function cli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
}

test('tallow test and the daemon stop with exit 78 and `file: block N: ...` on a bad rule key', (t) => {
  const dir = tmp(t);
  const local = path.join(dir, 'local');
  fs.mkdirSync(local);
  const bad = path.join(local, 'mine.json');
  fs.writeFileSync(bad, JSON.stringify([{ unit: 'myapp', items: [] }, { unit: 'other', thresold: 2, items: [] }]));
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, `patterns_dir=${local}\nstate_dir=${dir}/state\nsocket=${dir}/sock\n`);
  const input = path.join(dir, 'in.log');
  fs.writeFileSync(input, 'nothing\n');
  const message = `${bad}: block 2: unknown key "thresold" (known: filter, items, name, enabled, no_log, unit, threshold, limit, findtime, bantime, ports, protocol, ban_prefix_v4, ban_prefix_v6, action, notify_allowlisted, actions, publish, bantime_increment, bantime_max, recidive_window)`;

  const t1 = cli(['test', '--config', conf, '--patterns', bad, input]);
  assert.equal(t1.status, 78, t1.stderr);
  assert.equal(t1.stderr, `tallow test: ${message}\n`);
  const t2 = cli(['test', '--config', conf, input]); // through patterns_dir, with the shipped files
  assert.equal(t2.status, 78, t2.stderr);
  assert.equal(t2.stderr, `tallow test: ${message}\n`);

  const journal = path.join(dir, 'journal');
  fs.mkdirSync(journal);
  const d = cli(['--config', conf, '--dry-run', '--journal-dir', journal]);
  assert.equal(d.status, 78, d.stdout + d.stderr);
  assert.equal(d.stderr.split('\n').filter((l) => l.startsWith('tallow: ')).join('\n'), `tallow: ${message}`);
  assert.ok(!fs.existsSync(path.join(dir, 'state')), 'stopped before anything was done');

  // An override naming no rule is refused the same way.
  fs.writeFileSync(bad, '[{"name": "mailhub", "enabled": true}]'); // a name no shipped file defines
  const t3 = cli(['test', '--config', conf, input]);
  assert.equal(t3.status, 78);
  assert.match(t3.stderr, /^tallow test: \S+mine\.json: block 1: no rule named "mailhub" to override/);
});

test('reload: rule changes are logged; a bad rule key is refused and the running rules stay', async (t) => {
  const dir = tmp(t);
  const [shipped, local, journal] = ['shipped', 'local', 'journal'].map((d) => path.join(dir, d));
  for (const d of [shipped, local, journal]) fs.mkdirSync(d);
  const items = [{ ban: 0, score: 0.5, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }];
  fs.writeFileSync(path.join(shipped, 'sshd.json'), JSON.stringify([{ filter: '_EXE=/usr/sbin/sshd', items }]));
  fs.writeFileSync(path.join(shipped, 'web.json'), JSON.stringify([{ unit: 'nginx', enabled: false, bantime: 60, items }]));
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, `patterns_dir=${local}\nstate_dir=${dir}/state\nsocket=${dir}/sock\nexpires=60\n`);
  const lines: string[] = [];
  const log = new Log({ journal: false, timestamps: false, write: (_l, s) => lines.push(s) });
  const d = await Daemon.start({ configFile: conf, explicitConfig: true, journalDir: journal, dryRun: true, log, shippedPatterns: shipped });
  t.after(() => d.stop());

  fs.writeFileSync(path.join(local, 'on.json'), '[{"name": "web", "enabled": true, "bantime": 120}, {"name": "sshd", "enabled": false}]');
  lines.length = 0;
  assert.equal(d.reload(), true);
  assert.deepEqual(lines.filter((l) => l.startsWith('info: rule ') && !/^info: rule \S+: /.test(l)), [
    'info: rule sshd disabled: it has no active bans',
    'info: rule web enabled',
    'info: rule web policy changed: bantime 60 -> 120',
  ]);
  assert.deepEqual(d.engine.matches, [['_SYSTEMD_UNIT=nginx.service']]);

  fs.writeFileSync(path.join(local, 'on.json'), '[{"name": "web", "enabled": true, "bantime": 0}]');
  lines.length = 0;
  assert.equal(d.reload(), false);
  assert.deepEqual(lines, [`error: reload refused, still running the previous configuration: ${local}/on.json: block 1: "bantime": expected whole seconds from 1 to 2147483, got 0`]);
  assert.deepEqual(d.engine.rules.map((r) => [r.name, r.enabled, r.bantime]), [['sshd', false, 60], ['web', true, 120]]);
});
