// Bans per scope (issue 14) in the firewall layer: what each backend writes for a scope (ipset
// lines and argv, the nft script, firewall-cmd argv, against stand-in tools that record their
// argv), network validation, and the queue keyed by address and scope (refusals found by halving,
// re-fill per set, scopes added at reload).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { config, logger } from './firewall-helpers';
import type { Family } from '../../src/address';
import type { Ban } from '../../src/ledger';
import { RefusedError, type BanEntry, type BanRemoval, type FirewallBackend, type KernelBan } from '../../src/firewall/backend';
import { chooseBackend, Firewall, firewallSettings } from '../../src/firewall/index';
import { dropMatches, ipsetBackend, parseSave, restoreScript } from '../../src/firewall/ipset';
import { firewalldBackend } from '../../src/firewall/firewalld';
import { batchScript, isDropRule, parseSetElements, parseTable, ruleText, setupScript } from '../../src/firewall/nftables';
import { validNetwork, validTarget } from '../../src/firewall/validate';
import { missingSets, sampleHeld } from '../../src/firewall/probe';
import { firewallListener } from '../../src/listeners/firewall';
import { ALL_PORTS, banKey, type Scope } from '../../src/scope';

const P22: Scope = { id: 'p22', ports: ['22'], protocols: ['tcp', 'udp'], net: false };
const NET: Scope = { id: 'net', ports: null, protocols: ['tcp', 'udp'], net: true };
const MAIL_TCP: Scope = { id: 'p25_8000to8080t', ports: ['25', '8000-8080'], protocols: ['tcp'], net: false };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('networks: what a set may hold', () => {
  test('canonical networks with host bits zero and a prefix inside the family pass; the rest does not', () => {
    for (const ok of ['192.0.2.0/24', '198.51.100.128/25', '10.0.0.0/8', '2001:db8:0:1::/64', '2001:db8::/32', '2001:db8::8/125']) assert.equal(validNetwork(ok, ok.includes(':') ? 6 : 4), true, ok);
    const bad: [unknown, unknown][] = [
      ['192.0.2.9/24', 4], // host bits (ipset would store 192.0.2.0/24 under another name)
      ['2001:db8::1/64', 6],
      ['192.0.2.0/32', 4], // the bare address is the canonical form
      ['2001:db8::/128', 6],
      ['192.0.2.0/0', 4], // everyone
      ['::/0', 6],
      ['2001:db8::/129', 6],
      ['192.0.2.0/024', 4],
      ['2001:DB8::/32', 6], // not as the kernel prints it
      ['2001:db8:0:0::/64', 6],
      ['::ffff:192.0.2.0/120', 6],
      ['192.0.2.0/24', 6],
      ['2001:db8::/32', 4],
      ['192.0.2.0/24\nflush', 4],
      ['192.0.2.0/24 ', 4],
      [' 192.0.2.0/24', 4],
      ['192.0.2.0', 4], // an address is not a network (validTarget takes both)
      [42, 4],
    ];
    for (const [text, family] of bad) assert.equal(validNetwork(text, family), false, JSON.stringify(text));
    assert.equal(validTarget('192.0.2.0/24', 4, false), false, 'a set of single addresses holds no network');
    assert.equal(validTarget('192.0.2.0/24', 4, true), true);
    assert.equal(validTarget('192.0.2.7', 4, true), true, 'a network set holds single addresses too');
  });
});

