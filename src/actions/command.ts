// A command action as a listener: on each ban and/or unban, a program run as an argument vector
// with the ban's values in its words (placeholders) and in its environment (TALLOW_*).
//
// One run per address: at most `concurrency` at once; the rest wait here (up to HIGH, then the
// dispatcher holds them, up to `queue`, so a flood of 10,000 bans is run in full, a few at a
// time). Runs for one address never overlap and keep their order (a ban's command ends before
// its unban's starts). Batch mode (`batch=N`): one run for up to N addresses, given on standard
// input one per line, runs one after another in order. A login a notify rule reports
// (notify_command) is always one run of its own, with {user} {method} {fingerprint}.
//
// A run that fails (exit status not 0, killed at its timeout, could not start) is logged with
// its output and counted, not repeated: a command that changes a firewall is rarely safe to run
// twice, and one that is can retry by itself.
import type { Listener, TallowEvent } from '../events';
import type { Logger } from '../log';
import { environment, expand, type Values } from './argv';
import { outcome, runProgram, type RunResult } from './run';
import type { CommandAction } from './settings';
import { actionable, validAddress, valuesOf, type ActionEventKind } from './values';

/** Runs waiting here past which handle() waits (the dispatcher then holds the rest). */
const HIGH = 1000;
const LOW = 500;
/** How far past busy addresses the next run is looked for. */
const SCAN = 64;
/** Failed runs logged one by one per minute; the rest are counted in the next line. */
const LOG_PER_MINUTE = 20;

export interface CommandStats {
  runs: number;
  failures: number;
  timeouts: number;
  /** addresses handed to the command (one per run, or many per batch run) */
  addresses: number;
}

export class CommandListener implements Listener {
  readonly name: string;
  readonly maxQueue: number;
  readonly maxBatch: number;
  readonly stats: CommandStats = { runs: 0, failures: 0, timeouts: 0, addresses: 0 };
  private readonly on = new Set<ActionEventKind>();
  private readonly env: NodeJS.ProcessEnv = {};
  private waiting: Values[] = [];
  private running = 0;
  private readonly busy = new Set<string>();
  private room: (() => void)[] = [];
  private idle: (() => void)[] = [];
  private closed = false;
  private window = 0;
  private loggedInWindow = 0;
  private unlogged = 0;
  private pumpScheduled = false;

  constructor(
    readonly action: CommandAction,
    private readonly log: Logger,
    baseEnv: NodeJS.ProcessEnv = process.env,
  ) {
    this.name = `action.${action.name}`;
    this.maxQueue = action.queue;
    this.maxBatch = action.batch > 0 ? action.batch : 500;
    if (action.ban) this.on.add('ban');
    if (action.unban) this.on.add('unban');
    if (action.notify) this.on.add('notify');
    // The daemon's environment (PATH, LANG, what the unit sets), without stale TALLOW_* values.
    for (const [k, v] of Object.entries(baseEnv)) if (!k.startsWith('TALLOW_')) this.env[k] = v;
  }

  handle(events: TallowEvent[]): void | Promise<void> {
    const jobs: Values[] = [];
    let logins = 0;
    for (const e of events) {
      if (!actionable(e, this.on, this.action.restored)) continue;
      const v = valuesOf(e);
      // The ledger holds only addresses and networks; anything else is never handed on.
      if (!validAddress(v.address)) {
        this.log.error(`${this.name}: not an address, not run: ${JSON.stringify(v.address)}`);
        continue;
      }
      // A login runs on its own (batch= or not): one run per login, beside the bans' runs.
      if (v.event === 'notify' && this.action.batch > 0) {
        this.waiting.push(v);
        logins++;
      } else jobs.push(v);
    }
    if (logins) this.pump();
    if (jobs.length === 0) return;
    if (this.action.batch > 0) return this.runBatches(jobs);
    for (const j of jobs) this.waiting.push(j);
    this.pump();
    if (this.waiting.length < HIGH) return;
    return new Promise((r) => this.room.push(r));
  }

