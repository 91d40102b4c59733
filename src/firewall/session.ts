// A firewall tool kept running and fed commands on stdin (`ipset -`, `nft -i`), so a ban costs a
// write to a pipe instead of a process. Each request is a block of lines followed by a sentinel
// line the tool always rejects with a message naming it; what the tool printed on stderr before
// that message is the block's error text (both tools keep going after a refused line). A dead
// tool is started again on the next request; requests are idempotent, so a block that was cut
// short by the death is simply sent again once.
import { spawn, type ChildProcess } from 'node:child_process';
import { CommandError, countExec, showArgv } from './exec';

export interface SessionSyntax {
  /** The line that makes the tool print a message naming `tag` on stderr, touching nothing. */
  sentinel(tag: string): string;
}

interface Waiter {
  tag: string;
  resolve: (errors: string) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class ToolSession {
  private child: ChildProcess | null = null;
  private err = '';
  private waiter: Waiter | null = null;
  private seq = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Processes started so far (1 while the first lives). */
  starts = 0;
  /** Bytes sent to the running process. */
  private written = 0;

  /**
   * recycleBytes: a process that was sent this much is ended after its current request and the
   * next one starts afresh. `nft -i` keeps every line in its editing history (measured: RSS grows
   * by what it was sent), so a session must not live forever.
   */
  constructor(
    private readonly argv: string[],
    private readonly syntax: SessionSyntax,
    private readonly timeoutMs: number,
    private readonly recycleBytes = 16 * 1024 * 1024,
  ) {}

  /** PID of the running tool, if any (tests kill it from outside). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Sends the lines, resolves with the tool's stderr for them ('' when every line was taken).
   * One request at a time, in call order. Rejects (CommandError) only when the tool cannot run or
   * died twice on the same block.
   */
  exec(lines: string[]): Promise<string> {
    const p = this.queue.then(() => this.execNow(lines, true));
    this.queue = p.catch(() => {});
    return p;
  }

  private async execNow(lines: string[], retry: boolean): Promise<string> {
    if (this.closed) throw new CommandError(`${showArgv(this.argv)}: session closed`, this.argv, null);
    try {
      const errors = await this.once(lines);
      if (this.written > this.recycleBytes && this.child) {
        const old = this.child;
        this.child = null;
        old.stdin!.end();
      }
      return errors;
    } catch (e) {
      if (!retry || !(e instanceof SessionDied)) throw e;
      // Died under this block (killed, crashed): the next process gets it again.
      return this.execNow(lines, false);
    }
  }

  private once(lines: string[]): Promise<string> {
    const child = this.child ?? this.start();
    const tag = `tallowsync${++this.seq}`;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new CommandError(`${showArgv(this.argv)}: no answer after ${this.timeoutMs} ms`, this.argv, null));
        this.kill(child);
      }, this.timeoutMs);
      this.waiter = { tag, resolve, reject, timer };
      this.err = '';
      const text = lines.length ? lines.join('\n') + '\n' + this.syntax.sentinel(tag) + '\n' : this.syntax.sentinel(tag) + '\n';
      this.written += text.length;
      child.stdin!.write(text);
    });
  }

  private start(): ChildProcess {
    countExec();
    this.starts++;
    this.written = 0;
    const child = spawn(this.argv[0], this.argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    this.child = child;
    // Prompts and echoes: nothing we need, but the pipe must not fill up.
    child.stdout!.resume();
    child.stdin!.on('error', () => {});
    // An idle session does not keep the process alive (a request in flight has its timer).
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?(): void }).unref?.();
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      if (this.child !== child) return;
      this.err += d;
      const w = this.waiter;
      if (!w) {
        this.err = '';
        return;
      }
      const i = this.err.indexOf(w.tag);
      if (i < 0) return;
      // The tool's message about the sentinel starts on the line holding the tag (ipset) or the
      // line before it (nft prints "Error: ..." then the offending line).
      const lines = this.err.slice(0, i).split('\n');
      lines.pop();
      if (/^Error: syntax error/.test(lines[lines.length - 1] ?? '')) lines.pop();
      // nft underlines the offending line with carets; those of the previous sentinel may come
      // after its tag was seen, i.e. here. They carry nothing the Error: line does not say.
      for (let k = lines.length - 1; k >= 0; k--) if (/^\s*\^+\s*$/.test(lines[k])) lines.splice(k, 1);
      this.waiter = null;
      this.err = '';
      clearTimeout(w.timer);
      w.resolve(lines.join('\n').trim());
    });
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = null;
      const w = this.waiter;
      this.waiter = null;
      if (w) {
        clearTimeout(w.timer);
        w.reject(new SessionDied(`${showArgv(this.argv)}: ${why}${this.err.trim() ? `: ${this.err.trim().split('\n')[0]}` : ''}`, this.argv));
      }
    };
    child.on('error', (e: NodeJS.ErrnoException) => gone(e.code === 'ENOENT' ? 'not found' : e.message));
    // 'close', not 'exit': what it printed before dying is read by then.
    child.on('close', (code, signal) => gone(signal ? `killed by ${signal}` : `exited with status ${code}`));
    return child;
  }

  private kill(child: ChildProcess): void {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }

  /** Ends the tool (its stdin closed, killed if it lingers). */
  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    // Waited for again (start() unref'd it): `nft -i` takes 0.7-2 s to exit after its input ends
    // (measured), past the kill timer, and a process whose loop holds nothing else would
    // otherwise end before the 'exit' event, from inside close().
    child.ref();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => this.kill(child), 2000);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      child.stdin!.end();
    });
  }
}

/** The tool went away while a block was in flight (it is sent again once to a new process). */
export class SessionDied extends CommandError {
  constructor(message: string, argv: string[]) {
    super(message, argv, null);
  }
}
