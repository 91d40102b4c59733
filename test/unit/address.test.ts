import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAddress } from '../../src/address';

test('parseAddress: canonical IPv4 and RFC 5952 IPv6', () => {
  assert.deepEqual(parseAddress('203.0.113.9'), { address: '203.0.113.9', family: 4 });
  assert.deepEqual(parseAddress('2001:DB8:0:0:0:0:0:1'), { address: '2001:db8::1', family: 6 });
  assert.deepEqual(parseAddress('2001:db8:0:0:1:0:0:1'), { address: '2001:db8::1:0:0:1', family: 6 });
  assert.deepEqual(parseAddress('::1'), { address: '::1', family: 6 });
});

test('parseAddress: IPv4-mapped IPv6 is the IPv4 address', () => {
  assert.deepEqual(parseAddress('::ffff:198.51.100.7'), { address: '198.51.100.7', family: 4 });
  assert.deepEqual(parseAddress('::FFFF:c633:6407'), { address: '198.51.100.7', family: 4 });
  // IPv4-compatible (deprecated) is not mapped: it stays IPv6
  assert.equal(parseAddress('::198.51.100.7')?.family, 6);
});

test('parseAddress: refuses what is not one address', () => {
  for (const bad of ['', ' 203.0.113.9', '203.0.113.9 ', '203.0.113.9/24', '2001:db8::/32', '203.0.113', '999.1.1.1',
    '01.2.3.4', 'fe80::1%eth0', '2001:db8:::1', '[2001:db8::1]', '203.0.113.9:22', 'example.org', '1:2:3:4:5:6:7:8:9']) {
    assert.equal(parseAddress(bad), null, bad);
  }
});
