// The daemon's log lines: plain text with key=value fields, journal field names, verbosity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
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
