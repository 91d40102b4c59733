// The daemon as a service: runs it until SIGTERM/SIGINT and answers the other signals
// (SIGHUP reload, SIGUSR1 record table, SIGUSR2 reopen the log file), telling systemd what it
// does (sd_notify).
import { setFlagsFromString } from 'node:v8';
import { addon } from './addon';
import { Daemon, type DaemonOptions } from './daemon';
import { errText } from './limits';
import { releasedText, releaseStartupPages } from './memory';

/** From the ready line (or a reload) to giving back start-up's pages: V8's background compiles of
 *  start-up code end about 1 s after the ready line, and what the daemon runs from then on comes
 *  back on its first use. Tests shorten it (TALLOW_SETTLE_MS). */
const SETTLE_MS = /^\d{1,7}$/.test(process.env.TALLOW_SETTLE_MS ?? '') ? Number(process.env.TALLOW_SETTLE_MS) : 2_000;

/** The signals that stop the daemon. */
const STOPS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/**
 * Runs the daemon until SIGTERM/SIGINT. Resolves with the exit status. Start-up errors are thrown
 * (the CLI turns them into one line and an exit status).
 */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  // Every signal the daemon answers is held from the first line on: its default action ends the
  // process, and one can come right after READY=1 (`systemctl reload` as soon as the start
  // returns, a stop as it ends). Those that come during start-up are answered once it is over.
  const onUsr2 = () => opts.log.info(`SIGUSR2: ${opts.log.reopen()}`);
  process.on('SIGUSR2', onUsr2);
  const early: NodeJS.Signals[] = [];
  let answer = (sig: NodeJS.Signals): void => {
    if (early.includes(sig)) return;
    early.push(sig);
    const stop = STOPS.includes(sig);
    opts.log.info(`${sig} during start-up: ${stop ? 'stopping' : 'answered'} once started`);
    // A second SIGTERM or SIGINT ends the process at once, as it does while stopping.
    if (stop) unhold(STOPS);
  };
  const listeners = new Map<NodeJS.Signals, () => void>();
  for (const sig of [...STOPS, 'SIGHUP', 'SIGUSR1'] as NodeJS.Signals[]) {
    const f = () => answer(sig);
    listeners.set(sig, f);
    process.on(sig, f);
  }
  const unhold = (sigs: Iterable<NodeJS.Signals>) => {
    for (const sig of sigs) process.off(sig, listeners.get(sig)!);
  };
  let d: Daemon;
  try {
    d = await Daemon.start(opts);
  } catch (e) {
    // In the journal with its MESSAGE_ID; the CLI still prints its one line on stderr.
    const config = (e as { exitCode?: unknown } | null)?.exitCode === 78;
    if (opts.log.journal) opts.log.error(`start-up failed: ${errText(e)}`, undefined, config ? 'config_error' : 'start_failed');
    process.off('SIGUSR2', onUsr2);
    unhold(listeners.keys());
    throw e;
  }
  // Off during start-up (cli.ts): the optimizing compiler is for the work that follows.
  setFlagsFromString('--turbofan');
  let settle: NodeJS.Timeout | null = null;
  const scheduleRelease = () => {
    if (settle) clearTimeout(settle);
    settle = setTimeout(() => {
      settle = null;
      if (d.engine.config.releaseMemory === false) return;
      try {
        opts.log.info(releasedText(releaseStartupPages(addon())));
      } catch (e) {
        opts.log.warn(`memory: start-up pages not given back: ${errText(e)}`);
      }
    }, SETTLE_MS);
    settle.unref();
  };
  scheduleRelease();
  d.afterReload = scheduleRelease;
  return new Promise<number>((resolve) => {
    let stopping = false;
    answer = (sig) => {
      if (sig === 'SIGHUP' || sig === 'SIGUSR1') {
        if (stopping) opts.log.info(`${sig} while stopping: ignored`);
        else if (sig === 'SIGHUP') d.reloadService('SIGHUP');
        else d.dump();
        return;
      }
      if (stopping) return;
      stopping = true;
      unhold(STOPS);
      opts.log.info(`${sig}: stopping`);
      if (settle) clearTimeout(settle);
      d.stop().then(
        () => {
          unhold(listeners.keys());
          resolve(0);
        },
        (e) => {
          opts.log.error(`error while stopping: ${errText(e)}`);
          unhold(listeners.keys());
          resolve(1);
        },
      );
    };
    // What came during start-up: a stop wins over the rest.
    const stop = early.find((sig) => STOPS.includes(sig));
    for (const sig of stop ? [stop] : early) answer(sig);
  });
}
