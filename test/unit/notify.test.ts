// Notify rules (issue 16.4): the rule keys, the matcher's login groups, the daemon's routing of a
// notify match (to the listeners, never to the scores or the ledger), and each listener's part:
// the mail alert, the webhook event, the command's placeholders, the history row the report lists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { CommandListener } from '../../src/actions/command';
import { MailListener } from '../../src/actions/mail';
import { ActionCollector, type CommandAction, type MailAction, type WebhookAction } from '../../src/actions/settings';
import { WebhookListener } from '../../src/actions/webhook';
import { Daemon } from '../../src/daemon';
import type { Listener, NotifyEvent, TallowEvent } from '../../src/events';
import { SqliteStore } from '../../src/history/sqlite';
import type { JournalEntry } from '../../src/journal';
import { HistoryListener } from '../../src/listeners/history';
import { Log } from '../../src/log';
import { Matcher } from '../../src/matcher';
import { Metrics } from '../../src/metrics';
import { parsePatternFile, PatternError, shippedPatternsDir } from '../../src/patterns';
import { buildReport } from '../../src/report';
import { resolveRules } from '../../src/rules';
import { collector, decodeWords, FakeClock, parseMail, program, tempDir, waitFor } from './actions-helpers';
import { collect } from './history-helpers';

const FP = 'SHA256:Vn7hV3Ah7uWk8ALPNfQ4JcF9oRqWG0Hc2Nq1L0cZpXk';
const parse = (doc: unknown, name = 'x.json') => parsePatternFile(JSON.stringify(doc), name, `/etc/tallow/${name}`);
const resolve = (...files: ReturnType<typeof parse>[]) => resolveRules(files.flat(), { threshold: 2, expires: 600 });
const notifyBlock = (extra: Record<string, unknown> = {}) => ({ name: 'logins', action: 'notify', filter: '_EXE=/usr/sbin/sshd', items: ['^Accepted (?<method>\\S+) for (?<user>.+) from <IP> port <PORT> ssh2$'], ...extra });

test('notify rules: the keys parsed, defaults, overrides; bad values and policy keys refused with file: block N', () => {
  const { rules } = resolve(parse([notifyBlock()]));
  assert.equal(rules[0].action, 'notify');
  assert.equal(rules[0].notifyAllowlisted, true, 'allowlisted addresses are reported by default');
  const ban = resolve(parse([{ filter: '_EXE=/x', items: [{ ban: 0, score: 1, pattern: '^f <IP>$' }] }]));
  assert.equal(ban.rules[0].action, undefined, 'an ordinary rule carries no action key');
  const off = resolve(parse([notifyBlock()], 'a.json'), parse([{ name: 'logins', notify_allowlisted: false }], 'b.json'));
  assert.equal(off.rules[0].notifyAllowlisted, false, 'an override block turns it off');

  const bad: Array<[unknown, string]> = [
    [[notifyBlock({ action: 'alert' })], 'block 1: "action": expected "ban" (the default: matches score, the threshold bans) or "notify" (each match is reported to the actions, nothing is banned), got "alert"'],
    [[notifyBlock({ notify_allowlisted: 'no' })], 'block 1: "notify_allowlisted": expected true or false, got "no"'],
    [[notifyBlock({ threshold: 3 })], 'block 1: "threshold": a rule with "action": "notify" never scores or bans; leave it out'],
    [[notifyBlock({ ports: [22] })], 'block 1: "ports": a rule with "action": "notify" never scores or bans; leave it out'],
  ];
  for (const [doc, message] of bad) {
    assert.throws(() => parse(doc, 'bad.json'), (e: unknown) => e instanceof PatternError && e.exitCode === 78 && e.message === `/etc/tallow/bad.json: ${message}`, message);
  }
  // Found only when the blocks are put together: an override adding a policy key, or notify_allowlisted on a ban rule.
  assert.throws(() => resolve(parse([notifyBlock()], 'a.json'), parse([{ name: 'logins', bantime: 60 }], 'b.json')),
    (e: unknown) => e instanceof PatternError && e.message === '/etc/tallow/b.json: block 1: "bantime": rule "logins" has "action": "notify": it never scores or bans');
  assert.throws(() => resolve(parse([{ name: 'web', filter: '_EXE=/x', items: [{ ban: 0, score: 1, pattern: '^f <IP>$' }], notify_allowlisted: false }], 'c.json')),
    (e: unknown) => e instanceof PatternError && e.message === '/etc/tallow/c.json: block 1: "notify_allowlisted": rule "web" is not a notify rule (give it "action": "notify")');
});

