// Property tests of the pattern engine: random patterns from the accepted syntax against adversarial
// inputs all finish (in a child with a deadline: a stall blocks the event loop, so only a separate
// process can be timed out), the linear engine agrees with JavaScript's own on short inputs, and
// the loader never hangs nor throws anything but PatternError on random or truncated patterns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { shippedPatternsDir } from '../../src/patterns';

const PATTERNS_JS = JSON.stringify(require.resolve('../../src/patterns'));

/** Small deterministic PRNG (mulberry32): the same patterns on every run, so a failure reproduces. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ATOMS = ['a', 'b', ' ', ':', '.', '1', 'x', '\\.', '[ab]', '[^ ]', '\\w', '\\S', '\\d', '.', '\\s', '[0-9a-f:]', '\\b'];
const QUANTS = ['*', '+', '?', '{0,3}', '{1,2}', '*?', '+?', '{2,}', '{3}', ''];
/** Inside groups mostly these, so that most groups consume a character and may be repeated. */
const QUANTS_NON_EMPTY = ['+', '', '{1,2}', '{2,}', '{3}', '+?'];

/** A random pattern of the accepted syntax: atoms, groups, alternations, every quantifier kind, nested. */
function randomPattern(rnd: () => number): string {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
  const seq = (depth: number): string => {
    let s = '';
    const n = 1 + Math.floor(rnd() * 3);
    for (let i = 0; i < n; i++) {
      const r = rnd();
      let atom: string;
      if (depth < 2 && r < 0.25) atom = `(?:${seq(depth + 1)})`;
      else if (depth < 2 && r < 0.4) atom = `(?:${seq(depth + 1)}|${seq(depth + 1)}${rnd() < 0.1 ? '|' : ''})`;
      else atom = pick(ATOMS);
      s += atom === '\\b' ? atom : atom + pick(depth > 0 && rnd() < 0.7 ? QUANTS_NON_EMPTY : QUANTS);
    }
    return s;
  };
  const tail = pick(['(\\S+)$', ' from <IP> port <PORT>$', '(x*)', ' (?<ip>[0-9.]+)', '(.*)$']);
  return `${rnd() < 0.5 ? '^' : ''}${seq(0)}${tail}`;
}

test('linear: 3,000 random patterns of the accepted syntax finish on adversarial 2 KiB inputs', () => {
  const rnd = prng(20251121);
  const patterns = Array.from({ length: 3000 }, () => randomPattern(rnd));
  const script = `
    const { compilePattern } = require(${PATTERNS_JS});
    const patterns = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    const inputs = ['a', ' ', ':1.', 'x', 'a1 b: ', ' from 203.0.113.9 port 22'];
    let accepted = 0, refused = 0, runs = 0;
    for (const p of patterns) {
      let re;
      try {
        re = compilePattern(p).regex;
      } catch (e) {
        if (!/^(repeats nested too deep|repeat count|a repeated or optional group that can match nothing)/.test(e.message)) throw new Error(p + ': ' + e.message);
        refused++;
        continue;
      }
      accepted++;
      // near-matches: long runs of what the pattern's own parts want, then a character that breaks the tail
      const own = p.replace(/[^a-z1 :.]/g, '') || 'a';
      for (const b of [...inputs, own]) {
        const s = b.repeat(Math.ceil(2048 / b.length)).slice(0, 2048);
        re.exec(s + '!'); re.exec(s + ' from 203.0.113.9 port 2x');
        runs += 2;
      }
    }
    process.stdout.write(JSON.stringify({ accepted, refused, runs }));`;
  const r = spawnSync(process.execPath, ['-e', script], { input: JSON.stringify(patterns), timeout: 300_000, encoding: 'utf8' });
  assert.equal(r.signal, null, 'the child did not finish within its deadline: some match stalled');
  assert.equal(r.status, 0, r.stderr);
  const { accepted, refused, runs } = JSON.parse(r.stdout) as { accepted: number; refused: number; runs: number };
  assert.equal(accepted + refused, patterns.length);
  assert.ok(accepted >= 2000, `only ${accepted} of ${patterns.length} random patterns accepted (${refused} refused)`);
  assert.equal(runs, accepted * 14);
});

