import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Matcher } from '../../src/matcher';
import { loadPatternFiles, parsePatternFile, shippedPatternsDir, MAX_MESSAGE_LENGTH } from '../../src/patterns';
import type { PatternFile } from '../../src/patterns';
import { ALL_PORTS } from '../../src/scope';

const entry = (fields: Record<string, string>) => ({ cursor: 'c', realtime: 42, fields });
const files = (doc: unknown): PatternFile[] => parsePatternFile(JSON.stringify(doc), 't.json', '/t.json');

test('matcher: each file\'s patterns apply only to entries its own filter selects', () => {
  const m = new Matcher(files([
    { filter: '_SYSTEMD_UNIT=a.service', items: [{ ban: 0, score: 1, pattern: '^hit <IP>$' }] },
    { filter: ['_EXE=/b', ['SYSLOG_IDENTIFIER=b', '_UID=0']], items: [{ ban: 0, score: 0.5, pattern: '^hit <IP>$' }] },
  ]));
  assert.equal(m.match(entry({ MESSAGE: 'hit 203.0.113.1', _SYSTEMD_UNIT: 'a.service' }))?.pattern.name, 't.json#1');
  assert.equal(m.match(entry({ MESSAGE: 'hit 203.0.113.1', _EXE: '/b' }))?.pattern.name, 't.json#2');
  assert.equal(m.match(entry({ MESSAGE: 'hit 203.0.113.1', SYSLOG_IDENTIFIER: 'b', _UID: '0' }))?.pattern.name, 't.json#2');
  // forged identifier from an ordinary user: selected by no filter
  assert.equal(m.match(entry({ MESSAGE: 'hit 203.0.113.1', SYSLOG_IDENTIFIER: 'b', _UID: '1000' })), null);
  assert.equal(m.match(entry({ MESSAGE: 'hit 203.0.113.1' })), null);
});

test('matcher: address from named group ip, <IP> tag, or first group; MESSAGE= patterns; first match wins', () => {
  const m = new Matcher(files([{ filter: 'A=1', items: [
    { ban: 0, score: 1, pattern: 'MESSAGE=one (\\S+) x' },
    { ban: 0, score: 1, pattern: '^two (?<port>\\d+) (?<ip>\\S+)$' },
    { ban: 0, score: 1, pattern: '^three <IP> port <PORT>$' },
    { ban: 0, score: 2, pattern: '^(three) .*$' },
  ] }]));
  const r = (msg: string) => m.match(entry({ A: '1', MESSAGE: msg }));
  // Given without rules, a block gets tallow.conf's built-in policy (threshold 1, expires 3600).
  const rule = { name: 't', pool: '', enabled: true, noLog: false, threshold: 1, findtime: 0, bantime: 3600, scope: ALL_PORTS, prefix: { 4: 32, 6: 128 }, where: '/t.json (block 1)' };
  assert.deepEqual(r('one 2001:DB8::1 x'), { address: '2001:db8::1', family: 6, pattern: { name: 't.json#1', ban: 0, score: 1, source: 'MESSAGE=one (\\S+) x' }, file: 't.json', rule });
  assert.equal(r('two 22 ::ffff:203.0.113.7')?.address, '203.0.113.7');
  assert.equal(r('three 198.51.100.1 port 22')?.pattern.name, 't.json#3');
  // first matching pattern has a bad address: ignored and counted, no second chance
  assert.equal(r('one 999.1.1.1 x'), null);
  assert.equal(m.metrics.invalidAddresses, 1);
  assert.equal(r('three nonsense'), null);
  assert.equal(m.metrics.invalidAddresses, 2);
});