describe('ipset per scope', () => {
  test('restore lines go to each scope\'s set; networks only into net sets; unknown scopes left out', () => {
    const s = restoreScript(
      [
        { address: '192.0.2.1', family: 4, seconds: 60 },
        { address: '192.0.2.1', family: 4, seconds: 60, scope: 'p22' },
        { address: '2001:db8:0:1::/64', family: 6, seconds: 30, scope: 'net' },
        { address: '192.0.2.0/24', family: 4, seconds: 30, scope: 'p22' },
        { address: '192.0.2.0/24', family: 4, seconds: 30, scope: 'gone' },
        { address: '192.0.2.0/24', family: 4, seconds: 30 },
      ],
      [{ address: '198.51.100.0/24', family: 4, scope: 'net' }, { address: '2001:db8::5', family: 6, scope: 'p22' }],
      [4, 6],
      [ALL_PORTS, P22, NET],
    );
    assert.equal(
      s,
      'add tallow 192.0.2.1 timeout 60\nadd tallow_p22 192.0.2.1 timeout 60\nadd tallow6_net 2001:db8:0:1::/64 timeout 30\n' +
        'del tallow_net 198.51.100.0/24\ndel tallow6_p22 2001:db8::5\n',
    );
    // Without scopes: tallow's own sets only, as before.
    assert.equal(restoreScript([{ address: '192.0.2.1', family: 4, seconds: 5, scope: 'p22' }], [], [4]), '');
  });

  test('save output of a hash:net set: networks and hosts, with the scope', () => {
    const text = 'create tallow6_net hash:net family inet6 hashsize 1024 maxelem 65536 timeout 3600\nadd tallow6_net 2001:db8::5 timeout 29\nadd tallow6_net 2001:db8:0:1::/64 timeout 28\nadd tallow6 2001:db8::6 timeout 1\n';
    assert.deepEqual(parseSave(text, 6, NET), [
      { address: '2001:db8::5', family: 6, remaining: 29, scope: 'net' },
      { address: '2001:db8:0:1::/64', family: 6, remaining: 28, scope: 'net' },
    ]);
  });

  test('DROP rule matches: every port as before; ports per protocol with multiport and ranges as iptables writes them', () => {
    assert.deepEqual(dropMatches(4, ALL_PORTS), [['-m', 'set', '--match-set', 'tallow', 'src', '-j', 'DROP']]);
    assert.deepEqual(dropMatches(6, P22), [
      ['-p', 'tcp', '-m', 'multiport', '--dports', '22', '-m', 'set', '--match-set', 'tallow6_p22', 'src', '-j', 'DROP'],
      ['-p', 'udp', '-m', 'multiport', '--dports', '22', '-m', 'set', '--match-set', 'tallow6_p22', 'src', '-j', 'DROP'],
    ]);
    assert.deepEqual(dropMatches(4, MAIL_TCP), [['-p', 'tcp', '-m', 'multiport', '--dports', '25,8000:8080', '-m', 'set', '--match-set', 'tallow_p25_8000to8080t', 'src', '-j', 'DROP']]);
  });
});

