// Signals that come while the daemon starts (the real CLI daemon, dry run, its own journal
// directory): the signal handlers are in place from the first line on, so a stop or a reload
// sent during start-up or right after READY=1 is answered once the start is over, instead of
// ending the process by the signal's default action (no last save, exit by signal).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DryRunDaemon, READY } from './cli-daemon';

const FIRST = /tallow \S+ starting/;

function tmp(t: { after(f: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-signals-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('SIGTERM during start-up: the daemon finishes starting, then stops cleanly (exit 0, its stop run), not killed by the signal', async (t) => {
  const run = new DryRunDaemon(tmp(t), ['release_memory=no']);
  t.after(() => run.kill());
  run.when(FIRST, () => run.child.kill('SIGTERM'));
  const end = await run.exited;
  assert.deepEqual(end, { code: 0, signal: null }, run.out);
  assert.match(run.out, /SIGTERM(?: during start-up: stopping once started[^]*SIGTERM)?: stopping[^]*stopped; bans stay in the firewall/);
});

test('SIGHUP during start-up or right after the ready line: a reload once started, the daemon runs on', async (t) => {
  for (const at of [FIRST, READY]) {
    const run = new DryRunDaemon(tmp(t), ['release_memory=no']);
    t.after(() => run.kill());
    run.when(at, () => run.child.kill('SIGHUP'));
    await run.until(/SIGHUP: reloading configuration and patterns[^]*configuration reloaded/, 30_000);
    assert.equal(run.child.exitCode, null, 'still running');
    run.child.kill('SIGTERM');
    assert.deepEqual(await run.exited, { code: 0, signal: null }, run.out);
  }
});
