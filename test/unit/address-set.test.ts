// AddressSet (the allowlist's and never-ban's lookups) against net.BlockList, an independent
// implementation: random networks of every prefix length and random addresses near them give the
// same answers; text that is not an address is never in a set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import { AddressSet } from '../../src/address-set';
import { parseAddress } from '../../src/address';

// A small deterministic generator (xorshift32): the same cases on every run.
let seed = 0x9e3779b9;
const rnd = (): number => {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>>= 0);
};
const v4 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
const v6 = (g: number[]) => parseAddress(g.map((x) => x.toString(16)).join(':'))!.address;

test('IPv4: random networks of every prefix length and addresses in, beside and far from them: the same answers as BlockList', () => {
  const set = new AddressSet();
  const ref = new BlockList();
  const bases: number[] = [];
  // Short prefixes would hold nearly every address (they get their own set below).
  for (let p = 8; p <= 32; p++) {
    for (let k = 0; k < 3; k++) {
      const n = rnd();
      set.add(v4(n), p, 4);
      ref.addSubnet(v4(n), p, 'ipv4');
      bases.push(n);
    }
  }
  let inside = 0;
  for (let i = 0; i < 20_000; i++) {
    const b = bases[i % bases.length];
    // near a base (flip one of its low bits) or anywhere
    const a = i % 2 ? (b ^ (1 << rnd() % 32)) >>> 0 : rnd();
    const want = ref.check(v4(a), 'ipv4');
    if (want) inside++;
    assert.equal(set.has(v4(a), 4), want, v4(a));
  }
  assert.ok(inside > 1000 && inside < 19_000, `both answers are exercised (${inside} inside)`);
  const short = new AddressSet();
  const shortRef = new BlockList();
  for (const p of [1, 2, 3, 5, 7]) {
    const n = rnd();
    short.add(v4(n), p, 4);
    shortRef.addSubnet(v4(n), p, 'ipv4');
  }
  for (let i = 0; i < 2000; i++) {
    const a = v4(rnd());
    assert.equal(short.has(a, 4), shortRef.check(a, 'ipv4'), a);
  }
  // /0 holds everything.
  const all = new AddressSet();
  all.add('0.0.0.0', 0, 4);
  assert.equal(all.has('203.0.113.9', 4), true);
  assert.equal(all.has('::1', 6), false, 'an IPv4 network never holds an IPv6 address');
});

test('IPv6: random networks of every prefix length, addresses in and beside them, compressed forms: the same answers as BlockList', () => {
  const set = new AddressSet();
  const ref = new BlockList();
  const bases: number[][] = [];
  for (let p = 16; p <= 128; p++) {
    const g = Array.from({ length: 8 }, () => (rnd() % 3 === 0 ? 0 : rnd() & 0xffff));
    set.add(v6(g), p, 6);
    ref.addSubnet(v6(g), p, 'ipv6');
    bases.push(g);
  }
  let inside = 0;
  for (let i = 0; i < 20_000; i++) {
    const g = [...bases[i % bases.length]];
    const bit = rnd() % 128;
    if (i % 3) g[bit >> 4] ^= 1 << (15 - (bit & 15));
    else for (let k = 0; k < 8; k++) g[k] = rnd() % 4 === 0 ? 0 : rnd() & 0xffff;
    const a = v6(g);
    const want = ref.check(a, 'ipv6');
    if (want) inside++;
    assert.equal(set.has(a, 6), want, a);
  }
  assert.ok(inside > 1000 && inside < 19_000, `both answers are exercised (${inside} inside)`);
  const short = new AddressSet();
  const shortRef = new BlockList();
  for (const p of [1, 3, 7, 12, 15]) {
    const g = Array.from({ length: 8 }, () => rnd() & 0xffff);
    short.add(v6(g), p, 6);
    shortRef.addSubnet(v6(g), p, 'ipv6');
  }
  for (let i = 0; i < 2000; i++) {
    const a = v6(Array.from({ length: 8 }, () => rnd() & 0xffff));
    assert.equal(short.has(a, 6), shortRef.check(a, 'ipv6'), a);
  }
});

test('single addresses, mapped and upper-case texts, and text that is not an address', () => {
  const set = new AddressSet();
  set.add('192.0.2.1', 32, 4);
  set.add('2001:db8::1', 128, 6);
  set.add('2001:DB8:0:0:0:0:0:100', 120, 6);
  assert.equal(set.has('192.0.2.1', 4), true);
  assert.equal(set.has('192.0.2.2', 4), false);
  assert.equal(set.has('2001:db8::1', 6), true);
  assert.equal(set.has('2001:db8::1ff', 6), true, 'in 2001:db8::100/120');
  assert.equal(set.has('2001:db8::200', 6), false);
  assert.equal(set.has('2001:0db8:0000::0001', 6), true, 'a longer form of the same address');
  for (const bad of ['', 'x', '192.0.2', '192.0.2.1.5', '192.0.2.1/32', '2001:db8::1::', ':::', '2001:db8::g', '1:2:3:4:5:6:7:8:9', '203.0.113.x']) {
    assert.equal(set.has(bad, 4) || set.has(bad, 6), false, JSON.stringify(bad));
  }
  assert.throws(() => set.add('2001:db8::', 129, 6), /not an IPv6 network: 2001:db8::\/129/);
  assert.throws(() => set.add('192.0.2.300', 24, 6), /not an IPv6 network/);
  assert.throws(() => set.add('not-an-address', 24, 4), /not an IPv4 network: not-an-address\/24/);
});
