#!/usr/bin/env node
// `tallow`: the daemon (no command), or a client of the running daemon (status, list, rules, ban,
// unban, reload, get, set, version...), or the pattern tester (test). Every command line is read
// by options.ts from the table in commands.ts. Start-up errors are one line on stderr and an exit
// status a script can read (sysexits.h, exit.ts): never a stack trace.
import { setFlagsFromString } from 'node:v8';
import { DEFAULT_CONFIG_FILE } from './config';
import { DAEMON, usage } from './commands';
import { EX_NOPERM, EX_USAGE } from './exit';
import { Log } from './log';
import { parseCommand } from './options';

export { EX_USAGE, EX_UNAVAILABLE, EX_NOPERM, EX_CONFIG } from './exit';

/** `tallow --help`, written from the table of commands (commands.ts). */
export const USAGE = usage();

export interface DaemonArgs {
  config: string;
  explicitConfig: boolean;
  journalDir?: string;
  dryRun: boolean;
  verbose: boolean;
}

/** The commands whose client is ctl.ts (one request to the daemon, one answer). */
export const CTL_COMMANDS = ['status', 'list', 'rules', 'metrics', 'ban', 'unban', 'reload', 'get', 'set', 'version'] as const;
export type CtlCommand = (typeof CTL_COMMANDS)[number];

export type Parsed =
  | { kind: 'daemon'; args: DaemonArgs }
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'ctl'; sub: CtlCommand; args: string[] }
  | { kind: 'test'; args: string[] }
  | { kind: 'history'; args: string[] }
  | { kind: 'report'; args: string[] }
  | { kind: 'allow'; args: string[] }
  | { kind: 'usage'; error: string };

/** The command named first (its own arguments follow, parsed by its handler), or the daemon's options. */
export function parseArgs(argv: string[]): Parsed {
  const first = argv[0];
  if (first !== undefined && (CTL_COMMANDS as readonly string[]).includes(first)) return { kind: 'ctl', sub: first as CtlCommand, args: argv.slice(1) };
  if (first === 'test' || first === 'history' || first === 'report' || first === 'allow') return { kind: first, args: argv.slice(1) };
  let p;
  try {
    p = parseCommand(DAEMON, argv);
  } catch (e) {
    return { kind: 'usage', error: (e as Error).message };
  }
  if (p.help) return { kind: 'help' };
  if (p.values.version) return { kind: 'version' };
  const v = p.values;
  const args: DaemonArgs = { config: DEFAULT_CONFIG_FILE ?? '/etc/tallow.conf', explicitConfig: false, dryRun: v['dry-run'] === true, verbose: v.verbose === true };
  if (typeof v.config === 'string') {
    args.config = v.config;
    args.explicitConfig = true;
  }
  if (typeof v['journal-dir'] === 'string') args.journalDir = v['journal-dir'];
  return { kind: 'daemon', args };
}

/**
 * Exit status for a start-up error: the error's own exitCode (78 config/patterns, 69 firewall),
 * 77 for a permission refused by the system, else 1.
 */
export function exitStatusFor(e: unknown): number {
  const code = (e as { exitCode?: unknown } | null)?.exitCode;
  if (typeof code === 'number' && Number.isInteger(code) && code > 0 && code < 256) return code;
  const errno = (e as { code?: unknown } | null)?.code;
  if (errno === 'EACCES' || errno === 'EPERM') return EX_NOPERM;
  return 1;
}

function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // Some messages already carry the program name; do not print `tallow: tallow: ...`.
  return msg.replace(/\s*\n\s*/g, ' ').trim().replace(/^tallow: /, '') || 'unknown error';
}

export async function main(argv: string[]): Promise<number> {
  const p = parseArgs(argv);
  switch (p.kind) {
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case 'version': {
      const { version } = await import('./version');
      process.stdout.write(`tallow ${version()}\n`);
      return 0;
    }
    case 'usage':
      process.stderr.write(`tallow: ${p.error} (see tallow --help)\n`);
      return EX_USAGE;
    case 'ctl': {
      const { ctlMain } = await import('./ctl');
      return ctlMain(p.sub, p.args);
    }
    case 'history': {
      const { historyMain } = await import('./history-cli');
      return historyMain(p.args);
    }
    case 'report': {
      const { reportMain } = await import('./report/cli');
      return reportMain(p.args);
    }
    case 'allow': {
      const { allowMain } = await import('./allow-cli');
      return allowMain(p.args);
    }
    case 'test': {
      const { testMain } = await import('./tester');
      return testMain(p.args);
    }
    case 'daemon': {
      // Start-up (module loading, the pattern checks) is hot enough for V8 to compile a few
      // functions with TurboFan, whose code (~4.5 MiB of the node binary) then stays resident in
      // a daemon that may sit idle for weeks. service.ts switches it on again once the daemon is
      // ready; the first flood brings it in when there is work for it (issue 12).
      setFlagsFromString('--no-turbofan');
      const log = new Log({ verbose: p.args.verbose });
      let daemon: typeof import('./service');
      try {
        daemon = await import('./service');
      } catch (e) {
        // The addon missing or built for another Node: say so in one line.
        process.stderr.write(`tallow: cannot load the program: ${oneLine(e)}\n`);
        return 1;
      }
      try {
        return await daemon.runDaemon({
          configFile: p.args.config,
          explicitConfig: p.args.explicitConfig,
          journalDir: p.args.journalDir,
          dryRun: p.args.dryRun,
          log,
        });
      } catch (e) {
        if (p.args.verbose && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
        process.stderr.write(`tallow: ${oneLine(e)}\n`);
        return exitStatusFor(e);
      }
    }
  }
}

if (require.main === module) {
  // A bug must not leave a half-running daemon: one line, exit 1 (the stack only with --verbose).
  const verbose = process.argv.includes('--verbose') || process.argv.includes('-v');
  const fatal = (e: unknown) => {
    if (verbose && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
    process.stderr.write(`tallow: internal error: ${oneLine(e)}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Timers of a stopped daemon or a client are all cleared; anything left is not worth waiting
      // for. But output to a pipe is written asynchronously: exit once it is all out, or
      // `tallow list --json | jq` would get the first 64 KiB (an empty write's callback runs after
      // every write before it).
      process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
    },
    fatal,
  );
}