/** The shipped sshd-logins.json, switched on. */
function shippedLogins() {
  const p = path.join(shippedPatternsDir(), 'sshd-logins.json');
  const doc = JSON.parse(fs.readFileSync(p, 'utf8')) as Array<Record<string, unknown>>;
  assert.equal(doc[0].enabled, false, 'shipped off');
  delete doc[0].enabled;
  return parsePatternFile(JSON.stringify(doc), 'sshd-logins.json', p);
}

const sshd = (MESSAGE: string, realtime = 0): JournalEntry => ({ cursor: 'c', realtime, fields: { _EXE: '/usr/sbin/sshd', _UID: '0', MESSAGE } });

test('matcher: a notify rule\'s match carries user, method and fingerprint; the user\'s injected tail is not read', () => {
  const m = new Matcher(shippedLogins());
  const got = (msg: string) => {
    const r = m.match(sshd(msg));
    return r && { address: r.address, rule: r.rule.name, ...r.login };
  };
  assert.deepEqual(got(`Accepted publickey for alice from 198.51.100.7 port 50122 ssh2: ED25519 ${FP}`),
    { address: '198.51.100.7', rule: 'sshd-logins', user: 'alice', method: 'publickey', fingerprint: FP });
  assert.deepEqual(got('Accepted password for bob from 2001:db8::7 port 2 ssh2'), { address: '2001:db8::7', rule: 'sshd-logins', user: 'bob', method: 'password', fingerprint: '' });
  assert.deepEqual(got('Accepted keyboard-interactive/pam for x from 203.0.113.9 port 1 ssh2 from 198.51.100.7 port 50122 ssh2'),
    { address: '198.51.100.7', rule: 'sshd-logins', user: 'x from 203.0.113.9 port 1 ssh2', method: 'keyboard-interactive/pam', fingerprint: '' });
  assert.deepEqual(got(`Accepted publickey for carol from 198.51.100.7 port 50122 ssh2: ED25519-CERT ${FP} ID carol@corp (serial 7) CA ED25519 ${FP}`),
    { address: '198.51.100.7', rule: 'sshd-logins', user: 'carol', method: 'publickey', fingerprint: FP });
  assert.equal(got('Failed password for alice from 198.51.100.7 port 50122 ssh2'), null);
  // Its items never score, wherever they are counted (tallow test simulates scores with them).
  assert.deepEqual(shippedLogins().flatMap((f) => f.patterns.map((p) => [p.score, p.ban])), [[0, 0], [0, 0]]);
  // An ordinary rule's match has no login, even with groups of those names.
  const plain = new Matcher(parse([{ filter: '_EXE=/usr/sbin/sshd', items: [{ ban: 0, score: 1, pattern: '^Accepted (?<method>\\S+) for (?<user>\\S+) from <IP> port <PORT> ssh2$' }] }]));
  const r = plain.match(sshd('Accepted password for bob from 198.51.100.7 port 2 ssh2'));
  assert.equal(r?.address, '198.51.100.7');
  assert.equal(r && 'login' in r, false);
});

// ---- the daemon: a dry run over an empty journal directory, fed batches directly ----

