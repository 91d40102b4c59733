// The MESSAGE_IDs: 128-bit, distinct, and each one listed in tallow(8)'s JOURNAL section (and no
// other there), so `journalctl MESSAGE_ID=...` as documented finds what the daemon sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MESSAGE_IDS } from '../../src/log';

const ROOT = path.resolve(__dirname, '..', '..', '..');

test('MESSAGE_IDs: 32 hex digits each, all different, the same set as tallow(8) lists', () => {
  const ids = Object.values(MESSAGE_IDS);
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
  assert.equal(new Set(ids).size, ids.length);
  for (const kind of ['start', 'stop', 'reload', 'config_error', 'ban', 'unban']) assert.ok(kind in MESSAGE_IDS, kind);
  const page = fs.readFileSync(path.join(ROOT, 'man', 'tallow.8'), 'utf8');
  const section = page.slice(page.indexOf('.SH JOURNAL'), page.indexOf('.SH DAY TO DAY'));
  const listed = [...section.matchAll(/^\.B ([0-9a-f]{32})$/gm)].map((m) => m[1]);
  assert.deepEqual([...listed].sort(), [...ids].sort());
});
