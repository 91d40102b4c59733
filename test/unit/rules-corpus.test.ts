// The shipped rules against tables of log lines (test/fixtures/corpus/RULE.txt, format in the
// README there): each line gives the address it must yield, or NONE. Adding a case is adding a line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadPatternFiles, parsePatternFile, shippedPatternsDir, type PatternFile } from '../../src/patterns';
import { Matcher, type Match } from '../../src/matcher';

const root = join(__dirname, '..', '..', '..');
const corpusDir = join(root, 'test', 'fixtures', 'corpus');
const VICTIM = '203.0.113.9';
const REAL = '198.51.100.50';

interface Case {
  where: string; // corpus/nginx.txt:12
  expected: string | null;
  message: string;
  fields: Record<string, string>;
}

/** `@long ADDRESS|NONE<TAB>TEMPLATE`: the client is REAL; %U% is filled with 64 KiB of the line's own text, REAL swapped for VICTIM. */
interface Long {
  where: string;
  expected: string | null;
  template: string;
}

interface Fixture {
  rule: string; // 'nginx'
  cases: Case[];
  longs: Long[];
}

function readFixture(file: string, rule: string): Fixture {
  const name = file.slice(root.length + 1);
  const cases: Case[] = [];
  const longs: Long[] = [];
  let fields: Record<string, string> | null = null;
  readFileSync(file, 'utf8').split('\n').forEach((text, i) => {
    const where = `${name}:${i + 1}`;
    if (text === '' || text.startsWith('#')) return;
    if (text.startsWith('@fields ')) {
      fields = Object.fromEntries(text.slice(8).trim().split(/ +/).map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)]));
      return;
    }
    const long = text.startsWith('@long ');
    const body = long ? text.slice(6) : text;
    const tab = body.indexOf('\t');
    if (tab < 0) throw new Error(`${where}: no TAB between address and message`);
    if (!fields) throw new Error(`${where}: no @fields line before the first case`);
    const expected = body.slice(0, tab) === 'NONE' ? null : body.slice(0, tab);
    let message = body.slice(tab + 1);
    if (message.startsWith('"')) message = JSON.parse(message) as string;
    if (long) longs.push({ where, expected, template: message });
    else cases.push({ where, expected, message, fields });
  });
  return { rule, cases, longs };
}

/** sshd's own corpus (older, one file for sshd.json) is read with its fields as corpus.test.ts does. */
const SSHD_FIELDS = { _EXE: '/usr/sbin/sshd', _UID: '0', SYSLOG_IDENTIFIER: 'sshd' };
function sshdCorpus(): Fixture {
  const name = 'test/fixtures/sshd-corpus.txt';
  const cases: Case[] = [];
  readFileSync(join(root, name), 'utf8').split('\n').forEach((text, i) => {
    if (text === '' || text.startsWith('#')) return;
    const tab = text.indexOf('\t');
    cases.push({ where: `${name}:${i + 1}`, expected: text.slice(0, tab) === 'NONE' ? null : text.slice(0, tab), message: text.slice(tab + 1), fields: SSHD_FIELDS });
  });
  return { rule: 'sshd', cases, longs: [] };
}

const fixtures: Fixture[] = readdirSync(corpusDir)
  .filter((f) => f.endsWith('.txt'))
  .sort()
  .map((f) => readFixture(join(corpusDir, f), f.replace(/\.txt$/, '')));

/** A shipped rule file as loaded, every rule in it switched on (the corpus tests patterns, not `enabled`). */
function shippedRule(rule: string): PatternFile[] {
  const path = join(shippedPatternsDir(), `${rule}.json`);
  const doc = JSON.parse(readFileSync(path, 'utf8')) as Array<Record<string, unknown>>;
  for (const block of doc) delete block.enabled;
  return parsePatternFile(JSON.stringify(doc), `${rule}.json`, path);
}

const shippedRules = readdirSync(shippedPatternsDir())
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.replace(/\.json$/, ''))
  .sort();

const match = (m: Matcher, c: Case): Match | null => m.match({ cursor: 'c', realtime: 0, fields: { ...c.fields, MESSAGE: c.message } });

test('rules corpus: every shipped rule but sshd has a fixture, and every fixture a shipped rule', () => {
  assert.deepEqual(fixtures.map((f) => f.rule), shippedRules.filter((r) => r !== 'sshd'));
});

