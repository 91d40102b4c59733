// The shipped sshd patterns against a table of log lines (test/fixtures/sshd-corpus.txt):
// each line gives the address it must yield, or NONE. Adding a case is adding a line. sshd.json's
// own blocks only: the other shipped rules have their corpus in test/fixtures/corpus/ (and
// test/unit/rules-corpus.test.ts checks which rule takes the lines sshd-scanners shares with sshd).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPatternFiles, shippedPatternsDir } from '../../src/patterns';
import { Matcher } from '../../src/matcher';

const root = join(__dirname, '..', '..', '..');
const corpus = readFileSync(join(root, 'test', 'fixtures', 'sshd-corpus.txt'), 'utf8');

interface Case {
  line: number;
  expected: string | null;
  message: string;
}

const cases: Case[] = [];
corpus.split('\n').forEach((text, i) => {
  if (text === '' || text.startsWith('#')) return;
  const tab = text.indexOf('\t');
  if (tab < 0) throw new Error(`sshd-corpus.txt:${i + 1}: no TAB between address and message`);
  const expected = text.slice(0, tab);
  cases.push({ line: i + 1, expected: expected === 'NONE' ? null : expected, message: text.slice(tab + 1) });
});

const sshdFiles = () => loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns').filter((f) => f.name === 'sshd.json');

test('sshd corpus: every line yields its annotated address (or none)', () => {
  const files = sshdFiles();
  const matcher = new Matcher(files);
  assert.ok(cases.length >= 80, `corpus has only ${cases.length} cases`);
  const failures: string[] = [];
  for (const c of cases) {
    const m = matcher.match({ cursor: 'c', realtime: 1, fields: { MESSAGE: c.message, _EXE: '/usr/sbin/sshd', _UID: '0' } });
    const got = m ? m.address : null;
    if (got !== c.expected) {
      failures.push(`line ${c.line}: expected ${c.expected ?? 'NONE'}, got ${got ?? 'NONE'}${m ? ` (${m.pattern.name})` : ''}: ${c.message}`);
    }
  }
  assert.deepEqual(failures, []);
});

test('sshd corpus: every shipped sshd pattern is exercised by some line', () => {
  const files = sshdFiles();
  const matcher = new Matcher(files);
  const used = new Set<string>();
  for (const c of cases) {
    const m = matcher.match({ cursor: 'c', realtime: 1, fields: { MESSAGE: c.message, _EXE: '/usr/sbin/sshd', _UID: '0' } });
    if (m) used.add(m.pattern.name);
  }
  const sshd = files.filter((f) => f.name === 'sshd.json').flatMap((f) => f.patterns.map((p) => p.name));
  assert.deepEqual(sshd.filter((n) => !used.has(n)), []);
});
