// Matching never runs super-linear in the message length. Asserts outcomes (pattern refused, or
// match completed), never a time: a stall would hang; children run with a deadline and the test
// asserts that they finished.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compilePattern, loadPatternFiles, parsePatternFile, PatternError, shippedPatternsDir } from '../../src/patterns';
import { Matcher } from '../../src/matcher';

const KIB64 = 64 * 1024;
/** Crafted bodies: long runs of what each pattern's wildcard and address parts want, then a miss. */
const CRAFTED = [
  ' from 203.0.113.9 port 22 ssh2'.repeat(2200),
  'a'.repeat(KIB64),
  ':'.repeat(KIB64),
  '1.'.repeat(KIB64 / 2),
  ' for '.repeat(KIB64 / 5),
  '0:'.repeat(KIB64 / 2),
  "' from ".repeat(KIB64 / 7),
  ' 203.0.113.9 port 22 [preauth]'.repeat(2200),
  ' because '.repeat(KIB64 / 9),
  ': '.repeat(KIB64 / 2),
  '[203.0.113.9]:22 '.repeat(KIB64 / 17),
  ' via '.repeat(KIB64 / 5),
  'port 1:2: '.repeat(KIB64 / 10),
  ' user '.repeat(KIB64 / 6),
];
const PATTERNS_JS = JSON.stringify(require.resolve('../../src/patterns'));
const RELAY_PREFIX = '(?:\\[ID \\d+ [a-z0-9]+\\.[a-z]+\\] )?';

// One real line per shipped sshd pattern, %U% where sshd writes attacker text (a user name, a
// client string). Filled with 64 KiB of text that repeats the line's own fixed parts around an
// injected address, each line must still yield the real client, and nothing once its tail is broken.
const REAL = '198.51.100.50';
const LONG_LINES = [
  `Failed password for root from ${REAL} port 4000 ssh2`,
  `Failed password for invalid user %U% from ${REAL} port 4000 ssh2`,
  `Failed hostbased for %U% from ${REAL} port 4000 ssh2: RSA SHA256:abc, client user "%U%", client host "h"`,
  `error: maximum authentication attempts exceeded for invalid user %U% from ${REAL} port 4000 ssh2 [preauth]`,
  `Disconnecting invalid user %U% ${REAL} port 4000: Too many authentication failures [preauth]`,
  `Disconnecting invalid user x ${REAL} port 4000: Change of username or service not allowed: (x,ssh-connection) -> (%U%`,
  `Disconnecting authenticating user %U% ${REAL} port 4000: Bad packet length 1349676916. [preauth]`,
  `error: PAM: Authentication failure for illegal user %U% from ${REAL} via 192.0.2.1`,
  `Invalid user %U% from ${REAL} port 4000`,
  `User %U% from ${REAL} not allowed because not listed in AllowUsers`,
  `ROOT LOGIN REFUSED FROM ${REAL} port 4000 [preauth]`,
  `error: Received disconnect from ${REAL} port 4000:3: %U% [preauth]`,
  `Connection closed by invalid user %U% ${REAL} port 4000 [preauth]`,
  `Connection closed by ${REAL} port 4000 [preauth]`,
  `Did not receive identification string from ${REAL} port 4000`,
  `Bad protocol version identification '%U%' from ${REAL} port 4000`,
  `banner exchange: Connection from ${REAL} port 4000: invalid format`,
  `banner exchange: Connection from ${REAL} port 4000: %U%`,
  `fatal: Unable to negotiate with ${REAL} port 4000: no matching key exchange method found. Their offer: %U%`,
  `Unable to negotiate with ${REAL} port 4000: no matching cipher found. Their offer: %U%`,
  `fatal: Timeout before authentication for ${REAL} port 4000`,
  `Timeout before authentication for connection from ${REAL} to 192.0.2.1, pid = 4242`,
  `drop connection #3 from [${REAL}]:4000 on [192.0.2.1]:22 penalty: %U%`,
  `refused connect from scanner.example.net (${REAL})`,
];

