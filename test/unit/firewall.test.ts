// The firewall queue against a scripted fake backend (batching, retry, re-fill), backend choice,
// and the script builders/parsers of the ipset and nftables backends.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { config, logger } from './firewall-helpers';
import type { Family } from '../../src/address';
import type { BanEntry, FirewallBackend, KernelBan, Logger } from '../../src/firewall/backend';
import { chooseBackend, Firewall, FirewallError, firewallSettings, type FirewallOptions } from '../../src/firewall/index';
import { Ledger } from '../../src/ledger';
import { firewallListener } from '../../src/listeners/firewall';
import { parseSave, restoreScript } from '../../src/firewall/ipset';
import { batchScript, isDropRule, parseSetElements, parseTable, setupScript } from '../../src/firewall/nftables';

/** A backend whose kernel is a Map; `failNext` makes the next calls throw, `inFlight` holds apply open. */
class FakeBackend implements FirewallBackend {
  readonly name = 'fake';
  kernel = new Map<string, { family: Family; seconds: number }>();
  setsPresent = true;
  calls: { add: BanEntry[]; remove: { address: string; family: Family }[] }[] = [];
  setups = 0;
  failNext = 0;
  hold: Promise<void> | null = null;
  describe() {
    return 'fake';
  }
  async setup() {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('setup refused');
    }
    this.setups++;
    this.setsPresent = true;
  }
  async check() {
    return this.setsPresent;
  }
  async apply(add: BanEntry[], remove: { address: string; family: Family }[]) {
    this.calls.push({ add, remove });
    if (this.hold) await this.hold;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('tool refused');
    }
    if (!this.setsPresent) throw new Error('set does not exist');
    for (const e of add) this.kernel.set(e.address, { family: e.family, seconds: e.seconds });
    for (const e of remove) this.kernel.delete(e.address);
  }
  async list(): Promise<KernelBan[]> {
    return [...this.kernel].map(([address, v]) => ({ address, family: v.family, remaining: v.seconds, scope: '' }));
  }
}

