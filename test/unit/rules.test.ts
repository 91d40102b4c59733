// Rule keys of a patterns block (issue 14): each bad key gives `file: block N: message` (or
// `file: item N: ...`) and PatternError (exit 78); resolution into Rule objects: defaults from
// tallow.conf, pools, names, same-name blocks, overrides, unit and limit; the lines of a reload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPatternFiles, parsePatternFile, PatternError, untrustedFilters, type PatternFile } from '../../src/patterns';
import { resolveRules, ruleChanges } from '../../src/rules';
import { ALL_PORTS } from '../../src/scope';
import type { Rule } from '../../src/rule';

const DEFAULTS = { threshold: 2.5, expires: 900 };
const parse = (doc: unknown, name = 'x.json') => parsePatternFile(JSON.stringify(doc), name, `/etc/tallow/${name}`);
const resolve = (...files: PatternFile[][]) => resolveRules(files.flat(), DEFAULTS);
const item = (p = '^fail <IP>$') => ({ ban: 0, score: 0.5, pattern: p });
const block = (extra: Record<string, unknown>) => ({ filter: '_SYSTEMD_UNIT=a.service', items: [item()], ...extra });

const KNOWN = 'filter, items, name, enabled, no_log, unit, threshold, limit, findtime, bantime, ports, protocol, ban_prefix_v4, ban_prefix_v6, action, notify_allowlisted, actions, publish, bantime_increment, bantime_max, recidive_window';