test('rules corpus: every line yields its annotated address (or none), on the rule\'s own patterns', () => {
  const failures: string[] = [];
  let n = 0;
  for (const fx of fixtures) {
    const matcher = new Matcher(shippedRule(fx.rule));
    for (const c of fx.cases) {
      const m = match(matcher, c);
      const got = m ? m.address : null;
      n++;
      if (got !== c.expected) failures.push(`${c.where}: expected ${c.expected ?? 'NONE'}, got ${got ?? 'NONE'}${m ? ` (${m.pattern.name})` : ''}: ${JSON.stringify(c.message)}`);
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(n >= 150, `only ${n} lines`);
});

test('rules corpus: every pattern of every shipped rule is exercised by a line', () => {
  const unused: string[] = [];
  for (const fx of fixtures) {
    const files = shippedRule(fx.rule);
    const matcher = new Matcher(files);
    const used = new Set(fx.cases.map((c) => match(matcher, c)?.pattern.name).filter((x) => x !== undefined));
    for (const p of files.flatMap((f) => f.patterns)) if (!used.has(p.name)) unused.push(p.name);
  }
  assert.deepEqual(unused, []);
});

test('rules corpus: every fixture has near misses and injection lines, and no injection yields the injected address', () => {
  for (const fx of fixtures) {
    const where = `corpus/${fx.rule}.txt`;
    assert.ok(fx.cases.filter((c) => c.expected === null).length >= 3, `${where}: fewer than 3 NONE lines`);
    const injections = fx.cases.filter((c) => c.message.includes(VICTIM));
    assert.ok(injections.length >= 3, `${where}: fewer than 3 lines carrying the injected ${VICTIM}`);
    assert.deepEqual(injections.filter((c) => c.expected === VICTIM).map((c) => c.where), [], `${where}: ${VICTIM} is the injected address, never the client`);
    // ...and some of them still yield the real client: an unmatched injection proves little
    assert.ok(injections.some((c) => c.expected !== null), `${where}: every injection line is NONE`);
  }
});

// An entry scores at most once (the first file, in name order, whose filter selects it and one of
// whose patterns matches). Only sshd and sshd-scanners read the same entries and share wordings:
// with sshd-scanners on, it takes them (its file sorts first); off, sshd scores them as before.
test('rules corpus: no line is scored by two rules, except the scanner lines sshd-scanners takes from sshd', () => {
  const each = shippedRules.map((r) => ({ rule: r, matcher: new Matcher(shippedRule(r)) }));
  // As the daemon loads them (file name order), every rule on.
  const loaded = loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns');
  const all = new Matcher(loaded);
  const withoutScanners = new Matcher(loaded.filter((f) => f.name !== 'sshd-scanners.json'));
  const wrong: string[] = [];
  let shared = 0;
  for (const fx of [...fixtures, sshdCorpus()]) {
    for (const c of fx.cases) {
      const scoring = each.filter(({ matcher }) => {
        const m = match(matcher, c);
        // A notify rule never scores (its matches are login alerts).
        return m !== null && m.rule.action !== 'notify' && (m.pattern.score > 0 || m.pattern.ban > 0);
      }).map((x) => x.rule);
      const first = match(all, c);
      if (scoring.length > 1) {
        if (scoring.join(',') !== 'sshd,sshd-scanners') wrong.push(`${c.where}: scored by ${scoring.join(' and ')}`);
        else if (first?.file !== 'sshd-scanners.json') wrong.push(`${c.where}: with every rule on, ${first?.file ?? 'no rule'} takes it, not sshd-scanners`);
        else if (match(withoutScanners, c)?.file !== 'sshd.json') wrong.push(`${c.where}: with sshd-scanners off, sshd does not score it`);
        else shared++;
      } else if (scoring.length === 1 && first?.file !== `${scoring[0]}.json`) {
        wrong.push(`${c.where}: scored by ${scoring[0]} alone, but ${first?.file ?? 'no rule'} takes it first`);
      }
    }
  }
  assert.deepEqual(wrong, []);
  assert.ok(shared >= 10, `only ${shared} scanner lines shared by sshd and sshd-scanners`);
});

test('rules corpus: 64 KiB lines repeating each wording around an injected address give the annotated outcome, and finish', () => {
  const jobs: Array<{ where: string; expected: string | null; sources: string[]; template: string }> = [];
  for (const fx of fixtures) {
    const sources = shippedRule(fx.rule).flatMap((f) => f.patterns.map((p) => p.source));
    for (const l of fx.longs) {
      if (!l.template.includes(REAL) || !l.template.includes('%U%') || (l.expected !== null && l.expected !== REAL)) throw new Error(`${l.where}: a @long template holds the client ${REAL}, %U%, and expects ${REAL} or NONE`);
    }
    for (const l of fx.longs) jobs.push({ where: l.where, expected: l.expected, sources, template: l.template });
  }
  assert.ok(jobs.length >= fixtures.length * 2, `only ${jobs.length} @long lines`);
  // In a child with a deadline: a stall is a kill, and fails. Every pattern of the rule is tried, first match wins.
  const script = `
    const { compilePattern } = require(${JSON.stringify(require.resolve('../../src/patterns'))});
    const { parseAddress } = require(${JSON.stringify(require.resolve('../../src/address'))});
    const jobs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    const out = jobs.map((j) => {
      const real = j.template.split('%U%').join('x');
      const unit = ' ' + real.split('${REAL}').join('${VICTIM}') + ' ';
      const filler = unit.repeat(Math.ceil(65536 / unit.length)).slice(0, 65536);
      const text = j.template.split('%U%').join(filler);
      for (const s of j.sources) {
        const m = compilePattern(s).regex.exec(text);
        if (m) { const a = parseAddress((m.groups && m.groups.ip) || m[1]); return a ? a.address : 'invalid'; }
      }
      return null;
    });
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['-e', script], { input: JSON.stringify(jobs), timeout: 300_000, encoding: 'utf8', maxBuffer: 1 << 24 });
  assert.equal(r.signal, null, 'a 64 KiB line stalled the matcher');
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout) as Array<string | null>;
  const wrong = jobs.map((j, i) => (got[i] === j.expected ? null : `${j.where}: expected ${j.expected ?? 'NONE'}, got ${got[i] ?? 'NONE'}`)).filter((x) => x !== null);
  assert.deepEqual(wrong, []);
  assert.ok(got.filter((a) => a !== null).length >= fixtures.length, 'too few 64 KiB lines still yield their client: the test would prove little');
});

test('rules corpus: tallow.patterns(5) SHIPPED RULES gives each shipped rule\'s unit and policy as its file does', () => {
  const r = spawnSync('mandoc', ['-T', 'utf8', '-O', 'width=200', join(root, 'man', 'tallow.patterns.5')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mandoc (scripts/deps.sh installs it): ${r.stderr}`);
  const text = r.stdout.replace(/.\x08/g, '');
  const section = text.slice(text.indexOf('\nSHIPPED RULES\n'), text.indexOf('\nEXAMPLES\n'));
  // entries: a tag at 7 columns, its text beside or below it at 14; the prose before the first is skipped
  const rules = new Set(shippedRules);
  const entries = new Map<string, string>();
  let tag = '';
  for (const line of section.split('\n')) {
    const m = /^ {7}(\S+)(?: +(.*))?$/.exec(line);
    if (m && (tag !== '' || rules.has(m[1]))) {
      tag = m[1];
      entries.set(tag, m[2] ?? '');
    } else if (tag) entries.set(tag, `${entries.get(tag)} ${line.trim()}`);
  }
  const wrong: string[] = [];
  for (const rule of shippedRules.filter((x) => x !== 'sshd')) {
    const entry = entries.get(rule)?.replace(/\s+/g, ' ');
    if (!entry) {
      wrong.push(`${rule}: no entry`);
      continue;
    }
    const keys = Object.assign({}, ...(JSON.parse(readFileSync(join(shippedPatternsDir(), `${rule}.json`), 'utf8')) as object[])) as Record<string, unknown>;
    const units = (JSON.parse(readFileSync(join(shippedPatternsDir(), `${rule}.json`), 'utf8')) as Array<{ unit?: string }>).map((b) => b.unit).filter(Boolean);
    if (keys.action === 'notify') {
      // A notify rule has no policy: the entry says what it is.
      if (keys.enabled !== false) wrong.push(`${rule}: ships on`);
      if (!/a notify rule/.test(entry)) wrong.push(`${rule}: the entry does not say it is a notify rule`);
      continue;
    }
    const ports = `${(keys.ports as number[]).join(', ')}${keys.protocol ? `/${keys.protocol}` : ''}`;
    const want = [`ports? ${ports}(?![0-9/])`, `threshold ${keys.threshold}, findtime ${keys.findtime} s, bantime ${keys.bantime} s\\.`, ...units.map((u) => `unit ${u!.replace(/[.@-]/g, '\\$&')}`)];
    if (keys.enabled !== false) wrong.push(`${rule}: ships on`);
    for (const w of want) if (!new RegExp(w).test(entry)) wrong.push(`${rule}: the entry does not say /${w}/`);
  }
  assert.deepEqual(wrong, []);
  assert.deepEqual([...entries.keys()].sort(), shippedRules.filter((x) => x !== 'sshd'));
});
