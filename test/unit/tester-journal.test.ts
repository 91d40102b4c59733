// `tallow test --journal-dir DIR`: real journal files written by systemd-journal-remote, read
// through the addon with the patterns' own journal matches; --since and --unit narrow it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { testRun } from '../../src/tester';
import { writeJournal, type ExportEntry } from '../fixtures/journal-export';

const FIX = path.resolve(__dirname, '../../../test/fixtures');
const PATTERNS = path.join(FIX, 'tester-patterns.json');
const CONF = path.join(FIX, 'tester.conf');

const T0 = Date.UTC(2025, 0, 31, 8, 0, 0) * 1000; // microseconds
const at = (s: number): string => String(T0 + s * 1_000_000);
const sshd = (s: number, MESSAGE: string, unit = 'ssh.service'): ExportEntry => ({
  MESSAGE, _EXE: '/usr/sbin/sshd', _UID: '0', SYSLOG_IDENTIFIER: 'sshd', _PID: '42', _SYSTEMD_UNIT: unit, __REALTIME_TIMESTAMP: at(s),
});

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await testRun(args, { out: (s) => (out += s), err: (s) => (err += s), progressMs: 0 });
  return { code, out, err };
}

test('tallow test --journal-dir: journal fields decide, --since and --unit narrow, progress on stderr', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-tester-journal-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  writeJournal(path.join(dir, 'a.journal'), [
    sshd(1, 'Failed password for root from 203.0.113.9 port 1 ssh2'),
    sshd(2, 'Failed password for root from 203.0.113.9 port 2 ssh2'),
    // Same words from an ordinary user's logger: the filter (and the journal match) leave it out.
    { MESSAGE: 'Failed password for root from 203.0.113.66 port 3 ssh2', SYSLOG_IDENTIFIER: 'sshd', _UID: '1000', _EXE: '/usr/bin/logger', __REALTIME_TIMESTAMP: at(3) },
    sshd(4, 'Accepted publickey for alice from 198.51.100.8 port 4 ssh2'),
    sshd(100, 'Failed password for root from 203.0.113.9 port 5 ssh2'),
    sshd(101, 'Failed password for root from 2001:db8::9 port 6 ssh2', 'ssh-other.service'),
    { MESSAGE: 'login failed from 198.51.100.99', SYSLOG_IDENTIFIER: 'myapp', __REALTIME_TIMESTAMP: at(102) },
  ]);

  let r = await run(['--config', CONF, '--patterns', PATTERNS, '--journal-dir', dir, '--unmatched']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`^Read 6 entries from the journal in ${dir}: 5 matched, 1 not matched\\.$`, 'm'));
  assert.match(r.out, /^ +203\.0\.113\.9 +3$/m);
  assert.match(r.out, /^ +2001:db8::9 +1$/m);
  assert.match(r.out, /^ +198\.51\.100\.99 +1$/m);
  assert.doesNotMatch(r.out, /203\.0\.113\.66/);
  assert.match(r.out, /^ {2}2025-01-31T08:00:04\.000Z: sshd\[42\]: Accepted publickey for alice/m);
  // Journal times, not now: score .3 x3 stays below 1, only myapp's score-1 line bans.
  assert.match(r.out, /^ {2}198\.51\.100\.99 +600 +threshold +1\.00 +1 +1 +2025-01-31T08:01:42\.000Z +tester-patterns\.json#3$/m);
  assert.match(r.err, /^tallow test: \d+ journal entries read, done\.$/m);

  r = await run(['--config', CONF, '--patterns', PATTERNS, '--journal-dir', dir, '--since', '@' + String(T0 / 1e6 + 50), '--unit', 'ssh']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^Read 1 entry from the journal in .* \(unit ssh\.service\) since 2025-01-31T08:00:50\.000Z: 1 matched, 0 not matched\.$/m);

  r = await run(['--config', CONF, '--patterns', PATTERNS, '--journal-dir', dir, '--unit', 'nothing.service']);
  assert.equal(r.code, 1);
  assert.match(r.out, /^Read 0 entries/m);
});
