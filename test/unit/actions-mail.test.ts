// Mail actions through a sendmail-compatible program the test writes (it stores each message it
// is given and its arguments; no MTA runs). Each stored message is parsed in full by the test's
// own reader: headers, encoded-words, multipart/alternative, base64 UTF-8 parts, HTML escaping.
// The digest: a burst of 100 bans makes at most 2 mails (the first at once, one digest after the
// interval, on a fake clock) listing all 100.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MailListener } from '../../src/actions/mail';
import { encodeHeader } from '../../src/actions/message';
import type { MailAction } from '../../src/actions/settings';
import type { TallowEvent } from '../../src/events';
import type { Ban } from '../../src/ledger';
import { addresses, collector, decodeWords, FakeClock, parseMail as parse, program, tempDir, waitFor } from './actions-helpers';

/** sendmail -t -oi as far as the test needs: the message from standard input, kept in a file. */
function fakeSendmail(dir: string, fail = false): string {
  const box = path.join(dir, 'box');
  fs.mkdirSync(box);
  return program(dir, 'sendmail', `#!/bin/sh\n${fail ? 'cat > /dev/null; echo "mail queue full" >&2; exit 75\n' : ''}n=$(date +%s%N)\nprintf '%s\\n' "$@" > "${box}/$n.args"\ncat > "${box}/$n.eml"\n`);
}

function mails(dir: string): { args: string[]; raw: string }[] {
  const box = path.join(dir, 'box');
  return fs
    .readdirSync(box)
    .filter((f) => f.endsWith('.eml'))
    .sort()
    .map((f) => ({ raw: fs.readFileSync(path.join(box, f), 'utf8'), args: fs.readFileSync(path.join(box, f.replace(/\.eml$/, '.args')), 'utf8').trim().split('\n') }));
}

function action(sendmail: string, over: Partial<MailAction> = {}): MailAction {
  return { kind: 'mail', name: 'admin', where: 't:1', queue: 100_000, timeoutMs: 10_000, on: ['ban'], to: ['root@example.org', 'ops@example.org'], from: 'tallow@example.org', sendmail: [sendmail], digestMs: 15 * 60_000, report: null, ...over };
}

const banEvent = (address: string, at: number, over: Record<string, unknown> = {}): TallowEvent => ({
  kind: 'ban',
  cause: 'new',
  ban: { address, family: address.includes(':') ? 6 : 4, since: at, expiry: at + 3_600_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5, ...over } as Ban,
});

test('mail: the first ban goes out at once, well-formed; the attacker-influenced values are escaped', async (t) => {
  const dir = tempDir(t, 'mail-one');
  const clock = new FakeClock();
  const l = new MailListener(action(fakeSendmail(dir)), collector(), clock);
  const rule = 'sshd <script>alert("x")</script> & règle ✓ ';
  l.handle([banEvent('2001:db8::7', clock.t, { rule, pattern: 'p<b>"\'' })]);
  await l.flush();
  const [m] = mails(dir);
  assert.deepEqual(m.args, ['-t', '-oi']);
  const p = parse(m.raw);
  const h = p.headers;
  for (const k of ['date', 'from', 'to', 'subject', 'message-id', 'mime-version']) assert.ok(h.has(k), `${k} header`);
  assert.equal(h.get('mime-version'), '1.0');
  assert.equal(h.get('from'), 'tallow@example.org');
  assert.equal(h.get('to'), 'root@example.org, ops@example.org');
  assert.equal(Date.parse(h.get('date')!), clock.t);
  assert.match(h.get('date')!, /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/);
  assert.match(h.get('message-id')!, /^<[^<>@\s]+@[A-Za-z0-9.-]+>$/);
  assert.match(h.get('subject')!, /^=\?UTF-8\?B\?/, 'non-ASCII subject as encoded-words');
  assert.equal(decodeWords(h.get('subject')!), `tallow on ${os.hostname()}: 1 ban: 2001:db8::7 (${rule})`);
  assert.match(p.text, /^tallow on .*: 1 ban, /);
  assert.ok(p.text.includes(rule), 'the text part has the rule as it is');
  assert.match(p.text, /2001:db8::7 +3600 +sshd <script>/);
  assert.ok(p.html.includes('sshd &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; règle ✓'), p.html);
  assert.ok(p.html.includes('p&lt;b&gt;&quot;&#39;'));
  assert.ok(!/<script|<b>/.test(p.html), 'nothing the attacker wrote is markup');
  await l.close();
});

