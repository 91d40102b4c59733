// Addresses that must never be banned, whoever asks: the fixed special ranges, and the host's own
// addresses read from its interfaces and kept current.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { NeverBan, specialAddress } from '../../src/never-ban';
import { parseAddress } from '../../src/address';

function iface(address: string, netmask: string, family: 'IPv4' | 'IPv6'): NetworkInterfaceInfo {
  const base = { address, netmask, mac: '02:00:00:00:00:01', internal: false, cidr: null };
  return family === 'IPv4' ? { ...base, family } : { ...base, family, scopeid: 0 };
}

/** has() on the canonical form, as the ledger will call it. */
function reason(n: NeverBan, text: string): string | null {
  const a = parseAddress(text);
  assert.ok(a, `${text} parses`);
  return n.has(a.address, a.family);
}

test('never-ban: unspecified, loopback, multicast and broadcast, in any spelling', () => {
  const n = new NeverBan({ refreshMs: 0, interfaces: () => ({}) });
  const cases: [string, string][] = [
    ['0.0.0.0', 'unspecified'], ['0.1.2.3', 'unspecified'], ['::', 'unspecified'], ['0:0:0:0:0:0:0:0', 'unspecified'],
    ['127.0.0.1', 'loopback'], ['127.0.0.2', 'loopback'], ['127.255.255.255', 'loopback'], ['::1', 'loopback'],
    ['::ffff:127.0.0.9', 'loopback'], ['0:0:0:0:0:0:0:1', 'loopback'],
    ['224.0.0.1', 'multicast'], ['239.255.255.250', 'multicast'], ['ff02::1', 'multicast'], ['FF05::1:3', 'multicast'],
    ['255.255.255.255', 'broadcast'], ['::ffff:255.255.255.255', 'broadcast'],
  ];
  for (const [text, why] of cases) assert.equal(reason(n, text), why, text);
  // Ordinary remote addresses, and link-local (a neighbour on the link may be an attacker).
  for (const text of ['192.0.2.1', '198.51.100.255', '203.0.113.7', '2001:db8::1', '1.0.0.0', '126.255.255.255',
    '128.0.0.1', '223.255.255.255', '240.0.0.1', '255.255.255.254', 'fe80::1', '169.254.10.1', '::2', 'fe00::1']) {
    assert.equal(reason(n, text), null, text);
  }
  assert.equal(specialAddress('::', 6), 'unspecified');
  assert.equal(specialAddress('192.0.2.1', 4), null);
});

test("never-ban: the host's own addresses and its networks' broadcast, re-read when they change", () => {
  let current: Record<string, NetworkInterfaceInfo[]> = {
    lo: [iface('127.0.0.1', '255.0.0.0', 'IPv4'), iface('::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'IPv6')],
    eth0: [iface('192.0.2.10', '255.255.255.0', 'IPv4'), iface('2001:DB8:0:0::10', 'ffff:ffff:ffff:ffff::', 'IPv6'),
      iface('fe80::1', 'ffff:ffff:ffff:ffff::', 'IPv6')],
    p2p: [iface('198.51.100.6', '255.255.255.254', 'IPv4')],
  };
  const changes: [string[], string[]][] = [];
  const n = new NeverBan({ refreshMs: 0, interfaces: () => current, onChange: (a, r) => changes.push([a, r]) });
  assert.equal(reason(n, '192.0.2.10'), 'own address');
  assert.equal(reason(n, '2001:db8::10'), 'own address', 'canonical IPv6');
  assert.equal(reason(n, 'fe80::1'), 'own address', "the host's own link-local address");
  assert.equal(reason(n, '192.0.2.255'), 'broadcast', "eth0's directed broadcast");
  assert.equal(reason(n, '198.51.100.7'), null, 'a /31 has no broadcast address');
  assert.equal(reason(n, '198.51.100.6'), 'own address');
  assert.equal(reason(n, '192.0.2.11'), null);
  assert.equal(reason(n, '2001:db8::11'), null);
  assert.equal(changes.length, 0, 'the first read is not a change');

  assert.equal(n.refresh(), false, 'nothing changed');
  current = { eth0: [iface('203.0.113.5', '255.255.255.0', 'IPv4')] };
  assert.equal(n.refresh(), true);
  assert.equal(reason(n, '203.0.113.5'), 'own address', 'a new address is covered');
  assert.equal(reason(n, '192.0.2.10'), null, 'a removed address no longer is');
  assert.equal(reason(n, '127.0.0.1'), 'loopback', 'the fixed ranges stay');
  assert.equal(changes.length, 1);
  assert.ok(changes[0][0].includes('203.0.113.5') && changes[0][1].includes('192.0.2.10'), JSON.stringify(changes));

  // A failing read keeps the last known addresses (dropping them would drop protection).
  const failing = new NeverBan({ refreshMs: 0, interfaces: () => current });
  current = null as unknown as Record<string, NetworkInterfaceInfo[]>;
  assert.equal(failing.refresh(), false);
  assert.equal(reason(failing, '203.0.113.5'), 'own address');
});

test('never-ban: start() polls on an unref\'d timer, close() stops it', async () => {
  let reads = 0;
  let addr = '192.0.2.20';
  const n = new NeverBan({ refreshMs: 20, interfaces: () => { reads++; return { eth0: [iface(addr, '255.255.255.0', 'IPv4')] }; } });
  assert.equal(reads, 1, 'read once on construction');
  n.start();
  n.start(); // idempotent: one timer
  addr = '192.0.2.21';
  await new Promise((r) => setTimeout(r, 110));
  assert.equal(reason(n, '192.0.2.21'), 'own address', 'picked up by the poll');
  assert.ok(reads >= 3 && reads <= 8, `polled ${reads} times`);
  n.close();
  const after = reads;
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(reads, after, 'no reads after close');
  // The real interfaces: loopback is there on any Linux host, and the read is cheap.
  const real = new NeverBan({ refreshMs: 0 });
  assert.ok(real.ownAddresses().includes('127.0.0.1'));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 100; i++) real.refresh();
  const perRead = Number(process.hrtime.bigint() - t0) / 1e6 / 100;
  assert.ok(perRead < 5, `one re-read takes ${perRead.toFixed(3)} ms`);
});
