// Bans per scope (issue 14) against the real kernel, per backend, in a server network namespace
// of its own (firewalld: a real one on a private dbus): a ban on port 22 only lets the banned
// client still reach port 80, an every-port ban drops both, a network ban drops an address inside
// the network; what the kernel holds is read back with the tools themselves.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Sandbox } from '../env/sandbox';
import { ALL_PORTS, scopeOf, type Scope } from '../../src/scope';
import { addClientV6, childRun, dropRuleLines, emptyOurSets, firewallSandbox, kernelScopeSets, reachable, type Kind } from './firewall-kernel';

// TALLOW_FW_KINDS=ipset,nftables narrows the run (each backend builds its own sandbox).
const KINDS = (process.env.TALLOW_FW_KINDS ?? 'ipset,nftables,firewalld').split(',') as Kind[];
const OPTIONS = { retryBaseMs: 200, retryMaxMs: 1000, checkIntervalMs: 300, startAttempts: 2 };

// Written out, not computed by scopeOf, so a change there shows here; checked against it below.
const P22: Scope = { id: 'p22', ports: ['22'], protocols: ['tcp', 'udp'], net: false };
const NET: Scope = { id: 'net', ports: null, protocols: ['tcp', 'udp'], net: true };
const P22_NET_TCP: Scope = { id: 'p22t_net', ports: ['22'], protocols: ['tcp'], net: true };
/** A client address outside the sandbox's 2001:db8::/64, inside the banned 2001:db8:0:1::/64. */
const IN_NET6 = '2001:db8:0:1::99';

