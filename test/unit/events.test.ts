// Listeners have their own queues: one that throws, one that hangs and one that is slow never hold
// back the kernel (the firewall queue) or each other, and the slow one gets every event once, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dispatcher, type Listener, type TallowEvent } from '../../src/events';
import { Firewall } from '../../src/firewall/index';
import type { BanEntry, FirewallBackend, KernelBan } from '../../src/firewall/backend';
import { Ledger } from '../../src/ledger';
import { firewallListener } from '../../src/listeners/firewall';
import type { Logger } from '../../src/log';
import type { Family } from '../../src/address';

const quiet = (): Logger & { errors: string[] } => {
  const errors: string[] = [];
  return { errors, info() {}, warn() {}, debug() {}, error: (m) => void errors.push(m) };
};

/** A kernel that records every element in the order it arrived. */
class Kernel implements FirewallBackend {
  readonly name = 'fake';
  order: string[] = [];
  describe() {
    return 'fake';
  }
  async setup() {}
  async check() {
    return true;
  }
  async apply(add: BanEntry[], _remove: { address: string; family: Family }[]) {
    await new Promise((r) => setImmediate(r));
    for (const e of add) this.order.push(e.address);
  }
  async list(): Promise<KernelBan[]> {
    return [];
  }
}

const addresses = (n: number) => Array.from({ length: n }, (_, i) => `2001:db8::${(i + 1).toString(16)}`);

async function flood(extra: Listener[]) {
  const log = quiet();
  const kernel = new Kernel();
  const fw = new Firewall(kernel, log, { checkIntervalMs: 600_000, held: () => ledger.values() });
  await fw.start();
  const events = new Dispatcher([firewallListener(fw), ...extra], log, { retryBaseMs: 20, retryMaxMs: 100 });
  const ledger = new Ledger({ emit: (e) => events.emit(e) });
  const all = addresses(5000);
  // 5,000 bans as a flood brings them: 50 per journal batch, a tick apart.
  for (let i = 0; i < all.length; i += 50) {
    const now = Date.now();
    for (const a of all.slice(i, i + 50)) ledger.ban({ address: a, family: 6, seconds: 600, origin: 'rule', reason: 'threshold', pattern: 'x#1', score: 1, count: 5 }, now);
    await new Promise((r) => setImmediate(r));
  }
  await fw.flush();
  return { all, kernel, fw, events, log };
}

