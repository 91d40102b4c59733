// Drop-ins (issue 18): <config>.d/*.conf read after the main file in name order; whitelist
// entries there add to the list; `whitelist=` clears it; errors name the drop-in and its line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config';

function tree(main: string | null, dropins: Record<string, string>): { file: string; dir: string; done: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'tallow-dropins-'));
  const file = join(root, 'tallow.conf');
  if (main !== null) writeFileSync(file, main);
  const dir = `${file}.d`;
  mkdirSync(dir);
  for (const [name, text] of Object.entries(dropins)) writeFileSync(join(dir, name), text);
  return { file, dir, done: () => rmSync(root, { recursive: true, force: true }) };
}

test('drop-ins: read after the main file, in name order, whatever order they were made in', (t) => {
  // Written in reverse name order, so directory order is not name order on most file systems.
  const { file, dir, done } = tree('threshold=2\nexpires=100\n', { '20-b.conf': 'threshold=4\n', '10-a.conf': 'threshold=3\nexpires=200\n', '05-x.conf.disabled': 'threshold=9\n', 'README': 'not a key\n' });
  t.after(done);
  const c = loadConfig(file, true);
  assert.equal(c.threshold, 4);
  assert.equal(c.expires, 200);
  assert.deepEqual(c.dropins, [join(dir, '10-a.conf'), join(dir, '20-b.conf')]);
});

test('drop-ins: whitelist entries add to the defaults, and to the main file\'s list', (t) => {
  const a = tree('expires=60\n', { '50-office.conf': 'whitelist=198.51.100.0/24\n' });
  t.after(a.done);
  assert.deepEqual(loadConfig(a.file, true).whitelist, ['127.0.0.0/8', '192.168.', '10.', '::1', '198.51.100.0/24']);
  const b = tree('whitelist=127.0.0.1\n', { '10-a.conf': 'whitelist=203.0.113.7\n', '20-b.conf': 'whitelist=2001:db8::/32\n' });
  t.after(b.done);
  assert.deepEqual(loadConfig(b.file, true).whitelist, ['127.0.0.1', '203.0.113.7', '2001:db8::/32']);
});

test('drop-ins: `whitelist=` with no value clears the list so far', (t) => {
  const { file, done } = tree('whitelist=127.0.0.1\n', { '10-a.conf': 'whitelist=203.0.113.7\n', '20-b.conf': 'whitelist=\nwhitelist=192.0.2.1\n' });
  t.after(done);
  assert.deepEqual(loadConfig(file, true).whitelist, ['192.0.2.1']);
  const empty = tree('whitelist=\n', {});
  t.after(empty.done);
  assert.deepEqual(loadConfig(empty.file, true).whitelist, []);
});

test('drop-ins: a bad line is reported with the drop-in\'s name and line', (t) => {
  const { file, dir, done } = tree('threshold=2\n', { '10-a.conf': 'expires=60\n', '20-b.conf': '# comment\n\nwhitelist=not-an-address\n' });
  t.after(done);
  assert.throws(() => loadConfig(file, true), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.exitCode, 78);
    assert.match(e.message, new RegExp(`^${join(dir, '20-b.conf').replace(/[.]/g, '\\.')}:3: whitelist: allowlist entry 'not-an-address'`));
    return true;
  });
  const other = tree('', { '30-c.conf': 'expires=60\nbogus=1\n' });
  t.after(other.done);
  assert.throws(() => loadConfig(other.file, true), { message: /30-c\.conf:2: unknown key 'bogus'/ });
});

test('drop-ins: actions stay in the main file (an action is checked as a whole)', (t) => {
  const { file, done } = tree('', { '10-a.conf': 'action.ops.url=http://127.0.0.1:8080/\n' });
  t.after(done);
  assert.throws(() => loadConfig(file, true), { message: /10-a\.conf:1: action\.ops\.url: actions are defined in the main configuration file/ });
});

test('drop-ins: apply without a main file (the default /etc/tallow.conf may be absent)', (t) => {
  const { file, done } = tree(null, { '50-tallow-allow.conf': 'whitelist=198.51.100.0/24\n' });
  t.after(done);
  const c = loadConfig(file, false);
  assert.equal(c.file, null);
  assert.deepEqual(c.whitelist, ['127.0.0.0/8', '192.168.', '10.', '::1', '198.51.100.0/24']);
  // --config FILE: the named file itself must exist.
  assert.throws(() => loadConfig(file, true), { message: /tallow\.conf: cannot read: ENOENT/ });
});