for (const kind of KINDS) {
  describe(`firewall scopes, backend ${kind}`, () => {
    let sb: Sandbox;
    let tools: Awaited<ReturnType<typeof firewallSandbox>>['tools'];
    const okRun = async (scopes: Scope[], steps: unknown[]) => {
      const config = { backend: kind, iptPath: tools.bin, nftPath: tools.bin, fwcmdPath: tools.bin, expires: 3600 };
      const r = await childRun(sb, { config, options: OPTIONS, scopes, steps });
      assert.equal(r.ok, true, `child failed: ${r.error} ${JSON.stringify(r.logs).slice(0, 3000)}`);
      return r;
    };
    const reach = (pairs: [string, number][]) => reachable(sb, pairs);

    before(async () => {
      ({ sb, tools } = await firewallSandbox(kind, [22, 80]));
      await addClientV6(sb, IN_NET6);
    });
    after(async () => {
      if (sb) await sb.destroy();
    });

    test('the scopes written here are what scope.ts makes of the rule keys', () => {
      assert.deepEqual(scopeOf([22], undefined, false), P22);
      assert.deepEqual(scopeOf(undefined, undefined, true), NET);
      assert.deepEqual(scopeOf(['22'], 'tcp', true), P22_NET_TCP);
    });

    test('port 22 ban: 22 dropped, 80 reached; every-port ban: both dropped; network bans drop addresses inside; list() names scope and network', async () => {
      await emptyOurSets(sb, kind);
      const [p22v4, allv4, freev4, netv4] = [sb.client.v4, sb.client.extraV4[0], sb.client.extraV4[1], sb.client.extraV4[3]];
      const [p22v6, freev6] = [sb.client.v6, sb.client.extraV6[0]];
      assert.equal(netv4, '198.51.100.2', 'the sandbox client holds an address in 198.51.100.0/24');
      const r = await okRun([P22, NET], [
        'start',
        {
          scopedBan: [
            [p22v4, 4, 600, 'p22'],
            [p22v6, 6, 600, 'p22'],
            [allv4, 4, 600, ''],
            ['198.51.100.0/24', 4, 600, 'net'],
            ['2001:db8:0:1::/64', 6, 600, 'net'],
          ],
        },
        'flush',
        'list',
        'check',
      ]);
      const got = await reach([
        [p22v4, 22], [p22v4, 80], [p22v6, 22], [p22v6, 80],
        [allv4, 22], [allv4, 80],
        [netv4, 22], [IN_NET6, 22], [IN_NET6, 80],
        [freev4, 22], [freev4, 80], [freev6, 80],
      ]);
      assert.deepEqual(got, {
        [`${p22v4} 22`]: false, [`${p22v4} 80`]: true, [`${p22v6} 22`]: false, [`${p22v6} 80`]: true,
        [`${allv4} 22`]: false, [`${allv4} 80`]: false,
        [`${netv4} 22`]: false, [`${IN_NET6} 22`]: false, [`${IN_NET6} 80`]: false,
        [`${freev4} 22`]: true, [`${freev4} 80`]: true, [`${freev6} 80`]: true,
      });
      const listed = r.results.find((x: any) => 'list' in x).list.map((b: any) => `${b.scope}|${b.address}|${b.family}`).sort();
      assert.deepEqual(listed, [`|${allv4}|4`, 'net|198.51.100.0/24|4', 'net|2001:db8:0:1::/64|6', `p22|${p22v4}|4`, `p22|${p22v6}|6`].sort());
      assert.equal(r.results.at(-1).check, true, 'check() sees every scope in place');
      const sets = await kernelScopeSets(sb, kind);
      assert.deepEqual([...sets.keys()].sort(), ['tallow', 'tallow6', 'tallow6_net', 'tallow6_p22', 'tallow_net', 'tallow_p22']);
      assert.deepEqual([...sets.get('tallow6_net')!.keys()], ['2001:db8:0:1::/64']);
      // A TCP and a UDP rule (iptables) or one rule for both (nftables) per port-scope set; one rule per other set.
      const rules = await dropRuleLines(sb, kind);
      const of = (set: string) => rules.filter((l) => new RegExp(`(@|--match-set )${set}( |$)`).test(l));
      for (const set of ['tallow', 'tallow6', 'tallow_net', 'tallow6_net']) assert.equal(of(set).length, 1, `${set}: ${rules.join('\n')}`);
      for (const set of ['tallow_p22', 'tallow6_p22']) {
        if (kind === 'nftables') assert.match(of(set).join('\n'), /^meta l4proto \{ tcp, udp \} th dport 22 ip6? saddr @tallow6?_p22 drop$/);
        else assert.deepEqual(of(set).map((l) => /-p (tcp|udp) -m multiport --dports 22 /.exec(l)?.[1]).sort(), ['tcp', 'udp'], rules.join('\n'));
      }
    });

    test('one address in two scopes; unban in one leaves the other; a scope added at reload (setScopes) is set up, the old ones kept', async () => {
      await emptyOurSets(sb, kind);
      const a = sb.client.extraV4[2];
      const r = await okRun([P22], [
        'start',
        { scopedBan: [[a, 4, 600, 'p22'], [a, 4, 600, '']] },
        'flush',
        'list',
        { scopedUnban: [[a, 4, '']] },
        'flush',
        { setScopes: [P22, P22_NET_TCP] },
        { scopedBan: [['2001:db8:0:1::/64', 6, 600, 'p22t_net'], ['203.0.113.0/24', 4, 600, 'p22t_net']] },
        { scopedBan: [['2001:db8:0:2::/64', 6, 600, 'p22']] },
        'flush',
        'list',
        'check',
      ]);
      const lists = r.results.filter((x: any) => 'list' in x).map((x: any) => x.list.map((b: any) => `${b.scope}|${b.address}`).sort());
      assert.deepEqual(lists[0], [`p22|${a}`, `|${a}`].sort(), 'the address is held in both scopes');
      assert.deepEqual(lists[1], [`p22|${a}`, 'p22t_net|2001:db8:0:1::/64', 'p22t_net|203.0.113.0/24'].sort(), 'unbanned in one scope, still in the other; the new scope holds networks');
      assert.equal(r.results.at(-1).check, true);
      // The network in a scope without `net` is refused before any tool sees it.
      assert.ok(r.logs.some((l: any) => l.level === 'warn' && /invalid ban/.test(l.msg) && l.fields?.address === '2001:db8:0:2::/64'), JSON.stringify(r.logs));
      const got = await reach([[a, 22], [a, 80], [IN_NET6, 22], [IN_NET6, 80]]);
      assert.deepEqual(got, { [`${a} 22`]: false, [`${a} 80`]: true, [`${IN_NET6} 22`]: false, [`${IN_NET6} 80`]: true });
      const sets = await kernelScopeSets(sb, kind);
      assert.ok(sets.has('tallow_p22t_net') && sets.has('tallow6_p22t_net') && sets.has('tallow_p22'), [...sets.keys()].join(','));
      const rules = await dropRuleLines(sb, kind);
      const tcpOnly = rules.filter((l) => l.includes('tallow6_p22t_net'));
      if (kind === 'nftables') assert.deepEqual(tcpOnly, ['tcp dport 22 ip6 saddr @tallow6_p22t_net drop']);
      else assert.deepEqual(tcpOnly.map((l) => /-p (\w+)/.exec(l)?.[1]), ['tcp'], 'the tcp-only scope has no udp rule');
    });

    test('flushed from outside: every scope re-filled (sets emptied, then a rule deleted)', async () => {
      await emptyOurSets(sb, kind);
      const bans: [string, number, number, string][] = [
        ['203.0.113.71', 4, 600, ''],
        ['2001:db8::71', 6, 600, ''],
        ['203.0.113.72', 4, 600, 'p22'],
        ['2001:db8::72', 6, 600, 'p22'],
        ['203.0.113.64/26', 4, 600, 'net'],
        ['2001:db8:71::/48', 6, 600, 'net'],
      ];
      const names = ['tallow', 'tallow6', 'tallow_p22', 'tallow6_p22', 'tallow_net', 'tallow6_net'];
      const flushSets: string[][] =
        kind === 'nftables'
          ? names.map((n) => ['nft', 'flush', 'set', 'inet', 'tallow', n])
          : kind === 'firewalld'
            ? [['firewall-cmd', '--reload']] // a reload empties firewalld's ipsets
            : names.map((n) => ['ipset', 'flush', n]);
      const dropRule: string[] =
        kind === 'nftables'
          ? ['nft', 'flush', 'chain', 'inet', 'tallow', 'input']
          : ['iptables', '-w', '-D', 'INPUT', '-p', 'udp', '-m', 'multiport', '--dports', '22', '-m', 'set', '--match-set', 'tallow_p22', 'src', '-j', 'DROP'];
      const r = await okRun([ALL_PORTS, P22, NET], [
        'start',
        { scopedBan: bans },
        'flush',
        ...flushSets.map((argv) => ({ exec: argv })),
        { waitLog: 'emptied from outside', ms: 10000 },
        { waitLog: 're-filling bans', ms: 10000 },
        { sleep: 500 },
        'flush',
        { exec: dropRule },
        { waitLog: 'missing', ms: 10000 },
        { sleep: 1000 },
        'flush',
        'check',
      ]);
      assert.deepEqual(r.results.filter((x: any) => 'waitLog' in x).map((x: any) => x.found), [true, true, true], JSON.stringify(r.logs).slice(0, 3000));
      const emptied = r.logs.find((l: any) => /emptied from outside/.test(l.msg));
      for (const n of names) assert.ok(emptied.fields.sets.split(',').includes(n), `${n} named as emptied: ${emptied.fields.sets}`);
      assert.equal(r.results.at(-1).check, true);
      const sets = await kernelScopeSets(sb, kind);
      bans.forEach(([address, family, , scope], i) => {
        assert.ok(sets.get(names[i])?.has(address), `${address} back in ${names[i]} (${family}, scope '${scope}'): ${JSON.stringify([...(sets.get(names[i]) ?? [])])}`);
        assert.ok(sets.get(names[i])!.get(address)! <= 600, 'with the remaining time');
      });
      const rules = await dropRuleLines(sb, kind);
      assert.ok(rules.some((l) => l.includes('tallow_p22') && (kind === 'nftables' || l.includes('-p udp'))), `the deleted rule is back: ${rules.join('\n')}`);
    });
  });
}