const FAST = { retryBaseMs: 10, retryMaxMs: 40, checkIntervalMs: 60_000, startAttempts: 3 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The firewall queue as the daemon wires it: bans are the ledger's, its events reach the queue
 * through the firewall listener, and a lost set is re-filled from the ledger. `fw.ban`/`fw.unban`
 * here go through the ledger; `active()` is what the ledger holds.
 */
function wired(be: FirewallBackend, log: Logger, opts: FirewallOptions) {
  let listener: ReturnType<typeof firewallListener> | null = null;
  const ledger = new Ledger({ emit: (e) => listener!.handle([e]) });
  const fw = new Firewall(be, log, { ...opts, held: () => ledger.values() });
  listener = firewallListener(fw);
  return {
    raw: fw,
    start: () => fw.start(),
    flush: () => fw.flush(),
    close: () => fw.close(),
    ban(entries: BanEntry[]) {
      const now = Date.now();
      for (const e of entries) ledger.ban({ ...e, origin: 'manual', reason: 'manual', pattern: 'manual', score: 0, count: 0 }, now, true);
    },
    unban(entries: { address: string; family: Family }[]) {
      for (const e of entries) ledger.unban(e.address, 'manual', Date.now());
    },
    active() {
      ledger.expire(Date.now());
      return new Map([...ledger.values()].map((b) => [b.address, b]));
    },
  };
}

describe('Firewall queue', () => {
  test('bans decided in one tick go out in one call; bans during a batch in flight go in the next', async () => {
    const be = new FakeBackend();
    const fw = wired(be, logger(), FAST);
    await fw.start();
    let release!: () => void;
    be.hold = new Promise((r) => (release = r));
    fw.ban([{ address: '192.0.2.1', family: 4, seconds: 60 }]);
    fw.ban([{ address: '2001:db8::1', family: 6, seconds: 60 }, { address: '192.0.2.2', family: 4, seconds: 30 }]);
    for (let i = 0; i < 200 && be.calls.length === 0; i++) await sleep(5);
    assert.equal(be.calls.length, 1);
    assert.equal(be.calls[0].add.length, 3);
    fw.ban([{ address: '192.0.2.3', family: 4, seconds: 60 }]);
    fw.ban([{ address: '192.0.2.4', family: 4, seconds: 60 }]);
    await sleep(30);
    assert.equal(be.calls.length, 1, 'nothing new goes out while a batch is in flight');
    be.hold = null;
    release();
    await fw.flush();
    assert.equal(be.calls.length, 2);
    assert.deepEqual(be.calls[1].add.map((e) => e.address), ['192.0.2.3', '192.0.2.4']);
    assert.equal(be.kernel.get('192.0.2.2')!.seconds, 30);
    await fw.close();
  });

  test('ban then unban in the same tick: only the removal goes out, in the same call as other bans', async () => {
    const be = new FakeBackend();
    const fw = wired(be, logger(), FAST);
    await fw.start();
    fw.ban([{ address: '192.0.2.9', family: 4, seconds: 60 }, { address: '192.0.2.10', family: 4, seconds: 60 }]);
    fw.unban([{ address: '192.0.2.9', family: 4 }]);
    await fw.flush();
    assert.equal(be.calls.length, 1);
    assert.deepEqual(be.calls[0].add.map((e) => e.address), ['192.0.2.10']);
    assert.deepEqual(be.calls[0].remove, [{ address: '192.0.2.9', family: 4, scope: '' }]);
    assert.deepEqual([...fw.active().keys()], ['192.0.2.10']);
    await fw.close();
  });

  test('invalid entries never reach the backend', async () => {
    const be = new FakeBackend();
    const log = logger();
    const fw = wired(be, log, FAST);
    await fw.start();
    // Straight into the queue: the queue is the last check before a command line.
    fw.raw.ban([
      { address: '192.0.2.1\nflush tallow', family: 4, seconds: 60 },
      { address: '-exist', family: 4, seconds: 60 },
      { address: '2001:db8::1', family: 4, seconds: 60 },
      { address: '192.0.2.0/24', family: 4, seconds: 60 },
      { address: 'fe80::1%eth0', family: 6, seconds: 60 },
      { address: '192.0.2.5', family: 4, seconds: NaN },
      { address: '192.0.2.6', family: 4, seconds: 60 },
    ]);
    await fw.flush();
    assert.deepEqual(be.calls.map((c) => c.add.map((e) => e.address)), [['192.0.2.6']]);
    assert.equal(log.lines.filter((l) => l.level === 'warn').length, 6);
    await fw.close();
  });

  test('a failed batch is logged, kept and retried with doubling back-off capped; it goes out with its remaining time', async () => {
    const be = new FakeBackend();
    const log = logger();
    const fw = wired(be, log, FAST);
    await fw.start();
    be.failNext = 4;
    fw.ban([{ address: '198.51.100.7', family: 4, seconds: 100 }]);
    await fw.flush(); // resolves after the failure, with a retry scheduled
    assert.equal(be.kernel.size, 0);
    for (let i = 0; i < 500 && !be.kernel.has('198.51.100.7'); i++) await sleep(10);
    assert.ok(be.kernel.has('198.51.100.7'), 'the ban landed after the failures');
    const delays = log.lines.filter((l) => l.msg === 'firewall update failed; will retry').map((l) => l.fields!.retry_in_ms);
    assert.deepEqual(delays, ['10', '20', '40', '40']);
    assert.ok(log.lines.some((l) => l.msg === 'firewall working again'));
    assert.ok(be.kernel.get('198.51.100.7')!.seconds <= 100);
    await fw.close();
  });

  test('lost sets are re-created and re-filled with remaining time; expired bans are dropped, not re-filled', async () => {
    const be = new FakeBackend();
    const log = logger();
    const fw = wired(be, log, { ...FAST, checkIntervalMs: 30 });
    await fw.start();
    fw.ban([{ address: '203.0.113.1', family: 4, seconds: 1 }, { address: '2001:db8::2', family: 6, seconds: 500 }]);
    await fw.flush();
    await sleep(1100); // the 1 s ban is over
    be.setsPresent = false;
    be.kernel.clear();
    for (let i = 0; i < 500 && !be.kernel.has('2001:db8::2'); i++) await sleep(10);
    assert.ok(be.kernel.has('2001:db8::2'));
    assert.ok(!be.kernel.has('203.0.113.1'), 'an expired ban is not re-filled');
    assert.ok(be.kernel.get('2001:db8::2')!.seconds <= 499, 'remaining time, not the original');
    assert.equal(be.setups, 2);
    assert.deepEqual([...fw.active().keys()], ['2001:db8::2']);
    await fw.close();
  });

  test('a set emptied from outside (sets and rules still there) is re-filled', async () => {
    const be = new FakeBackend();
    const log = logger();
    const fw = wired(be, log, { ...FAST, checkIntervalMs: 30 });
    await fw.start();
    fw.ban([{ address: '192.0.2.77', family: 4, seconds: 500 }]);
    await fw.flush();
    be.kernel.clear();
    for (let i = 0; i < 500 && !be.kernel.has('192.0.2.77'); i++) await sleep(10);
    assert.ok(be.kernel.has('192.0.2.77'));
    assert.ok(log.lines.some((l) => /emptied from outside/.test(l.msg)));
    await fw.close();
  });

  test('start retries set-up, then throws FirewallError naming the backend and the cause', async () => {
    const be = new FakeBackend();
    be.failNext = 5;
    const fw = wired(be, logger(), FAST);
    await assert.rejects(fw.start(), (e: Error) => e instanceof FirewallError && /fake/.test(e.message) && /setup refused/.test(e.message));
    const be2 = new FakeBackend();
    be2.failNext = 2;
    const fw2 = wired(be2, logger(), FAST);
    await fw2.start();
    assert.equal(be2.setups, 1);
    await fw2.close();
  });
});

describe('chooseBackend', () => {
  test('dry run never touches a firewall and says what it would do', async () => {
    const log = logger();
    const be = await chooseBackend(config({ backend: 'ipset' }), log, true);
    assert.equal(be.name, 'dryrun');
    await be.setup();
    await be.apply([{ address: '192.0.2.1', family: 4, seconds: 60 }], []);
    assert.deepEqual((await be.list()).map((b) => b.address), ['192.0.2.1']);
    assert.ok(log.lines.some((l) => /would ban/.test(l.msg)));
  });

  test('nothing usable: a FirewallError naming the paths tried', async () => {
    await assert.rejects(chooseBackend(config(), logger(), false), (e: Error) => e instanceof FirewallError && /\/nonexistent-tallow/.test(e.message));
  });

  test('an explicit backend that cannot run here is a FirewallError, an unknown one too', async () => {
    await assert.rejects(chooseBackend(config({ backend: 'nftables' }), logger(), false), /backend=nftables .*\/nonexistent-tallow\/nft/);
    await assert.rejects(chooseBackend(config({ backend: 'pf' as never }), logger(), false), /unknown firewall backend "pf"/);
  });
});

describe('ipset scripts', () => {
  test('restore script: add with timeout, del; invalid or other-family entries skipped', () => {
    const s = restoreScript(
      [{ address: '192.0.2.1', family: 4, seconds: 60.2 }, { address: '2001:db8::1', family: 6, seconds: 9e9 }, { address: 'x y', family: 4, seconds: 1 }],
      [{ address: '192.0.2.2', family: 4 }, { address: '2001:db8::2', family: 6 }],
      [4],
    );
    assert.equal(s, 'add tallow 192.0.2.1 timeout 61\ndel tallow 192.0.2.2\n');
    assert.equal(restoreScript([{ address: '2001:db8::1', family: 6, seconds: 9e9 }], [], [4, 6]), 'add tallow6 2001:db8::1 timeout 2147483\n');
    assert.equal(restoreScript([], [], [4, 6]), '');
  });

  test('save output parsed back, other sets ignored', () => {
    const text = 'create tallow hash:ip family inet hashsize 1024 maxelem 65536 timeout 3600\nadd tallow 192.0.2.1 timeout 42\nadd other 192.0.2.2 timeout 5\n';
    assert.deepEqual(parseSave(text, 4), [{ address: '192.0.2.1', family: 4, remaining: 42, scope: '' }]);
  });
});

describe('nftables scripts', () => {
  test('set-up script: table, both sets with timeout and size, chain before the filter, drop rules; only what is missing', () => {
    const s = setupScript(firewallSettings(config({ maxelem: 500, expires: 77 })));
    assert.match(s, /^add table inet tallow$/m);
    assert.match(s, /^add set inet tallow tallow \{ type ipv4_addr; flags timeout; size 500; timeout 77s; \}$/m);
    assert.match(s, /^add set inet tallow tallow6 \{ type ipv6_addr; flags timeout; size 500; timeout 77s; \}$/m);
    assert.match(s, /^add chain inet tallow input \{ type filter hook input priority -10; policy accept; \}$/m);
    assert.match(s, /^add rule inet tallow input ip saddr @tallow drop$/m);
    assert.match(s, /^add rule inet tallow input ip6 saddr @tallow6 drop$/m);
    assert.doesNotMatch(setupScript(firewallSettings(config({ ipv6: false }))), /tallow6/);
    // Only what is missing: an existing set keeps the administrator's size, an existing rule is not doubled.
    const st = { sets: new Set(['tallow']), rules: new Set(['tallow']), chain: true };
    assert.equal(
      setupScript(firewallSettings(config({ maxelem: 500, expires: 77 })), st),
      'add set inet tallow tallow6 { type ipv6_addr; flags timeout; size 500; timeout 77s; }\nadd rule inet tallow input ip6 saddr @tallow6 drop\n',
    );
    assert.equal(setupScript(firewallSettings(config()), { sets: new Set(['tallow', 'tallow6']), rules: new Set(['tallow', 'tallow6']), chain: true }), '');
  });

  test('batch script: add/delete/add refreshes timeouts in one transaction, large batches chunked', () => {
    const s = batchScript([{ address: '192.0.2.1', family: 4, seconds: 10 }], [{ address: '2001:db8::1', family: 6 }], [4, 6]);
    assert.equal(
      s,
      'add element inet tallow tallow { 192.0.2.1 }; delete element inet tallow tallow { 192.0.2.1 }; ' +
        'add element inet tallow tallow { 192.0.2.1 timeout 10s }\n' +
        'add element inet tallow tallow6 { 2001:db8::1 }; delete element inet tallow tallow6 { 2001:db8::1 }\n',
    );
    const many = Array.from({ length: 4500 }, (_, i) => ({ address: `2001:db8::${(i + 1).toString(16)}`, family: 6 as Family, seconds: 5 }));
    const lines = batchScript(many, [], [4, 6]).trim().split('\n');
    assert.equal(lines.length, 3, '3 chunks, one line (one transaction in nft -i) each');
    assert.equal(batchScript([{ address: '192.0.2.1 }; flush ruleset; add element inet tallow tallow { 192.0.2.2', family: 4, seconds: 1 }], [], [4]), '');
  });

  test('nft -j output: rules, sets and elements recognised', () => {
    const doc = {
      nftables: [
        { set: { family: 'inet', name: 'tallow', table: 'tallow', elem: [{ elem: { val: '192.0.2.1', timeout: 60, expires: 59 } }, '192.0.2.2'] } },
        { chain: { family: 'inet', table: 'tallow', name: 'input', hook: 'input' } },
        { rule: { table: 'tallow', chain: 'input', expr: [{ match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '@tallow' } }, { drop: null }] } },
        { rule: { table: 'tallow', chain: 'input', expr: [{ match: { op: '==', left: { payload: { protocol: 'ip6', field: 'saddr' } }, right: '@tallow6' } }, { accept: null }] } },
      ],
    };
    const st = parseTable(JSON.stringify(doc));
    assert.deepEqual([...st.sets], ['tallow']);
    assert.deepEqual([...st.rules], ['tallow']);
    assert.equal(st.chain, true);
    assert.equal(isDropRule(doc.nftables[3].rule!, 6), false, 'accept is not our drop rule');
    assert.deepEqual(parseSetElements(JSON.stringify(doc), 4), [
      { address: '192.0.2.1', family: 4, remaining: 59, scope: '' },
      { address: '192.0.2.2', family: 4, remaining: Infinity, scope: '' },
    ]);
  });
});