test('linear: the engine finds the same match as JavaScript\'s backtracking engine on short inputs', () => {
  const rnd = prng(7);
  const { compilePattern } = require('../../src/patterns') as typeof import('../../src/patterns');
  const alphabet = ['a', 'b', ' ', ':', '.', '1', 'x', 'f'];
  let compared = 0;
  const differ: string[] = [];
  for (let i = 0; i < 1500; i++) {
    const p = randomPattern(rnd);
    let backtracking: RegExp;
    try {
      backtracking = compilePattern(p).regex;
    } catch {
      continue;
    }
    const linear = new RegExp(backtracking.source, 'l'); // what V8 falls back to after too many backtracks
    for (let k = 0; k < 8; k++) {
      let s = '';
      const n = Math.floor(rnd() * 10);
      for (let j = 0; j < n; j++) s += alphabet[Math.floor(rnd() * alphabet.length)];
      const a = linear.exec(s);
      const b = backtracking.exec(s);
      compared++;
      if (JSON.stringify(a && [a.index, ...a]) !== JSON.stringify(b && [b.index, ...b])) differ.push(`${p} on ${JSON.stringify(s)}`);
    }
  }
  assert.deepEqual(differ.slice(0, 10), []);
  assert.ok(compared > 6000, `only ${compared} comparisons`);
});

test('linear: the loader never hangs and throws only PatternError on random and truncated patterns', () => {
  const shipped = readFileSync(join(shippedPatternsDir(), 'sshd.json'), 'utf8');
  const sources: string[] = (JSON.parse(shipped) as Array<{ items: Array<{ pattern: string }> }>).flatMap((b) => b.items.map((i) => i.pattern));
  sources.push('^Invalid user (?=(?:\\w+)+ from ).* from <IP> port <PORT>$', '(.*)(.*)(.*)(.*)\\1 from <IP>$', '(?<ip>x)\\k<ip>', '(?<u>a)\\k<u>(b)');
  const cases: string[] = [];
  for (const s of sources) for (let n = 0; n <= s.length; n++) cases.push(s.slice(0, n), s.slice(n));
  const rnd = prng(11);
  const pieces = ['(', ')', '(?:', '(?<', '(?<ip>', '(?=', '(?<!', '\\k<', '\\k', '>', '<IP>', '<PORT>', '[', ']', '[^', '\\', '{', '}', '{1,', '{2}', '{,3}',
    '*', '+', '?', '|', '^', '$', '.', 'a', '\\1', '\\d', '\\u00', '\\x4', '\\c', '-', ',', '1', '99999999999999999999'];
  for (let i = 0; i < 20000; i++) {
    let s = '';
    const n = Math.floor(rnd() * 12);
    for (let j = 0; j < n; j++) s += pieces[Math.floor(rnd() * pieces.length)];
    cases.push(s);
  }
  const script = `
    const { parsePatternFile, PatternError } = require(${PATTERNS_JS});
    const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    const shipped = ${JSON.stringify(shipped)};
    let loaded = 0, refused = 0;
    const files = cases.map((pattern) => JSON.stringify([{ filter: 'A=b', items: [{ ban: 0, score: 1, pattern }] }]));
    for (let n = 0; n < shipped.length; n += 7) files.push(shipped.slice(0, n));
    for (const text of files) {
      try { parsePatternFile(text, 'f.json', '/p/f.json'); loaded++; }
      catch (e) {
        if (!(e instanceof PatternError)) { process.stderr.write(text + ': ' + e); process.exit(3); }
        refused++;
      }
    }
    process.stdout.write(JSON.stringify({ loaded, refused }));`;
  const r = spawnSync(process.execPath, ['-e', script], { input: JSON.stringify(cases), timeout: 120_000, encoding: 'utf8', maxBuffer: 1 << 24 });
  assert.equal(r.signal, null, 'the loader did not return within its deadline');
  assert.equal(r.status, 0, r.stderr);
  const { loaded, refused } = JSON.parse(r.stdout) as { loaded: number; refused: number };
  assert.ok(loaded > 100 && refused > 10000, `loaded ${loaded}, refused ${refused}`);
});
