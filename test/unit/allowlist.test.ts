import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Allowlist, DEFAULT_ALLOWLIST, parseAllowEntry } from '../../src/allowlist';

test('allowlist: tallow defaults cover loopback, 192.168/16, 10/8 and ::1 only', () => {
  const a = new Allowlist([...DEFAULT_ALLOWLIST]);
  assert.equal(a.size, 4);
  assert.ok(a.has('127.0.0.1', 4));
  // All of 127.0.0.0/8 is loopback (tallow listed only 127.0.0.1).
  assert.ok(a.has('127.0.0.2', 4));
  assert.ok(a.has('127.255.255.254', 4));
  assert.ok(!a.has('128.0.0.1', 4));
  assert.ok(!a.has('126.255.255.255', 4));
  assert.ok(a.has('192.168.200.1', 4));
  assert.ok(a.has('10.255.0.1', 4));
  assert.ok(a.has('::1', 6));
  assert.ok(!a.has('192.169.0.1', 4));
  assert.ok(!a.has('100.1.1.1', 4), "tallow's '10.' must not match 100.x (octet boundary)");
  assert.ok(!a.has('203.0.113.9', 4));
});

test('allowlist: CIDR v4/v6, single v6 in any spelling, mapped', () => {
  const a = new Allowlist(['203.0.113.0/24', '2001:db8:10::/48', '2001:DB8:0:0:0:0:0:99', '::ffff:198.51.100.0/120', 'fe80:']);
  assert.ok(a.has('203.0.113.200', 4));
  assert.ok(!a.has('203.0.114.1', 4));
  assert.ok(a.has('2001:db8:10:ffff::1', 6));
  assert.ok(!a.has('2001:db8:11::1', 6));
  assert.ok(a.has('2001:db8::99', 6));
  assert.ok(a.has('198.51.100.77', 4));
  assert.ok(a.has('fe80::1', 6));
  assert.ok(!a.has('fe81::1', 6));
});

test('allowlist: prefix form converts on octet/group boundaries', () => {
  assert.deepEqual(parseAllowEntry('10.'), { address: '10.0.0.0', family: 4, prefix: 8 });
  assert.deepEqual(parseAllowEntry('192.168.1.'), { address: '192.168.1.0', family: 4, prefix: 24 });
  assert.deepEqual(parseAllowEntry('2001:db8:'), { address: '2001:db8::', family: 6, prefix: 32 });
  assert.deepEqual(parseAllowEntry('::ffff:203.0.113.9'), { address: '203.0.113.9', family: 4, prefix: 32 });
});

test('allowlist: bad entries are refused naming the entry', () => {
  for (const bad of ['192.16', '1.2.3.4.', '300.', '2001:db8::', 'fe8g:', '203.0.113.0/33', '2001:db8::/129', 'x/8', '', 'host.example.']) {
    assert.throws(() => new Allowlist([bad]), (e: Error) => e.message.includes(`'${bad}'`), bad);
  }
});