  /** Resolves when every run handed over so far has ended. */
  flush(): Promise<void> {
    if (this.waiting.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  /** Runs not started are dropped (and said); those running end, at the latest at their timeout. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.waiting.length) this.log.warn(`${this.name}: stopping with ${this.waiting.length} runs not started`);
    this.waiting = [];
    for (const r of this.room.splice(0)) r();
    await this.flush();
  }

  /**
   * The next run starts in a later turn of the loop, not in the exit callback: starting a
   * process is a synchronous fork in this thread, and exits handled back to back would
   * otherwise starve the turns where the journal is read and the firewall queue runs.
   */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (!this.closed && this.running < this.action.concurrency && this.waiting.length) {
      const n = Math.min(this.waiting.length, SCAN);
      let i = 0;
      while (i < n && this.busy.has(this.waiting[i].address)) i++;
      if (i === n) break;
      const [job] = this.waiting.splice(i, 1);
      void this.runOne(job);
      // One start per turn: the rest in the next one.
      if (this.running < this.action.concurrency && this.waiting.length) {
        this.schedulePump();
        break;
      }
    }
    if (this.waiting.length < LOW) for (const r of this.room.splice(0)) r();
    if (this.waiting.length === 0 && this.running === 0) for (const r of this.idle.splice(0)) r();
  }

  private async runOne(v: Values): Promise<void> {
    this.running++;
    this.busy.add(v.address);
    try {
      const template = v.event === 'ban' ? this.action.ban! : v.event === 'unban' ? this.action.unban! : this.action.notify!;
      const r = await runProgram(expand(template, v), { env: { ...this.env, ...environment(v) }, timeoutMs: this.action.timeoutMs });
      this.count(r, 1);
      if (!r.ok) this.failed(`${v.event} ${v.address}`, r);
    } finally {
      this.running--;
      this.busy.delete(v.address);
      this.schedulePump();
    }
  }

  /** Bans and unbans in their order: each stretch of one kind in runs of up to `batch`. */
  private async runBatches(jobs: Values[]): Promise<void> {
    let i = 0;
    while (i < jobs.length && !this.closed) {
      const event = jobs[i].event as ActionEventKind;
      let j = i;
      while (j < jobs.length && j - i < this.action.batch && jobs[j].event === event) j++;
      const part = jobs.slice(i, j);
      i = j;
      const shared: Values = { event, address: '', family: '', seconds: '', rule: '', pattern: '', score: '', count: '', reason: '', network: '', user: '', method: '', fingerprint: '' };
      const template = event === 'ban' ? this.action.ban! : this.action.unban!;
      this.running++;
      const r = await runProgram(expand(template, shared), {
        env: { ...this.env, TALLOW_EVENT: event, TALLOW_BATCH: String(part.length) },
        input: part.map((v) => v.address).join('\n') + '\n',
        timeoutMs: this.action.timeoutMs,
      });
      this.running--;
      this.count(r, part.length);
      if (!r.ok) this.failed(`${event} of ${part.length} addresses (${part[0].address}...)`, r);
    }
    if (this.running === 0) for (const r of this.idle.splice(0)) r();
  }

  private count(r: RunResult, addresses: number): void {
    this.stats.runs++;
    this.stats.addresses += addresses;
    if (!r.ok) this.stats.failures++;
    if (r.timedOut) this.stats.timeouts++;
  }

  /** Logged with what the program said (bounded), at most LOG_PER_MINUTE a minute. */
  private failed(what: string, r: RunResult): void {
    const minute = Math.floor(Date.now() / 60_000);
    if (minute !== this.window) {
      this.window = minute;
      this.loggedInWindow = 0;
    }
    if (this.loggedInWindow >= LOG_PER_MINUTE) {
      this.unlogged++;
      return;
    }
    this.loggedInWindow++;
    const fields: Record<string, string> = { stdout: r.stdout.trim(), stderr: r.stderr.trim() };
    if (this.unlogged) fields.failures_not_logged = String(this.unlogged);
    this.unlogged = 0;
    this.log.error(`${this.name}: ${what}: ${outcome(r, this.action.timeoutMs)}`, fields);
  }
}
