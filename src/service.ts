// The daemon as a service: runs it until SIGTERM/SIGINT and answers the other signals
// (SIGHUP reload, SIGUSR1 record table), telling systemd what it does (sd_notify).
import { setFlagsFromString } from 'node:v8';
import { Daemon, type DaemonOptions } from './daemon';
import { errText } from './limits';

/**
 * Runs the daemon until SIGTERM/SIGINT. Resolves with the exit status. Start-up errors are thrown
 * (the CLI turns them into one line and an exit status).
 */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const d = await Daemon.start(opts);
  // Off during start-up (cli.ts): the optimizing compiler is for the work that follows.
  setFlagsFromString('--turbofan');
  return new Promise<number>((resolve) => {
    const onStop = (sig: string) => {
      opts.log.info(`${sig}: stopping`);
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

