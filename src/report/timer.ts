// The daily report, mailed: for each mail action with `report=HH:MM` (06:00 unless `off`), one
// timer to the next run; the report itself is made by a child process (`tallow report --mail
// NAME --since .. --until ..`), so reading a large history never holds the daemon's event loop,
// and what the timer sends is exactly what an administrator gets by running that command. The
// next run is counted from the scheduled time, not the clock, so a timer that fires a little
// early never makes one day's report twice.
import * as path from 'node:path';
import type { Config } from '../config';
import type { MailAction } from '../actions/settings';
import { realClock, type Clock } from '../actions/mail';
import { outcome, runProgram, type RunResult } from '../actions/run';
import type { Logger } from '../log';
import { nextRun, reportPeriod } from './schedule';

/** A report over a big history takes seconds of CPU; past this the child is ended. */
const REPORT_TIMEOUT_MS = 10 * 60_000;


export type Runner = (argv: string[]) => Promise<RunResult>;

/** The command the timer runs for one action and period (the same an administrator can type). */
export function reportCommand(a: MailAction, since: number, until: number, configFile: string | null): string[] {
  const cli = path.resolve(__dirname, '..', 'cli.js');
  const argv = [process.execPath, cli, 'report', '--mail', a.name, '--since', new Date(since).toISOString(), '--until', new Date(until).toISOString()];
  if (configFile) argv.push('--config', configFile);
  return argv;
}

export class ReportTimer {
  private readonly timers = new Map<string, unknown>();
  private closed = false;
  /** runs started (tests and metrics) */
  runs = 0;

  constructor(
    private readonly config: Pick<Config, 'actionDefs' | 'file' | 'history'>,
    private readonly log: Logger,
    private readonly clock: Clock = realClock,
    private readonly run: Runner = (argv) => runProgram(argv, { env: process.env, timeoutMs: REPORT_TIMEOUT_MS }),
  ) {}

  /** The mail actions that get a daily report. */
  actions(): MailAction[] {
    if (this.config.history === 'off') return [];
    return (this.config.actionDefs ?? []).filter((a): a is MailAction => a.kind === 'mail' && a.report !== null);
  }

  start(): void {
    if (this.config.history === 'off' && (this.config.actionDefs ?? []).some((a) => a.kind === 'mail' && a.report !== null)) {
      this.log.info('daily report: not mailed, the history is off (history=off)');
    }
    const now = this.clock.now();
    for (const a of this.actions()) {
      const at = this.arm(a, now);
      this.log.info(`daily report: action.${a.name} mails it to ${a.to.join(', ')} next at ${new Date(at).toISOString()}`);
    }
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) this.clock.clearTimeout(t);
    this.timers.clear();
  }

  private arm(a: MailAction, after: number): number {
    const at = nextRun(a.report!, after);
    this.timers.set(a.name, this.clock.setTimeout(() => void this.fire(a, at), Math.max(0, at - this.clock.now())));
    return at;
  }

  private async fire(a: MailAction, at: number): Promise<void> {
    if (this.closed) return;
    this.arm(a, at);
    const { since, until } = reportPeriod(a.report!, at);
    this.runs++;
    const r = await this.run(reportCommand(a, since, until, this.config.file ?? null));
    if (r.ok) this.log.info(`daily report mailed to ${a.to.join(', ')} (action.${a.name})`);
    else this.log.error(`daily report for action.${a.name} not mailed: tallow report ${outcome(r, REPORT_TIMEOUT_MS)}`, { stderr: r.stderr.trim().slice(0, 1000) });
  }
}
