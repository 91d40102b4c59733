// The daemon's log lines: plain text with key=value fields, journal field names, verbosity, and
// the log file reopened after a rotation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Log, formatFields, journalField, type Level } from '../../src/log';

function capture(verbose = false): { log: Log; lines: [Level, string][] } {
  const lines: [Level, string][] = [];
  const log = new Log({ verbose, journal: false, timestamps: false, write: (l, s) => lines.push([l, s]) });
  return { log, lines };
}

test('journalField: caller names become TALLOW_* journal fields', () => {
  assert.equal(journalField('address'), 'TALLOW_ADDRESS');
  assert.equal(journalField('retry_in_ms'), 'TALLOW_RETRY_IN_MS');
  assert.equal(journalField('TALLOW_ACTION'), 'TALLOW_ACTION');
  assert.equal(journalField('dry-run'), 'TALLOW_DRY_RUN');
  assert.equal(journalField('_exe'), 'TALLOW_EXE');
});

test('formatFields: quoted only when needed, newlines escaped', () => {
  assert.equal(formatFields({ address: '203.0.113.9', seconds: '60' }), 'address=203.0.113.9 seconds=60');
  assert.equal(formatFields({ error: 'no such file' }), 'error="no such file"');
  assert.equal(formatFields({ e: '' }), 'e=""');
  assert.equal(formatFields({ e: 'a\nb' }), 'e="a\\nb"');
  assert.equal(formatFields(undefined), '');
});

test('plain lines: level, message and fields; warnings and errors apart; debug only when verbose', () => {
  const { log, lines } = capture();
  log.info('started', { config: '/etc/tallow.conf' });
  log.warn('careful');
  log.error('broken', { error: 'x y' });
  log.debug('noise');
  log.action('ban', { address: '2001:db8::9', seconds: '3600', score: '1', pattern: 'sshd.json#2' });
  assert.deepEqual(lines, [
    ['info', 'info: started config=/etc/tallow.conf'],
    ['warn', 'warn: careful'],
    ['error', 'error: broken error="x y"'],
    ['info', 'info: ban address=2001:db8::9 seconds=3600 score=1 pattern=sshd.json#2'],
  ]);
  const v = capture(true);
  v.log.debug('match', { address: '198.51.100.1' });
  assert.deepEqual(v.lines, [['debug', 'debug: match address=198.51.100.1']]);
});

test('plain lines carry an ISO time stamp by default', () => {
  const lines: string[] = [];
  const log = new Log({ journal: false, write: (_l, s) => lines.push(s) });
  log.info('x');
  assert.match(lines[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info: x$/);
});

test('reopen() with stdout and stderr on the log file (`>>FILE 2>&1`): both move to the new file, the rotated one is let go', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-log-'));
  try {
    const file = path.join(dir, 'tallow.log');
    // A child whose fds 1 and 2 are the file, as install.sh --start runs the daemon; it renames
    // the file as logrotate does, reopens, then writes to stderr and stdout itself.
    const script = `
      const fs = require('node:fs');
      const { Log } = require(${JSON.stringify(path.resolve(__dirname, '../../src/log.js'))});
      const log = new Log({ journal: false, timestamps: false });
      log.info('before');
      fs.renameSync(${JSON.stringify(file)}, ${JSON.stringify(file + '.1')});
      log.info('SIGUSR2: ' + log.reopen());
      process.stderr.write('stderr after\\n');
      console.log('stdout after');
      const held = fs.readdirSync('/proc/self/fd').map((fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd); } catch { return ''; } });
      log.info('held ' + JSON.stringify(held.filter((l) => l.startsWith(${JSON.stringify(file + '.1')}))));
    `;
    const fd = fs.openSync(file, 'a');
    try {
      const r = spawnSync(process.execPath, ['-e', script], { stdio: ['ignore', fd, fd] });
      assert.equal(r.status, 0);
    } finally {
      fs.closeSync(fd);
    }
    assert.equal(fs.readFileSync(file + '.1', 'utf8'), 'info: before\n');
    assert.equal(
      fs.readFileSync(file, 'utf8'),
      `info: SIGUSR2: log file reopened: ${file} (stdout and stderr too)\nstderr after\nstdout after\ninfo: held []\n`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
