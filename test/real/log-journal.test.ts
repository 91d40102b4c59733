// The daemon's own log, as it runs (issue 18): under a real journald (the sandbox's) each kind of
// line carries its fixed MESSAGE_ID, so `journalctl MESSAGE_ID=...` finds bans, unbans, start,
// reload, configuration errors and stop; without systemd, its log file (`>>FILE 2>&1`) is
// reopened on SIGUSR2, so after logrotate renames it the next line lands in a new file.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';
import { CLI, SSHD_FILTER, writeConfig } from './e2e-daemon';

// The ids as tallow(8) lists them: written out here, not read from the code under test.
const ID = {
  start: 'dfe0619ef4df4313a0a2fd5dce7ccfe6',
  stop: 'b36e9caf902c4f8fb704bcf31bb9985a',
  reload: '98d3ae80dca74ac78d27a2f367a208e7',
  config_error: 'f93036df0c8d484a84f461fb38469fee',
  ban: '4d9b4e584d9743088b02efa06bd4575a',
  unban: 'd6337573e8f7470b8b0836a5e818bcd6',
  start_failed: '1bb2a9eac9fd445c8d562f5da0b9074b',
};

// User "shortban": an instant 2 s ban, so its unban follows in seconds.
const PATTERNS = [{ filter: SSHD_FILTER, items: [{ ban: 2, score: 0.1, pattern: '^Failed password for shortban from <IP> port <PORT> ssh2$' }] }];

let sb: Sandbox;
const children: ChildProcess[] = [];

/** The daemon as systemd runs a service: stdout/stderr a journal stream, JOURNAL_STREAM naming it. */
function underJournald(conf: string): ChildProcess {
  const script = `JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$0" "$@"`;
  const c = sb.spawn(['systemd-cat', '-t', 'tallow', 'sh', '-c', script, process.execPath, CLI, '--config', conf, '--dry-run']);
  children.push(c);
  return c;
}

async function byId(id: string): Promise<Record<string, string>[]> {
  const r = await sb.run(['journalctl', '--no-pager', '-o', 'json', `MESSAGE_ID=${id}`]);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, string>);
}

async function waitId(id: string, what: string, pred: (e: Record<string, string>) => boolean = () => true): Promise<Record<string, string>> {
  let found: Record<string, string> | undefined;
  await waitFor(`${what}: journalctl MESSAGE_ID=${id}`, async () => (found = (await byId(id)).find(pred)) !== undefined, 20000, 100);
  return found!;
}

describe('the daemon log: MESSAGE_ID in a real journal, log file reopened on SIGUSR2', { timeout: 120_000 }, () => {
  before(async () => {
    sb = await createSandbox({ journald: true });
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await sb?.destroy();
  });

  it('journalctl MESSAGE_ID=... finds start, ban, unban, reload, a refused reload and stop', async () => {
    const conf = writeConfig(sb, 'ids', ['expires=60']);
    fs.writeFileSync(path.join(sb.dir, 'ids', 'patterns', 'sshd.json'), JSON.stringify(PATTERNS));
    const d = underJournald(conf);
    const start = await waitId(ID.start, 'the start line');
    assert.match(start.MESSAGE, /^tallow \d+\.\d+\.\d+ starting config=/);
    assert.equal(start.SYSLOG_IDENTIFIER, 'tallow');
    await waitFor('the ready line', async () => (await sb.run(['journalctl', '--no-pager', '-t', 'tallow', '-o', 'cat'])).stdout.includes('starting at'), 20000, 100);

    await sb.logger('sshd', 'Failed password for shortban from 203.0.113.50 port 22 ssh2');
    const ban = await waitId(ID.ban, 'the ban line', (e) => e.TALLOW_ADDRESS === '203.0.113.50');
    assert.match(ban.MESSAGE, /^ban address=203\.0\.113\.50 seconds=2 /);
    assert.equal(ban.TALLOW_ACTION, 'ban');
    assert.equal(ban.PRIORITY, '6');
    const unban = await waitId(ID.unban, 'the unban line', (e) => e.TALLOW_ADDRESS === '203.0.113.50');
    assert.match(unban.MESSAGE, /^unban address=203\.0\.113\.50 reason=expired/);

    d.kill('SIGHUP');
    assert.match((await waitId(ID.reload, 'the reload line')).MESSAGE, /^configuration reloaded/);
    fs.appendFileSync(conf, 'bogus=1\n');
    d.kill('SIGHUP');
    const err = await waitId(ID.config_error, 'the refused reload');
    assert.match(err.MESSAGE, new RegExp(`^reload refused, still running the previous configuration: ${conf.replace(/[.]/g, '\\.')}:\\d+: unknown key 'bogus'`));
    assert.equal(err.PRIORITY, '3');

    d.kill('SIGTERM');
    assert.match((await waitId(ID.stop, 'the stop line')).MESSAGE, /^stopped; bans stay in the firewall/);
    // No other kind of line took the ban's id.
    assert.deepEqual((await byId(ID.ban)).map((e) => e.TALLOW_ACTION), ['ban']);
  });

  it('a configuration error at start: its MESSAGE_ID too (the daemon exits 78)', async () => {
    const conf = writeConfig(sb, 'broken', ['expires=never']);
    const d = underJournald(conf);
    const code = await new Promise<number | null>((r) => d.on('exit', (c) => r(c)));
    assert.equal(code, 78);
    const e = await waitId(ID.config_error, 'the start-up error', (x) => x.MESSAGE.startsWith('start-up failed'));
    assert.match(e.MESSAGE, new RegExp(`^start-up failed: ${conf.replace(/[.]/g, '\\.')}:\\d+: expires: expected a whole number`));
    assert.deepEqual(await byId(ID.start_failed), []);
  });

  it('SIGUSR2: after the log file is renamed, the next line lands in a new file by the same name', async () => {
    const conf = writeConfig(sb, 'file', ['expires=60']);
    const log = path.join(sb.dir, 'file', 'tallow.log');
    const d = sb.spawn(['sh', '-c', `exec "$0" "$@" >>${log} 2>&1`, process.execPath, CLI, '--config', conf, '--dry-run']);
    children.push(d);
    await waitFor('the ready line in the log file', () => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('starting at'), 20000, 50);
    fs.renameSync(log, `${log}.1`);
    d.kill('SIGUSR2');
    await waitFor('a new log file', () => fs.existsSync(log), 10000, 50);
    await waitFor('the reopen line', () => fs.readFileSync(log, 'utf8').includes(`SIGUSR2: log file reopened: ${log}`), 10000, 50);
    d.kill('SIGHUP');
    await waitFor('the reload line in the new file', () => fs.readFileSync(log, 'utf8').includes('configuration reloaded'), 10000, 50);
    const old = fs.readFileSync(`${log}.1`, 'utf8');
    assert.match(old, /starting at/);
    assert.doesNotMatch(old, /SIGUSR2|configuration reloaded/);
    assert.doesNotMatch(fs.readFileSync(log, 'utf8'), /starting at/);
    assert.equal(d.exitCode, null, 'still running');
    d.kill('SIGTERM');
    await new Promise((r) => d.on('exit', r));
    assert.match(fs.readFileSync(log, 'utf8'), /info: stopped; bans stay/);
  });
});