// Tests as data: a block's extra keys (or a whole file) and the exact message after the path.
const BAD: Array<[unknown, string]> = [
  [[block({ thresold: 2 })], `block 1: unknown key "thresold" (known: ${KNOWN})`],
  [[block({}), block({ Name: 'x' })], `block 2: unknown key "Name" (known: ${KNOWN})`],
  [[block({ name: 5 })], 'block 1: "name": expected 1 to 40 letters, digits, "_", "." or "-", got 5'],
  [[block({ name: 'my rule' })], 'block 1: "name": expected 1 to 40 letters, digits, "_", "." or "-", got "my rule"'],
  [[block({ name: 'x'.repeat(41) })], `block 1: "name": expected 1 to 40 letters, digits, "_", "." or "-", got "${'x'.repeat(41)}"`],
  [[block({ name: 'a#1' })], 'block 1: "name": expected 1 to 40 letters, digits, "_", "." or "-", got "a#1"'],
  [[block({ enabled: 'no' })], 'block 1: "enabled": expected true or false, got "no"'],
  [[block({ enabled: 0 })], 'block 1: "enabled": expected true or false, got 0'],
  [[block({ no_log: 'yes' })], 'block 1: "no_log": expected true or false, got "yes"'],
  [[block({ threshold: 0 })], 'block 1: "threshold": expected a number above 0, got 0'],
  [[block({ threshold: -1 })], 'block 1: "threshold": expected a number above 0, got -1'],
  [[block({ threshold: '3' })], 'block 1: "threshold": expected a number above 0, got "3"'],
  [[block({ threshold: 3, limit: 3 })], 'block 1: "threshold" and "limit" both given: give one ("limit" N is "threshold" N with every match scoring 1)'],
  [[block({ limit: 0 })], 'block 1: "limit": expected a whole number of matches from 1 to 1000000, got 0'],
  [[block({ limit: 2.5 })], 'block 1: "limit": expected a whole number of matches from 1 to 1000000, got 2.5'],
  [[block({ findtime: 0 })], 'block 1: "findtime": expected whole seconds from 1 to 2147483, got 0'],
  [[block({ findtime: 1.5 })], 'block 1: "findtime": expected whole seconds from 1 to 2147483, got 1.5'],
  [[block({ bantime: '60' })], 'block 1: "bantime": expected whole seconds from 1 to 2147483, got "60"'],
  [[block({ bantime: 2147484 })], 'block 1: "bantime": expected whole seconds from 1 to 2147483, got 2147484'],
  [[block({ ports: [] })], 'block 1: "ports": expected "all" or a non-empty array of ports, got []'],
  [[block({ ports: '22' })], 'block 1: "ports": expected "all" or a non-empty array of ports, got "22"'],
  [[block({ ports: [0] })], 'block 1: "ports": expected port numbers 1-65535 or ranges "FROM-TO", got 0'],
  [[block({ ports: [65536] })], 'block 1: "ports": expected port numbers 1-65535 or ranges "FROM-TO", got 65536'],
  [[block({ ports: ['80-79'] })], 'block 1: "ports": expected port numbers 1-65535 or ranges "FROM-TO", got "80-79"'],
  [[block({ ports: Array.from({ length: 16 }, (_, i) => i + 1) })], 'block 1: "ports": at most 15 ports or ranges (iptables multiport)'],
  [[block({ ports: [22], protocol: 'icmp' })], 'block 1: "protocol": expected "tcp" or "udp" (absent: both), got "icmp"'],
  [[block({ ban_prefix_v4: 7 })], 'block 1: "ban_prefix_v4": expected a prefix length from 8 to 32, got 7'],
  [[block({ ban_prefix_v4: 33 })], 'block 1: "ban_prefix_v4": expected a prefix length from 8 to 32, got 33'],
  [[block({ ban_prefix_v6: 15 })], 'block 1: "ban_prefix_v6": expected a prefix length from 16 to 128, got 15'],
  [[block({ ban_prefix_v6: 64.5 })], 'block 1: "ban_prefix_v6": expected a prefix length from 16 to 128, got 64.5'],
  [[block({ unit: 'post fix' })], 'block 1: "unit": expected a systemd unit name such as "postfix" or "postfix@-.service", got "post fix"'],
  [[block({ unit: ['a', 'b'] })], 'block 1: "unit": expected a systemd unit name such as "postfix" or "postfix@-.service", got ["a","b"]'],
  [[block({ unit: 'postfix' })], 'block 1: "unit" and a _SYSTEMD_UNIT term in "filter": give one of them'],
  [[{ items: [item()] }], 'block 1: missing key "filter" (or "unit")'],
  [[{ name: 'postfix', unit: 'postfix', enabled: true }], 'block 1: "unit" is part of a rule\'s definition (a block with "items"): a block with a "name" and no "items" only overrides enabled and the policy keys'],
  [[{ name: 'postfix' }], 'block 1: a block with only a "name" changes nothing: give "items" (and "filter" or "unit") to define rule "postfix", or the keys to change'],
  // Items: unknown keys (a typo such as "scroe" would otherwise default to 1 under limit), forms.
  [[block({ items: [{ ban: 0, score: 1, scroe: 2, pattern: '(x)' }] })], 'item 1: unknown key "scroe" (known: ban, score, pattern)'],
  [[block({ limit: 3, items: [{ scroe: 2, pattern: '(x)' }] })], 'item 1: unknown key "scroe" (known: ban, score, pattern)'],
  [[block({ items: ['^fail <IP>$'] })], 'item 1: expected {"ban": seconds, "score": number, "pattern": "regex"} (a pattern string alone needs "limit" on its rule)'],
  [[block({ items: [item(), { ban: 0, pattern: '(x)' }] })], 'item 2: missing key "score" (optional only in a rule with "limit")'],
  [[block({ items: [{ score: 1, pattern: '(x)' }] })], 'item 1: missing key "ban" (optional only in a rule with "limit")'],
  [[block({ limit: 3, items: [5] })], 'item 1: expected "regex" or {"ban": seconds, "score": number, "pattern": "regex"}'],
  [[block({ limit: 3, items: [{ score: 1 }] })], 'item 1: missing key "pattern"'],
  [[block({ limit: 3, items: [{ pattern: '(x)', score: -1 }] })], 'item 1: "score" must be a number of 0 or more, got -1'],
  [[block({ limit: 3, items: ['no group'] })], 'item 1: no capture group, named group ip or <IP> tag for the address'],
];

test('rules: each bad key gives `file: block N: message` / `file: item N: message`, PatternError exit 78', () => {
  for (const [doc, message] of BAD) {
    assert.throws(
      () => parse(doc, 'bad.json'),
      (e: unknown) => e instanceof PatternError && e.exitCode === 78 && e.message === `/etc/tallow/bad.json: ${message}`,
      `${JSON.stringify(doc)} -> ${message}`,
    );
  }
});

