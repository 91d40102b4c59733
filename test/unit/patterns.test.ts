import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { untrustedFilters, journalMatches, loadPatternFiles, neededFields, parsePatternFile, PatternError, shippedPatternsDir } from '../../src/patterns';

test('patterns: shipped sshd.json uses the trusted sources of SPEC section 2', () => {
  const files = loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns');
  const sshd = files.find((f) => f.name === 'sshd.json')!;
  const flat = sshd.filter.map((g) => g.join(' & '));
  for (const exe of ['/usr/sbin/sshd', '/usr/libexec/sshd-session', '/usr/lib/openssh/sshd-session',
    '/usr/libexec/openssh/sshd-session', '/usr/lib/ssh/sshd-session', '/usr/libexec/sshd-auth',
    '/usr/lib/openssh/sshd-auth', '/usr/libexec/openssh/sshd-auth', '/usr/lib/ssh/sshd-auth']) {
    assert.ok(flat.includes(`_EXE=${exe} & _UID=0`), exe);
  }
  for (const id of ['sshd', 'sshd-session', 'sshd-auth']) assert.ok(flat.includes(`SYSLOG_IDENTIFIER=${id} & _UID=0`), id);
  assert.ok(!flat.includes('SYSLOG_IDENTIFIER=sshd'), 'a bare SYSLOG_IDENTIFIER filter is forgeable');
  assert.ok(!flat.some((g) => g.startsWith('_EXE=') && !g.endsWith(' & _UID=0')), '_EXE alone is forgeable (sshd is not setuid)');
  for (const p of sshd.patterns) assert.match(p.source, /^\^.*\$$/, `${p.name} is not anchored`);
  // _SYSTEMD_UNIT: the other shipped rules' units (issue 14)
  assert.deepEqual(neededFields(files).sort(), ['MESSAGE', 'SYSLOG_IDENTIFIER', '_EXE', '_SYSTEMD_UNIT', '_UID']);
  assert.ok(journalMatches(files).length >= 12);
});

test('patterns: filter forms — string, OR array, AND sub-array', () => {
  const f = (filter: unknown) => parsePatternFile(JSON.stringify([{ filter, items: [] }]), 'x.json', '/p/x.json')[0].filter;
  assert.deepEqual(f('SYSLOG_IDENTIFIER=sshd'), [['SYSLOG_IDENTIFIER=sshd']]);
  assert.deepEqual(f(['_EXE=/a', ['SYSLOG_IDENTIFIER=b', '_UID=0']]), [['_EXE=/a'], ['SYSLOG_IDENTIFIER=b', '_UID=0']]);
});

test('patterns: tallow files keep working (MESSAGE= patterns, first capture group, several blocks)', () => {
  const text = JSON.stringify([
    { filter: 'SYSLOG_IDENTIFIER=sshd', items: [{ ban: 0, score: 0.2, pattern: 'MESSAGE=Failed .* for .* from ([0-9a-z:.]+) port \\d+ ssh2' }] },
    { filter: 'SYSLOG_IDENTIFIER=nginx', items: [{ ban: 15, score: 0.3, pattern: 'client: ([0-9a-z:.]+),' }] },
  ]);
  const files = parsePatternFile(text, 'old.json', '/etc/tallow/old.json');
  assert.equal(files.length, 2);
  assert.deepEqual(files.map((f) => f.patterns[0].name), ['old.json#1', 'old.json#2']);
});

// Tests as data: a file's text and the message it must give (after the path).
const BAD: Array<[string, string]> = [
  ['[{', 'JSON syntax'],
  ['{}', 'expected an array'],
  ['[1]', 'block 1: expected {"filter"'],
  ['[{"items": []}]', 'block 1: missing key "filter"'],
  ['[{"filter": "A=b"}]', 'block 1: missing key "items"'],
  ['[{"filter": "A=b", "items": {}}]', 'block 1: "items" must be an array'],
  ['[{"filter": "sshd", "items": []}]', 'block 1: filter: expected "FIELD=value"'],
  ['[{"filter": [], "items": []}]', 'block 1: filter: expected "FIELD=value" or a non-empty array'],
  ['[{"filter": ["A=b", [1]], "items": []}]', 'block 1: filter[1][0]: expected "FIELD=value"'],
  ['[{"filter": "A=b", "items": [{"score": 1, "pattern": "(x)"}]}]', 'item 1: missing key "ban"'],
  ['[{"filter": "A=b", "items": [{"ban": 0, "pattern": "(x)"}]}]', 'item 1: missing key "score"'],
  ['[{"filter": "A=b", "items": [{"ban": 0, "score": 1}]}]', 'item 1: missing key "pattern"'],
  ['[{"filter": "A=b", "items": [{"ban": "10", "score": 1, "pattern": "(x)"}]}]', 'item 1: "ban" must be a whole number'],
  ['[{"filter": "A=b", "items": [{"ban": 1.5, "score": 1, "pattern": "(x)"}]}]', 'item 1: "ban" must be a whole number'],
  ['[{"filter": "A=b", "items": [{"ban": 0, "score": "x", "pattern": "(x)"}]}]', 'item 1: "score" must be a number'],
  ['[{"filter": "A=b", "items": [{"ban": 0, "score": -1, "pattern": "(x)"}]}]', 'item 1: "score" must be a number'],
  ['[{"filter": "A=b", "items": [{"ban": 0, "score": 1, "pattern": 5}]}]', 'item 1: "pattern" must be a non-empty string'],
  ['[{"filter": "A=b", "items": [{"ban": 0, "score": 1, "pattern": "(x)"}, {"ban": 0, "score": 1, "pattern": "(x"}]}]', 'item 2: regex does not compile'],
  ['[{"filter": "A=b", "items": [{"ban": 0, "score": 1, "pattern": "no group"}]}]', 'item 1: no capture group'],
  ['[{"filter": "A=b", "items": [{"ban": 0, "score": 1, "pattern": "<IP> <IP>"}]}]', 'item 1: <IP> may appear only once'],
  ['[{"filter": "A=b", "items": [{"ban": 0, "score": 1, "pattern": "(?<ip>x) <IP>"}]}]', 'item 1: both <IP> and a group named ip'],
  // What the linear-time engine cannot run is refused by name (a nested repeat such as ^(a+)+$ now
  // loads: it runs in linear time, see redos.test.ts).
  ['[{"filter": "A=b", "items": [{"ban": 0, "score": 1, "pattern": "^(a+)\\\\1$"}]}]', 'item 1: backreference \\1'],
  ['[{"filter": "A=b", "items": [{"ban": 0, "score": 1, "pattern": "^(?!x)(a+)$"}]}]', 'item 1: lookaround'],
  ['[{"filter": "A=b", "items": [{"ban": 0, "score": 1, "pattern": "^(a{1,4}){5}$"}]}]', 'item 1: repeats nested too deep: their counts multiply to 20'],
];

