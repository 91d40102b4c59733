// Runs one firewall tool as an argument vector (never a shell), optionally feeding it a script on
// stdin. Every backend goes through here, so errors read the same whatever the tool.
import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import type { Family } from '../address';

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A tool that could not be started, was killed, or exited non-zero. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly argv: string[],
    readonly result: ExecResult | null,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

export interface ExecOptions {
  input?: string;
  /** Kill the tool after this long (a wedged firewall-cmd must not stall the queue forever). */
  timeoutMs?: number;
}

/** How the command line is shown in logs: long scripts go by stdin, so argv stays short. */
export function showArgv(argv: string[]): string {
  return argv.join(' ');
}

let execs = 0;

/** Firewall tool processes started by this process so far (metrics, benchmarks, tests). */
export function execCount(): number {
  return execs;
}

export function countExec(): void {
  execs++;
}

/** Resolves with the exit status whatever it is; rejects only when the tool could not run at all. */
export function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    let child;
    countExec();
    try {
      child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    } catch (e) {
      reject(new CommandError(`cannot run ${argv[0]}: ${(e as Error).message}`, argv, null));
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    let failed: Error | null = null;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    // The tool may exit before reading all its input (e.g. a refused first line): EPIPE is not ours to throw.
    child.stdin.on('error', () => {});
    child.on('error', (e: NodeJS.ErrnoException) => {
      failed = e;
    });
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      if (failed) {
        const why = (failed as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : failed.message;
        reject(new CommandError(`cannot run ${argv[0]}: ${why}`, argv, null));
        return;
      }
      const result = { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (timedOut) {
        reject(new CommandError(`${showArgv(argv)}: killed after ${opts.timeoutMs} ms`, argv, result));
        return;
      }
      resolve(result);
    });
    if (opts.timeoutMs && child.pid !== undefined) {
      const pid = child.pid;
      timer = setTimeout(() => {
        timedOut = true;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, opts.timeoutMs);
    }
    child.stdin.end(opts.input ?? '');
  });
}

/** Like run(), but a non-zero exit is a CommandError carrying the tool's own first error line. */
export async function runOk(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const r = await run(argv, opts);
  if (r.code !== 0) {
    const why = firstLines(r.stderr || r.stdout) || 'no message';
    throw new CommandError(`${showArgv(argv)}: exit status ${r.code}: ${why}`, argv, r);
  }
  return r;
}

function firstLines(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.slice(0, 3).join(' | ');
}

/** Longest a firewall tool may run before it is killed (a wedged tool must not stall the queue). */
export const TOOL_TIMEOUT_MS = 120_000;

/** The address families the sets are made for. */
export function families(settings: { ipv6: boolean }): Family[] {
  return settings.ipv6 ? [4, 6] : [4];
}

export async function executable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