test('rules: errors found when blocks are put together name the places (PatternError, exit 78)', () => {
  const cases: Array<[PatternFile[][], string]> = [
    // protocol needs ports, which a block of the same rule could give: checked on the rule
    [[parse([block({ protocol: 'tcp' })])], '/etc/tallow/x.json: block 1: "protocol" needs "ports" (a ban on every port covers every protocol)'],
    // names are unique across files; a default name counts
    [[parse([block({ name: 'web' })], 'a.json'), parse([block({ name: 'web' })], 'b.json')],
      '/etc/tallow/b.json: block 1: rule name "web" is already used by /etc/tallow/a.json (block 1) (a name belongs to one file; to change that rule from another file, give its "name" and the keys to change, without "filter" or "items")'],
    [[parse([block({})], 'sshd.json'), parse([block({}), block({ name: 'sshd' })], 'mine.json')],
      '/etc/tallow/mine.json: block 2: rule name "sshd" is already used by /etc/tallow/sshd.json (block 1) (a name belongs to one file; to change that rule from another file, give its "name" and the keys to change, without "filter" or "items")'],
    // blocks of one name must agree
    [[parse([block({ name: 'web', bantime: 60 }), block({ name: 'web', bantime: 120 })])],
      '/etc/tallow/x.json: block 2: "bantime" is 120 here but 60 in block 1 (blocks named "web" are one rule: give it once, or the same value)'],
    [[parse([block({ name: 'web', ports: [80, 443] }), block({ name: 'web', ports: [443] })])],
      '/etc/tallow/x.json: block 2: "ports" is ["443"] here but ["80","443"] in block 1 (blocks named "web" are one rule: give it once, or the same value)'],
    [[parse([block({ name: 'web', enabled: false }), block({ name: 'web', enabled: true })])],
      '/etc/tallow/x.json: block 2: "enabled" is true here but false in block 1 (blocks named "web" are one rule: give it once, or the same value)'],
    [[parse([block({ name: 'web', threshold: 3 }), block({ name: 'web', limit: 3 })])],
      '/etc/tallow/x.json: block 2: "limit" here but "threshold" in block 1 (blocks named "web" are one rule: give one of them once)'],
    // overrides
    [[parse([block({})], 'a.json'), parse([{ name: 'postfix', enabled: true }], 'on.json')],
      '/etc/tallow/on.json: block 1: no rule named "postfix" to override (a block with a "name" and no "filter" or "items" changes a rule defined in another block)'],
    [[parse([block({ name: 'p' })], 'a.json'), parse([{ name: 'p', bantime: 60 }], 'b.json'), parse([{ name: 'p', bantime: 70 }], 'c.json')],
      '/etc/tallow/c.json: block 1: "bantime" is 70 here but 60 in /etc/tallow/b.json (block 1): both override rule "p"'],
  ];
  for (const [files, message] of cases) {
    assert.throws(() => resolve(...files), (e: unknown) => e instanceof PatternError && e.exitCode === 78 && e.message === message, message);
  }
});

const tallowRule = (name: string, where: string): Rule => ({
  name, pool: '', enabled: true, noLog: false, threshold: 2.5, findtime: 0, bantime: 900, scope: ALL_PORTS, prefix: { 4: 32, 6: 128 }, where,
});

test('rules: blocks without policy keys take tallow.conf\'s threshold and expires and share pool ""; default names', () => {
  const one = parse([block({})], 'sshd.json');
  const two = parse([block({}), block({ name: 'web', enabled: false })], 'multi.json');
  const { rules, blocks } = resolve(one, two);
  assert.deepEqual(rules, [
    tallowRule('sshd', '/etc/tallow/sshd.json (block 1)'),
    tallowRule('multi#1', '/etc/tallow/multi.json (block 1)'),
    { ...tallowRule('web', '/etc/tallow/multi.json (block 2)'), enabled: false },
  ]);
  assert.deepEqual(blocks.map((b) => [b.name, b.block, b.rule.name]), [['sshd.json', 1, 'sshd'], ['multi.json', 1, 'multi#1'], ['multi.json', 2, 'web']]);
  assert.equal(blocks[2].rule, rules[2], 'each block carries its rule object');
});

test('rules: policy keys give the rule its own pool, threshold, findtime, bantime, scope and prefixes', () => {
  const { rules } = resolve(parse([block({ name: 'mail', threshold: 3, findtime: 600, bantime: 7200, ports: [587, '25', 465], protocol: 'tcp', ban_prefix_v4: 24, ban_prefix_v6: 64 })]));
  assert.deepEqual(rules, [{
    name: 'mail', pool: 'mail', enabled: true, noLog: false, threshold: 3, findtime: 600, bantime: 7200,
    scope: { id: 'p25_465_587t_net', ports: ['25', '465', '587'], protocols: ['tcp'], net: true },
    prefix: { 4: 24, 6: 64 }, where: '/etc/tallow/x.json (block 1)',
  }]);
  // Any one policy key is enough for an own pool, even "all" ports or a full-length prefix.
  for (const extra of [{ bantime: 900 }, { ports: 'all' }, { ban_prefix_v6: 128 }, { findtime: 60 }, { limit: 4 }]) {
    const r = resolve(parse([block({ name: 'p', ...extra })])).rules[0];
    assert.equal(r.pool, 'p', JSON.stringify(extra));
    assert.equal(r.scope, ALL_PORTS, JSON.stringify(extra));
  }
  // name, enabled and unit are not policy: the block stays in tallow's shared pool.
  assert.equal(resolve(parse([{ name: 'p', enabled: true, unit: 'p', items: [item()] }])).rules[0].pool, '');
});

