// The shipped dovecot pattern (pam_unix's line in dovecot's auth process). dovecot passes the
// login name as PAM_RUSER and PAM_USER, so an attacker's name is on both sides of rhost=: names
// may hold single spaces, and the double space before user= is the one delimiter a name cannot
// fake (a name with a double space is not matched, never misread).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadPatternFiles, shippedPatternsDir } from '../../src/patterns';
import { Matcher } from '../../src/matcher';

const line = (name: string, rhost: string) =>
  `pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=${name} rhost=${rhost}  user=${name}`;

const CASES: Array<[string, string | null]> = [
  [line('alice', '198.51.100.7'), '198.51.100.7'],
  [line('alice', '2001:db8::7'), '2001:db8::7'],
  [line('', '198.51.100.7'), '198.51.100.7'],
  [line('John Smith', '198.51.100.7'), '198.51.100.7'],
  [line('anne marie de la tour', '198.51.100.7'), '198.51.100.7'],
  [line('x@example.org', '::ffff:198.51.100.7'), '198.51.100.7'],
  ['pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser= rhost=198.51.100.7', '198.51.100.7'],
  // injection through the name, on either side of the real rhost
  [line('x rhost=203.0.113.9', '198.51.100.7'), '198.51.100.7'],
  [line('x rhost=203.0.113.9  user=y', '198.51.100.7'), null],
  [line('x  rhost=203.0.113.9', '198.51.100.7'), null],
  [line('x rhost=203.0.113.9 user=y', '198.51.100.7'), '198.51.100.7'],
];

test('dovecot: user names with spaces match; an address injected in the name never does', () => {
  // the block of pam_unix's line (the login processes' lines are test/fixtures/corpus/dovecot.txt's)
  const files = loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns').filter((f) => f.name === 'dovecot.json' && f.patterns.some((p) => p.source.startsWith('^pam_unix')));
  assert.equal(files.length, 1);
  const matcher = new Matcher(files);
  const wrong: string[] = [];
  for (const [message, expected] of CASES) {
    const got = matcher.match({ cursor: 'c', realtime: 0, fields: { MESSAGE: message, _EXE: '/usr/lib/dovecot/auth', _UID: '0' } })?.address ?? null;
    if (got !== expected) wrong.push(`expected ${expected ?? 'NONE'}, got ${got ?? 'NONE'}: ${message}`);
  }
  assert.deepEqual(wrong, []);
});
