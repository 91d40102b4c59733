import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { Address6 } from 'ip-address';
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

// The canonical text is what the state file, the kernel sets and the ledger key on: it must stay
// what ip-address 10 (the dependency it replaced) gave. The old function, kept here as reference:
function reference(text: string): { address: string; family: 4 | 6 } | null {
  const kind = isIP(text);
  if (kind === 4) return { address: text, family: 4 };
  if (kind !== 6) return null;
  if (text.includes('%')) return null;
  let a: Address6;
  try {
    a = new Address6(text);
  } catch {
    return null;
  }
  const canonical = a.correctForm();
  if (/^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(canonical)) return { address: a.to4().correctForm(), family: 4 };
  return { address: canonical, family: 6 };
}

/** Seeded generator (mulberry32): a failure names a seed that reproduces it. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random IPv6 text in any of the forms people and programs write: zero runs, `::` anywhere, case, leading zeros, a dotted quad. */
function randomText(r: () => number): string {
  const int = (n: number) => Math.floor(r() * n);
  const g: number[] = [];
  const shape = int(6);
  for (let i = 0; i < 8; i++) {
    const p = r();
    g.push(p < 0.45 ? 0 : p < 0.5 ? 0xffff : p < 0.6 ? int(16) : int(65536));
  }
  if (shape === 0) g.splice(0, 6, 0, 0, 0, 0, 0, 0xffff); // IPv4-mapped
  if (shape === 1) g.splice(0, 6, 0, 0, 0, 0, 0, 0); // IPv4-compatible (deprecated)
  if (shape === 2) g.splice(0, 8, ...g.map(() => (r() < 0.8 ? 0 : int(3)))); // mostly zeros: ties between runs
  const words = g.map((x) => {
    let s = x.toString(16);
    while (s.length < 4 && r() < 0.3) s = '0' + s;
    return r() < 0.3 ? s.toUpperCase() : s;
  });
  // Compress one run of zero groups (any run, not only the longest), or none.
  const runs: [number, number][] = [];
  for (let i = 0; i < 8; i++) {
    if (g[i] !== 0) continue;
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    for (let a = i; a < j; a++) for (let b = a + 1; b <= j; b++) runs.push([a, b]);
    i = j;
  }
  const gap = runs.length && r() < 0.8 ? runs[int(runs.length)] : null;
  const quad = r() < 0.3 && (!gap || gap[1] <= 6);
  const tailWords = quad ? [`${g[6] >> 8}.${g[6] & 255}.${g[7] >> 8}.${g[7] & 255}`] : words.slice(6);
  const all = [...words.slice(0, 6), ...tailWords];
  if (!gap) return all.join(':');
  const tailStart = quad && gap[1] > 6 ? 7 : gap[1];
  return `${all.slice(0, gap[0]).join(':')}::${all.slice(tailStart).join(':')}`;
}

test('parseAddress: the same canonical text as ip-address on 60,000 random IPv6 texts', () => {
  const seed = 20261202;
  const r = rng(seed);
  let checked = 0;
  const families = { 4: 0, 6: 0 };
  for (let i = 0; i < 60_000; i++) {
    const text = randomText(r);
    assert.equal(isIP(text), 6, `generator made an invalid text: ${text} (seed ${seed}, item ${i})`);
    const want = reference(text);
    assert.deepEqual(parseAddress(text), want, `${text} (seed ${seed}, item ${i})`);
    if (want) families[want.family]++;
    checked++;
  }
  assert.equal(checked, 60_000);
  // Both outcomes were exercised (mapped addresses become IPv4).
  assert.ok(families[4] > 5_000 && families[6] > 30_000, JSON.stringify(families));
});

test('parseAddress: the same answer as ip-address on damaged texts (one character changed, added or removed)', () => {
  const r = rng(7);
  const chars = '0123456789abcdefABCDEF:.%/ g';
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    const t = randomText(r);
    const at = Math.floor(r() * (t.length + 1));
    const c = chars[Math.floor(r() * chars.length)];
    const op = Math.floor(r() * 3);
    const text = op === 0 ? t.slice(0, at) + c + t.slice(at + 1) : op === 1 ? t.slice(0, at) + c + t.slice(at) : t.slice(0, at) + t.slice(at + 1);
    const want = reference(text);
    assert.deepEqual(parseAddress(text), want, text);
    if (!want) refused++;
  }
  assert.ok(refused > 4_000, `damaged texts refused: ${refused}`);
});

test('parseAddress: RFC 5952 corner cases', () => {
  const cases: [string, string][] = [
    ['::', '::'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['1::', '1::'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group is not compressed
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of equal runs
    ['::198.51.100.7', '::c633:6407'],
    ['::ffff:0:0', '0.0.0.0'],
    ['0:0:0:0:0:FFFF:cb00:7109', '203.0.113.9'],
    ['64:ff9b::203.0.113.9', '64:ff9b::cb00:7109'],
  ];
  for (const [text, want] of cases) assert.equal(parseAddress(text)?.address, want, text);
});
