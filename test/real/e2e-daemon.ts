// The built CLI (`node dist/src/cli.js`, as users run it) started inside a sandbox's server
// network namespace, with its output collected line by line. Shared by the e2e tests and bench/e2e.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { waitFor, type Sandbox } from '../env/sandbox';

/** dist/test/real -> repository root */
export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');

export class DaemonProc {
  readonly lines: string[] = [];
  readonly child: ChildProcess;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly exited: Promise<void>;

  constructor(
    readonly sb: Sandbox,
    readonly args: string[],
  ) {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
    this.child = sb.spawn([process.execPath, CLI, ...args], { net: 'server' });
    const collect = (stream: NodeJS.ReadableStream, tag: string) => {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        rest += chunk;
        const parts = rest.split('\n');
        rest = parts.pop()!;
        for (const l of parts) this.lines.push(`${tag}${l}`);
        if (process.env.TALLOW_E2E_ECHO) for (const l of parts) process.stderr.write(`[daemon ${tag}] ${l}\n`);
      });
    };
    collect(this.child.stdout!, '');
    collect(this.child.stderr!, 'E ');
    this.exited = new Promise((res) =>
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        res();
      }),
    );
  }

  /** The daemon's output so far, for assertion messages. */
  get output(): string {
    return this.lines.join('\n');
  }

  has(re: RegExp): boolean {
    return this.lines.some((l) => re.test(l));
  }

  count(re: RegExp): number {
    return this.lines.filter((l) => re.test(l)).length;
  }

  async waitLine(what: string, re: RegExp, timeoutMs = 15000): Promise<void> {
    await waitFor(
      `${what} (${re}) in the daemon's output:\n${this.output}`,
      () => {
        if (this.exit && !this.has(re)) throw new Error(`daemon exited (${this.exit.code ?? this.exit.signal}) before ${what}:\n${this.output}`);
        return this.has(re);
      },
      timeoutMs,
      25,
    );
  }

  /** Started and reading the journal (the line logged just before READY=1). */
  ready(timeoutMs = 30000): Promise<void> {
    return this.waitLine('start-up', /journal: .* starting at /, timeoutMs);
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.exit) this.child.kill(signal);
  }

  /** Resolves with the exit; SIGKILLs after timeoutMs. */
  async wait(timeoutMs = 15000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const t = setTimeout(() => this.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(t);
    return this.exit!;
  }

  async stop(): Promise<void> {
    if (this.exit) return;
    this.kill('SIGTERM');
    await this.wait();
  }
}

/** Is `address` in the kernel set (ipset backend), as the server namespace sees it? */
export async function inIpset(sb: Sandbox, address: string): Promise<boolean> {
  const set = address.includes(':') ? 'tallow6' : 'tallow';
  const r = await sb.run(['ipset', 'test', set, address], { net: 'server' });
  return r.code === 0;
}

/** Seconds left on the kernel entry of `address` in its ipset set, or null when absent. */
export async function ipsetTimeout(sb: Sandbox, address: string): Promise<number | null> {
  const set = address.includes(':') ? 'tallow6' : 'tallow';
  const r = await sb.run(['ipset', 'list', set, '-o', 'save'], { net: 'server' });
  for (const l of r.stdout.split('\n')) {
    const m = /^add \S+ (\S+) timeout (\d+)/.exec(l.trim());
    if (m && m[1] === address) return Number(m[2]);
  }
  return null;
}

/** A tallow.conf written into the sandbox dir; state and socket inside the sandbox too. */
export function writeConfig(sb: Sandbox, name: string, lines: string[]): string {
  const dir = path.join(sb.dir, name);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'tallow.conf');
  const base = [`state_dir=${path.join(dir, 'state')}`, `socket=${path.join(dir, 'tallow.sock')}`, `patterns_dir=${path.join(dir, 'patterns')}`];
  fs.mkdirSync(path.join(dir, 'patterns'), { recursive: true });
  const keys = new Set(lines.map((l) => l.split('=')[0]));
  fs.writeFileSync(file, [...base.filter((l) => !keys.has(l.split('=')[0])), ...lines, ''].join('\n'));
  return file;
}

/** sshd's trusted sources, as the shipped patterns select them. */
export const SSHD_FILTER = [['_EXE=/usr/sbin/sshd', '_UID=0'], ['SYSLOG_IDENTIFIER=sshd', '_UID=0']];