describe('nftables per scope', () => {
  const settings = firewallSettings(config({ maxelem: 500, expires: 77 }), [P22, NET, MAIL_TCP]);

  test('set-up script: a set per scope and family (interval for networks), a drop rule each with its ports; only what is missing', () => {
    const s = setupScript(settings);
    const lines = s.trim().split('\n');
    for (const want of [
      'add set inet tallow tallow_p22 { type ipv4_addr; flags timeout; size 500; timeout 77s; }',
      'add set inet tallow tallow6_net { type ipv6_addr; flags interval,timeout; size 500; timeout 77s; }',
      'add rule inet tallow input ip saddr @tallow drop',
      'add rule inet tallow input meta l4proto { tcp, udp } th dport { 22 } ip saddr @tallow_p22 drop',
      'add rule inet tallow input meta l4proto { tcp, udp } th dport { 22 } ip6 saddr @tallow6_p22 drop',
      'add rule inet tallow input ip6 saddr @tallow6_net drop',
      'add rule inet tallow input tcp dport { 25, 8000-8080 } ip saddr @tallow_p25_8000to8080t drop',
    ]) assert.ok(lines.includes(want), `${want}\nnot in\n${s}`);
    assert.equal(lines.filter((l) => l.startsWith('add set')).length, 8);
    assert.equal(lines.filter((l) => l.startsWith('add rule')).length, 8);
    // An existing table with tallow's sets and rules: only the scopes' parts are added.
    const st = { sets: new Set(['tallow', 'tallow6', 'tallow_p22', 'tallow6_p22']), rules: new Set(['tallow', 'tallow6', 'tallow_p22']), chain: true };
    assert.equal(
      setupScript(settings, st, [ALL_PORTS, P22]),
      'add rule inet tallow input meta l4proto { tcp, udp } th dport { 22 } ip6 saddr @tallow6_p22 drop\n',
    );
    assert.equal(ruleText(4, ALL_PORTS), 'add rule inet tallow input ip saddr @tallow drop');
  });

  test('batch script: one line per set; networks only into interval sets', () => {
    const s = batchScript(
      [
        { address: '192.0.2.1', family: 4, seconds: 10, scope: 'p22' },
        { address: '192.0.2.1', family: 4, seconds: 10 },
        { address: '2001:db8:0:1::/64', family: 6, seconds: 20, scope: 'net' },
        { address: '2001:db8:0:1::/64', family: 6, seconds: 20, scope: 'p22' },
      ],
      [{ address: '198.51.100.0/24', family: 4, scope: 'net' }],
      [4, 6],
      [ALL_PORTS, P22, NET],
    );
    assert.equal(
      s,
      'add element inet tallow tallow { 192.0.2.1 }; delete element inet tallow tallow { 192.0.2.1 }; add element inet tallow tallow { 192.0.2.1 timeout 10s }\n' +
        'add element inet tallow tallow_p22 { 192.0.2.1 }; delete element inet tallow tallow_p22 { 192.0.2.1 }; add element inet tallow tallow_p22 { 192.0.2.1 timeout 10s }\n' +
        'add element inet tallow tallow_net { 198.51.100.0/24 }; delete element inet tallow tallow_net { 198.51.100.0/24 }\n' +
        'add element inet tallow tallow6_net { 2001:db8:0:1::/64 }; delete element inet tallow tallow6_net { 2001:db8:0:1::/64 }; add element inet tallow tallow6_net { 2001:db8:0:1::/64 timeout 20s }\n',
    );
  });

  test('nft -j: port rules told from the every-port rule by the set and a dport match; prefixes read as networks', () => {
    const saddr = (proto: string, set: string) => ({ match: { op: '==', left: { payload: { protocol: proto, field: 'saddr' } }, right: `@${set}` } });
    const dport = { match: { op: '==', left: { payload: { protocol: 'th', field: 'dport' } }, right: 22 } };
    const l4 = { match: { op: '==', left: { meta: { key: 'l4proto' } }, right: { set: ['tcp', 'udp'] } } };
    const doc = {
      nftables: [
        { set: { family: 'inet', name: 'tallow6_net', table: 'tallow', elem: [{ elem: { val: { prefix: { addr: '2001:db8:0:1::', len: 64 } }, timeout: 60, expires: 50 } }, { prefix: { addr: '2001:db8:0:2::', len: 64 } }, { elem: { val: '2001:db8::5', expires: 9 } }, { range: ['2001:db8::1', '2001:db8::4'] }] } },
        { chain: { family: 'inet', table: 'tallow', name: 'input', hook: 'input' } },
        { rule: { table: 'tallow', chain: 'input', expr: [l4, dport, saddr('ip', 'tallow_p22'), { drop: null }] } },
        { rule: { table: 'tallow', chain: 'input', expr: [saddr('ip6', 'tallow6_p22'), { drop: null }] } },
        { rule: { table: 'tallow', chain: 'input', expr: [dport, saddr('ip', 'tallow'), { drop: null }] } },
        { rule: { table: 'tallow', chain: 'input', expr: [saddr('ip6', 'tallow6_net'), { drop: null }] } },
      ],
    };
    const st = parseTable(JSON.stringify(doc), [ALL_PORTS, P22, NET]);
    assert.deepEqual([...st.rules].sort(), ['tallow6_net', 'tallow_p22'], 'a rule without ports is no port rule; a rule with ports is not tallow\'s every-port rule');
    assert.equal(isDropRule(doc.nftables[2].rule!, 4, P22), true);
    assert.deepEqual(parseSetElements(JSON.stringify(doc), 6, NET), [
      { address: '2001:db8:0:1::/64', family: 6, remaining: 50, scope: 'net' },
      { address: '2001:db8:0:2::/64', family: 6, remaining: Infinity, scope: 'net' },
      { address: '2001:db8::5', family: 6, remaining: 9, scope: 'net' },
    ]);
  });
});

