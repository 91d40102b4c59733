// The shipped logrotate snippet (tallow.logrotate, installed as /etc/logrotate.d/tallow) run by
// Debian's real logrotate against a real daemon started as install.sh's no-systemd mode starts it
// (stdout and stderr appended to the log file, its pid in a pid file): after each rotation the old
// lines are in the rotated file and the daemon's next lines (a ban) land in the new log file, as
// do its stdout and stderr themselves (no rotated file stays open).
// The snippet is tested as shipped: only its two paths are replaced by the test's own.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type { ChildProcess } from 'node:child_process';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';
import { CLI, ROOT, SSHD_FILTER, writeConfig } from './e2e-daemon';

const PATTERNS = [{ filter: SSHD_FILTER, items: [{ ban: 60, score: 0.1, pattern: '^Failed password for rotated from <IP> port <PORT> ssh2$' }] }];

let sb: Sandbox;
let daemon: ChildProcess | undefined;

/** The shipped snippet with its log file and pid file moved into `dir`; fails if either path is gone from it. */
function snippetFor(log: string, pidfile: string): string {
  const shipped = fs.readFileSync(path.join(ROOT, 'tallow.logrotate'), 'utf8');
  assert.ok(shipped.includes('/var/log/tallow.log {'), 'the snippet rotates /var/log/tallow.log');
  assert.ok(shipped.includes('/run/tallow.pid'), 'the snippet signals the pid in /run/tallow.pid');
  return shipped.replaceAll('/var/log/tallow.log', log).replaceAll('/run/tallow.pid', pidfile);
}

function readlink(pid: number, fd: string): string {
  try {
    return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return ''; // closed meanwhile
  }
}

/** What the daemon's stdout and stderr are open on. */
function stdio(pid: number): string[] {
  return ['1', '2'].map((fd) => readlink(pid, fd));
}

async function logrotate(conf: string, state: string): Promise<void> {
  const r = await sb.run(['logrotate', '-v', '-f', '-s', state, conf]);
  // A refused config file or a failed postrotate: exit code 1 and an `error:` line.
  assert.equal(r.code, 0, `logrotate failed:\n${r.stdout}${r.stderr}`);
  assert.doesNotMatch(r.stderr, /error:/, r.stderr);
}

describe('logrotate with the shipped snippet against a running daemon (no-systemd mode)', { timeout: 120_000 }, () => {
  before(async () => {
    sb = await createSandbox({ journald: true });
  });
  after(async () => {
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    await sb?.destroy();
  });

  it('rotates tallow.log; the daemon writes on in the new file (ban after the first, compressed after the second)', async () => {
    const conf = writeConfig(sb, 'rot', ['expires=60']);
    const dir = path.dirname(conf);
    fs.writeFileSync(path.join(dir, 'patterns', 'sshd.json'), JSON.stringify(PATTERNS));
    const log = path.join(dir, 'tallow.log');
    const pidfile = path.join(dir, 'tallow.pid');
    const rotConf = path.join(dir, 'logrotate.conf');
    const state = path.join(dir, 'logrotate.state');
    // logrotate refuses a config file writable by others.
    fs.writeFileSync(rotConf, snippetFor(log, pidfile), { mode: 0o644 });

    // As install.sh --start: `nohup tallow >>LOG 2>&1 </dev/null &; echo $! > PIDFILE`.
    daemon = sb.spawn(['sh', '-c', `echo $$ >${pidfile}; exec "$0" "$@" >>${log} 2>&1 </dev/null`, process.execPath, CLI, '--config', conf, '--dry-run']);
    await waitFor('the ready line in the log file', () => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('starting at'), 20000, 50);
    assert.equal(fs.readFileSync(pidfile, 'utf8').trim(), String(daemon.pid));

    await logrotate(rotConf, state);
    assert.match(fs.readFileSync(`${log}.1`, 'utf8'), /starting at/, 'the old lines in tallow.log.1 (delaycompress: not yet compressed)');
    await waitFor('the reopen line in the new log file', () => fs.readFileSync(log, 'utf8').includes(`SIGUSR2: log file reopened: ${log}`), 10000, 50);
    // `create 0640 root root`: the new file as the snippet asks.
    assert.equal(fs.statSync(log).mode & 0o777, 0o640);
    // stdout and stderr moved too (a crash's trace would land in the new file).
    assert.deepEqual(stdio(daemon.pid!), [log, log], 'fds 1 and 2 on the new log file');

    await sb.logger('sshd', 'Failed password for rotated from 203.0.113.77 port 22 ssh2');
    await waitFor('the ban line in the new log file', () => /info: ban address=203\.0\.113\.77 /.test(fs.readFileSync(log, 'utf8')), 20000, 50);
    const first = fs.readFileSync(`${log}.1`, 'utf8');
    assert.doesNotMatch(first, /SIGUSR2|ban address=/, 'nothing after the rotation went to the old file');
    assert.doesNotMatch(fs.readFileSync(log, 'utf8'), /starting at/);

    // The second rotation: .1 compressed to .2.gz, the ban's file becomes .1, the daemon reopens again.
    await logrotate(rotConf, state);
    assert.match(zlib.gunzipSync(fs.readFileSync(`${log}.2.gz`)).toString('utf8'), /starting at/);
    assert.match(fs.readFileSync(`${log}.1`, 'utf8'), /info: ban address=203\.0\.113\.77 /);
    await waitFor('the second reopen line', () => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('SIGUSR2: log file reopened'), 10000, 50);

    assert.deepEqual(stdio(daemon.pid!), [log, log], 'fds 1 and 2 on the newest log file');
    // Nothing holds the rotated files (.1 was compressed and removed: its space is given back).
    const held = fs.readdirSync(`/proc/${daemon.pid}/fd`).map((fd) => readlink(daemon!.pid!, fd)).filter((l) => l.startsWith(`${log}.`) || l.endsWith(' (deleted)'));
    assert.deepEqual(held, [], 'no rotated or deleted file held open');
    assert.equal(daemon.exitCode, null, 'the daemon still runs (SIGUSR2 did not kill it)');
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon!.on('exit', r));
    assert.match(fs.readFileSync(log, 'utf8'), /info: stopped; bans stay/);
    assert.doesNotMatch(fs.readFileSync(`${log}.1`, 'utf8'), /stopped/);
  });
});