test('mail: 100 bans in a burst make 2 mails: the first at once, one digest after the interval, all 100 listed', async (t) => {
  const dir = tempDir(t, 'mail-digest');
  const clock = new FakeClock();
  const l = new MailListener(action(fakeSendmail(dir), { digestMs: 10 * 60_000 }), collector(), clock);
  const all = addresses(100);
  // As the dispatcher hands them over: the first journal batch with one ban, then the flood in slices.
  l.handle([banEvent(all[0], clock.t)]);
  await l.flush();
  for (let i = 1; i < 100; i += 9) {
    clock.advance(20_000);
    l.handle(all.slice(i, i + 9).map((a) => banEvent(a, clock.t)));
    await l.flush();
  }
  assert.equal(mails(dir).length, 1, 'only the first mail within the interval');
  clock.advance(10 * 60_000);
  await waitFor('the digest', () => mails(dir).length === 2, 10_000);
  await l.flush();
  clock.advance(60 * 60_000);
  await l.flush();
  const ms = mails(dir);
  assert.equal(ms.length, 2);
  const listed = ms.flatMap((m) => [...parse(m.raw).text.matchAll(/^\S+ \S+ +ban +(\S+)/gm)].map((x) => x[1]));
  assert.deepEqual(listed, all);
  const second = parse(ms[1].raw);
  assert.equal(decodeWords(second.headers.get('subject')!), `tallow on ${os.hostname()}: 99 bans`);
  assert.equal((second.html.match(/<tr>/g) ?? []).length, 1 + 99);
  assert.equal(l.stats.mails, 2);
  await l.close();
});

test('mail: sendmail failing keeps the events and sends them with the next try; stop sends what waits', async (t) => {
  const dir = tempDir(t, 'mail-fail');
  const clock = new FakeClock();
  const log = collector();
  const bad = fakeSendmail(dir, true);
  const a = action(bad, { digestMs: 10 * 60_000 });
  const l = new MailListener(a, log, clock);
  l.handle([banEvent('203.0.113.1', clock.t), banEvent('203.0.113.2', clock.t)]);
  await l.flush();
  assert.equal(l.stats.failures, 1);
  assert.match(log.errors.join('\n'), /action\.admin: .*sendmail exit 75: mail queue full; 2 events wait, next try in 60 s/);
  // The MTA works again; a ban meanwhile; the retry after a minute carries all three.
  fs.writeFileSync(bad, fs.readFileSync(bad, 'utf8').replace(/^cat > \/dev\/null.*\n/m, ''));
  l.handle([banEvent('203.0.113.3', clock.t)]);
  clock.advance(60_000);
  await waitFor('the retried mail', () => mails(dir).length === 1, 10_000);
  await l.flush();
  assert.deepEqual([...parse(mails(dir)[0].raw).text.matchAll(/ban +(\S+)/g)].map((x) => x[1]), ['203.0.113.1', '203.0.113.2', '203.0.113.3']);
  // Within the interval: waits; at stop it goes out.
  l.handle([banEvent('203.0.113.4', clock.t)]);
  await l.flush();
  assert.equal(mails(dir).length, 1);
  await l.close();
  assert.equal(mails(dir).length, 2);
});

test('mail: encoded-words stay within 75 characters and never split a character', () => {
  const s = 'Ünïcödé '.repeat(20) + '😀'.repeat(30);
  const enc = encodeHeader(s);
  for (const w of enc.split('\n ')) {
    assert.ok(w.length <= 75, w);
    const m = /^=\?UTF-8\?B\?([A-Za-z0-9+/=]+)\?=$/.exec(w);
    assert.ok(m, w);
    assert.ok(!Buffer.from(m![1], 'base64').toString('utf8').includes('\ufffd'), 'a whole character in each word');
  }
  assert.equal(decodeWords(enc.replace(/\n /g, ' ')), s);
  assert.equal(encodeHeader('plain ascii'), 'plain ascii');
  assert.equal(encodeHeader('no\nnew\r\nlines'), 'no new lines');
});