// Stand-ins for the tools that append their argv to calls.log: enough of each to walk through
// set-up (firewall-cmd answers no ipsets and no rules, then everything is there after --reload).
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-scopes-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
function standIns(name: string, setNames: string[]): { bin: string; calls: () => string[] } {
  const bin = path.join(dir, name);
  fs.mkdirSync(bin);
  const log = path.join(bin, 'calls.log');
  const script = (body: string) => `#!/bin/sh\necho "$(basename "$0") $*" >> ${log}\n${body}\n`;
  const loaded = path.join(bin, 'reloaded');
  fs.writeFileSync(path.join(bin, 'ipset'), script(`if [ "$1" = list ] && [ "$2" = -n ]; then ${name === 'firewalld' ? `[ -e ${loaded} ] && ` : ''}printf '%s\\n' ${setNames.join(' ')}; fi; exit 0`), { mode: 0o755 });
  for (const t of ['iptables', 'ip6tables']) {
    // -C: absent until firewalld reloaded (firewalld) / always absent (ipset: every rule inserted).
    fs.writeFileSync(path.join(bin, t), script(`if [ "$2" = -C ]; then ${name === 'firewalld' ? `[ -e ${loaded} ] && exit 0; ` : ''}exit 1; fi; exit 0`), { mode: 0o755 });
  }
  // firewall-cmd keeps what was made permanent in two files and lists it back.
  const [ipsets, rules] = [path.join(bin, 'ipsets'), path.join(bin, 'rules')];
  fs.writeFileSync(ipsets, '');
  fs.writeFileSync(rules, '');
  fs.writeFileSync(path.join(bin, 'firewall-cmd'), script([
    'case "$*" in',
    `  *--get-all-rules*) cat ${rules};;`,
    `  *--get-ipsets*) tr '\\n' ' ' < ${ipsets}; echo;;`,
    `  *--new-ipset=*) echo "$2" | sed 's/--new-ipset=//' >> ${ipsets};;`,
    `  *--add-rule*) shift 3; echo "$*" >> ${rules};;`,
    `  *--reload*) touch ${loaded};;`,
    'esac',
    'exit 0',
  ].join('\n')), { mode: 0o755 });
  return { bin, calls: () => fs.readFileSync(log, 'utf8').trim().split('\n') };
}

describe('rules present: one iptables -S, -C only for what it does not show', () => {
  test('found in the listing without a process per rule; a rule printed otherwise is asked with -C; a missing one is missing', async () => {
    const bin = path.join(dir, 'rules-present');
    fs.mkdirSync(bin);
    const log = path.join(bin, 'calls.log');
    // Lists two of our rules; -C knows a third (as if printed differently); the fourth is absent.
    fs.writeFileSync(path.join(bin, 'iptables'), [
      '#!/bin/sh',
      `echo "$*" >> ${log}`,
      'if [ "$2" = -S ]; then printf "%s\\n" "-P INPUT ACCEPT" "-A INPUT -m set --match-set tallow src -j DROP" "-A INPUT_direct -p tcp -m multiport --dports 22 -m set --match-set tallow_p22 src -j DROP"; exit 0; fi',
      'case "$*" in *"--dports 25 "*) exit 0;; esac',
      'exit 1',
      '',
    ].join('\n'), { mode: 0o755 });
    const { rulesPresent } = await import('../../src/firewall/ipset');
    const p25: Scope = { id: 'p25', ports: ['25'], protocols: ['tcp', 'udp'], net: false };
    const rules = [...dropMatches(4, ALL_PORTS), ...dropMatches(4, P22), ...dropMatches(4, p25)];
    assert.deepEqual(await rulesPresent(path.join(bin, 'iptables'), ['INPUT', 'INPUT_direct'], rules), [true, true, false, true, true]);
    const calls = fs.readFileSync(log, 'utf8').trim().split('\n');
    assert.equal(calls.filter((c) => c === '-w -S').length, 1);
    // The udp rule of p22 is asked in both chains; p25's answer at once in INPUT.
    assert.equal(calls.filter((c) => c.includes(' -C ')).length, 2 + 1 + 1, calls.join('\n'));
    assert.deepEqual(await rulesPresent(path.join(bin, 'iptables'), ['INPUT'], dropMatches(4, P22)), [false, false], 'only in the chains named');
  });
});

