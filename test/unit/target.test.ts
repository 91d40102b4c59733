// Targets: an address, or the network it is in, in one canonical text (RFC 5952 for IPv6).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Address6 } from 'ip-address';
import { canonicalTarget, networkRefusal, overlaps, parseNetwork, targetOf } from '../../src/target';
import { parseAddress } from '../../src/address';

test('targetOf: the address at /32 and /128, else the network with its host bits cleared', () => {
  assert.equal(targetOf('198.51.100.77', 4, 32), '198.51.100.77');
  assert.equal(targetOf('198.51.100.77', 4, 24), '198.51.100.0/24');
  assert.equal(targetOf('198.51.100.77', 4, 20), '198.51.96.0/20');
  assert.equal(targetOf('198.51.100.77', 4, 0), '0.0.0.0/0');
  assert.equal(targetOf('2001:db8::2', 6, 64), '2001:db8::/64');
  assert.equal(targetOf('2001:db8::3', 6, 64), '2001:db8::/64');
  assert.equal(targetOf('2001:db8:1:2:3:4:5:6', 6, 61), '2001:db8:1::/61');
  assert.equal(targetOf('2001:db8:0:1:0:0:1:1', 6, 112), '2001:db8:0:1::1:0/112');
  assert.equal(targetOf('2001:db8::1', 6, 128), '2001:db8::1');
});

test('targetOf for IPv6 agrees with ip-address on many addresses and prefixes', () => {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (let i = 0; i < 3000; i++) {
    // Zero groups are common in real addresses: draw many of them.
    const groups = Array.from({ length: 8 }, () => (rnd() % 3 === 0 ? 0 : rnd() % 0x10000).toString(16));
    const a = parseAddress(`2001:${groups.slice(1).join(':')}`);
    if (!a || a.family !== 6) continue;
    const prefix = rnd() % 129;
    const want = prefix === 128 ? a.address : `${new Address6(`${a.address}/${prefix}`).startAddress().correctForm()}/${prefix}`;
    assert.equal(targetOf(a.address, 6, prefix), want, `${a.address}/${prefix}`);
  }
});

test('canonicalTarget and parseNetwork: what a user or a file gives, canonical or refused', () => {
  assert.deepEqual(canonicalTarget('2001:DB8:0::5/64'), { target: '2001:db8::/64', family: 6 });
  assert.deepEqual(canonicalTarget('198.51.100.7/32'), { target: '198.51.100.7', family: 4 });
  assert.deepEqual(canonicalTarget('::ffff:198.51.100.7'), { target: '198.51.100.7', family: 4 });
  assert.equal(canonicalTarget('198.51.100.7/33'), null);
  assert.equal(canonicalTarget('::ffff:198.51.100.0/120'), null);
  assert.equal(canonicalTarget('example.org/24'), null);
  assert.deepEqual(parseNetwork('2001:db8::/64'), { base: '2001:db8::', family: 6, prefix: 64 });
  assert.equal(parseNetwork('2001:DB8::/64'), null, 'not canonical');
  assert.equal(parseNetwork('198.51.100.7'), null);
});

test('overlaps and networkRefusal: a network holding a never-ban or own address is refused', () => {
  const net = (t: string) => parseNetwork(t)!;
  assert.equal(overlaps(net('198.51.100.0/24'), net('198.51.100.128/25')), true);
  assert.equal(overlaps(net('198.51.100.0/24'), net('198.51.0.0/16')), true);
  assert.equal(overlaps(net('198.51.100.0/24'), net('198.51.101.0/24')), false);
  assert.equal(overlaps(net('198.51.100.0/24'), net('2001:db8::/64')), false);
  const never = {
    has: (a: string) => (a.startsWith('127.') ? 'loopback' : a === '::' ? 'unspecified' : null),
    ownAddresses: () => ['203.0.113.1', '2001:db8:5::1'],
  };
  assert.equal(networkRefusal(net('127.0.0.0/24'), never), 'loopback');
  assert.equal(networkRefusal(net('::/64'), never), 'unspecified');
  assert.equal(networkRefusal(net('203.0.113.0/24'), never), 'own address');
  assert.equal(networkRefusal(net('2001:db8:5::/64'), never), 'own address');
  assert.equal(networkRefusal(net('198.51.100.0/24'), never), null);
});
