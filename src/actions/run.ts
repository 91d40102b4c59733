// One program run for an action: an argument vector (never a shell), its own process group so a
// timeout ends it and whatever it started, output kept up to a bound for the log.
import { spawn, type ChildProcess } from 'node:child_process';
import { errText } from '../limits';

/** Bytes of stdout and of stderr kept for the log line of a failed run. */
export const OUTPUT_KEPT = 2048;
/** After SIGTERM at the timeout, this long before SIGKILL. */
const KILL_GRACE_MS = 2000;

export interface RunOptions {
  env: NodeJS.ProcessEnv;
  /** written to standard input (else /dev/null) */
  input?: string;
  timeoutMs: number;
}

export interface RunResult {
  ok: boolean;
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  /** could not start (ENOENT, EACCES...) */
  error: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs to the end, never throws: the outcome says what happened. */
export function runProgram(argv: readonly string[], o: RunOptions): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const out = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), over: { stdout: 0, stderr: 0 } };
    let timedOut = false;
    let done = false;
    let kill: NodeJS.Timeout | null = null;
    const finish = (code: number | null, signal: string | null, error: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // After a timeout the SIGKILL still comes: it is for what the program left behind too.
      if (kill && !timedOut) clearTimeout(kill);
      // What a left-behind child still writes is not waited for.
      child.stdout?.destroy();
      child.stderr?.destroy();
      const text = (k: 'stdout' | 'stderr') => out[k].toString('utf8') + (out.over[k] ? ` [${out.over[k]} more bytes]` : '');
      resolve({ ok: !timedOut && error === null && code === 0, code, signal, timedOut, error, stdout: text('stdout'), stderr: text('stderr'), ms: Date.now() - t0 });
    };
    let child: ChildProcess;
    try {
      child = spawn(argv[0], argv.slice(1), {
        env: o.env,
        stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        // Its own process group: the timeout kills the program and what it started.
        detached: true,
        shell: false,
      });
    } catch (e) {
      // Refused before any process (a NUL byte in an argument...).
      resolve({ ok: false, code: null, signal: null, timedOut: false, error: errText(e), stdout: '', stderr: '', ms: 0 });
      return;
    }
    const group = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      group('SIGTERM');
      kill = setTimeout(() => group('SIGKILL'), KILL_GRACE_MS);
      kill.unref();
    }, o.timeoutMs);
    for (const k of ['stdout', 'stderr'] as const) {
      child[k]?.on('data', (d: Buffer) => {
        const room = OUTPUT_KEPT - out[k].length;
        if (room > 0) out[k] = Buffer.concat([out[k], d.subarray(0, room)]);
        out.over[k] += Math.max(0, d.length - Math.max(room, 0));
      });
    }
    child.on('error', (e) => finish(null, null, (e as NodeJS.ErrnoException).code ?? e.message));
    child.on('exit', (code, signal) => finish(code, signal, null));
    if (o.input !== undefined && child.stdin) {
      // A program that exits without reading its input is not an error of ours.
      child.stdin.on('error', () => {});
      child.stdin.end(o.input);
    }
  });
}

/** For the log: `exit 3`, `killed by SIGTERM after the 30 s timeout`, `could not start: ENOENT`. */
export function outcome(r: RunResult, timeoutMs: number): string {
  if (r.error) return `could not start: ${r.error}`;
  if (r.timedOut) return `killed after the ${timeoutMs / 1000} s timeout`;
  if (r.signal) return `killed by ${r.signal}`;
  return `exit ${r.code}`;
}
