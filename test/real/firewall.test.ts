// The firewall backends against the real kernel, each in a server network namespace of its own
// (and, for firewalld, a real firewalld on a private dbus): what the kernel holds is read back
// with the tools themselves, and a client namespace proves that banned addresses are dropped.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sleep, type Sandbox } from '../env/sandbox';
import { childRun, dropRules, firewallSandbox, kernelSet, kernelSets, makeToolWrappers, type Kind } from './firewall-kernel';
import { manyAddresses } from './firewall-addresses';

const KINDS: Kind[] = ['ipset', 'nftables', 'firewalld'];
// Fast retries and checks so failure and repair happen within a test.
const OPTIONS = { retryBaseMs: 200, retryMaxMs: 1000, checkIntervalMs: 300, startAttempts: 2 };

for (const kind of KINDS) {
  describe(`firewall backend ${kind} in a network namespace`, () => {
    let sb: Sandbox;
    let tools: ReturnType<typeof makeToolWrappers>;
    const cfg = (over: object = {}) => ({ backend: kind, iptPath: tools.bin, nftPath: tools.bin, fwcmdPath: tools.bin, expires: 3600, ...over });
    const spec = (steps: unknown[], over: object = {}) => ({ config: cfg(over), options: OPTIONS, steps });
    const okRun = async (steps: unknown[], over: object = {}) => {
      const r = await childRun(sb, spec(steps, over));
      assert.equal(r.ok, true, `child failed: ${r.error} ${JSON.stringify(r.logs)}`);
      return r;
    };

    before(async () => {
      // A TCP listener on 22 (firewalld's default zone lets ssh in), dual-stack.
      ({ sb, tools } = await firewallSandbox(kind));
    });
    after(async () => {
      if (sb) await sb.destroy();
    });

    test('nocreate=1 creates nothing', async () => {
      const r = await okRun(['start'], { nocreate: true });
      assert.deepEqual(await kernelSets(sb, kind), []);
      assert.deepEqual(await dropRules(sb, kind), { v4: 0, v6: 0 });
      assert.ok(r.logs.some((l: any) => l.level === 'warn' && /nocreate/.test(l.msg)), 'a warning says the sets are missing');
      if (kind === 'firewalld') {
        const p = await sb.check(['firewall-cmd', '--permanent', '--get-ipsets'], { net: 'server' });
        assert.equal(p.trim(), '', 'no permanent ipset was made');
      }
    });

    test('auto picks this backend here', async () => {
      const r = await okRun([], { backend: 'auto' });
      assert.equal(r.results[0].backend, kind === 'firewalld' ? 'firewalld' : 'ipset');
    });

    test('ipv6=0: only the IPv4 set and rule', async () => {
      await okRun(['start'], { ipv6: false });
      assert.deepEqual(await kernelSets(sb, kind), ['tallow']);
      assert.deepEqual(await dropRules(sb, kind), { v4: 1, v6: 0 });
    });

    test('set-up is idempotent and a restart keeps the bans', async () => {
      await okRun(['start', { ban: [['192.0.2.50', 4, 600], ['2001:db8::50', 6, 600]] }, 'flush']);
      await okRun(['start']);
      await okRun(['start']);
      assert.deepEqual(await kernelSets(sb, kind), ['tallow', 'tallow6']);
      assert.deepEqual(await dropRules(sb, kind), { v4: 1, v6: 1 });
      const set = await kernelSet(sb, kind);
      assert.ok(set.has('192.0.2.50') && set.has('2001:db8::50'), `bans survive restarts: ${[...set.keys()]}`);
    });

    test('a banned client cannot open a TCP connection, others can (IPv4 and IPv6)', async () => {
      const [b4, b6, ok4] = [sb.client.v4, sb.client.v6, sb.client.extraV4[0]];
      assert.equal(await sb.canConnect(b4, 22), true, 'IPv4 connects before the ban');
      assert.equal(await sb.canConnect(b6, 22), true, 'IPv6 connects before the ban');
      await okRun(['start', { ban: [[b4, 4, 600], [b6, 6, 600]] }, 'flush']);
      assert.equal(await sb.canConnect(b4, 22, 1), false, 'IPv4 dropped after the ban');
      assert.equal(await sb.canConnect(b6, 22, 1), false, 'IPv6 dropped after the ban');
      assert.equal(await sb.canConnect(ok4, 22), true, 'an address not banned still connects');
      await okRun(['start', { unban: [[b4, 4], [b6, 6]] }, 'flush']);
      assert.equal(await sb.canConnect(b4, 22), true, 'IPv4 connects after the unban');
      assert.equal(await sb.canConnect(b6, 22), true, 'IPv6 connects after the unban');
    });

    test('a refused tool: clear error, no crash, the ban is kept and lands once the tool works', async () => {
      const r = await okRun([
        'start',
        { exec: ['touch', tools.fail] },
        { ban: [['2001:db8:77::77', 6, 600]] },
        { waitLog: 'firewall update failed', ms: 10000 },
        { sleep: 700 },
        { exec: ['rm', '-f', tools.fail] },
        { waitLog: 'firewall working again', ms: 15000 },
      ]);
      const err = r.logs.find((l: any) => l.msg === 'firewall update failed; will retry');
      assert.ok(err && /refused by the test/.test(err.fields.error), `error names the tool's refusal: ${JSON.stringify(err)}`);
      assert.deepEqual(r.results.filter((x: any) => 'waitLog' in x).map((x: any) => x.found), [true, true]);
      const set = await kernelSet(sb, kind);
      assert.ok(set.has('2001:db8:77::77'), 'the retried ban reached the kernel');
      assert.ok(set.get('2001:db8:77::77')! <= 600 && set.get('2001:db8:77::77')! > 550, 'with its remaining time');
    });

    test('a missing tool path: a FirewallError naming the path, no crash', async () => {
      const r = await childRun(sb, spec(['start'], { iptPath: '/nonexistent-tallow', nftPath: '/nonexistent-tallow', fwcmdPath: '/nonexistent-tallow' }));
      assert.equal(r.ok, false);
      assert.equal(r.errorName, 'FirewallError');
      assert.match(r.error, /\/nonexistent-tallow\//);
    });

    test('sets emptied and rules deleted from outside are restored and re-filled', async () => {
      const flushSets: string[][] =
        kind === 'nftables'
          ? [['nft', 'flush', 'set', 'inet', 'tallow', 'tallow'], ['nft', 'flush', 'set', 'inet', 'tallow', 'tallow6']]
          : kind === 'firewalld'
            ? [['firewall-cmd', '--reload']] // a reload empties firewalld's ipsets
            : [['ipset', 'flush', 'tallow'], ['ipset', 'flush', 'tallow6']];
      const dropRule: string[][] =
        kind === 'nftables'
          ? [['nft', 'flush', 'chain', 'inet', 'tallow', 'input']]
          : [['iptables', '-w', '-D', 'INPUT', '-m', 'set', '--match-set', 'tallow', 'src', '-j', 'DROP'],
             ['ip6tables', '-w', '-D', 'INPUT', '-m', 'set', '--match-set', 'tallow6', 'src', '-j', 'DROP']];
      const r = await okRun([
        'start',
        { ban: [['203.0.113.61', 4, 600], ['2001:db8::61', 6, 600]] },
        'flush',
        ...flushSets.map((argv) => ({ exec: argv })),
        { waitLog: 'emptied from outside', ms: 10000 },
        { sleep: 500 },
        ...dropRule.map((argv) => ({ exec: argv })),
        { waitLog: 'missing', ms: 10000 },
        { waitLog: 're-filling bans', ms: 10000 },
        { sleep: 1000 },
        'flush',
        'check',
      ]);
      assert.deepEqual(r.results.filter((x: any) => 'waitLog' in x).map((x: any) => x.found), [true, true, true], JSON.stringify(r.logs));
      assert.equal(r.results.at(-1).check, true);
      assert.deepEqual(await dropRules(sb, kind), { v4: 1, v6: 1 });
      const set = await kernelSet(sb, kind);
      assert.ok(set.has('203.0.113.61') && set.has('2001:db8::61'), `re-filled: ${[...set.keys()]}`);
      assert.ok(set.get('203.0.113.61')! <= 600, 'with the remaining time, not a fresh one');
    });

    test('a rule deleted from outside is noticed at once by the kernel\'s notification (no periodic check or probe, no process) and put back', async () => {
      const dropRule: string[][] =
        kind === 'nftables'
          ? [['nft', 'flush', 'chain', 'inet', 'tallow', 'input']]
          : [['iptables', '-w', '-D', 'INPUT', '-m', 'set', '--match-set', 'tallow', 'src', '-j', 'DROP']];
      const r = await childRun(sb, {
        config: cfg(),
        // Neither the periodic check nor the probe runs within the test: only the notification can wake it.
        options: { ...OPTIONS, checkIntervalMs: 3_600_000, probeIntervalMs: 3_600_000 },
        steps: [
          'start',
          { ban: [['203.0.113.62', 4, 600]] },
          'flush',
          { sleep: 300 },
          ...dropRule.map((argv) => ({ exec: argv })),
          { waitLog: 'missing', ms: 8000 },
          { waitLog: 're-filling bans', ms: 8000 },
          { sleep: 500 },
          'flush',
          'check',
        ],
      });
      assert.equal(r.ok, true, `child failed: ${r.error} ${JSON.stringify(r.logs)}`);
      assert.deepEqual(r.results.filter((x: any) => 'waitLog' in x).map((x: any) => x.found), [true, true], JSON.stringify(r.logs));
      assert.equal(r.results.at(-1).check, true);
      assert.deepEqual(await dropRules(sb, kind), { v4: 1, v6: 1 });
      assert.ok((await kernelSet(sb, kind)).has('203.0.113.62'));
      // No `nft monitor` (or any other watcher process) among the firewall tools run.
      assert.deepEqual(tools.calls().filter((l) => /^nft monitor/.test(l)), [], 'no nft monitor process');
    });

    test('10,000 bans reach the kernel through one session process with their timeouts; a 4 s ban expires by itself', async () => {
      const log = path.join(sb.dir, 'fw', 'calls.log');
      const batchTool = kind === 'nftables' ? /^nft -i/ : /^ipset -$/;
      const r = await okRun([
        'start',
        { exec: ['truncate', '-s', '0', log] },
        { banMany: { v4: 762, v6: 9238, seconds: 1800 } },
        // 4 s: the kernel gets what is left of it when it is sent, after 10,000 on a busy machine.
        { ban: [['2001:db8:ffff::1', 6, 4]] },
        'flush',
        // At once, from inside the run (the child's own exit can outlast 2 s on a busy machine).
        { execCode: kind === 'nftables' ? ['/usr/sbin/nft', 'get', 'element', 'inet', 'tallow', 'tallow6', '{ 2001:db8:ffff::1 }'] : ['/usr/sbin/ipset', 'test', 'tallow6', '2001:db8:ffff::1'] },
      ]);
      const batches = tools.calls().filter((c) => batchTool.test(c));
      assert.equal(batches.length, 1, `one long-lived session for the 10,000 and the short ban: ${tools.calls().slice(0, 10)}`);
      assert.ok(r.results.some((x: any) => typeof x.banMany === 'number'));
      const set = await kernelSet(sb, kind);
      const want = manyAddresses(762, 9238);
      const missing = want.filter((a) => !set.has(a.address));
      assert.equal(missing.length, 0, `all 10,000 in the kernel; missing e.g. ${missing.slice(0, 3).map((a) => a.address)}`);
      const bad = want.filter((a) => !(set.get(a.address)! <= 1800 && set.get(a.address)! >= 1700));
      assert.equal(bad.length, 0, `timeouts near 1800 s; e.g. ${bad.slice(0, 3).map((a) => `${a.address}=${set.get(a.address)}`)}`);
      assert.equal(r.results.at(-1).execCode, 0, 'the short ban is there at first');
      await sleep(4500);
      assert.equal((await kernelSet(sb, kind)).has('2001:db8:ffff::1'), false, 'the short ban expired in the kernel');
      fs.rmSync(log, { force: true });
    });
  });
}
