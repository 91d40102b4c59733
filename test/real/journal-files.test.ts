// The journal reader against real journal files written by systemd-journal-remote.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Journal, JournalError, JournalEntry } from '../../src/journal';
import { writeJournal, numbered, ExportEntry } from '../fixtures/journal-export';

const root = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-journal-files-${process.pid}-`));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
function freshDir(): string {
  const d = path.join(root, `d${n++}`);
  fs.mkdirSync(d);
  return d;
}
const FIELDS = ['MESSAGE', '_EXE', 'SYSLOG_IDENTIFIER', '_UID', '_PID'];
const messages = (es: JournalEntry[]) => es.map((e) => e.fields.MESSAGE);

function readAll(j: Journal): JournalEntry[] {
  const all: JournalEntry[] = [];
  for (;;) {
    const b = j.readBatch(7);
    if (b.length === 0) return all;
    all.push(...b);
  }
}

test('reads every entry in order with only the requested fields, realtime and cursor', () => {
  const d = freshDir();
  const file = path.join(d, 'a.journal');
  writeJournal(file, [
    { MESSAGE: 'one', _EXE: '/usr/sbin/sshd', _PID: '10', OTHER: 'x', __REALTIME_TIMESTAMP: '1710000000000001' },
    { MESSAGE: 'two', SYSLOG_IDENTIFIER: 'sshd', __REALTIME_TIMESTAMP: '1710000000000002' },
  ]);
  const j = Journal.open({ files: [file], fields: ['MESSAGE', '_EXE', '_PID'] });
  try {
    const es = readAll(j);
    assert.deepEqual(
      es.map((e) => [e.realtime, e.fields]),
      [
        [1710000000000001, { MESSAGE: 'one', _EXE: '/usr/sbin/sshd', _PID: '10' }],
        [1710000000000002, { MESSAGE: 'two' }],
      ],
    );
    assert.match(es[0].cursor, /^s=[0-9a-f]{32};i=1;/);
    assert.notEqual(es[0].cursor, es[1].cursor);
    assert.equal(j.cursor, es[1].cursor);
    assert.deepEqual(j.readBatch(), []);
  } finally {
    j.close();
  }
});

test('batches are capped at the requested size', () => {
  const d = freshDir();
  writeJournal(path.join(d, 'a.journal'), numbered(0, 25));
  const j = Journal.open({ directory: d, fields: ['MESSAGE'], batchSize: 10 });
  try {
    assert.deepEqual([j.readBatch().length, j.readBatch().length, j.readBatch().length, j.readBatch().length], [10, 10, 5, 0]);
  } finally {
    j.close();
  }
});

test('matches: OR within a field, AND across fields, disjunction between groups', () => {
  const d = freshDir();
  const e = (MESSAGE: string, f: ExportEntry): ExportEntry => ({ MESSAGE, ...f });
  writeJournal(path.join(d, 'a.journal'), [
    e('sshd exe', { _EXE: '/usr/sbin/sshd', _UID: '0' }),
    e('session exe', { _EXE: '/usr/lib/openssh/sshd-session', _UID: '0' }),
    e('other exe', { _EXE: '/usr/bin/logger', SYSLOG_IDENTIFIER: 'sshd', _UID: '1000' }),
    e('root ident, no exe', { SYSLOG_IDENTIFIER: 'sshd-session', _UID: '0' }),
    e('root other ident', { SYSLOG_IDENTIFIER: 'cron', _UID: '0' }),
  ]);
  const read = (matches: string[][]) => {
    const j = Journal.open({ directory: d, fields: FIELDS, matches });
    try {
      return messages(readAll(j));
    } finally {
      j.close();
    }
  };
  assert.deepEqual(read([['_EXE=/usr/sbin/sshd', '_EXE=/usr/lib/openssh/sshd-session']]), ['sshd exe', 'session exe']);
  assert.deepEqual(read([['SYSLOG_IDENTIFIER=sshd', 'SYSLOG_IDENTIFIER=sshd-session', '_UID=0']]), ['root ident, no exe']);
  assert.deepEqual(
    read([['_EXE=/usr/sbin/sshd', '_EXE=/usr/lib/openssh/sshd-session'], ['SYSLOG_IDENTIFIER=sshd', 'SYSLOG_IDENTIFIER=sshd-session', '_UID=0']]),
    ['sshd exe', 'session exe', 'root ident, no exe'],
  );
  assert.deepEqual(read([['_EXE=/nowhere']]), []);
  assert.equal(read([]).length, 5);
});

test('seek to a cursor continues after that entry', () => {
  const d = freshDir();
  writeJournal(path.join(d, 'a.journal'), numbered(0, 10));
  const j = Journal.open({ directory: d, fields: ['MESSAGE'] });
  try {
    const es = readAll(j);
    j.seek({ at: 'cursor', cursor: es[3].cursor });
    assert.deepEqual(messages(readAll(j)), ['entry 4', 'entry 5', 'entry 6', 'entry 7', 'entry 8', 'entry 9']);
    j.seek({ at: 'cursor', cursor: es[9].cursor });
    assert.deepEqual(readAll(j), []);
    j.seek({ at: 'head' });
    assert.equal(readAll(j).length, 10);
    j.seek({ at: 'realtime', usec: es[7].realtime });
    assert.deepEqual(messages(readAll(j)), ['entry 7', 'entry 8', 'entry 9']);
  } finally {
    j.close();
  }
});

test('seek to the cursor of a vacuumed entry does not skip the entry after it', () => {
  const d = freshDir();
  const old = path.join(d, 'old.journal');
  writeJournal(old, numbered(0, 3));
  writeJournal(path.join(d, 'new.journal'), numbered(3, 3));
  let cursor: string;
  const j1 = Journal.open({ directory: d, fields: ['MESSAGE'] });
  try {
    const es = readAll(j1);
    assert.deepEqual(messages(es), ['entry 0', 'entry 1', 'entry 2', 'entry 3', 'entry 4', 'entry 5']);
    cursor = es[2].cursor;
  } finally {
    j1.close();
  }
  fs.rmSync(old); // vacuumed
  const j2 = Journal.open({ directory: d, fields: ['MESSAGE'] });
  try {
    j2.seek({ at: 'cursor', cursor });
    assert.deepEqual(messages(readAll(j2)), ['entry 3', 'entry 4', 'entry 5']);
  } finally {
    j2.close();
  }
});

test('seek to tail: nothing old is replayed; new entries are read', () => {
  const d = freshDir();
  const file = path.join(d, 'a.journal');
  writeJournal(file, numbered(0, 5));
  const j = Journal.open({ directory: d, fields: ['MESSAGE'] });
  try {
    j.seek({ at: 'tail' });
    assert.deepEqual(readAll(j), []);
    writeJournal(file, numbered(5, 2));
    j.handleChanges();
    assert.deepEqual(messages(readAll(j)), ['entry 5', 'entry 6']);
  } finally {
    j.close();
  }
});

test('seek to tail with no matching entry falls back to the head, so the first new entries are kept', () => {
  const d = freshDir();
  const file = path.join(d, 'a.journal');
  writeJournal(file, numbered(0, 3, { _EXE: '/usr/bin/other' }));
  const j = Journal.open({ directory: d, fields: ['MESSAGE'], matches: [['_EXE=/usr/sbin/sshd']] });
  try {
    j.seek({ at: 'tail' });
    assert.deepEqual(readAll(j), []);
    writeJournal(file, numbered(3, 2));
    j.handleChanges();
    assert.deepEqual(messages(readAll(j)), ['entry 3', 'entry 4']);
  } finally {
    j.close();
  }
});

test('seek to tail on an empty directory: the first file to appear is read from its start', () => {
  const d = freshDir();
  const j = Journal.open({ directory: d, fields: ['MESSAGE'] });
  try {
    j.seek({ at: 'tail' });
    assert.deepEqual(readAll(j), []);
    writeJournal(path.join(d, 'a.journal'), numbered(0, 3));
    j.handleChanges();
    assert.deepEqual(messages(readAll(j)), ['entry 0', 'entry 1', 'entry 2']);
  } finally {
    j.close();
  }
});

test('large fields are capped in bytes without splitting a UTF-8 character', () => {
  const d = freshDir();
  const big = 'é'.repeat(100_000); // 200,000 bytes
  writeJournal(path.join(d, 'a.journal'), [{ MESSAGE: big, _EXE: 'x'.repeat(50) }]);
  const j = Journal.open({ directory: d, fields: ['MESSAGE', '_EXE'], maxFieldSize: 1001 });
  try {
    const [e] = readAll(j);
    assert.equal(e.fields.MESSAGE, 'é'.repeat(500));
    assert.equal(e.fields._EXE, 'x'.repeat(50));
  } finally {
    j.close();
  }
  const k = Journal.open({ directory: d, fields: ['MESSAGE'] }); // default cap: 64 KiB
  try {
    assert.equal(Buffer.byteLength(readAll(k)[0].fields.MESSAGE), 65536);
  } finally {
    k.close();
  }
});

test('binary fields (newline, NUL) are kept; invalid UTF-8 becomes U+FFFD', () => {
  const d = freshDir();
  writeJournal(path.join(d, 'a.journal'), [
    { MESSAGE: Buffer.from('line one\nline\0two'), BIN: Buffer.from([0x41, 0xff, 0xfe, 0x42]) },
  ]);
  const j = Journal.open({ directory: d, fields: ['MESSAGE', 'BIN'] });
  try {
    const [e] = readAll(j);
    assert.equal(e.fields.MESSAGE, 'line one\nline\0two');
    assert.equal(e.fields.BIN, 'A\ufffd\ufffdB');
  } finally {
    j.close();
  }
});

test('bad input is a clear JournalError', () => {
  assert.throws(
    () => Journal.open({ directory: path.join(root, 'does-not-exist'), fields: ['MESSAGE'] }),
    (e: Error) => e instanceof JournalError && /sd_journal_open_directory: ENOENT .*does-not-exist/.test(e.message),
  );
  assert.throws(
    () => Journal.open({ files: [path.join(root, 'missing.journal')], fields: ['MESSAGE'] }),
    (e: Error) => e instanceof JournalError && /sd_journal_open_files: ENOENT .*missing\.journal/.test(e.message),
  );
  const d = freshDir();
  writeJournal(path.join(d, 'a.journal'), numbered(0, 1));
  assert.throws(
    () => Journal.open({ directory: d, fields: ['MESSAGE'], matches: [['_exe=/usr/sbin/sshd']] }),
    (e: Error) => e instanceof JournalError && e.message.includes('"_exe=/usr/sbin/sshd"'),
  );
  const j = Journal.open({ directory: d, fields: ['MESSAGE'] });
  try {
    assert.throws(
      () => j.seek({ at: 'cursor', cursor: 'not-a-cursor' }),
      (e: Error) => e instanceof JournalError && /sd_journal_seek_cursor: EINVAL .*not-a-cursor/.test(e.message),
    );
  } finally {
    j.close();
  }
});

test('close is idempotent; a closed journal refuses reads', () => {
  const d = freshDir();
  writeJournal(path.join(d, 'a.journal'), numbered(0, 1));
  const j = Journal.open({ directory: d, fields: ['MESSAGE'] });
  j.close();
  j.close();
  assert.throws(() => j.readBatch(), (e: Error) => e instanceof JournalError && /closed/.test(e.message));
  assert.throws(() => j.seek({ at: 'head' }), JournalError);
});
