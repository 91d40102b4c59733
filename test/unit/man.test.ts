// The man pages: lint-clean, and in step with the code they describe (every tallow.conf key the
// parser accepts, every option of --help, pattern examples that load and match what they say).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfig, ConfigError } from '../../src/config';
import { parsePatternFile } from '../../src/patterns';
import { BLOCK_KEYS } from '../../src/rule-keys';
import { resolveRules } from '../../src/rules';
import { Matcher } from '../../src/matcher';
import { USAGE } from '../../src/cli';
import { COMMANDS, DAEMON } from '../../src/commands';
import { EXIT_STATUSES } from '../../src/exit';
import { helpText } from '../../src/options';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PAGES = ['tallow.8', 'tallow.conf.5', 'tallow.patterns.5'];

function mandoc(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('mandoc', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`mandoc is missing (install it: scripts/deps.sh): ${r.error.message}`);
  return { status: r.status, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

/** The page as a reader sees it (plain text, no overstrike). */
function rendered(page: string): string {
  const r = mandoc(['-T', 'utf8', '-O', 'width=200', path.join(ROOT, 'man', page)]);
  assert.equal(r.status, 0, r.out);
  return r.out.replace(/.\x08/g, '');
}

test('man pages are clean under mandoc -T lint', () => {
  for (const p of PAGES) {
    const r = mandoc(['-T', 'lint', '-W', 'warning', path.join(ROOT, 'man', p)]);
    assert.equal(r.out.trim(), '', `${p}: ${r.out}`);
    assert.equal(r.status, 0, `${p}: mandoc exit ${r.status}`);
  }
  // The check can fail: a broken page is reported.
  const bad = path.join(ROOT, 'dist', `bad-${process.pid}.8`);
  fs.writeFileSync(bad, '.TH X 8\n.SH NAME\n.BR\n.Xx\n');
  try {
    assert.notEqual(mandoc(['-T', 'lint', '-W', 'warning', bad]).out.trim(), '');
  } finally {
    fs.unlinkSync(bad);
  }
});

test('tallow.conf(5) documents every key the parser accepts, and no other', () => {
  let known: string[] = [];
  try {
    parseConfig('no_such_key_for_the_test=1\n', 'x.conf');
    assert.fail('an unknown key must be refused');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    const m = /\(known: ([^)]*)\)/.exec((e as Error).message);
    assert.ok(m, (e as Error).message);
    known = m![1].split(/,\s*/);
  }
  assert.ok(known.length >= 10 && known.includes('expires') && known.includes('whitelist'), known.join(' '));
  const text = rendered('tallow.conf.5');
  const keysSection = text.slice(text.indexOf('\nKEYS'), text.indexOf('\nEXAMPLES'));
  const documented = [...keysSection.matchAll(/^ {7}([a-z0-9_]+)=/gm)].map((m) => m[1]);
  assert.deepEqual([...documented].sort(), [...known].sort(), 'KEYS section vs the parser');
  // Each example in the page is a valid configuration.
  const examples = text.slice(text.indexOf('\nEXAMPLES'), text.indexOf('\nFILES'));
  const lines = [...examples.matchAll(/^\s+([a-z0-9_]+=\S+)$/gm)].map((m) => m[1]);
  assert.ok(lines.length >= 5);
  parseConfig(lines.join('\n') + '\n', 'example.conf');
});

/** The rendered page's sections by heading: `OPTIONS` -> its text. */
function sections(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const heads = [...text.matchAll(/^([A-Z][A-Z ]+)$/gm)];
  heads.forEach((h, i) => out.set(h[1], text.slice(h.index! + h[0].length, heads[i + 1]?.index ?? text.length)));
  return out;
}

/** Every option named in a text: `--config` and `-c` (not `-2h`, `sshd-session` or `2001:db8::/64`). */
function optionsIn(text: string): Set<string> {
  const long = [...text.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)].map((m) => m[0]);
  const short = [...text.matchAll(/(?<![\w-])-[A-Za-z](?![\w-])/g)].map((m) => m[0]);
  return new Set([...long, ...short]);
}

