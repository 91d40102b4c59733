// The reader against a real journald (started in a private mount namespace by the sandbox):
// entries logged through /dev/log by logger and by a compiled program, and sent with
// journalSend, arrive at a watching reader in order, once, across a journal rotation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, waitFor } from '../env/sandbox';

const C_PROGRAM = `#include <syslog.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
  openlog("tallow-test", 0, LOG_AUTH);
  for (int i = 0; i < atoi(argv[1]); i++) syslog(LOG_INFO, "compiled %d", i);
  closelog();
  usleep(300000); /* journald reads _EXE from /proc: still be there */
  return 0;
}
`;

test('journald: logger, a compiled program and journalSend reach the watcher, across a rotation', async (t) => {
  const sb = await createSandbox({ journald: true });
  t.after(() => sb.destroy());
  const src = path.join(sb.dir, 'logsome.c');
  const exe = path.join(sb.dir, 'logsome');
  fs.writeFileSync(src, C_PROGRAM);
  try {
    execFileSync('g++', ['-x', 'c', '-o', exe, src], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`cannot compile the test's syslog program with g++ (scripts/deps.sh installs it): ${(e as Error).message}`);
  }

  await sb.logger('tallow-test', 'before the reader started');
  const child = sb.spawn([process.execPath, path.join(__dirname, 'journal-journald-child.js')]);
  const lines: Record<string, string>[] = [];
  let buf = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => {
    buf += b.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, string>);
      buf = buf.slice(i + 1);
    }
  });
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await waitFor('the reader to start', () => lines.length > 0 || child.exitCode !== null);
  assert.deepEqual(lines[0], { ready: true }, err);

  for (let i = 0; i < 5; i++) await sb.logger('tallow-test', `logger ${i}`);
  await sb.check([exe, '5']);
  child.stdin!.write('send\n');
  await waitFor('the journalSend entry', () => lines.some((l) => l.MESSAGE === 'sent by journalSend'));
  await sb.check(['journalctl', '--rotate']);
  for (let i = 5; i < 10; i++) await sb.logger('tallow-test', `logger ${i}`);
  await sb.check([exe, '3']);
  await sb.logger('tallow-test', 'END');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([exited, new Promise<string>((r) => (timer = setTimeout(() => r('timeout after 20 s'), 20000)))]);
  clearTimeout(timer);
  assert.equal(code, 0, `reader child: ${code}: ${err}`);

  const msgs = lines.slice(1).map((l) => l.MESSAGE);
  assert.deepEqual(msgs, [
    'logger 0', 'logger 1', 'logger 2', 'logger 3', 'logger 4',
    'compiled 0', 'compiled 1', 'compiled 2', 'compiled 3', 'compiled 4',
    'sent by journalSend',
    'logger 5', 'logger 6', 'logger 7', 'logger 8', 'logger 9',
    'compiled 0', 'compiled 1', 'compiled 2',
    'END',
  ]);
  const compiled = lines.find((l) => l.MESSAGE === 'compiled 0')!;
  assert.equal(compiled._EXE, exe);
  assert.equal(compiled._UID, '0');
  assert.equal(lines.find((l) => l.MESSAGE === 'sent by journalSend')!.TALLOW_TEST, 'structured\nvalue');
  // journald really rotated: an archived file sits beside the active one.
  const files = await sb.check(['sh', '-c', 'ls /run/log/journal/*/']);
  assert.match(files, /system@.*\.journal/);
});
