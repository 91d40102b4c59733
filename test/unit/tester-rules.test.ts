// `tallow test` with rules per service: each rule's policy decides its bans, findtime counted on
// the times read from the lines; --rule NAME shows that rule alone. The rules come from a patterns
// file with policy keys (fixtures/tester-rules.json); expected reports written out by hand.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { testRun, type TesterIO } from '../../src/tester';

const FIX = path.resolve(__dirname, '../../../test/fixtures');
const PATTERNS = path.join(FIX, 'tester-rules.json');
const CONF = path.join(FIX, 'tester.conf');
const NOW = Date.UTC(2025, 0, 31, 9, 0, 0);

before(() => {
  process.env.TZ = 'UTC';
});

const at = (hms: string, msg: string, ident = 'sshd') => `2025-01-31T08:${hms}+0000 host ${ident}[42]: ${msg}`;
const fail = (a: string) => `Failed password for root from ${a} port 1001 ssh2`;
const LINES = [
  // 4 failures, a pause longer than findtime (60 s), 4 more: never 8 inside the window.
  ...['00:00', '00:01', '00:02', '00:03', '02:00', '02:01', '02:02', '02:03'].map((t) => at(t, fail('203.0.113.9'))),
  // 8 inside it: banned at the eighth (line 16).
  ...['03:00', '03:01', '03:02', '03:03', '03:04', '03:05', '03:06', '03:07'].map((t) => at(t, fail('203.0.113.10'))),
  at('04:00', 'login failed from 198.51.100.99', 'myapp'),
  at('04:01', 'login failed from 198.51.100.99', 'myapp'),
];

async function cli(args: string[], stdin: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: TesterIO = { out: (s) => (out += s), err: (s) => (err += s), now: () => NOW, stdin: Readable.from([stdin]) };
  return { code: await testRun(args, io), out, err };
}
const run = (...extra: string[]) => cli(['--config', CONF, '--patterns', PATTERNS, ...extra, '-'], LINES.join('\n'));

test('--rule sshd: only its matches and the bans its policy makes, findtime on the lines\' own times', async () => {
  const r = await run('--rule', 'sshd');
  assert.deepEqual([r.code, r.err], [0, '']);
  assert.equal(
    r.out,
    `Patterns: 2 in 1 file (${PATTERNS})
Read 18 lines from stdin: 16 matched by rule sshd, 2 by other rules, 0 not matched.

Matches per pattern:
  tester-rules.json#1: 16 lines (score 0.3, ban 0)  ^Failed password for (?:invalid user )?\\S+ from <IP> port <PORT> ssh2$
     203.0.113.10  8
     203.0.113.9   8

Rule:
  sshd: 16 lines; threshold 2.4, findtime 60 s, bantime 600 s, ports 22, the address

Bans rule sshd would make (threshold 2.4, findtime 60 s, bantime 600 s, ports 22, the address):
  ADDRESS       RULE  PORTS  SECONDS  REASON     SCORE  COUNT  TIMES  FIRST AT  PATTERN
  203.0.113.10  sshd  22         600  threshold   2.40      8      1  line 16   tester-rules.json#1
  1 address banned, 1 for their rule's full bantime.
`,
  );
});

test('every rule: matches per rule and each rule\'s bans with its ports', async () => {
  const { out } = await run();
  assert.match(out, /^Read 18 lines from stdin: 18 matched, 0 not matched\.$/m);
  assert.match(out, /^Matches per rule:\n {2}sshd: 16 lines; threshold 2\.4, findtime 60 s, bantime 600 s, ports 22, the address\n {2}myapp: 2 lines; threshold 2, findtime off, bantime 300 s, ports 8080\/tcp, the address$/m);
  assert.match(out, /^ {2}203\.0\.113\.10 +sshd +22 +600 +threshold +2\.40 +8 +1 +line 16 +tester-rules\.json#1$/m);
  assert.match(out, /^ {2}198\.51\.100\.99 +myapp +8080\/tcp +300 +threshold +2\.00 +2 +1 +line 18 +tester-rules\.json#2$/m);
  assert.doesNotMatch(out, /203\.0\.113\.9 +sshd/, 'never 8 inside findtime');
  assert.match(out, /^ {2}2 addresses banned, 2 for their rule's full bantime\.$/m);
});

test('tallow test --rule: an unknown rule is bad usage naming the rules; tallow\'s own files share one policy', async () => {
  const bad = await run('--rule', 'nginx');
  assert.equal(bad.code, 64);
  assert.equal(bad.err, 'tallow test: --rule: no rule named "nginx" (rules: sshd, myapp)\n');
  // A file with no policy keys: its rule takes tallow.conf's policy and the shared score.
  const old = path.join(FIX, 'tester-patterns.json');
  const ok = await cli(['--config', CONF, '--patterns', old, '--rule', 'tester-patterns#1', '-'], LINES.slice(12).join('\n'));
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /^Read 6 lines from stdin: 4 matched by rule tester-patterns#1, 2 by other rules, 0 not matched\.$/m);
  assert.match(ok.out, /^ {2}tester-patterns#1: 4 lines; threshold 1 \(shared score\), findtime off, bantime 600 s, ports all, the address$/m);
  assert.match(ok.out, /^Bans rule tester-patterns#1 would make \(threshold 1 \(shared score\), findtime off, bantime 600 s, ports all, the address\):$/m);
});