test('rules: unit is a _SYSTEMD_UNIT term AND\'ed into every filter group, or the whole filter; it makes a filter trusted', () => {
  const f = (extra: Record<string, unknown>) => parse([{ items: [], ...extra }])[0].filter;
  assert.deepEqual(f({ unit: 'postfix', filter: ['SYSLOG_IDENTIFIER=postfix/smtpd', ['A=1', 'B=2']] }), [
    ['SYSLOG_IDENTIFIER=postfix/smtpd', '_SYSTEMD_UNIT=postfix.service'], ['A=1', 'B=2', '_SYSTEMD_UNIT=postfix.service']]);
  assert.deepEqual(f({ unit: 'postfix@-' }), [['_SYSTEMD_UNIT=postfix@-.service']]);
  assert.deepEqual(f({ unit: 'php8.2-fpm' }), [['_SYSTEMD_UNIT=php8.2-fpm.service']]);
  assert.deepEqual(f({ unit: 'nginx.service' }), [['_SYSTEMD_UNIT=nginx.service']]);
  assert.deepEqual(f({ unit: 'cups.socket' }), [['_SYSTEMD_UNIT=cups.socket']]);
  assert.equal(parse([{ unit: 'postfix', items: [] }])[0].keys.unit, 'postfix.service');
  // The untrusted-filter warning sees the unit term.
  assert.deepEqual(untrustedFilters(parse([{ unit: 'myapp', filter: 'SYSLOG_IDENTIFIER=myapp', items: [] }])), []);
  assert.equal(untrustedFilters(parse([{ filter: 'SYSLOG_IDENTIFIER=myapp', items: [] }])).length, 1);
});

test('rules: limit N is threshold N; its items may omit score (1) and ban (0) or be pattern strings', () => {
  const files = parse([
    { name: 'ellis', unit: 'myapp', limit: 3, ports: [22], items: ['^one <IP>$', { pattern: '^two <IP>$', score: 2 }, { ban: 5, score: 0.5, pattern: '^three <IP>$' }] },
    // a block of the same rule: the limit given once frees its items too
    { name: 'ellis', filter: ['_EXE=/usr/bin/myapp', '_UID=0'], items: ['^four <IP>$'] },
  ]);
  assert.deepEqual(files.flatMap((f) => f.patterns.map((p) => [p.name, p.score, p.ban, p.source])), [
    ['x.json#1', 1, 0, '^one <IP>$'], ['x.json#2', 2, 0, '^two <IP>$'], ['x.json#3', 0.5, 5, '^three <IP>$'], ['x.json#4', 1, 0, '^four <IP>$']]);
  const { rules, blocks } = resolve(files);
  assert.equal(rules.length, 1);
  assert.deepEqual([rules[0].name, rules[0].pool, rules[0].threshold, rules[0].bantime, rules[0].scope.ports], ['ellis', 'ellis', 3, 900, ['22']]);
  assert.deepEqual(blocks.map((b) => [b.block, b.rule.name]), [[1, 'ellis'], [2, 'ellis']]);
});

test('rules: blocks sharing a name are one rule, each key given once (or the same)', () => {
  const { rules, blocks } = resolve(parse([
    block({ name: 'web', bantime: 600 }),
    block({}),
    { name: 'web', filter: '_SYSTEMD_UNIT=b.service', findtime: 60, bantime: 600, items: [item()] },
  ]));
  assert.deepEqual(rules.map((r) => [r.name, r.pool, r.findtime, r.bantime, r.where]), [
    ['web', 'web', 60, 600, '/etc/tallow/x.json (block 1)'], ['x#2', '', 0, 900, '/etc/tallow/x.json (block 2)']]);
  // Blocks stay in file order (the first matching block wins), each with its rule.
  assert.deepEqual(blocks.map((b) => [b.block, b.rule.name]), [[1, 'web'], [2, 'x#2'], [3, 'web']]);
  assert.equal(blocks[0].rule, blocks[2].rule);
});