test('patterns: each bad file gives `file: item N: message` (exit code 78)', () => {
  for (const [text, message] of BAD) {
    assert.throws(
      () => parsePatternFile(text, 'bad.json', '/etc/tallow/bad.json'),
      (e: unknown) => e instanceof PatternError && e.exitCode === 78 && e.message.startsWith(`/etc/tallow/bad.json: ${message}`),
      `${text} -> ${message}`,
    );
  }
});

test('patterns: local files override shipped ones by name, others add; all or nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), `tallow-patterns-${process.pid}-`));
  try {
    const shipped = join(dir, 'shipped');
    const local = join(dir, 'local');
    mkdirSync(shipped);
    mkdirSync(local);
    const file = (id: string) => JSON.stringify([{ filter: `SYSLOG_IDENTIFIER=${id}`, items: [{ ban: 0, score: 1, pattern: `^${id} <IP>$` }] }]);
    writeFileSync(join(shipped, 'a.json'), file('a'));
    writeFileSync(join(shipped, 'b.json'), file('b'));
    writeFileSync(join(local, 'b.json'), file('b2'));
    writeFileSync(join(local, 'c.json'), file('c'));
    writeFileSync(join(local, 'notes.txt'), 'ignored');
    const files = loadPatternFiles(shipped, local);
    assert.deepEqual(files.map((f) => [f.name, f.filter[0][0]]), [
      ['a.json', 'SYSLOG_IDENTIFIER=a'], ['b.json', 'SYSLOG_IDENTIFIER=b2'], ['c.json', 'SYSLOG_IDENTIFIER=c']]);
    writeFileSync(join(local, 'd.json'), '[{"filter": "A=b", "items": [{"ban": 0, "score": 1}]}]');
    assert.throws(() => loadPatternFiles(shipped, local), (e: unknown) => e instanceof PatternError && e.message === `${join(local, 'd.json')}: item 1: missing key "pattern"`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('patterns: every shipped source pins _UID=0 or a unit; forgeable filters are named in a warning', () => {
  const shipped = loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns');
  assert.deepEqual(untrustedFilters(shipped), []);
  const mine = parsePatternFile(
    JSON.stringify([
      { filter: ['SYSLOG_IDENTIFIER=myapp', ['_EXE=/usr/bin/myapp', '_UID=0'], '_SYSTEMD_UNIT=myapp.service'], items: [] },
      { filter: '_EXE=/usr/bin/other', items: [] },
    ]),
    'mine.json',
    '/etc/tallow/mine.json',
  );
  const w = untrustedFilters(mine);
  assert.equal(w.length, 2, w.join('\n'));
  assert.match(w[0], /^\/etc\/tallow\/mine\.json \(block 1\): filter SYSLOG_IDENTIFIER=myapp trusts only fields the sender chooses/);
  assert.match(w[1], /^\/etc\/tallow\/mine\.json \(block 2\): filter _EXE=\/usr\/bin\/other does not pin _UID=0/);
});

test('patterns: a filter field the journal would refuse (leading digit, lower case, empty) is refused at load', () => {
  for (const bad of ['1FIELD=x', 'field=x', '=x', 'A B=x']) {
    assert.throws(
      () => parsePatternFile(JSON.stringify([{ filter: bad, items: [] }]), 'x.json', '/p/x.json'),
      (e: Error) => e instanceof PatternError && /\/p\/x\.json: block 1: filter: expected "FIELD=value"/.test(e.message),
      bad,
    );
  }
  assert.deepEqual(parsePatternFile(JSON.stringify([{ filter: '_A1=x', items: [] }]), 'x.json', '/p/x.json')[0].filter, [['_A1=x']]);
});
