// `tallow test` over text: the sample file's expected report is written out by hand below
// (counted from the sample and the fixture patterns, not produced by running the program).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { testRun, type TesterIO } from '../../src/tester';
import { parseWhen, lineToEntry } from '../../src/tester-input';

const FIX = path.resolve(__dirname, '../../../test/fixtures');
const PATTERNS = path.join(FIX, 'tester-patterns.json');
const SAMPLE = path.join(FIX, 'tester-sample.txt');
const CONF = path.join(FIX, 'tester.conf');

before(() => {
  // The sample mixes syslog-style local times and ISO times in UTC: pin the zone.
  process.env.TZ = 'UTC';
});
const NOW = Date.UTC(2025, 0, 31, 8, 5, 0);

async function run(args: string[], stdin?: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: TesterIO = {
    out: (s) => (out += s),
    err: (s) => (err += s),
    now: () => NOW,
    stdin: stdin === undefined ? undefined : Readable.from([stdin]),
  };
  const code = await testRun(args, io);
  return { code, out, err };
}

test('the sample file gives the report worked out by hand', async () => {
  const r = await run(['--config', CONF, '--patterns', PATTERNS, '--unmatched', SAMPLE]);
  assert.equal(r.err, '');
  assert.equal(r.code, 0);
  const expected = `Patterns: 3 in 1 file (${PATTERNS})
Read 16 lines from ${SAMPLE}: 10 matched, 6 not matched.
1 matched a pattern whose captured address was not a valid IP address (ignored).

Matches per pattern:
  tester-patterns.json#1: 7 lines (score 0.3, ban 0)  ^Failed password for (?:invalid user )?\\S+ from <IP> port <PORT> ssh2$
     203.0.113.9  5
     192.0.2.44   1  allowlisted, never banned
     2001:db8::7  1
  tester-patterns.json#2: 2 lines (score 0.5, ban 20)  ^Connection closed by <IP> port <PORT> \\[preauth\\]$
     198.51.100.7  2
  tester-patterns.json#3: 1 line (score 1, ban 0)  ^login failed from (?<ip>\\S+)$
     198.51.100.99  1

Bans the tracker would make (threshold 1, expires 600 s):
  ADDRESS        SECONDS  REASON     SCORE  COUNT  TIMES  FIRST AT  PATTERN
  198.51.100.7        20  instant     0.50      1      1  line 3    tester-patterns.json#2
  198.51.100.7       600  threshold   1.00      2      1  line 11   tester-patterns.json#2
  203.0.113.9        600  threshold   1.20      4      1  line 12   tester-patterns.json#1
  198.51.100.99      600  threshold   1.00      1      1  line 14   tester-patterns.json#3
  3 addresses banned, 3 for the full 600 s.

Lines no pattern matched (5):
  line 4: Jan 31 08:00:04 host sudo[45]: Failed password for root from 203.0.113.66 port 1004 ssh2
  line 8: Accepted password for alice from 198.51.100.8 port 1007 ssh2
  line 9: Failed password for x from 203.0.113.9 port 1008 ssh2 extra
  line 15: Jan 31 08:10:06 host myapp[7]: login failed from not-an-ip
  line 16: Bad\\x09line with a tab
`;
  assert.equal(r.out, expected);
});

