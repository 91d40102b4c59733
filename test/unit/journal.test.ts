// Option and match checking of src/journal.ts: refused before anything is opened.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Journal, JournalError, checkMatchTerm, isFieldName } from '../../src/journal';

const refuses = (fn: () => unknown, text: RegExp) =>
  assert.throws(fn, (e: Error) => e instanceof JournalError && text.test(e.message), String(text));

test('field names: upper-case letters, digits, underscore, not starting with a digit', () => {
  for (const ok of ['MESSAGE', '_EXE', '__CURSOR', 'SYSLOG_IDENTIFIER', 'A1', 'TALLOW_2']) assert.equal(isFieldName(ok), true, ok);
  for (const bad of ['message', '_exe', '1A', '', 'A-B', 'A B', 'É', 'A'.repeat(65)]) assert.equal(isFieldName(bad), false, bad);
});

test('match terms: each bad term is named in the error', () => {
  assert.equal(checkMatchTerm('_EXE=/usr/sbin/sshd'), '_EXE=/usr/sbin/sshd');
  assert.equal(checkMatchTerm('_UID='), '_UID=');
  assert.equal(checkMatchTerm('MESSAGE=a=b'), 'MESSAGE=a=b');
  refuses(() => checkMatchTerm('_exe=/usr/sbin/sshd'), /"_exe=\/usr\/sbin\/sshd".*upper-case/);
  refuses(() => checkMatchTerm('1FIELD=x'), /"1FIELD=x"/);
  refuses(() => checkMatchTerm('NOEQUALS'), /"NOEQUALS": expected FIELD=value/);
  refuses(() => checkMatchTerm('=value'), /"=value"/);
  refuses(() => checkMatchTerm(42), /expected a "FIELD=value" string/);
});

test('Journal.open refuses bad options with a message saying what is wrong', () => {
  refuses(() => Journal.open({ fields: ['MESSAGE'], matches: [['_EXE=/usr/sbin/sshd'], ['syslog_identifier=sshd']] }), /"syslog_identifier=sshd"/);
  refuses(() => Journal.open({ fields: ['MESSAGE'], matches: [[]] }), /match group \[\]/);
  refuses(() => Journal.open({ fields: [] }), /at least one field/);
  refuses(() => Journal.open({ fields: ['message'] }), /field "message"/);
  refuses(() => Journal.open({ fields: ['MESSAGE'], directory: '/x', files: ['/y'] }), /either a directory or files/);
  refuses(() => Journal.open({ fields: ['MESSAGE'], files: [] }), /at least one file/);
  refuses(() => Journal.open({ fields: ['MESSAGE'], maxFieldSize: 0 }), /maxFieldSize must be an integer/);
  refuses(() => Journal.open({ fields: ['MESSAGE'], batchSize: 1.5 }), /batchSize must be an integer/);
});
