// backend=none: no kernel firewall; a ban reaches the command action alone (a ufw script, a cloud
// firewall's CLI). A real daemon in process (not a dry run: actions do not run in a dry run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon } from '../../src/daemon';
import type { JournalEntry } from '../../src/journal';
import { Log } from '../../src/log';
import { waitFor } from './actions-helpers';

const SSHD = '/usr/sbin/sshd';

test('backend=none with a command action: the ban runs the command, no firewall is touched', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-none-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const shipped = path.join(dir, 'shipped');
  fs.mkdirSync(shipped);
  fs.mkdirSync(path.join(dir, 'journal'));
  fs.writeFileSync(path.join(shipped, 'sshd.json'), JSON.stringify([{ filter: [[`_EXE=${SSHD}`, '_UID=0']], items: [{ ban: 0, score: 0.5, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }]));
  const out = path.join(dir, 'ran');
  const script = path.join(dir, 'record');
  fs.writeFileSync(script, `#!/bin/sh\nprintf '%s|' "$@" >> ${out}\necho >> ${out}\n`, { mode: 0o755 });
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, [`patterns_dir=${dir}/local`, `state_dir=${dir}/state`, `socket=${dir}/run/sock`, 'backend=none', 'history=off', 'expires=60', `action.cloud.ban_command=${script} deny {address} {seconds}`, ''].join('\n'));
  const lines: string[] = [];
  const log = new Log({ journal: false, timestamps: false, write: (_l, s) => lines.push(s) });
  const d = await Daemon.start({ configFile: conf, explicitConfig: true, journalDir: path.join(dir, 'journal'), dryRun: false, log, shippedPatterns: shipped });
  t.after(() => d.stop());
  assert.equal(d.firewall.backend.name, 'none');
  assert.ok(lines.some((l) => l.includes('none: no firewall is touched')), lines.join('\n'));
  const e = (n: number): JournalEntry => ({ cursor: `c${n}`, realtime: Date.now() * 1000, fields: { MESSAGE: 'Failed password for root from 203.0.113.77 port 4242 ssh2', _EXE: SSHD, _UID: '0' } });
  d.process([e(1), e(2)]);
  await waitFor('the command ran', () => fs.existsSync(out) && fs.readFileSync(out, 'utf8').includes('\n'));
  assert.equal(fs.readFileSync(out, 'utf8'), 'deny|203.0.113.77|60|\n');
  assert.deepEqual((await d.firewall.list()).length, 0);
});

test('a mail action with a report time: the daemon arms the daily report and says when it runs', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-none-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'shipped'));
  fs.mkdirSync(path.join(dir, 'journal'));
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, [`patterns_dir=${dir}/local`, `state_dir=${dir}/state`, `socket=${dir}/run/sock`, 'backend=none', 'action.admin.mail_to=root', 'action.admin.sendmail=/bin/true', 'action.admin.report=07:30', ''].join('\n'));
  const lines: string[] = [];
  const log = new Log({ journal: false, timestamps: false, write: (_l, s) => lines.push(s) });
  const d = await Daemon.start({ configFile: conf, explicitConfig: true, journalDir: path.join(dir, 'journal'), dryRun: false, log, shippedPatterns: path.join(dir, 'shipped') });
  t.after(() => d.stop());
  const next = new Date();
  next.setHours(7, 30, 0, 0);
  if (next.getTime() <= Date.now()) next.setDate(next.getDate() + 1);
  assert.ok(lines.includes(`info: daily report: action.admin mails it to root next at ${next.toISOString()}`), lines.join('\n'));
});
