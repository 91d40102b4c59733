// Mail through a real MTA: Debian's exim4-daemon-light, fetched with `apt-get download` (not
// installed: the host's mail system is never touched) and unpacked into the test's directory,
// run as `sendmail -t -oi` in a mount namespace of its own (overlays add exim4 and the libraries
// it needs to /usr/sbin and /usr/lib; /etc/passwd gains its Debian-exim user there only), with a
// configuration that delivers every mail to one mbox file in the test's directory. The test
// reads the mailbox as a mail reader would and parses each message in full.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MailListener } from '../../src/actions/mail';
import type { MailAction } from '../../src/actions/settings';
import type { TallowEvent } from '../../src/events';
import type { Ban } from '../../src/ledger';
import { addresses, collector, decodeWords, FakeClock, parseMail, tempDir, waitFor } from '../unit/actions-helpers';
import { exim, messages } from './exim';
import { SqliteStore } from '../../src/history/sqlite';
import { reportRun } from '../../src/report/cli';
import { fixtureRows, UNTIL } from '../unit/report-fixture';

const banEvent = (address: string, at: number, over: Record<string, unknown> = {}): TallowEvent => ({
  kind: 'ban',
  cause: 'new',
  ban: { address, family: address.includes(':') ? 6 : 4, since: at, expiry: at + 3_600_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5, ...over } as Ban,
});

test('mail through exim4: a ban at once, then a digest of the rest, delivered and well-formed', async (t) => {
  const dir = tempDir(t, 'mail-exim');
  const mta = exim(dir);
  const clock = new FakeClock();
  const log = collector();
  const a: MailAction = { kind: 'mail', name: 'admin', where: 't:1', queue: 100_000, timeoutMs: 60_000, on: ['ban'], to: ['root@example.org'], from: 'tallow@tallow-test.example', sendmail: [mta.sendmail], digestMs: 15 * 60_000, report: null };
  const l = new MailListener(a, log, clock);
  const rule = 'sshd-règle <b>&';
  const all = addresses(100);
  l.handle([banEvent(all[0], clock.t, { rule })]);
  await l.flush();
  for (let i = 1; i < 100; i += 33) {
    clock.advance(60_000);
    l.handle(all.slice(i, i + 33).map((x) => banEvent(x, clock.t)));
  }
  clock.advance(15 * 60_000);
  try {
    await waitFor('two mails in the mailbox', () => messages(mta.mailbox).length >= 2, 60_000);
  } catch (e) {
    throw new Error(`${e}; tallow: ${log.errors.join('; ')}; exim: ${fs.existsSync(mta.log) ? fs.readFileSync(mta.log, 'utf8') : 'no log'}; mailbox: ${messages(mta.mailbox).length}`);
  }
  await l.close();
  assert.deepEqual(log.errors, []);
  const ms = messages(mta.mailbox).map(parseMail);
  assert.equal(ms.length, 2, fs.existsSync(mta.log) ? fs.readFileSync(mta.log, 'utf8') : 'no exim log');
  // exim's own headers say it took and delivered them.
  for (const m of ms) {
    assert.match(m.headers.get('received') ?? '', /by tallow-test\.example with local \(Exim 4\.\d+\)/);
    assert.equal(m.headers.get('envelope-to'), 'root@example.org');
    assert.equal(m.headers.get('from'), 'tallow@tallow-test.example');
    assert.equal(m.headers.get('mime-version'), '1.0');
    assert.ok(Date.parse(m.headers.get('date')!) > 0);
  }
  assert.equal(decodeWords(ms[0].headers.get('subject')!), `tallow on ${os.hostname()}: 1 ban: ${all[0]} (${rule})`);
  assert.ok(ms[0].html.includes('sshd-règle &lt;b&gt;&amp;'));
  assert.equal(decodeWords(ms[1].headers.get('subject')!), `tallow on ${os.hostname()}: 99 bans`);
  const listed = ms.flatMap((m) => [...m.text.matchAll(/^\S+ \S+ +ban +(\S+)/gm)].map((x) => x[1]));
  assert.deepEqual(listed, all);
});

test('the daily report through exim4: `tallow report --mail admin` delivers one multipart mail with the text and HTML reports', async (t) => {
  const dir = tempDir(t, 'mail-report');
  const mta = exim(dir);
  const state = path.join(dir, 'state');
  const writer = new SqliteStore(path.join(state, 'history.sqlite'), collector());
  await writer.write('run-1', fixtureRows());
  await writer.close();
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, `state_dir=${state}\nsocket=${dir}/none.sock\naction.admin.mail_to=root@example.org\naction.admin.mail_from=tallow@tallow-test.example\naction.admin.sendmail=${mta.sendmail}\n`);
  const run = async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await reportRun([...args, '--since', '2026-03-10T06:00Z', '--until', '2026-03-11T06:00Z', '--config', conf], { out: (s) => void out.push(s), err: (s) => void err.push(s) }, UNTIL + 3_600_000);
    return { code, out: out.join(''), err: err.join('') };
  };
  const sent = await run('--mail', 'admin');
  assert.equal(sent.code, 0, `${sent.err}; exim: ${fs.existsSync(mta.log) ? fs.readFileSync(mta.log, 'utf8') : 'no log'}`);
  await waitFor('the report in the mailbox', () => messages(mta.mailbox).length >= 1, 60_000);
  const [m] = messages(mta.mailbox).map(parseMail);
  assert.match(m.headers.get('received') ?? '', /by tallow-test\.example with local \(Exim 4\.\d+\)/);
  assert.equal(m.headers.get('envelope-to'), 'root@example.org');
  // The fixture's day holds 11 bans (counted by hand in test/unit/report.test.ts).
  assert.equal(decodeWords(m.headers.get('subject')!), `tallow report for ${os.hostname()}: 11 bans (2026-03-10 06:00 to 2026-03-11 06:00 UTC)`);
  assert.equal(m.text, (await run()).out);
  assert.equal(m.html, (await run('--format', 'html')).out);
});