describe('set-up per scope, argv of the tools', () => {
  const scopes = [P22, NET];
  const names = ['tallow', 'tallow6', 'tallow_p22', 'tallow6_p22', 'tallow_net', 'tallow6_net'];

  test('ipset: hash:ip / hash:net sets per scope, a DROP rule per protocol at the top of INPUT', async () => {
    const t = standIns('ipset', names);
    const be = ipsetBackend.create(firewallSettings(config({ iptPath: t.bin, nftPath: t.bin, expires: 99, maxelem: 7 }), scopes), logger());
    await be.setup();
    await be.close?.();
    const calls = t.calls();
    assert.ok(calls.includes('ipset create tallow_p22 hash:ip family inet timeout 99 maxelem 7 -exist'), calls.join('\n'));
    assert.ok(calls.includes('ipset create tallow6_net hash:net family inet6 timeout 99 maxelem 7 -exist'));
    assert.ok(calls.includes('iptables -w -I INPUT 1 -m set --match-set tallow src -j DROP'));
    assert.ok(calls.includes('ip6tables -w -I INPUT 1 -p udp -m multiport --dports 22 -m set --match-set tallow6_p22 src -j DROP'));
    assert.ok(calls.includes('iptables -w -I INPUT 1 -m set --match-set tallow_net src -j DROP'));
    assert.equal(calls.filter((c) => / -I INPUT /.test(c)).length, 2 * (1 + 2 + 1), 'tallow, p22 (tcp, udp), net; per family');
    assert.ok(!calls.some((c) => /destroy|flush| -D | -F/.test(c)), 'nothing destroyed');
  });

  test('firewalld: permanent ipsets of the same types, direct rules with the same matches, one reload', async () => {
    const t = standIns('firewalld', names);
    const be = firewalldBackend.create(firewallSettings(config({ iptPath: t.bin, nftPath: t.bin, fwcmdPath: t.bin, expires: 99, maxelem: 7 }), scopes), logger());
    await be.setup();
    await be.close?.();
    const calls = t.calls();
    assert.ok(calls.includes('firewall-cmd --permanent --new-ipset=tallow6_net --type=hash:net --family=inet6 --option=timeout=99 --option=maxelem=7'), calls.join('\n'));
    assert.ok(calls.includes('firewall-cmd --permanent --new-ipset=tallow_p22 --type=hash:ip --family=inet --option=timeout=99 --option=maxelem=7'));
    assert.ok(calls.includes('firewall-cmd --permanent --direct --add-rule ipv4 filter INPUT 1 -p tcp -m multiport --dports 22 -m set --match-set tallow_p22 src -j DROP'));
    assert.ok(calls.includes('firewall-cmd --permanent --direct --add-rule ipv6 filter INPUT 1 -p udp -m multiport --dports 22 -m set --match-set tallow6_p22 src -j DROP'));
    assert.ok(calls.includes('firewall-cmd --permanent --direct --add-rule ipv6 filter INPUT 1 -m set --match-set tallow6_net src -j DROP'));
    assert.equal(calls.filter((c) => /--new-ipset/.test(c)).length, 6);
    assert.equal(calls.filter((c) => /--add-rule/.test(c)).length, 8);
    assert.equal(calls.filter((c) => /--reload/.test(c)).length, 1);
    assert.equal(calls.filter((c) => /--query-rule/.test(c)).length, 0, 'the rules are listed once, not queried one by one');
    // Set up again (a restart): everything is there, nothing is added, no reload.
    const again = firewalldBackend.create(firewallSettings(config({ iptPath: t.bin, nftPath: t.bin, fwcmdPath: t.bin, expires: 99, maxelem: 7 }), scopes), logger());
    await again.setup();
    await again.close?.();
    const more = t.calls().slice(calls.length);
    assert.deepEqual(more.filter((c) => c.startsWith('firewall-cmd')), ['firewall-cmd --permanent --get-ipsets', 'firewall-cmd --permanent --direct --get-all-rules']);
  });
});

describe('nocreate=1: what exists is used', () => {
  test('a scope whose sets the administrator did not make is not held: named once, its bans refused, the others go on', async () => {
    const t = standIns('nocreate', ['tallow', 'tallow6', 'tallow_p22', 'tallow6_p22']);
    const log = logger();
    const be = ipsetBackend.create(firewallSettings(config({ iptPath: t.bin, nftPath: t.bin, nocreate: true }), [P22, NET]), log);
    const refused: string[] = [];
    const fw = new Firewall(be, log, { onRefused: (a, _f, _why, scope) => void refused.push(`${a}|${scope}`) });
    await fw.start();
    assert.deepEqual(be.scopes?.map((s) => s.id), ['', 'p22']);
    const warn = log.lines.filter((l) => l.level === 'warn');
    assert.deepEqual(warn.map((l) => l.fields?.sets), ['tallow_net,tallow6_net'], JSON.stringify(warn));
    fw.ban([{ address: '192.0.2.0/24', family: 4, seconds: 60, scope: 'net' }]);
    await sleep(5);
    assert.deepEqual(refused, ['192.0.2.0/24|net']);
    assert.ok(!t.calls().some((c) => / create | -I /.test(c)), 'nothing created');
    await fw.close();
  });
});