test('the shipped patterns over mixed sshd lines give the report worked out by hand (issue 13)', async () => {
  const MIXED = path.join(FIX, 'tester-sshd-mixed.txt');
  const dir = path.resolve(__dirname, '../../../patterns');
  const r = await run(['--config', CONF, '--unmatched', MIXED]);
  assert.equal(r.err, '');
  assert.equal(r.code, 0);
  // Pattern sources as written in patterns/*.json; P is the optional Solaris-style prefix of every sshd pattern.
  const P = String.raw`^(?:\[ID \d+ [a-z0-9]+\.[a-z]+\] )?`;
  const KEY = String.raw`[A-Z0-9-]+ (?:SHA256:[A-Za-z0-9+/=]+|MD5(?::[0-9a-f]{2})+)`;
  // The other shipped rules (issue 14) are loaded but off: dovecot's pam_unix line is no longer matched.
  const expected = `Patterns: 48 in 9 files (${dir}/apache.json, ${dir}/dovecot.json, ${dir}/nginx.json, ${dir}/postfix.json, ${dir}/proftpd.json, ${dir}/sshd-logins.json, ${dir}/sshd-scanners.json, ${dir}/sshd.json, ${dir}/vsftpd.json)
Read 20 lines from ${MIXED}: 14 matched, 6 not matched.

Matches per pattern:
  sshd.json#1: 1 line (score 0.5, ban 30)  ${P}Failed [^ ]+ for root from <IP>(?: port <PORT>)?(?: ssh[12])?(?:: ${KEY})?$
     192.0.2.10  1  allowlisted, never banned
  sshd.json#2: 3 lines (score 0.2, ban 0)  ${P}Failed [^ ]+ for (?:invalid user )?.* from <IP>(?: port <PORT>)?(?: ssh[12])?(?:: ${KEY})?$
     198.51.100.50  1
     203.0.113.20   1
     203.0.113.24   1
  sshd.json#4: 1 line (score 0.5, ban 0)  ${P}${String.raw`error: maximum authentication attempts exceeded for (?:invalid user )?.* from <IP> port <PORT> ssh2(?: \[preauth\])?$`}
     203.0.113.20  1
  sshd.json#5: 1 line (score 0, ban 0)  ${P}${String.raw`Disconnecting (?:invalid|authenticating) user .* <IP> port <PORT>: Too many authentication failures(?: \[preauth\])?$`}
     203.0.113.20  1
  sshd.json#8: 1 line (score 0, ban 0)  ${P}${String.raw`(?:error: )?PAM: (?:[Aa]uthentication (?:failure|error)|User not known to the underlying authentication module|[Uu]nknown user) for (?:illegal user )?.* from <IP>(?: via [^ ]+)? *$`}
     203.0.113.24  1
  sshd.json#9: 1 line (score 0.2, ban 10)  ${P}Invalid user .* from <IP>(?: port <PORT>)?$
     2001:db8::25  1
  sshd.json#10: 1 line (score 0.2, ban 10)  ${P}User .* from <IP> not allowed because .+$
     203.0.113.20  1
  sshd.json#11: 2 lines (score 0.5, ban 30)  ${P}${String.raw`ROOT LOGIN REFUSED FROM <IP>(?: port <PORT>)?(?: \[preauth\])?$`}
     198.51.100.22  2
  sshd.json#12: 1 line (score 0.3, ban 10)  ${P}${String.raw`(?:error: )?Received disconnect from <IP>(?: port <PORT>:|: )(?:[0-9]|1[02-9]|[2-9][0-9]|[0-9]{3,}): .*\[preauth\]$`}
     203.0.113.14  1
  sshd.json#13: 1 line (score 0.4, ban 15)  ${P}${String.raw`Connection (?:closed|reset) by (?:authenticating|invalid) user .* <IP> port <PORT>(?: \[preauth\])?$`}
     203.0.113.20  1
  sshd.json#24: 1 line (score 0.3, ban 10)  ${P}${String.raw`refused connect from (?:[^ ]+ \()?<IP>\)?$`}
     203.0.113.26  1

Bans the tracker would make (threshold 1, expires 600 s):
  ADDRESS        SECONDS  REASON     SCORE  COUNT  TIMES  FIRST AT  PATTERN
  203.0.113.14        10  instant     0.30      1      1  line 3    sshd.json#12
  203.0.113.20        10  instant     0.20      1      1  line 5    sshd.json#10
  198.51.100.22       30  instant     0.50      1      1  line 9    sshd.json#11
  198.51.100.22      600  threshold   1.00      2      1  line 10   sshd.json#11
  2001:db8::25        10  instant     0.20      1      1  line 13   sshd.json#9
  203.0.113.26        10  instant     0.30      1      1  line 14   sshd.json#24
  203.0.113.20       600  threshold   1.30      5      1  line 20   sshd.json#13
  5 addresses banned, 2 for the full 600 s.

Lines no pattern matched (6):
  line 1: Received disconnect from 203.0.113.14 port 52000:11: Bye Bye [preauth]
  line 2: Disconnected from invalid user admin 203.0.113.14 port 52000 [preauth]
  line 4: Disconnected from authenticating user root 203.0.113.14 port 52000 [preauth]
  line 15: Accepted publickey for alice from 192.0.2.10 port 50022 ssh2: ED25519 SHA256:Zm9vYmFy
  line 18: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.24  user=alice
  line 19: Jan 31 08:00:19 host auth[9]: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=John Smith rhost=198.51.100.7  user=John Smith
`;
  assert.equal(r.out, expected);
});