test('matcher: over-long messages are skipped and counted, never truncated', () => {
  const m = new Matcher(loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns'));
  const user = 'x'.repeat(MAX_MESSAGE_LENGTH);
  assert.equal(m.match(entry({ _EXE: '/usr/sbin/sshd', _UID: '0', MESSAGE: `Invalid user ${user} from 203.0.113.9 port 22` })), null);
  assert.equal(m.metrics.oversizedMessages, 1);
  assert.equal(m.match(entry({ _EXE: '/usr/sbin/sshd', _UID: '0', MESSAGE: 'Invalid user x from 203.0.113.9 port 22' }))?.address, '203.0.113.9');
  assert.deepEqual([[...m.metrics.matchesByFile], m.metrics.invalidAddresses, m.metrics.oversizedMessages], [[['sshd.json', 1]], 0, 1]);
});

test('matcher: blocks selected through different fields are tried in file order; groups keyed on any field', () => {
  const m = new Matcher(files([
    { filter: ['_EXE=/w', ['SYSLOG_IDENTIFIER=x', '_UID=0']], items: [{ ban: 0, score: 1, pattern: '^a <IP>$' }] },
    { filter: '_EXE=/x', items: [{ ban: 0, score: 1, pattern: '^(?:a|b) <IP>$' }] },
    { filter: '_UID=0', items: [{ ban: 0, score: 1, pattern: '^c <IP>$' }] },
    { filter: [['_EXE=/y', '_EXE=/z', '_COMM=q']], items: [{ ban: 0, score: 1, pattern: '^d <IP>$' }] },
  ]));
  const r = (fields: Record<string, string>) => m.match(entry(fields))?.pattern.name ?? null;
  // Block 2 is reached through _EXE, block 1 through SYSLOG_IDENTIFIER: block 1 still goes first.
  assert.equal(r({ _EXE: '/x', SYSLOG_IDENTIFIER: 'x', _UID: '0', MESSAGE: 'a 203.0.113.1' }), 't.json#1');
  assert.equal(r({ _EXE: '/x', SYSLOG_IDENTIFIER: 'x', _UID: '1000', MESSAGE: 'a 203.0.113.1' }), 't.json#2');
  assert.equal(r({ _EXE: '/x', _UID: '0', MESSAGE: 'b 203.0.113.1' }), 't.json#2');
  assert.equal(r({ _UID: '0', MESSAGE: 'c 203.0.113.1' }), 't.json#3');
  assert.equal(r({ _UID: '1', MESSAGE: 'c 203.0.113.1' }), null);
  assert.equal(r({ _EXE: '/z', _COMM: 'q', MESSAGE: 'd 203.0.113.1' }), 't.json#4');
  assert.equal(r({ _EXE: '/y', _COMM: 'q', MESSAGE: 'd 203.0.113.1' }), 't.json#4');
  assert.equal(r({ _EXE: '/z', MESSAGE: 'd 203.0.113.1' }), null, 'the group also needs _COMM=q');
  assert.equal(r({ _COMM: 'q', MESSAGE: 'd 203.0.113.1' }), null);
});

test('matcher: more than 32 blocks (several words of selected blocks), still in file order', () => {
  const doc: Array<{ filter: string | string[]; items: object[] }> = Array.from({ length: 40 }, (_, i) => ({ filter: `_EXE=/x${i}`, items: [{ ban: 0, score: 1, pattern: `^${i} <IP>$` }] }));
  for (const i of [31, 32, 39]) doc[i] = { filter: ['SYSLOG_IDENTIFIER=s', `_EXE=/x${i}`], items: [{ ban: 0, score: 1, pattern: `^(?:${i}|any) <IP>$` }] };
  const m = new Matcher(files(doc));
  const r = (fields: Record<string, string>) => m.match(entry(fields))?.pattern.name ?? null;
  assert.equal(r({ SYSLOG_IDENTIFIER: 's', MESSAGE: 'any 203.0.113.1' }), 't.json#32');
  assert.equal(r({ SYSLOG_IDENTIFIER: 's', MESSAGE: '39 203.0.113.1' }), 't.json#40');
  assert.equal(r({ SYSLOG_IDENTIFIER: 's', MESSAGE: '32 203.0.113.1' }), 't.json#33');
  assert.equal(r({ _EXE: '/x35', MESSAGE: '35 203.0.113.1' }), 't.json#36');
  assert.equal(r({ _EXE: '/x35', MESSAGE: '36 203.0.113.1' }), null);
  assert.equal(r({ _EXE: '/x0', MESSAGE: '0 203.0.113.1' }), 't.json#1');
});
