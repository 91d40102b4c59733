// Matching never runs super-linear in the message length. Asserts outcomes (pattern rejected, or
// match completed), never a time: a stall would hang and fail the test by its timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { compilePattern, loadPatternFiles, parsePatternFile, PatternError, shippedPatternsDir } from '../../src/patterns';
import { backtrackingRisk } from '../../src/regex-safety';
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
];

test('redos: every shipped pattern completes on 64 KiB crafted messages', () => {
  const files = loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns');
  let runs = 0;
  for (const f of files) {
    for (const p of f.patterns) {
      // the head of the pattern (its literal start) followed by crafted text, so the wildcard parts run
      const head = p.source.replace(/^\^/, '').split(/[\\(<[.]/)[0];
      for (const body of CRAFTED) {
        const text = (head + body).slice(0, KIB64) + '!';
        const m = new Matcher([{ ...f, patterns: [p] }]);
        // The matcher refuses a 64 KiB message (length cap); the compiled regex is also run on it directly.
        assert.equal(m.match({ cursor: 'c', realtime: 0, fields: { MESSAGE: text, ...Object.fromEntries(f.filter[0].map((t) => t.split('='))) } }), null);
        assert.equal(compilePattern(p.source).regex.test(text), false);
        runs++;
      }
    }
  }
  assert.ok(runs > 100);
});

test('redos: catastrophic user patterns are rejected with file: item N', () => {
  for (const pattern of ['^(a+)+$', '(\\w+\\s?)*$ from (\\S+)', '^(a|aa)*b <IP>', '(x+x+)+y (\\d+)', '^(?:.*,)*x(\\S+)', '(\\d*)*<IP>']) {
    const text = JSON.stringify([{ filter: 'A=b', items: [{ ban: 0, score: 1, pattern: '^ok (\\S+)$' }, { ban: 0, score: 1, pattern }] }]);
    assert.throws(() => parsePatternFile(text, 'evil.json', '/etc/tallow/evil.json'),
      (e: unknown) => e instanceof PatternError && /^\/etc\/tallow\/evil\.json: item 2: (nested quantifier|repeated alternatives)/.test(e.message), pattern);
  }
});

test('redos: safe shapes are accepted (tallow\'s own patterns, bounded repeats, delimited repeats)', () => {
  for (const s of ['MESSAGE=Failed .* for .* from ([0-9a-z:.]+) port \\d+ ssh2', '(?:[0-9a-f]{0,4}:){2,7}', '[a-z]+(?:-[a-z]+)*',
    '(?:\\.\\d{1,3}){3}', 'pam_unix[(]dovecot:auth[)]: authentication failure; .* ruser=.*@.* rhost=([0-9a-z:.]+)']) {
    assert.equal(backtrackingRisk(s), null, s);
  }
});

test('redos: V8 falls back to its linear engine for shapes the check does not know', () => {
  // polynomial in a backtracking engine, and not refused by the structural check
  assert.equal(backtrackingRisk('^(?:a|b)*(?:a|c)*(?:a|d)*$'), null);
  // Run in a child with a deadline: a stalled regex blocks the event loop, so no in-process timer fires.
  const script = `
    require(${JSON.stringify(require.resolve('../../src/patterns'))}).enableLinearFallback();
    const s = 'a'.repeat(${KIB64});
    if (/^(?:a|b)*(?:a|c)*(?:a|d)*$/.test(s + 'e')) process.exit(2);
    if (/^(a+)+$/.test(s + 'b')) process.exit(3); // exponential, compiled directly (bypassing the check)
    process.stdout.write('done');`;
  const r = spawnSync(process.execPath, ['-e', script], { timeout: 60_000, encoding: 'utf8' });
  assert.equal(r.signal, null, 'regex stalled: the linear-engine fallback is not active');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'done');
});
