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

/**
 * Runs the daemon until SIGTERM/SIGINT. Resolves with the exit status. Start-up errors are thrown
 * (the CLI turns them into one line and an exit status).
 */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  // Before anything else: SIGUSR2's default would end the process (logrotate sends it).
  const onUsr2 = () => opts.log.info(`SIGUSR2: ${opts.log.reopen()}`);
  process.on('SIGUSR2', onUsr2);
  let d: Daemon;
  try {
    d = await Daemon.start(opts);
  } catch (e) {
    // In the journal with its MESSAGE_ID; the CLI still prints its one line on stderr.
    const config = (e as { exitCode?: unknown } | null)?.exitCode === 78;
    if (opts.log.journal) opts.log.error(`start-up failed: ${errText(e)}`, undefined, config ? 'config_error' : 'start_failed');
    process.off('SIGUSR2', onUsr2);
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
    const onStop = (sig: string) => {
      opts.log.info(`${sig}: stopping`);
      if (settle) clearTimeout(settle);
      process.off('SIGHUP', onHup);
      process.off('SIGUSR1', onUsr1);
      d.stop().then(
        () => resolve(0),
        (e) => {
          opts.log.error(`error while stopping: ${errText(e)}`);
          resolve(1);
        },
      );
    };
    const onHup = () => {
      d.reloadService('SIGHUP');
    };
    const onUsr1 = () => d.dump();
    process.once('SIGTERM', () => onStop('SIGTERM'));
    process.once('SIGINT', () => onStop('SIGINT'));
    process.on('SIGHUP', onHup);
    process.on('SIGUSR1', onUsr1);
  });
}