/** A kernel per set (set name -> address -> seconds), refusing poisoned banKeys as ipset's session does. */
class ScopedBackend implements FirewallBackend {
  readonly name = 'scoped';
  sets = new Map<string, Map<string, number>>();
  calls: { add: BanEntry[]; remove: BanRemoval[] }[] = [];
  setScopeCalls: string[][] = [];
  failSetScopes = false;
  scopes: readonly Scope[];
  constructor(scopes: Scope[], readonly poison = new Set<string>()) {
    this.scopes = scopes;
  }
  set(family: Family, scope = ''): Map<string, number> {
    const name = `${family === 4 ? 'tallow' : 'tallow6'}${scope ? `_${scope}` : ''}`;
    if (!this.sets.has(name)) this.sets.set(name, new Map());
    return this.sets.get(name)!;
  }
  describe() {
    return 'scoped';
  }
  async setup() {}
  async setScopes(scopes: Scope[]) {
    this.setScopeCalls.push(scopes.map((s) => s.id));
    if (this.failSetScopes) throw new Error('firewall-cmd: refused');
    this.scopes = scopes;
  }
  async check() {
    return true;
  }
  async apply(add: BanEntry[], remove: BanRemoval[]) {
    this.calls.push({ add, remove });
    const bad = [...add, ...remove].filter((e) => this.poison.has(banKey(e.address, e.scope ?? '')));
    for (const e of add) if (!this.poison.has(banKey(e.address, e.scope ?? ''))) this.set(e.family, e.scope).set(e.address, e.seconds);
    for (const e of remove) this.set(e.family, e.scope).delete(e.address);
    if (bad.length) throw new RefusedError('ipset refused: Null-valued element');
  }
  async list(): Promise<KernelBan[]> {
    const out: KernelBan[] = [];
    for (const s of this.scopes) {
      for (const f of [4, 6] as Family[]) for (const [address, remaining] of this.set(f, s.id)) out.push({ address, family: f, remaining, scope: s.id });
    }
    return out;
  }
  async present(sample: BanRemoval[]) {
    return sample.map((s) => this.set(s.family, s.scope).has(s.address));
  }
}