test('events: slow, hanging and failing listeners never hold back the kernel; the slow one gets every event once, in order', async () => {
  const slowSeen: string[] = [];
  const slow: Listener = {
    name: 'slow',
    maxBatch: 100,
    async handle(events: TallowEvent[]) {
      await new Promise((r) => setTimeout(r, 100)); // 100 ms per delivery
      for (const e of events) if (e.kind === 'ban') slowSeen.push(e.ban.address);
    },
  };
  let hung = 0;
  const hanging: Listener = {
    name: 'hanging',
    handle() {
      hung++;
      return new Promise<void>(() => {}); // never answers
    },
  };
  let thrown = 0;
  const failing: Listener = {
    name: 'failing',
    handle() {
      thrown++;
      throw new Error('receiver down');
    },
  };
  // Without the bad listeners, for comparison of what reached the kernel.
  const base = await flood([]);
  const { all, kernel, events, log, fw } = await flood([slow, hanging, failing]);

  // Every ban reached the kernel, in the order decided, whatever the other listeners do.
  assert.deepEqual(kernel.order, all);
  assert.deepEqual(kernel.order, base.kernel.order);
  // ... while the slow listener was still far behind (the kernel did not wait for it).
  assert.ok(slowSeen.length < all.length, `slow listener already had ${slowSeen.length}`);
  assert.equal(hung, 1, 'a hanging listener is not called again while its call is open');
  assert.ok(thrown >= 1);
  assert.ok(log.errors.some((m) => /listener failing failed; will retry/.test(m)), log.errors.join('\n'));

  for (let i = 0; i < 200 && slowSeen.length < all.length; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(slowSeen, all, 'every event exactly once, in order');
  const stats = Object.fromEntries(events.stats().map((s) => [s.name, s]));
  assert.equal(stats.slow.delivered, 5000);
  assert.equal(stats.slow.queued, 0);
  assert.equal(stats.hanging.queued, 5000, 'the hanging listener keeps what it was handed');
  assert.equal(stats.failing.delivered, 0);
  assert.ok(stats.failing.failures >= 1);
  assert.equal(stats.failing.queued, 5000, 'nothing handed to a failing listener is lost');
  await events.close();
  await fw.close();
  await base.events.close();
  await base.fw.close();
});

test('events: a failing listener is retried with back-off and gets its events once it works again', async () => {
  let fail = 3;
  const seen: number[] = [];
  const flaky: Listener = {
    name: 'flaky',
    handle(events) {
      if (fail-- > 0) throw new Error('not yet');
      for (const e of events) if (e.kind === 'match') seen.push(e.at);
    },
    wantsMatches: true,
  };
  const log = quiet();
  const d = new Dispatcher([flaky], log, { retryBaseMs: 10, retryMaxMs: 20 });
  for (let i = 0; i < 10; i++) d.emit({ kind: 'match', address: '192.0.2.1', family: 4, pattern: 'x#1', file: 'x', at: i });
  await d.flush(5000);
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(d.stats()[0].failures, 3);
  assert.equal(log.errors.length, 3);
  await d.close();
});

test('events: match events go only to listeners that ask; a full queue drops and counts', async () => {
  const got: string[] = [];
  const a: Listener = { name: 'a', handle: (es) => void es.forEach((e) => got.push(`a:${e.kind}`)) };
  const b: Listener = { name: 'b', wantsMatches: true, maxQueue: 2, handle: () => new Promise<void>(() => {}) };
  const log = quiet();
  const d = new Dispatcher([a, b], log);
  for (let i = 0; i < 5; i++) d.emit({ kind: 'match', address: '192.0.2.1', family: 4, pattern: 'x#1', file: 'x', at: i });
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(got, []);
  const sb = d.stats().find((s) => s.name === 'b')!;
  assert.equal(sb.dropped, 3);
  assert.ok(log.errors.some((m) => /listener b: queue full/.test(m)));
  await d.close();
});

test('events: an element the kernel refuses leaves the ledger (list, state) and is never sent a delete', async () => {
  const { RefusedError } = await import('../../src/firewall/backend');
  const calls: { add: string[]; remove: string[] }[] = [];
  const refusing: FirewallBackend = {
    name: 'refusing',
    describe: () => 'refusing',
    setup: async () => {},
    check: async () => true,
    list: async () => [],
    async apply(add, remove) {
      calls.push({ add: add.map((e) => e.address), remove: remove.map((e) => e.address) });
      if (add.some((e) => e.address === '2001:db8::bad')) throw new RefusedError('Kernel error received: set is full');
    },
  };
  const log = quiet();
  let events!: Dispatcher;
  const ledger = new Ledger({ emit: (e) => events.emit(e) });
  const fw = new Firewall(refusing, log, { checkIntervalMs: 600_000, retryBaseMs: 10, held: () => ledger.values(), onRefused: (a) => void ledger.unban(a, 'refused', Date.now()) });
  await fw.start();
  events = new Dispatcher([firewallListener(fw)], log);
  const now = Date.now();
  for (const a of ['2001:db8::1', '2001:db8::bad', '2001:db8::2']) ledger.ban({ address: a, family: 6, seconds: 60, origin: 'manual', reason: 'manual', pattern: 'manual', score: 0, count: 0 }, now);
  assert.match((await fw.outcome('2001:db8::bad')) ?? '', /set is full/);
  await fw.flush();
  assert.deepEqual([...ledger.values()].map((b) => b.address).sort(), ['2001:db8::1', '2001:db8::2']);
  assert.ok(calls.every((c) => c.remove.length === 0), `no delete sent for the refused element: ${JSON.stringify(calls)}`);
  assert.ok(calls.some((c) => c.add.includes('2001:db8::1') && c.add.includes('2001:db8::2')));
  await fw.close();
  await events.close();
});