/** Run `script` in a child node with a deadline; returns its stdout. A stall is a kill, and fails. */
function inChild(script: string, deadlineMs = 120_000): string {
  const r = spawnSync(process.execPath, ['-e', script], { timeout: deadlineMs, encoding: 'utf8', maxBuffer: 1 << 24 });
  assert.equal(r.signal, null, `the child did not finish within ${deadlineMs} ms: matching stalled`);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('redos: every shipped pattern completes on 64 KiB crafted messages', () => {
  const files = loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns');
  let runs = 0;
  for (const f of files) {
    for (const p of f.patterns) {
      // the head of the pattern (its literal start, after the optional relay and level prefixes)
      // followed by crafted text, so the wildcard parts run
      const head = p.source.replace(/^\^/, '').replace(RELAY_PREFIX, '').replace(/^\(\?:(error|fatal): \)\?/, '$1: ').split(/[\\(<[.]/)[0];
      assert.ok(head.length >= 4 || f.name !== 'sshd.json', `${p.name}: no literal head found for the crafted text`);
      for (const body of CRAFTED) {
        const text = (head + body).slice(0, KIB64) + '!';
        const m = new Matcher([{ ...f, patterns: [p] }]);
        // The matcher refuses a 64 KiB message (length cap); the compiled regex is also run on it directly.
        assert.equal(m.match({ cursor: 'c', realtime: 0, fields: { MESSAGE: text, ...Object.fromEntries(f.filter[0].map((t) => t.split('='))) } }), null);
        assert.equal(m.metrics.oversizedMessages, 1);
        assert.equal(compilePattern(p.source).regex.test(text), false);
        runs++;
      }
    }
  }
  assert.ok(runs >= 18 * CRAFTED.length, `only ${runs} runs`);
});

test('redos: 64 KiB lines repeating each wording around an injected address yield the real client, or nothing once broken', () => {
  const files = loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns').filter((f) => f.name === 'sshd.json');
  const patterns = files.flatMap((f) => f.patterns);
  assert.equal(LONG_LINES.length, patterns.length, 'one line per shipped sshd pattern');
  const script = `
    const { compilePattern } = require(${PATTERNS_JS});
    const [sources, lines] = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    const out = [];
    sources.forEach((source, i) => {
      const re = compilePattern(source).regex;
      const line = lines[i];
      // the line's own text, with the real address swapped for the victim's, repeated as the user name
      const unit = ' ' + line.split('%U%').join('x').split('${REAL}').join('203.0.113.9') + ' ';
      const filler = unit.repeat(Math.ceil(${KIB64} / unit.length)).slice(0, ${KIB64});
      const text = line.split('%U%').join(line.includes('%U%') ? filler.replace(/"/g, '') : '');
      const m = re.exec(line.includes('%U%') ? text : filler.replace(/"/g, '') + text);
      // a pattern ending in free text (.* or .+ before $) matches a longer tail too: nothing to break
      const broken = !/\\.[*+]\\$$/.test(source) && re.test(text + ' !');
      out.push([m ? (m.groups && m.groups.ip) || m[1] : null, broken]);
    });
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['-e', script], { input: JSON.stringify([patterns.map((p) => p.source), LONG_LINES]), timeout: 300_000, encoding: 'utf8' });
  assert.equal(r.signal, null, 'a 64 KiB line stalled the matcher');
  assert.equal(r.status, 0, r.stderr);
  const results = JSON.parse(r.stdout) as Array<[string | null, boolean]>;
  const wrong = results.map(([got, broken], i) => ({ i, got, broken })).filter(({ i, got, broken }) => broken || (LONG_LINES[i].includes('%U%') ? got !== null && got !== REAL : got !== null));
  assert.deepEqual(wrong.map(({ i, got, broken }) => `${patterns[i].name}: got ${got}${broken ? ', matched when broken' : ''}`), []);
  // the lines with attacker text do match at 64 KiB (an unmatched long line would prove nothing)
  assert.ok(results.filter(([got], i) => LONG_LINES[i].includes('%U%') && got === REAL).length >= 12, JSON.stringify(results));
});

test('redos: every loaded pattern is one the linear-time engine runs (so V8\'s fallback never declines it)', () => {
  const { setFlagsFromString } = require('node:v8') as typeof import('node:v8');
  setFlagsFromString('--enable-experimental-regexp-engine');
  for (const f of loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns')) {
    for (const p of f.patterns) assert.ok(new RegExp(compilePattern(p.source).regex.source, 'l'), p.name);
  }
  // The old <IP> expansion, which the engine declined (so every pattern using it kept backtracking).
  assert.throws(() => new RegExp('(?:[0-9a-fA-F]{0,4}:){2,7}', 'l'), /linear/);
});

test('redos: tallow test --patterns FILE runs the same engine (a crafted line finishes)', () => {
  const dir = mkdtempSync(join(tmpdir(), `tallow-redos-${process.pid}-`));
  try {
    // Polynomial (n^3) in a backtracking engine, and accepted by the old structural check too: it
    // finishes only when V8 falls back to the linear engine, which tallow test once never enabled.
    const file = join(dir, 'evil.json');
    writeFileSync(file, JSON.stringify([{ filter: '_UID=0', items: [{ ban: 0, score: 1, pattern: '^(?:a|b)*(?:a|c)*(?:a|d)*x from <IP>$' }] }]));
    const input = join(dir, 'input.log');
    writeFileSync(input, `${'a'.repeat(8000)} from 192.0.2.1!\n`);
    const cli = require.resolve('../../src/cli');
    const r = spawnSync(process.execPath, [cli, 'test', '--config', '/dev/null', '--patterns', file, input], { timeout: 60_000, encoding: 'utf8' });
    assert.equal(r.signal, null, 'tallow test stalled on the crafted line');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /^Read 1 line from .*: 0 matched, 1 not matched\.$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Issue 11 point 3, as reproduced: each stalled the daemon (or the checker) before.
const REFUSED: Array<[string, RegExp]> = [
  ['^Invalid user (?=(?:\\w+)+ from ).* from <IP> port <PORT>$', /^\/etc\/tallow\/evil\.json: item 2: lookaround/],
  ['^Invalid user (?!x)(?<=y).* from <IP>$', /^\/etc\/tallow\/evil\.json: item 2: lookaround/],
  ['^(\\w{1,16}){1,16}$', /^\/etc\/tallow\/evil\.json: item 2: repeats nested too deep: their counts multiply to 256/],
  ['(.*)(.*)(.*)(.*)\\1 from <IP>$', /^\/etc\/tallow\/evil\.json: item 2: backreference \\1/],
  ['(?<u>.*) \\k<u> from <IP>$', /^\/etc\/tallow\/evil\.json: item 2: backreference \\k</],
  ['(?<ip>x)\\k<ip', /^\/etc\/tallow\/evil\.json: item 2: regex does not compile/],
  ['(?:[0-9a-f]{0,4}:){2,7}(\\S+)', /^\/etc\/tallow\/evil\.json: item 2: repeats nested too deep: their counts multiply to 28/],
  ['^(?:<IP> )+$', /^\/etc\/tallow\/evil\.json: item 2: repeats nested too deep/],
  ['^.{1,200} from (\\S+)$', /^\/etc\/tallow\/evil\.json: item 2: repeat count \{1,200\} above 16/],
  // refused by the old structural check too; a repeated group that can match nothing is refused now
  ['(\\d*)*<IP>', /^\/etc\/tallow\/evil\.json: item 2: a repeated or optional group that can match nothing/],
  ['^(?:a|)+b (\\S+)$', /^\/etc\/tallow\/evil\.json: item 2: a repeated or optional group that can match nothing/],
];

test('redos: what the linear engine cannot run is refused with file: item N (and the checker returns)', () => {
  for (const [pattern, why] of REFUSED) {
    const text = JSON.stringify([{ filter: 'A=b', items: [{ ban: 0, score: 1, pattern: '^ok (\\S+)$' }, { ban: 0, score: 1, pattern }] }]);
    assert.throws(() => parsePatternFile(text, 'evil.json', '/etc/tallow/evil.json'), (e: unknown) => e instanceof PatternError && why.test(e.message), pattern);
  }
});

// Classic exponential shapes (refused by the old structural check): the engine now runs them in
// linear time, so they load, and a child proves they finish on 16 KiB adversarial input (a
// backtracking engine never finishes on 40 characters of the right text).
const CATASTROPHIC = ['^(a+)+$ (\\S+)', '(\\w+\\s?)*$ from (\\S+)', '^(a|aa)*b <IP>', '(x+x+)+y (\\d+)', '^(?:.*,)*x(\\S+)',
  '^(?:a|b)*(?:a|c)*(?:a|d)*$(x)', '^(?:\\w+)+ from <IP> port <PORT>$', '^(.*)(.*)(.*)(.*)x from <IP>$'];

test('redos: classic catastrophic shapes load and finish on 16 KiB adversarial input', () => {
  for (const pattern of CATASTROPHIC) {
    const text = JSON.stringify([{ filter: 'A=b', items: [{ ban: 0, score: 1, pattern }] }]);
    assert.equal(parsePatternFile(text, 'evil.json', '/etc/tallow/evil.json')[0].patterns.length, 1, pattern);
  }
  const out = inChild(`
    const { compilePattern } = require(${PATTERNS_JS});
    const bodies = ['a', 'x', ',', '1', 'aab', ' from 203.0.113.9 port 22', '0'];
    let runs = 0;
    for (const p of ${JSON.stringify(CATASTROPHIC)}) {
      const re = compilePattern(p).regex;
      for (const b of bodies) {
        const s = b.repeat(Math.ceil(16384 / b.length)).slice(0, 16384) + '!';
        re.test(s);
        runs++;
      }
    }
    process.stdout.write(String(runs));`);
  assert.equal(out, String(CATASTROPHIC.length * 7));
  assert.equal(CATASTROPHIC.length, 8);
});
