// The built CLI daemon in a dry run with a journal directory of its own (no sandbox, no
// privileges), its stdout and stderr collected: shared by the unit tests that need the real
// process (signals, memory). test/real/e2e-daemon.ts is the same inside a sandbox.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');

/** The line logged just before READY=1. */
export const READY = /journal: .*starting at/;

export class DryRunDaemon {
  out = '';
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly on = new Map<RegExp, () => void>();

  /** `conf`: tallow.conf lines after state_dir, socket and history=off. */
  constructor(dir: string, conf: string[] = [], env: Record<string, string> = {}) {
    fs.mkdirSync(path.join(dir, 'journal'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'tallow.conf'), [`state_dir=${dir}/state`, `socket=${dir}/sock`, 'history=off', ...conf, ''].join('\n'));
    this.child = spawn(process.execPath, [CLI, '--config', path.join(dir, 'tallow.conf'), '--journal-dir', path.join(dir, 'journal'), '--dry-run'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    const add = (d: Buffer) => {
      this.out += d.toString();
      for (const [re, f] of this.on) if (re.test(this.out)) this.on.delete(re) && f();
    };
    this.child.stdout!.on('data', add);
    this.child.stderr!.on('data', add);
  }

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

  /** SIGTERM; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return (await this.exited).code;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
