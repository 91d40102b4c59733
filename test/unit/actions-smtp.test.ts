// A mail action by SMTP, what the daemon checks before it sends anything: nodemailer is loaded only
// for an action with smtp= (idle memory, issue 12), and a password file others may read stops
// the start with the action and the file named (exit 78). Delivery itself: test/real/actions-smtp.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { actionListeners } from '../../src/actions';
import { ConfigError, parseConfig } from '../../src/config';
import { collector, tempDir } from './actions-helpers';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Module files a fresh process holds after starting the listeners of this tallow.conf. */
function loadedWith(conf: string): string[] {
  const code = `
    const { actionListeners } = require(${JSON.stringify(path.join(ROOT, 'dist/src/actions/index.js'))});
    const { parseConfig } = require(${JSON.stringify(path.join(ROOT, 'dist/src/config.js'))});
    const log = { info() {}, warn() {}, error() {}, debug() {} };
    const ls = actionListeners(parseConfig(${JSON.stringify(conf)}, 't.conf'), log);
    process.stdout.write(JSON.stringify(Object.keys(require.cache)));
    Promise.all(ls.map((l) => l.close && l.close())).then(() => process.exit(0));`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as string[]).map((f) => path.relative(ROOT, f));
}

test('nodemailer is loaded for a mail action with smtp= only', () => {
  const smtp = (files: string[]) => files.filter((f) => /node_modules\/nodemailer\/|dist\/src\/actions\/smtp\.js$/.test(f));
  const plain = loadedWith('action.m.mail_to=root\naction.m.sendmail=/bin/true\n');
  assert.ok(plain.includes('dist/src/actions/mail.js'), plain.join(' '));
  assert.deepEqual(smtp(plain), []);
  const by = loadedWith('action.m.mail_to=root@example.org\naction.m.smtp=192.0.2.1:25\naction.m.starttls=off\n');
  assert.ok(by.includes('dist/src/actions/smtp.js'), by.join(' '));
  assert.ok(by.some((f) => f.includes('node_modules/nodemailer/')), by.join(' '));
});

test('password_file: group- or world-readable, missing or empty is refused at start naming the action and the file', async (t) => {
  const dir = tempDir(t, 'smtp-pw');
  const pw = path.join(dir, 'smtp.password');
  const conf = () => parseConfig(`action.relay.mail_to=ops@example.org\naction.relay.smtp=smtp://192.0.2.1:587\naction.relay.user=tallow\naction.relay.password_file=${pw}\n`, '/etc/tallow.conf');
  const refused = (re: RegExp) => assert.throws(() => actionListeners(conf(), collector()), (e: unknown) => e instanceof ConfigError && e.exitCode === 78 && re.test(e.message), re.source);
  refused(new RegExp(`^/etc/tallow\\.conf:1: action\\.relay\\.password_file=${pw}: cannot read it: ENOENT$`));
  fs.writeFileSync(pw, 'hunter2\n', { mode: 0o640 });
  fs.chmodSync(pw, 0o640);
  refused(new RegExp(`^/etc/tallow\\.conf:1: action\\.relay\\.password_file=${pw}: readable by others \\(mode 640\\); chmod 600 it$`));
  fs.chmodSync(pw, 0o604);
  refused(/readable by others \(mode 604\)/);
  fs.chmodSync(pw, 0o600);
  fs.writeFileSync(pw, '\n');
  refused(/the first line is empty/);
  fs.writeFileSync(pw, 'hunter2\n');
  const ls = actionListeners(conf(), collector());
  assert.deepEqual(ls.map((l) => l.name), ['action.relay']);
  await Promise.all(ls.map((l) => l.close?.()));
});
