// Signals that come while the daemon starts (the real CLI daemon, dry run, its own journal
// directory): the signal handlers are in place from the first line on, so a stop or a reload
// sent during start-up or right after READY=1 is answered once the start is over, instead of
// ending the process by the signal's default action (no last save, exit by signal).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const FIRST = /tallow \S+ starting/;
const READY = /journal: .*starting at/;

class Run {
  out = '';
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(readonly dir: string) {
    fs.mkdirSync(path.join(dir, 'journal'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'tallow.conf'), [`state_dir=${dir}/state`, `socket=${dir}/sock`, 'history=off', 'release_memory=no', ''].join('\n'));
    this.child = spawn(process.execPath, [CLI, '--config', path.join(dir, 'tallow.conf'), '--journal-dir', path.join(dir, 'journal'), '--dry-run'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    const add = (d: Buffer) => {
      this.out += d.toString();
      for (const [re, f] of this.on) if (re.test(this.out)) this.on.delete(re) && f();
    };
    this.child.stdout!.on('data', add);
    this.child.stderr!.on('data', add);
  }
  private on = new Map<RegExp, () => void>();
  /** Runs `f` in the same tick as the output matching `re` arrives (no polling delay). */
  when(re: RegExp, f: () => void): void {
    if (re.test(this.out)) f();
    else this.on.set(re, f);
  }
  async until(re: RegExp, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (!re.test(this.out)) {
      assert.ok(Date.now() < end && this.child.exitCode === null, `no ${re} within ${ms} ms:\n${this.out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

function tmp(t: { after(f: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-signals-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('SIGTERM during start-up: the daemon finishes starting, then stops cleanly (exit 0, its stop run), not killed by the signal', async (t) => {
  const run = new Run(tmp(t));
  t.after(() => run.kill());
  run.when(FIRST, () => run.child.kill('SIGTERM'));
  const end = await run.exited;
  assert.deepEqual(end, { code: 0, signal: null }, run.out);
  assert.match(run.out, /SIGTERM(?: during start-up: stopping once started[^]*SIGTERM)?: stopping[^]*stopped; bans stay in the firewall/);
});

test('SIGHUP during start-up or right after the ready line: a reload once started, the daemon runs on', async (t) => {
  for (const at of [FIRST, READY]) {
    const run = new Run(tmp(t));
    t.after(() => run.kill());
    run.when(at, () => run.child.kill('SIGHUP'));
    await run.until(/SIGHUP: reloading configuration and patterns[^]*configuration reloaded/, 30_000);
    assert.equal(run.child.exitCode, null, 'still running');
    run.child.kill('SIGTERM');
    assert.deepEqual(await run.exited, { code: 0, signal: null }, run.out);
  }
});