describe('the queue keyed by address and scope', () => {
  test('one address in two scopes: two elements; the one refused is found by halving and dropped alone, named with its scope', async () => {
    const be = new ScopedBackend([ALL_PORTS, P22, NET], new Set([banKey('192.0.2.50', 'p22')]));
    const log = logger();
    const refused: string[] = [];
    const fw = new Firewall(be, log, { retryBaseMs: 10, onRefused: (a, f, _why, scope) => void refused.push(`${a}|${f}|${scope}`) });
    await fw.start();
    const batch: BanEntry[] = Array.from({ length: 40 }, (_, i) => ({ address: `198.51.100.${i + 1}`, family: 4, seconds: 60, scope: i % 2 ? 'p22' : '' }));
    batch.splice(17, 0, { address: '192.0.2.50', family: 4, seconds: 60 }, { address: '192.0.2.50', family: 4, seconds: 60, scope: 'p22' }, { address: '2001:db8:0:1::/64', family: 6, seconds: 60, scope: 'net' });
    fw.ban(batch);
    const [inP22, inAll, inNet] = await Promise.all([fw.outcome('192.0.2.50', 'p22'), fw.outcome('192.0.2.50'), fw.outcome('2001:db8:0:1::/64', 'net')]);
    await fw.flush();
    assert.match(String(inP22), /Null-valued/);
    assert.equal(inAll, null, 'the same address in the every-port scope landed');
    assert.equal(inNet, null);
    assert.deepEqual(refused, ['192.0.2.50|4|p22']);
    assert.equal(be.set(4).has('192.0.2.50'), true);
    assert.equal(be.set(4, 'p22').has('192.0.2.50'), false);
    assert.equal(be.set(6, 'net').has('2001:db8:0:1::/64'), true);
    assert.equal(be.set(4).size + be.set(4, 'p22').size, 41);
    const err = log.lines.find((l) => /refused a ban/.test(l.msg));
    assert.equal(err?.fields?.set, 'tallow_p22');
    assert.ok(be.calls.length <= 1 + 2 * Math.ceil(Math.log2(43)) + 2, `halving, not one call per element: ${be.calls.length}`);
    // Unban in one scope: the other keeps it.
    fw.unban([{ address: '192.0.2.50', family: 4, scope: '' }, { address: '198.51.100.2', family: 4, scope: 'p22' }]);
    await fw.flush();
    assert.equal(be.set(4).has('192.0.2.50'), false);
    assert.equal(be.set(4).has('198.51.100.1'), true);
    assert.equal(be.set(4, 'p22').has('198.51.100.2'), false);
    await fw.close();
  });

  test('a scope not set up, a network in a scope of single addresses: never sent; the first reported to onRefused', async () => {
    const be = new ScopedBackend([ALL_PORTS, P22]);
    const log = logger();
    const refused: string[] = [];
    const fw = new Firewall(be, log, { onRefused: (a, _f, why, scope) => void refused.push(`${a}|${scope}|${why}`) });
    await fw.start();
    fw.ban([
      { address: '192.0.2.60', family: 4, seconds: 60, scope: 'p9999' },
      { address: '192.0.2.0/24', family: 4, seconds: 60, scope: 'p22' },
      { address: '192.0.2.0/24', family: 4, seconds: 60 },
      { address: '192.0.2.61', family: 4, seconds: 60, scope: 'p22' },
    ]);
    await fw.flush();
    await sleep(5);
    assert.deepEqual(be.calls.map((c) => c.add.map((e) => `${e.address}|${e.scope}`)), [['192.0.2.61|p22']]);
    assert.equal(refused.length, 1);
    assert.match(refused[0], /^192\.0\.2\.60\|p9999\|no firewall set for scope "p9999"/);
    assert.match(String(await fw.outcome('192.0.2.60', 'p9999')), /no firewall set/);
    assert.equal(log.lines.filter((l) => l.level === 'warn' && /invalid ban/.test(l.msg)).length, 2);
    await fw.close();
  });

  test('setScopes: the backend sets the new scopes up before bans may name them; a failed set-up holds no new scope', async () => {
    const be = new ScopedBackend([ALL_PORTS]);
    const fw = new Firewall(be, logger(), {});
    await fw.start();
    fw.ban([{ address: '192.0.2.70', family: 4, seconds: 60, scope: 'p22' }]);
    await fw.flush();
    assert.equal(be.set(4, 'p22').size, 0, 'not before the scope is set up');
    await fw.setScopes([P22]);
    assert.deepEqual(be.setScopeCalls.at(-1), ['', 'p22']);
    fw.ban([{ address: '192.0.2.70', family: 4, seconds: 60, scope: 'p22' }]);
    await fw.flush();
    assert.equal(be.set(4, 'p22').has('192.0.2.70'), true);
    // Again with the same scopes: nothing to set up.
    const n = be.setScopeCalls.length;
    await fw.setScopes([P22, ALL_PORTS]);
    assert.equal(be.setScopeCalls.length, n);
    be.failSetScopes = true;
    await assert.rejects(fw.setScopes([NET]), /refused/);
    fw.ban([{ address: '2001:db8::/48', family: 6, seconds: 60, scope: 'net' }]);
    await fw.flush();
    assert.equal(be.set(6, 'net').size, 0, 'no ban in a scope whose set-up failed');
    // The scopes held before stay usable.
    fw.ban([{ address: '192.0.2.71', family: 4, seconds: 60, scope: 'p22' }]);
    await fw.flush();
    assert.equal(be.set(4, 'p22').has('192.0.2.71'), true);
    await fw.close();
  });

  test('a bad scope is refused before anything reaches a tool', async () => {
    const fw = new Firewall(new ScopedBackend([ALL_PORTS]), logger(), {});
    await assert.rejects(fw.setScopes([{ id: 'p22; flush', ports: ['22'], protocols: ['tcp'], net: false }]), /not a valid set name part/);
    await assert.rejects(fw.setScopes([{ id: 'p22', ports: ['22 -j ACCEPT'], protocols: ['tcp'], net: false }]), /ports/);
    await assert.rejects(chooseBackend(config(), logger(), true, [{ id: 'x', ports: null, protocols: ['icmp' as never], net: false }]), /protocols/);
  });

  test('a set emptied from outside is re-filled on its own; the other scopes\' sets are left alone', async () => {
    const be = new ScopedBackend([ALL_PORTS, P22, NET]);
    const log = logger();
    const now = Date.now();
    const held = [
      { address: '203.0.113.5', family: 4 as Family, expiry: now + 600_000 },
      { address: '203.0.113.5', family: 4 as Family, expiry: now + 600_000, scope: 'p22' },
      { address: '203.0.113.6', family: 4 as Family, expiry: now + 600_000, scope: 'p22' },
      { address: '2001:db8:5::/48', family: 6 as Family, expiry: now + 600_000, scope: 'net' },
    ];
    const fw = new Firewall(be, log, { checkIntervalMs: 3_600_000, probeIntervalMs: 30, held: () => held });
    await fw.start();
    fw.ban(held.map((b) => ({ ...b, seconds: 600 })));
    await fw.flush();
    const before = be.calls.length;
    be.set(4, 'p22').clear();
    for (let i = 0; i < 100 && be.set(4, 'p22').size < 2; i++) await sleep(20);
    assert.deepEqual([...be.set(4, 'p22').keys()].sort(), ['203.0.113.5', '203.0.113.6'], 're-filled by the probe');
    const refill = be.calls.slice(before).flatMap((c) => c.add.map((e) => `${e.address}|${e.scope}`));
    assert.deepEqual(refill.sort(), ['203.0.113.5|p22', '203.0.113.6|p22'], 'only the emptied set');
    assert.equal(log.lines.find((l) => /emptied/.test(l.msg))?.fields?.sets, 'tallow_p22');
    await fw.close();
  });

  test('the probe samples per set: a set emptied among full ones is seen', async () => {
    const now = Date.now();
    const held = [
      ...Array.from({ length: 10 }, (_, i) => ({ address: `192.0.2.${i + 1}`, family: 4 as Family, expiry: now + 60_000 })),
      { address: '192.0.2.99', family: 4 as Family, expiry: now + 60_000, scope: 'p22' },
    ];
    const sample = sampleHeld(held, () => false, now);
    assert.deepEqual(sample.map((b) => b.address), ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.99']);
    const be = new ScopedBackend([ALL_PORTS, P22]);
    for (const b of held.slice(0, 10)) be.set(4).set(b.address, 60);
    assert.deepEqual([...(await missingSets(be, sample))], ['tallow_p22']);
  });
});

describe('dry run and the listener', () => {
  test('dry run lines name the set; list() gives the scope', async () => {
    const log = logger();
    const be = await chooseBackend(config(), log, true, [P22]);
    await be.apply([{ address: '192.0.2.1', family: 4, seconds: 60, scope: 'p22' }, { address: '192.0.2.1', family: 4, seconds: 60 }], []);
    assert.deepEqual(log.lines.filter((l) => /would ban/.test(l.msg)).map((l) => l.fields?.set), ['tallow_p22', 'tallow']);
    assert.deepEqual((await be.list()).map((b) => `${b.address}|${b.scope}`).sort(), ['192.0.2.1|', '192.0.2.1|p22']);
  });

  test('the firewall listener passes the ban\'s scope ("" when it has none)', async () => {
    const be = new ScopedBackend([ALL_PORTS, P22]);
    const fw = new Firewall(be, logger(), {});
    await fw.start();
    const l = firewallListener(fw);
    const ban = (address: string, scope?: string) => ({ address, family: 4 as Family, expiry: Date.now() + 60_000, since: Date.now(), origin: 'rule' as const, reason: 'threshold' as const, pattern: null, score: 1, count: 1, rule: null, ...(scope === undefined ? {} : { scope }) }) as Ban;
    l.handle([{ kind: 'ban', ban: ban('192.0.2.80', 'p22'), cause: 'new' }, { kind: 'ban', ban: ban('192.0.2.81'), cause: 'new' }]);
    await fw.flush();
    assert.deepEqual(be.calls[0].add.map((e) => `${e.address}|${e.scope}`), ['192.0.2.80|p22', '192.0.2.81|']);
    l.handle([{ kind: 'unban', ban: ban('192.0.2.80', 'p22'), reason: 'manual', at: Date.now() }]);
    await fw.flush();
    assert.deepEqual(be.calls[1].remove, [{ address: '192.0.2.80', family: 4, scope: 'p22' }]);
    await fw.close();
  });
});
