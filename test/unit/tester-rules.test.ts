// `tallow test` with rules per service: each rule's policy decides its bans, findtime counted on
// the times read from the lines; --rule NAME shows that rule alone. Rules built by hand (as
// rules.ts will make them from the patterns file); expected reports written out by hand.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { loadConfig } from '../../src/config';
import { parsePatternFile } from '../../src/patterns';
import type { Rule } from '../../src/rule';
import { lineToEntry, Run, testRun, type TesterIO } from '../../src/tester';
import { report } from '../../src/tester-report';

const FIX = path.resolve(__dirname, '../../../test/fixtures');
const PATTERNS = path.join(FIX, 'tester-patterns.json');
const CONF = path.join(FIX, 'tester.conf');
const NOW = Date.UTC(2025, 0, 31, 9, 0, 0);

before(() => {
  process.env.TZ = 'UTC';
});

const sshd: Rule = {
  name: 'sshd', pool: 'sshd', enabled: true, threshold: 2.4, findtime: 60, bantime: 600,
  scope: { id: 'p22', ports: ['22'], protocols: ['tcp', 'udp'], net: false }, prefix: { 4: 32, 6: 128 }, where: 'tester-patterns.json (block 1)',
};
const myapp: Rule = {
  name: 'myapp', pool: 'myapp', enabled: true, threshold: 2, findtime: 0, bantime: 300,
  scope: { id: 'p8080t', ports: ['8080'], protocols: ['tcp'], net: false }, prefix: { 4: 32, 6: 128 }, where: 'tester-patterns.json (block 2)',
};

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

function run(only?: string): { run: Run; out: string } {
  const files = parsePatternFile(fs.readFileSync(PATTERNS, 'utf8'), 'tester-patterns.json', PATTERNS);
  const r = new Run(files, loadConfig(CONF, true), false, only, { rules: [sshd, myapp], ruleOf: (m) => (m.pattern.name.endsWith('#3') ? myapp : sshd) });
  LINES.forEach((l, i) => r.feed(lineToEntry(l, NOW).entry, `line ${i + 1}`, l));
  let out = '';
  report(r, `lines from test`, (t) => (out += t));
  return { run: r, out };
}

test('--rule sshd: only its matches and the bans its policy makes, findtime on the lines\' own times', () => {
  const { out } = run('sshd');
  assert.equal(
    out,
    `Patterns: 3 in 1 file (${PATTERNS})
Read 18 lines from test: 16 matched by rule sshd, 2 by other rules, 0 not matched.

Matches per pattern:
  tester-patterns.json#1: 16 lines (score 0.3, ban 0)  ^Failed password for (?:invalid user )?\\S+ from <IP> port <PORT> ssh2$
     203.0.113.10  8
     203.0.113.9   8

Rule:
  sshd: 16 lines; threshold 2.4, findtime 60 s, bantime 600 s, ports 22, the address

Bans rule sshd would make (threshold 2.4, findtime 60 s, bantime 600 s, ports 22, the address):
  ADDRESS       RULE  PORTS  SECONDS  REASON     SCORE  COUNT  TIMES  FIRST AT  PATTERN
  203.0.113.10  sshd  22         600  threshold   2.40      8      1  line 16   tester-patterns.json#1
  1 address banned, 1 for their rule's full bantime.
`,
  );
});

test('every rule: matches per rule and each rule\'s bans with its ports', () => {
  const { out } = run();
  assert.match(out, /^Read 18 lines from test: 18 matched, 0 not matched\.$/m);
  assert.match(out, /^Matches per rule:\n {2}sshd: 16 lines; threshold 2\.4, findtime 60 s, bantime 600 s, ports 22, the address\n {2}myapp: 2 lines; threshold 2, findtime off, bantime 300 s, ports 8080\/tcp, the address$/m);
  assert.match(out, /^ {2}203\.0\.113\.10 +sshd +22 +600 +threshold +2\.40 +8 +1 +line 16 +tester-patterns\.json#1$/m);
  assert.match(out, /^ {2}198\.51\.100\.99 +myapp +8080\/tcp +300 +threshold +2\.00 +2 +1 +line 18 +tester-patterns\.json#3$/m);
  assert.doesNotMatch(out, /203\.0\.113\.9 +sshd/, 'never 8 inside findtime');
  assert.match(out, /^ {2}2 addresses banned, 2 for their rule's full bantime\.$/m);
});

async function cli(args: string[], stdin: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: TesterIO = { out: (s) => (out += s), err: (s) => (err += s), now: () => NOW, stdin: Readable.from([stdin]) };
  return { code: await testRun(args, io), out, err };
}

test('tallow test --rule: an unknown rule is bad usage naming the rules; a known one reports it alone', async () => {
  const bad = await cli(['--config', CONF, '--patterns', PATTERNS, '--rule', 'nginx', '-'], '');
  assert.equal(bad.code, 2);
  // Before rules.ts the files make one default rule.
  assert.equal(bad.err, 'tallow test: --rule: no rule named "nginx" (rules: default)\n');
  const ok = await cli(['--config', CONF, '--patterns', PATTERNS, '--rule', 'default', '-'], LINES.slice(12).join('\n'));
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /^Read 6 lines from stdin: 6 matched by rule default, 0 by other rules, 0 not matched\.$/m);
  assert.match(ok.out, /^ {2}default: 6 lines; threshold 1 \(shared score\), findtime off, bantime 600 s, ports all, the address$/m);
  assert.match(ok.out, /^Bans rule default would make \(threshold 1 \(shared score\), findtime off, bantime 600 s, ports all, the address\):$/m);
});
