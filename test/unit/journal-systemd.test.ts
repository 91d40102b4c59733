// src/systemd.ts: sd_notify to a real unix datagram socket (made by python3: Node has no
// datagram unix sockets), watchdog interval, JOURNAL_STREAM detection, journalSend checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { notify, watchdogUsec, underJournal, journalSend } from '../../src/systemd';

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

test('notify: false when not under systemd (no NOTIFY_SOCKET)', () => {
  assert.equal(withEnv({ NOTIFY_SOCKET: undefined }, () => notify('READY=1')), false);
});

test('notify: the state reaches the NOTIFY_SOCKET datagram socket', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-notify-${process.pid}-`));
  const sock = path.join(dir, 'notify');
  const py = spawn('python3', [
    '-c',
    'import socket,sys\n' +
      's=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\ns.settimeout(10)\n' +
      'print("bound",flush=True)\nsys.stdout.write(s.recv(4096).decode())\n',
    sock,
  ]);
  try {
    let out = '';
    const done = new Promise<number | null>((resolve, reject) => {
      py.on('error', (e) => reject(new Error(`python3 is needed for this test: ${e.message}`)));
      py.on('close', resolve);
    });
    await new Promise<void>((resolve, reject) => {
      py.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('bound\n')) resolve();
      });
      py.on('close', () => reject(new Error(`python3 ended before binding: ${out}`)));
    });
    assert.equal(withEnv({ NOTIFY_SOCKET: sock }, () => notify('READY=1\nSTATUS=watching')), true);
    assert.equal(await done, 0);
    assert.equal(out, 'bound\nREADY=1\nSTATUS=watching');
  } finally {
    if (py.exitCode === null) py.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('watchdogUsec: 0 without WATCHDOG_USEC, the interval when set for this process', () => {
  assert.equal(withEnv({ WATCHDOG_USEC: undefined, WATCHDOG_PID: undefined }, () => watchdogUsec()), 0);
  assert.equal(withEnv({ WATCHDOG_USEC: '3000000', WATCHDOG_PID: String(process.pid) }, () => watchdogUsec()), 3000000);
  assert.equal(withEnv({ WATCHDOG_USEC: '3000000', WATCHDOG_PID: '1' }, () => watchdogUsec()), 0); // another process's
});

test('underJournal: only when JOURNAL_STREAM names our stdout or stderr', () => {
  const st = fs.fstatSync(2);
  assert.equal(withEnv({ JOURNAL_STREAM: undefined }, () => underJournal()), false);
  assert.equal(withEnv({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, () => underJournal()), true);
  assert.equal(withEnv({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1}` }, () => underJournal()), false);
  assert.equal(withEnv({ JOURNAL_STREAM: 'garbage' }, () => underJournal()), false);
});

test('journalSend refuses bad field names before sending', () => {
  assert.throws(() => journalSend({ message: 'x' }), /field "message"/);
  assert.throws(() => journalSend({ '1X': 'x' }), /field "1X"/);
  assert.throws(() => journalSend({}), /no fields/);
});
