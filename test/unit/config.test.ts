import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, defaultConfig, loadConfig, parseConfig } from '../../src/config';

const root = join(__dirname, '..', '..', '..');

test('config: defaults are tallow\'s', () => {
  const c = defaultConfig();
  assert.equal(c.file, null);
  assert.equal(c.expires, 3600);
  assert.equal(c.threshold, 1.0);
  assert.equal(c.iptPath, '/usr/sbin');
  assert.deepEqual(c.whitelist, ['127.0.0.0/8', '192.168.', '10.', '::1']);
  assert.equal(c.nocreate, false);
  assert.equal(c.backend, 'auto');
  assert.equal(c.patternsDir, '/etc/tallow');
});

test('config: the shipped tallow.conf lists every key, commented, with its default', () => {
  const text = readFileSync(join(root, 'tallow.conf'), 'utf8');
  const commented = text.split('\n').filter((l) => /^#[a-z_0-9]+=/.test(l)).map((l) => l.slice(1));
  const keys = new Set(commented.map((l) => l.slice(0, l.indexOf('='))));
  for (const k of ['fwcmd_path', 'ipt_path', 'nft_path', 'expires', 'threshold', 'whitelist', 'ipv6', 'nocreate',
    'backend', 'maxelem', 'max_records', 'patterns_dir', 'state_dir', 'socket']) {
    assert.ok(keys.has(k), `tallow.conf lacks ${k}`);
  }
  const uncommented = parseConfig(commented.join('\n'), 'tallow.conf');
  const d = defaultConfig();
  assert.deepEqual({ ...uncommented, file: null, ipv6: d.ipv6 }, d);
  // as shipped (all commented) it is exactly the defaults
  assert.deepEqual({ ...parseConfig(text, 'x'), file: null }, d);
});

test('config: tallow-style file, whitespace, comments, booleans, repeatable whitelist', () => {
  const c = parseConfig(
    ['# comment', '', '  expires = 600 ', 'ipv6=0', 'nocreate=1', 'whitelist=203.0.113.0/24', 'whitelist=fe80:',
      'threshold=2.5', 'backend=nftables', 'fwcmd_path=/opt/bin', 'ipt_path=/sbin', 'max_records=5000', 'ipv6=yes'].join('\n'),
    '/etc/tallow.conf',
  );
  assert.equal(c.file, '/etc/tallow.conf');
  assert.equal(c.expires, 600);
  assert.equal(c.ipv6, true);
  assert.equal(c.nocreate, true);
  assert.deepEqual(c.whitelist, ['203.0.113.0/24', 'fe80:']);
  assert.equal(c.threshold, 2.5);
  assert.equal(c.backend, 'nftables');
  assert.equal(c.fwcmdPath, '/opt/bin');
  assert.equal(c.maxRecords, 5000);
});

// Tests as data: a bad line and the start of the message it must give.
const BAD: Array<[string, string]> = [
  ['bogus=1', "unknown key 'bogus'"],
  ['expires=abc', "expires: expected a whole number"],
  ['expires=0', 'expires: expected a whole number'],
  ['expires=-5', 'expires: expected a whole number'],
  ['expires=3600s', 'expires: expected a whole number'],
  ['threshold=0', 'threshold: expected a number above 0'],
  ['threshold=x', 'threshold: expected a number above 0'],
  ['ipv6=2', 'ipv6: expected 0 or 1'],
  ['nocreate=maybe', 'nocreate: expected 0 or 1'],
  ['whitelist=192.16', "whitelist: allowlist entry '192.16'"],
  ['whitelist=not-an-ip', "whitelist: allowlist entry 'not-an-ip'"],
  ['backend=pf', 'backend: expected auto, ipset, firewalld, nftables or none'],
  ['ipt_path=sbin', 'ipt_path: expected an absolute path'],
  ['expires', 'expected key=value'],
  ['expires=', 'expires: empty value'],
  ['maxelem=1e6', 'maxelem: expected a whole number'],
];

test('config: each bad line gives file:line: message and exit code 78', () => {
  for (const [line, message] of BAD) {
    assert.throws(
      () => parseConfig(`# first\nexpires=60\n${line}\n`, '/etc/tallow.conf'),
      (e: unknown) => e instanceof ConfigError && e.exitCode === 78 && e.message.startsWith(`/etc/tallow.conf:3: ${message}`),
      line,
    );
  }
});

test('config: missing default file means defaults; missing --config file is an error', () => {
  const dir = mkdtempSync(join(tmpdir(), `tallow-config-${process.pid}-`));
  try {
    assert.equal(loadConfig(join(dir, 'none.conf'), false).file, null);
    assert.throws(() => loadConfig(join(dir, 'none.conf'), true), (e: unknown) => e instanceof ConfigError && /none\.conf: cannot read: ENOENT/.test(e.message));
    writeFileSync(join(dir, 'a.conf'), 'expires=120\n');
    assert.equal(loadConfig(join(dir, 'a.conf'), true).expires, 120);
    writeFileSync(join(dir, 'b.conf'), 'expires=120\nfoo=1\n');
    assert.throws(() => loadConfig(join(dir, 'b.conf'), false), (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${join(dir, 'b.conf')}:2: unknown key 'foo'`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