test('rules: an override block enables a rule that is off, changing only the keys it gives', () => {
  const dir = mkdtempSync(join(tmpdir(), `tallow-rules-${process.pid}-`));
  try {
    const shipped = join(dir, 'shipped');
    const local = join(dir, 'local');
    mkdirSync(shipped);
    mkdirSync(local);
    writeFileSync(join(shipped, 'postfix.json'), JSON.stringify([block({ name: 'postfix', enabled: false, limit: 5, bantime: 600, ports: [25] })]));
    const before = resolveRules(loadPatternFiles(shipped, local), DEFAULTS).rules;
    assert.deepEqual(before.map((r) => [r.name, r.enabled, r.bantime]), [['postfix', false, 600]]);
    writeFileSync(join(local, 'postfix-on.json'), '[{"name": "postfix", "enabled": true, "bantime": 7200}]');
    const files = loadPatternFiles(shipped, local);
    const { rules, blocks } = resolveRules(files, DEFAULTS);
    assert.deepEqual(rules.map((r) => [r.name, r.enabled, r.threshold, r.bantime, r.scope.ports, r.where]), [
      ['postfix', true, 5, 7200, ['25'], `${join(shipped, 'postfix.json')} (block 1)`]]);
    assert.equal(blocks.length, 1, 'the override block has no patterns of its own');
    assert.deepEqual(files.map((f) => [f.path, f.override]), [[join(local, 'postfix-on.json'), true], [join(shipped, 'postfix.json'), false]]);
    // threshold and limit are one setting: an override's threshold replaces the rule's limit.
    writeFileSync(join(local, 'postfix-on.json'), '[{"name": "postfix", "threshold": 2}]');
    assert.deepEqual(resolveRules(loadPatternFiles(shipped, local), DEFAULTS).rules.map((r) => [r.enabled, r.threshold, r.bantime]), [[false, 2, 600]]);
    // An override of a tallow-style rule with only enabled keeps it in the shared pool; a policy key takes it out.
    writeFileSync(join(shipped, 'sshd.json'), JSON.stringify([block({})]));
    writeFileSync(join(local, 'postfix-on.json'), '[{"name": "sshd", "enabled": false}, {"name": "postfix", "protocol": "tcp"}]');
    assert.deepEqual(resolveRules(loadPatternFiles(shipped, local), DEFAULTS).rules.map((r) => [r.name, r.enabled, r.pool, r.scope.id]), [
      ['postfix', false, 'postfix', 'p25t'], ['sshd', false, '', '']]);
    writeFileSync(join(local, 'postfix-on.json'), '[{"name": "sshd", "bantime": 60}]');
    assert.deepEqual(resolveRules(loadPatternFiles(shipped, local), DEFAULTS).rules.map((r) => [r.name, r.pool]), [['postfix', 'postfix'], ['sshd', 'sshd']]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rules: ruleChanges says what a reload adds, removes, disables, enables and changes', () => {
  const r = (name: string, extra: Partial<Rule> = {}): Rule => ({ ...tallowRule(name, `/p/${name}.json (block 1)`), ...extra });
  const before = [r('sshd'), r('dovecot'), r('postfix', { enabled: false }), r('nginx'), r('old')];
  const after = [
    r('sshd', { threshold: 3, bantime: 7200, pool: 'sshd' }),
    r('dovecot'),
    r('postfix'),
    r('nginx', { enabled: false, scope: { id: 'p80_443t', ports: ['80', '443'], protocols: ['tcp'], net: false }, prefix: { 4: 32, 6: 64 } }),
    r('vsftpd', { enabled: false }),
    r('proftpd'),
  ];
  assert.deepEqual(ruleChanges(before, after), [
    'rule sshd policy changed: threshold 2.5 -> 3, bantime 900 -> 7200, scores shared -> its own',
    'rule postfix enabled',
    'rule nginx disabled: its active bans stay until they expire',
    'rule nginx policy changed: ports all -> 80,443/tcp, ban_prefix_v6 128 -> 64',
    'rule vsftpd added (disabled): /p/vsftpd.json (block 1)',
    'rule proftpd added: /p/proftpd.json (block 1)',
    'rule old removed: its active bans stay until they expire',
  ]);
  const counts = new Map([['nginx', 3], ['old', 1]]);
  assert.deepEqual(ruleChanges(before, after, (rule) => counts.get(rule.name) ?? 0).filter((l) => /^rule \S+ (disabled|removed):/.test(l)), [
    'rule nginx disabled: its 3 active bans stay until they expire',
    'rule old removed: its 1 active ban stays until it expires',
  ]);
  assert.deepEqual(ruleChanges([r('a')], [r('a')], () => 0), []);
  assert.deepEqual(ruleChanges([r('a')], [], () => 0), ['rule a removed: it has no active bans']);
});