test('every option of every --help is in tallow(8), and every option in tallow(8) is in some --help', () => {
  const page = sections(rendered('tallow.8'));
  // Where tallow's own options are described (DESCRIPTION and EXAMPLES quote other programs').
  const documented = optionsIn(['SYNOPSIS', 'OPTIONS', 'COMMANDS'].map((h) => page.get(h) ?? assert.fail(`no ${h} section`)).join('\n'));
  const helps = [USAGE, ...COMMANDS.map((c) => helpText(c))];
  const inHelp = new Set(helps.flatMap((h) => [...optionsIn(h)]));
  // Both directions, and the table's options all appear in some help (so the check sees them).
  for (const spec of [DAEMON, ...COMMANDS]) {
    for (const o of spec.options) {
      assert.ok(inHelp.has(`--${o.long}`), `--${o.long} of ${spec.name || 'the daemon'} is in no --help`);
      if (o.short) assert.ok(inHelp.has(`-${o.short}`), `-${o.short} of ${spec.name || 'the daemon'} is in no --help`);
    }
  }
  for (const o of inHelp) assert.ok(documented.has(o), `${o} is in --help but not in tallow(8)`);
  for (const o of documented) assert.ok(inHelp.has(o), `${o} is in tallow(8) but not in any --help`);
  assert.ok(inHelp.size >= 35, `${inHelp.size} options`);
  // Each command in COMMANDS, each exit status of --help in EXIT STATUS.
  const commands = page.get('COMMANDS')!;
  for (const c of COMMANDS) assert.match(commands, new RegExp(`^ {7}${c.name}\\b`, 'm'), `command ${c.name}`);
  const exits = page.get('EXIT STATUS')!;
  for (const [code] of EXIT_STATUSES) {
    assert.match(exits, new RegExp(`^ {7}${code}\\s`, 'm'), `exit status ${code}`);
    assert.match(USAGE, new RegExp(`^ +${code}  `, 'm'), `exit status ${code} in --help`);
  }
  assert.deepEqual([...exits.matchAll(/^ {7}(\d+)\s/gm)].map((m) => Number(m[1])), EXIT_STATUSES.map(([c]) => c), 'no other exit status documented');
  // Runtime settings are not persisted: said in both.
  assert.match(commands.replace(/\s+/g, ' '), /Settings made this way are not saved/);
  assert.match(helpText(COMMANDS.find((c) => c.name === 'set')!), /not saved/);
});

test('the option check can fail: an option missing from the page, or one the page has and no --help', () => {
  const page = 'SYNOPSIS\n tallow [-c|--config FILE]\nOPTIONS\n -x, --extra\n';
  const doc = optionsIn(page);
  assert.deepEqual([...doc].sort(), ['--config', '--extra', '-c', '-x']);
  assert.deepEqual([...optionsIn('journalctl --since -2h; 2001:db8::/64 sshd-session a-b')], ['--since']);
});

test('tallow.patterns(5): every JSON example loads, and matches what the page says', () => {
  const text = rendered('tallow.patterns.5');
  // JSON arrays in the page start with a line "[" and end with a line "]" at the same indent.
  const blocks = [...text.matchAll(/^( +)\[\n([\s\S]*?)^\1\]$/gm)].map((m) => `[\n${m[2]}]`);
  assert.ok(blocks.length >= 3, `found ${blocks.length} JSON examples`);
  const files = blocks.map((b, i) => {
    try {
      return parsePatternFile(b, `example${i}.json`, `man:example${i}`);
    } catch (e) {
      throw new Error(`example ${i} does not load: ${(e as Error).message}\n${b}`);
    }
  });
  const entry = (fields: Record<string, string>) => ({ cursor: 'c', realtime: Date.now() * 1000, fields });
  const matcher = new Matcher(files.flat());
  const m = (fields: Record<string, string>) => matcher.match(entry(fields))?.address ?? null;
  // The format example.
  assert.equal(m({ _EXE: '/usr/sbin/sshd', _UID: '0', MESSAGE: 'Failed password for root from 203.0.113.9 port 4242 ssh2' }), '203.0.113.9');
  // dovecot: the real rip, never one injected in the user name.
  const dove = (user: string, rip: string) =>
    `imap-login: Disconnected: Connection closed (auth failed, 3 attempts in 12 secs): user=<${user}>, method=PLAIN, rip=${rip}, lip=192.0.2.1, TLS, session=<abcDEF12>`;
  assert.equal(m({ _SYSTEMD_UNIT: 'dovecot.service', MESSAGE: dove('alice', '198.51.100.7') }), '198.51.100.7');
  // An injected rip= never scores (the line then matches nothing: the user name closed early).
  assert.equal(m({ _SYSTEMD_UNIT: 'dovecot.service', MESSAGE: dove('x>, method=PLAIN, rip=203.0.113.9, lip=192.0.2.1, TLS, session=<a', '198.51.100.7') }), null);
  assert.equal(m({ _SYSTEMD_UNIT: 'dovecot.service', MESSAGE: dove('x rip=203.0.113.9, lip=192.0.2.1', '198.51.100.7') }), '198.51.100.7');
  assert.equal(m({ _SYSTEMD_UNIT: 'dovecot.service', MESSAGE: dove('alice', '2001:db8::7') }), '2001:db8::7');
  // nginx limit_req.
  const ngx = '2025/06/01 12:00:00 [error] 812#812: *1 limiting requests, excess: 10.520 by zone "login", client: 203.0.113.20, server: example.org, request: "POST /login HTTP/1.1", host: "example.org"';
  assert.equal(m({ _SYSTEMD_UNIT: 'nginx.service', MESSAGE: ngx }), '203.0.113.20');
  // A file's patterns apply only to entries its filter selects.
  assert.equal(m({ _SYSTEMD_UNIT: 'sshd.service', MESSAGE: ngx }), null);
});

