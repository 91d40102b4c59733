// The kernel path without a process per ban (issue 12), refused elements that hold nothing back
// and repair within seconds after a reload (issue 11 points 2 and 7), per backend, in a server
// network namespace of its own (firewalld: a real one on a private dbus).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sleep, type Sandbox } from '../env/sandbox';
import { childRun, dropRules, firewallSandbox, kernelSet, makeToolWrappers, type Kind } from './firewall-kernel';
import { manyAddresses } from './firewall-addresses';

// TALLOW_FW_KINDS=ipset,nftables narrows the run (each backend builds its own sandbox).
const KINDS = (process.env.TALLOW_FW_KINDS ?? 'ipset,nftables,firewalld').split(',') as Kind[];

for (const kind of KINDS) {
  describe(`firewall sessions, backend ${kind}`, () => {
    let sb: Sandbox;
    let tools: ReturnType<typeof makeToolWrappers>;
    const cfg = (over: object = {}) => ({ backend: kind, iptPath: tools.bin, nftPath: tools.bin, fwcmdPath: tools.bin, expires: 3600, ...over });
    const okRun = async (steps: unknown[], over: object = {}, options: object = {}) => {
      const r = await childRun(sb, { config: cfg(over), options: { startAttempts: 2, ...options }, steps }, 300_000);
      assert.equal(r.ok, true, `child failed: ${r.error} ${JSON.stringify(r.logs).slice(0, 3000)}`);
      return r;
    };

    before(async () => {
      // A TCP listener on 22 (firewalld's default zone lets ssh in), dual-stack.
      ({ sb, tools } = await firewallSandbox(kind));
    });
    after(async () => {
      if (sb) await sb.destroy();
    });

    test('a 5,000-ban trickle (~100/s): no process per ban, the first written before the second is decided, the session killed midway loses nothing', async () => {
      const calls = path.join(sb.dir, 'fw', 'calls.log');
      const r = await okRun([
        'start',
        // Warm the session up, then a quiet second.
        { ban: [['2001:db8:ffff::99', 6, 600]] },
        'flush',
        { exec: ['truncate', '-s', '0', calls] },
        { sleep: 1000 },
        { trickle: { v4: 762, v6: 4238, seconds: 1800, everyMs: 10, killAt: 2500 } },
      ]);
      const t = r.results.find((x: any) => 'trickle' in x);
      const seconds = t.ms / 1000;
      const execs = tools.calls();
      const sessions = execs.filter((c) => /^(ipset -|nft -i)$/.test(c));
      // The session killed at ban 2,500 is started again once; the rest is the 30 s set/rule check.
      assert.equal(t.killed.length, 1, `one session process killed from outside: ${JSON.stringify(t.killed)}`);
      assert.equal(sessions.length, 1, `one new session after the kill: ${execs.join("; ")} ${JSON.stringify(t)} ${JSON.stringify(r.logs).slice(0, 1500)}`);
      assert.ok(execs.length <= 4 + 4 * Math.ceil(seconds / 30), `${execs.length} tool runs for 5,000 bans in ${seconds.toFixed(1)} s: ${execs.slice(0, 20).join('; ')}`);
      assert.equal(t.firstSentBeforeSecond, true, 'the first ban after a quiet period left the queue (went to the tool) before the second one was decided');
      const set = await kernelSet(sb, kind);
      const missing = manyAddresses(762, 4238).filter((a) => !set.has(a.address));
      assert.equal(missing.length, 0, `every ban in the kernel; missing ${missing.length}, e.g. ${missing.slice(0, 3).map((a) => a.address)}`);
      const restarted = r.logs.filter((l: any) => l.msg === 'firewall update failed; will retry');
      assert.ok(restarted.length <= 1, `the kill costs at most one retry: ${JSON.stringify(restarted)}`);
    });

    test('an element the firewall refuses in the middle of a batch is named and dropped; the others land, later bans too', async () => {
      // ipset cannot store the unspecified address; nft refuses an element inside an interval of
      // an administrator's set (nocreate).
      const poison = kind === 'nftables' ? ['192.0.2.5'] : ['0.0.0.0', '::'];
      const good: [string, number, number][] = [['192.0.2.121', 4, 600], ['192.0.2.122', 4, 600], ['2001:db8::121', 6, 600], ['2001:db8::122', 6, 600]];
      let over = {};
      if (kind === 'nftables') {
        const file = path.join(sb.dir, 'admin.nft');
        fs.writeFileSync(file, [
          'table inet tallow {}',
          'delete table inet tallow',
          'table inet tallow {',
          '  set tallow { type ipv4_addr; flags interval,timeout; elements = { 192.0.2.0/28 } }',
          '  set tallow6 { type ipv6_addr; flags timeout; }',
          '}',
          '',
        ].join('\n'));
        assert.equal((await sb.run(['nft', '-f', file], { net: 'server' })).code, 0);
        over = { nocreate: true };
      }
      const batch: [string, number, number][] = [good[0], [poison[0], 4, 600], good[1], good[2], ...(poison[1] ? [[poison[1], 6, 600] as [string, number, number]] : []), good[3]];
      const r = await okRun(['start', { rawBan: batch }, { outcome: poison[0] }, { outcome: good[1][0] }, 'flush', { rawBan: [['192.0.2.123', 4, 600]] }, 'flush'], over);
      const set = await kernelSet(sb, kind);
      for (const [a] of [...good, ['192.0.2.123']]) assert.ok(set.has(a), `${a} landed: ${[...set.keys()]}`);
      for (const a of poison) assert.equal(set.has(a), false);
      const refused = r.refused.map((x: any) => x[0]).sort();
      assert.deepEqual(refused, [...poison].sort(), 'onRefused named exactly the refused elements');
      const outcomes = r.results.filter((x: any) => 'outcome' in x).map((x: any) => x.outcome);
      assert.match(String(outcomes[0]), /refused/, 'outcome() of the refused ban says so');
      assert.equal(outcomes[1], null, 'outcome() of a good ban: landed');
      for (const a of poison) {
        assert.ok(r.logs.some((l: any) => l.level === 'error' && l.fields?.address === a && /refused/.test(l.msg)), `an error line names ${a}`);
      }
      assert.equal(r.logs.filter((l: any) => l.msg === 'firewall update failed; will retry').length, 0, 'no retry loop');
      if (kind === 'nftables') await sb.run(['nft', 'delete', 'table', 'inet', 'tallow'], { net: 'server' });
    });

    test('flushed from outside (a firewall reload): bans back and dropping by the 2 s probe, long before the 30 s check', async () => {
      const [b4, b6] = [sb.client.extraV4[1], sb.client.extraV6[1]];
      const flush: string[][] =
        kind === 'nftables'
          ? [['nft', 'flush', 'ruleset']]
          : kind === 'firewalld'
            ? [['firewall-cmd', '--reload']]
            : [['iptables', '-w', '-F', 'INPUT'], ['ip6tables', '-w', '-F', 'INPUT'], ['ipset', 'flush', 'tallow'], ['ipset', 'flush', 'tallow6']];
      // The daemon's own intervals (30 s full check, 2 s probe): the repair must not wait for the former.
      const child = okRun(['start', { ban: [[b4, 4, 600], [b6, 6, 600]] }, 'flush', { sleep: 20_000 }], {}, { checkIntervalMs: 30_000 });
      const inKernel = async () => {
        const set = await kernelSet(sb, kind);
        const rules = await dropRules(sb, kind);
        return set.has(b4) && set.has(b6) && rules.v4 === 1 && rules.v6 === 1;
      };
      for (let i = 0; i < 100 && !(await inKernel()); i++) await sleep(100);
      assert.equal(await inKernel(), true, 'banned before the flush');
      await sleep(2500); // past start-up: the next check is 30 s away
      const t0 = Date.now();
      for (const argv of flush) assert.equal((await sb.run(argv, { net: 'server' })).code, 0, argv.join(' '));
      const flushed = Date.now() - t0;
      let back = NaN;
      while (Date.now() - t0 < 16_000) {
        if (await inKernel()) {
          back = Date.now() - t0;
          break;
        }
        await sleep(50);
      }
      process.stdout.write(`# ${kind}: flush took ${flushed} ms, bans and rules back ${back} ms after it began\n`);
      // Not a speed assertion (bench/ measures that): only the probe can repair it before 15 s, half
      // of the full check's 30 s, even on a loaded machine (7 s seen while a CI run shared 2 cores).
      assert.ok(back <= 15_000, `back before the 30 s check could have run (took ${back} ms; the flush itself ${flushed} ms)`);
      assert.equal(await sb.canConnect(b4, 22, 1), false, 'IPv4 dropped again');
      assert.equal(await sb.canConnect(b6, 22, 1), false, 'IPv6 dropped again');
      const r = await child;
      assert.ok(r.logs.some((l: any) => /re-fill|re-creating/.test(l.msg)), 'the daemon repaired it');
    });
  });
}