test('stdin ("-" or no file); nothing matched is exit 1; repeated instant bans are one row', async () => {
  const lines = ['Connection closed by 203.0.113.5 port 1 [preauth]', 'Connection closed by 203.0.113.5 port 2 [preauth]', 'hello'].join('\n');
  // Two instant bans of 20 s (scores 0.5 then 1.0: the second reaches the threshold instead).
  let r = await run(['--config', CONF, '--patterns', PATTERNS, '-'], lines);
  assert.equal(r.code, 0);
  assert.match(r.out, /^Read 3 lines from stdin: 2 matched, 1 not matched\.$/m);
  assert.match(r.out, /^ {2}203\.0\.113\.5 +20 +instant +0\.50 +1 +1 +line 1 +tester-patterns\.json#2$/m);
  assert.match(r.out, /^ {2}203\.0\.113\.5 +600 +threshold +1\.00 +2 +1 +line 2 +tester-patterns\.json#2$/m);
  assert.doesNotMatch(r.out, /Lines no pattern matched/, 'only with --unmatched');

  const three = Array.from({ length: 3 }, (_, i) => `Connection closed by 203.0.113.6 port ${i} [preauth]`).join('\n');
  const conf = path.join(fs.mkdtempSync(path.join(os.tmpdir(), `tallow-tester-${process.pid}-`)), 'high.conf');
  fs.writeFileSync(conf, 'threshold = 5\nexpires = 600\n');
  r = await run(['--config', conf, '--patterns', PATTERNS], three);
  assert.match(r.out, /^ {2}203\.0\.113\.6 +20 +instant +0\.50 +1 +3 +line 1 +tester-patterns\.json#2$/m);
  assert.match(r.out, /1 address banned, 0 for the full 600 s\./);
  fs.rmSync(path.dirname(conf), { recursive: true });

  r = await run(['--config', CONF, '--patterns', PATTERNS, '--unmatched'], 'nothing here\n\n');
  assert.equal(r.code, 1);
  assert.match(r.out, /^No pattern matched\.$/m);
  assert.match(r.out, /^Bans the tracker would make \(threshold 1, expires 600 s\): none\.$/m);
  assert.match(r.out, /^ {2}line 1: nothing here$/m);
});

test('the shipped patterns: real sshd wording matches, a forged identifier does not', async () => {
  const input = [
    'Jan 31 08:00:01 host sshd[42]: Failed password for invalid user x from 203.0.113.9 port 1001 ssh2',
    'Jan 31 08:00:02 host sshd-session[43]: Failed password for root from 2001:db8::9 port 1002 ssh2',
    'Jan 31 08:00:03 host logger[44]: Failed password for root from 203.0.113.50 port 1003 ssh2',
    'Failed password for invalid user x from 203.0.113.9 port 22 ssh2 from 198.51.100.1 port 22 ssh2',
  ].join('\n');
  const r = await run(['--config', CONF, '--unmatched'], input);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^ +203\.0\.113\.9 +1$/m);
  assert.match(r.out, /^ +2001:db8::9 +1$/m);
  assert.doesNotMatch(r.out, /^ +203\.0\.113\.50 /m, 'a line from logger is not sshd');
  assert.match(r.out, /^ {2}line 3: .*logger\[44\]/m);
});

test('config and pattern errors: one line, exit 78, no stack', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-tester-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const badConf = path.join(dir, 'bad.conf');
  fs.writeFileSync(badConf, 'threshold = 1\nbogus = 2\n');
  const badPat = path.join(dir, 'bad.json');
  fs.writeFileSync(badPat, '[{"filter":"SYSLOG_IDENTIFIER=x","items":[{"ban":0,"score":1,"pattern":"(unclosed <IP>"}]}]');
  const cases: [string[], RegExp][] = [
    [['--config', badConf], new RegExp(`^tallow test: ${badConf}:2: unknown key 'bogus'`)],
    [['--config', path.join(dir, 'none.conf')], /none\.conf: cannot read: ENOENT/],
    [['--config', CONF, '--patterns', badPat], new RegExp(`^tallow test: ${badPat}: item 1: `)],
    [['--config', CONF, '--patterns', path.join(dir, 'nodir')], /nodir: cannot read: ENOENT/],
  ];
  for (const [args, why] of cases) {
    const r = await run([...args, SAMPLE]);
    assert.equal(r.code, 78, args.join(' '));
    assert.match(r.err, why);
    assert.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
    assert.equal(r.out, '');
  }
});

test('usage errors exit 64; an unreadable input exits 66', async () => {
  for (const args of [['--bogus'], ['a.log', 'b.log'], ['--since', 'whenever'], ['--journal', SAMPLE], ['--journal', '--field', 'X=1'], ['--field', 'lower=1']]) {
    const r = await run(['--config', CONF, ...args]);
    assert.equal(r.code, 64, args.join(' '));
    assert.match(r.err, /^tallow test: .*\nusage: tallow test/);
  }
  const r = await run(['--config', CONF, '/nonexistent/tallow.log']);
  assert.equal(r.code, 66);
  assert.equal(r.err, 'tallow test: /nonexistent/tallow.log: cannot read: ENOENT\n');
  const d = await run(['--config', CONF, FIX]);
  assert.equal(d.code, 66);
  assert.match(d.err, /cannot read: EISDIR/);
});

test('lines over the length cap are counted in the report, never matched', async () => {
  const long = `Failed password for invalid user ${'x'.repeat(8200)} from 203.0.113.9 port 1 ssh2`;
  const r = await run(['--config', CONF, '--patterns', PATTERNS, '-'], `${long}\n${long}\nFailed password for root from 203.0.113.9 port 2 ssh2\n`);
  assert.equal(r.code, 0);
  assert.match(r.out, /^Read 3 lines from stdin: 1 matched, 2 not matched\.\n2 were longer than 8192 characters: not matched \(counted as oversized, as the daemon does\)\.$/m);
});

test('--field gives text lines the fields another filter wants', async () => {
  const r = await run(['--config', CONF, '--patterns', PATTERNS, '--field', 'SYSLOG_IDENTIFIER=myapp'], 'login failed from 198.51.100.3\n');
  assert.equal(r.code, 0);
  assert.match(r.out, /tester-patterns\.json#3: 1 line/);
});

test('lineToEntry: bare, short and short-iso lines', () => {
  const now = Date.UTC(2025, 5, 1, 12, 0, 0);
  assert.deepEqual(lineToEntry('hello', now).entry, {
    cursor: '', realtime: now * 1000, fields: { MESSAGE: 'hello', _UID: '0', _EXE: '/usr/sbin/sshd', SYSLOG_IDENTIFIER: 'sshd' },
  });
  assert.deepEqual(lineToEntry('Feb  3 04:05:06 h sshd-auth[9]: x y', now).entry, {
    cursor: '', realtime: Date.UTC(2025, 1, 3, 4, 5, 6) * 1000,
    fields: { MESSAGE: 'x y', _UID: '0', _EXE: '/usr/sbin/sshd', SYSLOG_IDENTIFIER: 'sshd-auth', _PID: '9' },
  });
  // December seen in June is last year's.
  assert.equal(lineToEntry('Dec 31 23:59:59 h cron: z', now).entry.realtime, Date.UTC(2024, 11, 31, 23, 59, 59) * 1000);
  assert.deepEqual(lineToEntry('2025-05-31T10:00:00+0200 h cron[1]: z', now).entry, {
    cursor: '', realtime: Date.UTC(2025, 4, 31, 8, 0, 0) * 1000, fields: { MESSAGE: 'z', _UID: '0', SYSLOG_IDENTIFIER: 'cron', _PID: '1' },
  });
});

test('parseWhen', () => {
  const now = Date.UTC(2025, 0, 31, 8, 30, 0);
  assert.equal(parseWhen('2025-01-30', now), Date.UTC(2025, 0, 30));
  assert.equal(parseWhen('2025-01-30 07:15', now), Date.UTC(2025, 0, 30, 7, 15));
  assert.equal(parseWhen('2025-01-30T07:15:02+01:00', now), Date.UTC(2025, 0, 30, 6, 15, 2));
  assert.equal(parseWhen('today', now), Date.UTC(2025, 0, 31));
  assert.equal(parseWhen('yesterday', now), Date.UTC(2025, 0, 30));
  assert.equal(parseWhen('-2h', now), now - 2 * 3600e3);
  assert.equal(parseWhen('30 min ago', now), now - 1800e3);
  assert.equal(parseWhen('@1700000000', now), 1700000000000);
  assert.throws(() => parseWhen('2025-02-30', now), /cannot read/);
  assert.throws(() => parseWhen('-2 fortnights', now), /cannot read/);
});