test('tallow.patterns(5): RULES documents every rule key, and its examples mean what the page says', () => {
  const text = rendered('tallow.patterns.5');
  const keys = text.slice(text.indexOf('\nRULES'), text.indexOf('\n   Scores'));
  const documented = [...keys.matchAll(/^ {7}([a-z][a-z0-9_]*)(?: {2,}|$)/gm)].map((m) => m[1]);
  assert.deepEqual(documented.sort(), BLOCK_KEYS.filter((k) => k !== 'filter' && k !== 'items').sort());
  const section = text.slice(text.indexOf('\nRULES'), text.indexOf('\nSAFETY RULES'));
  const files = [...section.matchAll(/^( +)\[\n([\s\S]*?)^\1\]$/gm)].flatMap((m, i) => parsePatternFile(`[\n${m[2]}]`, `rules${i}.json`, `man:rules${i}`));
  const { rules, blocks } = resolveRules(files, { threshold: 1, expires: 3600 });
  // The override switched the postfix rule on with its bantime; the jail-like rule has its window.
  assert.deepEqual(rules.map((r) => [r.name, r.enabled, r.threshold, r.findtime, r.bantime, r.scope.ports, r.scope.protocols]), [
    ['postfix', true, 5, 0, 7200, ['25', '465', '587'], ['tcp']],
    ['sshd', true, 5, 600, 3600, ['22'], ['tcp', 'udp']],
  ]);
  const matcher = new Matcher(blocks);
  const m = (fields: Record<string, string>) => {
    const r = matcher.match({ cursor: 'c', realtime: 1, fields });
    return r && [r.address, r.rule.name, r.pattern.score];
  };
  const postfix = (MESSAGE: string) => ({ _SYSTEMD_UNIT: 'postfix@-.service', SYSLOG_IDENTIFIER: 'postfix/smtpd', MESSAGE });
  assert.deepEqual(m(postfix('warning: unknown[203.0.113.30]: SASL LOGIN authentication failed: UGFzc3dvcmQ6')), ['203.0.113.30', 'postfix', 1]);
  assert.deepEqual(m(postfix('warning: mail.example.org[2001:db8::30]: SASL PLAIN authentication failed: x [198.51.100.1]')), ['2001:db8::30', 'postfix', 1]);
  assert.equal(m({ ...postfix('warning: unknown[203.0.113.30]: SASL LOGIN authentication failed: x'), _SYSTEMD_UNIT: 'other.service' }), null);
  const sshd = (MESSAGE: string) => ({ _EXE: '/usr/sbin/sshd', _UID: '0', MESSAGE });
  assert.deepEqual(m(sshd('Failed password for invalid user admin from 198.51.100.40 port 50000 ssh2')), ['198.51.100.40', 'sshd', 1]);
  assert.equal(m(sshd('Failed password for invalid user x from 203.0.113.9 port 22 ssh2 from 198.51.100.40 port 50000 ssh2')), null);
});