function daemonSetup(t: { after(fn: () => unknown): void }, logins: Record<string, unknown>) {
  const dir = tempDir(t, 'notify-daemon');
  const shipped = path.join(dir, 'shipped');
  const local = path.join(dir, 'local');
  const journal = path.join(dir, 'journal');
  for (const d of [shipped, local, journal]) fs.mkdirSync(d);
  // An ordinary rule that would ban on any "Accepted" line at the first match, beside the notify rule.
  fs.writeFileSync(path.join(shipped, 'sshd.json'), JSON.stringify([{ filter: '_EXE=/usr/sbin/sshd', items: [{ ban: 60, score: 1, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }]));
  fs.writeFileSync(path.join(local, 'logins.json'), JSON.stringify([{ ...notifyBlock(), ...logins }]));
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, [`patterns_dir=${local}`, `state_dir=${dir}/state`, `socket=${dir}/sock`, 'threshold=1', 'whitelist=192.0.2.1', ''].join('\n'));
  const lines: string[] = [];
  const events: TallowEvent[] = [];
  const recorder: Listener = { name: 'recorder', wantsMatches: true, immediate: true, handle: (es) => void events.push(...es) };
  const log = new Log({ journal: false, timestamps: false, write: (_l, s) => lines.push(s) });
  return { lines, events, opts: { configFile: conf, explicitConfig: true, journalDir: journal, dryRun: true, log, shippedPatterns: shipped, listeners: [recorder] } };
}

test('daemon: a notify match becomes one notify event (journal time, user, method) and never a match, a score or a ban', async (t) => {
  const s = daemonSetup(t, {});
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  const at = Date.now() - 5000;
  const batch = Array.from({ length: 20 }, (_, i) => sshd(`Accepted password for alice from 203.0.113.${(i % 2) + 7} port ${1000 + i} ssh2`, Date.now() * 1000));
  batch[0] = sshd('Accepted publickey for bob from 192.0.2.1 port 1 ssh2', at * 1000 + 999);
  d.process(batch);
  const notes = s.events.filter((e): e is NotifyEvent => e.kind === 'notify');
  assert.equal(notes.length, 20);
  assert.deepEqual(notes[0], { kind: 'notify', rule: 'logins', address: '192.0.2.1', family: 4, at, user: 'bob', method: 'publickey', fingerprint: '', pattern: 'logins.json#1', allowlisted: true });
  assert.deepEqual(s.events.filter((e) => e.kind !== 'notify'), [], 'no match, ban or unban event');
  assert.equal(d.scoring.size, 0, 'nothing scored');
  assert.equal(d.ledger.size, 0, 'nothing banned');
  assert.ok(s.lines.includes('info: notify rule=logins address=203.0.113.7 user=alice method=password'), s.lines.join('\n'));
  // The ordinary rule still bans as before.
  d.process([sshd('Failed password for x from 198.51.100.9 port 1 ssh2', Date.now() * 1000)]);
  assert.equal(d.ledger.size, 1);
});

test('daemon: notify_allowlisted false: an allowlisted address is not reported, others are', async (t) => {
  const s = daemonSetup(t, { notify_allowlisted: false });
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  d.process([sshd('Accepted password for a from 192.0.2.1 port 1 ssh2', Date.now() * 1000), sshd('Accepted password for b from 198.51.100.3 port 1 ssh2', Date.now() * 1000)]);
  assert.deepEqual(s.events.map((e) => (e.kind === 'notify' ? `${e.user}@${e.address}` : e.kind)), ['b@198.51.100.3']);
});

// ---- listeners ----

const login = (over: Partial<NotifyEvent> = {}): NotifyEvent => ({
  kind: 'notify', rule: 'sshd-logins', address: '198.51.100.7', family: 4, at: Date.parse('2026-05-04T10:00:00Z'), user: 'alice', method: 'publickey', fingerprint: FP, pattern: 'sshd-logins.json#1', allowlisted: false, ...over,
});

const banEvent = (address: string, at: number): TallowEvent => ({
  kind: 'ban', cause: 'new',
  ban: { address, family: 4, since: at, expiry: at + 3_600_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5, scope: '', rule: 'sshd' },
});

function sendmailInto(dir: string): { path: string; mails: () => string[] } {
  const box = path.join(dir, 'box');
  fs.mkdirSync(box);
  const p = program(dir, 'sendmail', `#!/bin/sh\ncat > "${box}/$(date +%s%N).eml"\n`);
  return { path: p, mails: () => fs.readdirSync(box).sort().map((f) => fs.readFileSync(path.join(box, f), 'utf8')) };
}

test('mail: a login alert goes out at once with its own subject, while bans wait for their digest', async (t) => {
  const dir = tempDir(t, 'notify-mail');
  const sm = sendmailInto(dir);
  const clock = new FakeClock();
  const a: MailAction = { kind: 'mail', name: 'admin', where: 't:1', queue: 1000, timeoutMs: 10_000, on: ['ban', 'notify'], to: ['root@example.org'], from: 'tallow@example.org', sendmail: [sm.path], digestMs: 15 * 60_000, report: null };
  const l = new MailListener(a, collector(), clock);
  l.handle([banEvent('203.0.113.1', clock.t)]);
  await l.flush();
  l.handle([banEvent('203.0.113.2', clock.t)]); // held: the digest interval has begun
  l.handle([login({ user: 'alice\x1b[31m<b>' })]);
  await l.flush();
  const mails = sm.mails().map(parseMail);
  assert.equal(mails.length, 2, 'the first ban, then the login at once; the second ban waits');
  const alert = mails[1];
  assert.equal(decodeWords(alert.headers.get('subject')!), `login: alice?[31m<b> from 198.51.100.7 on ${os.hostname()}`);
  assert.match(alert.text, /alice\?\[31m<b> +198\.51\.100\.7 +publickey +SHA256:Vn7hV3Ah7uWk8ALPNfQ4JcF9oRqWG0Hc2Nq1L0cZpXk +sshd-logins/);
  assert.ok(alert.html.includes('alice?[31m&lt;b&gt;') && !alert.html.includes('<b>'), alert.html);
  assert.ok(!alert.text.includes('203.0.113.2'), 'the held ban is not in the alert');
  // on=ban only (an existing setting): no login mail.
  const quiet = new MailListener({ ...a, on: ['ban'] }, collector(), clock);
  quiet.handle([login()]);
  await quiet.flush();
  assert.equal(sm.mails().length, 2);
  await l.close();
  assert.equal(sm.mails().length, 3, 'the held ban goes out at stop');
});

test('webhook: a login is a "notify" event of the batch with user, method and fingerprint', async (t) => {
  const bodies: any[] = [];
  const server = http.createServer((req, res) => {
    let b = '';
    req.on('data', (d) => (b += d));
    req.on('end', () => {
      bodies.push(JSON.parse(b));
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  const a: WebhookAction = { kind: 'webhook', name: 'hook', where: 't:1', queue: 1000, timeoutMs: 5000, url, on: ['ban', 'unban', 'notify'], bearerFile: '', secretFile: '', caFile: '', batch: 100, format: 'tallow' };
  const w = new WebhookListener(a, { bearer: '', secret: '', ca: '' }, collector());
  t.after(() => w.close());
  await w.handle([banEvent('203.0.113.1', Date.parse('2026-05-04T09:00:00Z')), login()]);
  assert.equal(bodies.length, 1);
  const [, e] = bodies[0].events;
  assert.match(e.id, /^[0-9a-f]{8}-2$/);
  delete e.id;
  assert.deepEqual(e, { type: 'notify', time: '2026-05-04T10:00:00.000Z', address: '198.51.100.7', family: 4, network: '198.51.100.7/32', rule: 'sshd-logins', pattern: 'sshd-logins.json#1', user: 'alice', method: 'publickey', fingerprint: FP });
  assert.equal(bodies[0].events[0].type, 'ban');
  // on=ban,unban (an existing setting): the login is not sent.
  const old = new WebhookListener({ ...a, on: ['ban', 'unban'] }, { bearer: '', secret: '', ca: '' }, collector());
  t.after(() => old.close());
  await old.handle([login()]);
  assert.equal(bodies.length, 1);
});

test('command: notify_command gets {user} {method} {fingerprint} as arguments of their own; ban_command may not use them', async (t) => {
  const dir = tempDir(t, 'notify-command');
  const out = path.join(dir, 'out');
  const script = program(dir, 'record', `#!/bin/sh\nfor a in "$@"; do printf '[%s]' "$a"; done >> "${out}"\necho " $TALLOW_USER" >> "${out}"\n`);
  const c = new ActionCollector('t.conf');
  assert.equal(c.add('action.alert.notify_command', `${script} {event} {user} {address} {method} {fingerprint} {rule}`, 1), null);
  assert.equal(c.add('action.alert.batch', '50', 2), null);
  const built = c.build();
  assert.ok(built.ok);
  const a = built.settings.actionDefs![0] as CommandAction;
  assert.equal(a.ban, null);
  const l = new CommandListener(a, collector());
  await l.handle([banEvent('203.0.113.1', Date.now()), login({ user: 'x; rm -rf / $(id)' })]);
  await waitFor('the notify run', () => fs.existsSync(out) && fs.readFileSync(out, 'utf8').endsWith('\n'));
  await l.flush();
  assert.equal(fs.readFileSync(out, 'utf8'), `[notify][x; rm -rf / $(id)][198.51.100.7][publickey][${FP}][sshd-logins] x; rm -rf / $(id)\n`);
  await l.close();

  const bad = new ActionCollector('t.conf');
  bad.add('action.fw.ban_command', `${script} {address} {user}`, 1);
  assert.deepEqual(bad.build(), { ok: false, line: 1, message: "action.fw.ban_command: {user} is a login's (notify_command); a ban has none" });
  const on = new ActionCollector('t.conf');
  on.add('action.m.mail_to', 'root', 1);
  on.add('action.m.on', 'ban,notify', 2);
  const m = on.build();
  assert.ok(m.ok && (m.settings.actionDefs![0] as MailAction).on.join() === 'ban,notify');
});

test('history: a login becomes a row of the logins table, and tallow report lists it', async (t) => {
  const dir = tempDir(t, 'notify-history');
  const file = path.join(dir, 'history.sqlite');
  const log = collect();
  const store = new SqliteStore(file, log);
  const h = new HistoryListener({ store, log, metrics: new Metrics(), matches: true, matchesPerHour: 60, days: 90, maxQueue: 1000 });
  const at = Date.parse('2026-05-04T10:00:00Z');
  await h.handle([login({ at }), login({ at: at + 60_000, user: 'bob', address: '2001:db8::5', family: 6, method: 'password', fingerprint: '' })]);
  await h.close();
  const reader = new SqliteStore(file, collect(), true);
  t.after(() => reader.close());
  const r = await buildReport(reader, at - 3_600_000, at + 3_600_000, { host: 'h' });
  assert.deepEqual(r.data.logins, {
    recorded: true,
    total: 2,
    items: [
      { at: at + 60_000, rule: 'sshd-logins', user: 'bob', address: '2001:db8::5', method: 'password', fingerprint: null },
      { at, rule: 'sshd-logins', user: 'alice', address: '198.51.100.7', method: 'publickey', fingerprint: FP },
    ],
  });
  const section = r.text.slice(r.text.indexOf('Logins seen by notify rules'), r.text.indexOf('Bans per hour'));
  assert.equal(section, [
    'Logins seen by notify rules',
    'TIME (UTC)   ADDRESS       USER   METHOD',
    '05-04 10:01  2001:db8::5   bob    password',
    '05-04 10:00  198.51.100.7  alice  publickey',
    '',
    '',
  ].join('\n'));
});
