#!/usr/bin/env node
// `tallow`: the daemon (no subcommand), or a client of the running daemon (status, list, rules,
// ban, unban), or the pattern tester (test). Start-up errors are one line on stderr and an exit
// status a script can read (sysexits.h): never a stack trace.
import { setFlagsFromString } from 'node:v8';
import { DEFAULT_CONFIG_FILE } from './config';
import { Log } from './log';

export const EX_USAGE = 64;
export const EX_UNAVAILABLE = 69;
export const EX_CONFIG = 78;

export const USAGE = `Usage: tallow [--config FILE] [--journal-dir DIR] [--dry-run] [--verbose]
       tallow status [--json] | list [--json] | rules [NAME] [--json] | metrics
       tallow ban ADDRESS [--time SECONDS] | unban ADDRESS|NETWORK
       tallow allow add|remove ADDRESS|NETWORK | allow list [--json]
       tallow history [ADDRESS|NETWORK] [--since WHEN] [--rule RULE] [--top] [--limit N] [--json]
       tallow report [--since WHEN] [--until WHEN] [--format text|json|html] [--top N] [--mail ACTION]
       tallow test [OPTIONS] [FILE...]
       tallow --help | --version

Reads sshd's authentication failures from the systemd journal, scores remote addresses and bans
offenders in the kernel firewall (ipset+iptables, firewalld or nftables).

Daemon options:
  --config FILE      read FILE instead of /etc/tallow.conf (a missing FILE is an error)
  --journal-dir DIR  read the journal files in DIR (like journalctl -D) instead of the system journal
  --dry-run          decide and log bans, never touch the firewall (no state file, no control socket)
  --verbose          log every match, not only bans and unbans
  --help             show this help
  --version          show the version

Commands (to the running daemon, over its control socket):
  status             version, uptime, backend, counters, journal position (--json: every figure)
  list               banned addresses and networks with rule, ports, remaining time, score,
                     count and pattern
  rules [NAME]       each rule (or the one named): filter, policy, matches, bans, top addresses
  metrics            every counter and gauge in Prometheus' text format
  ban ADDRESS        ban ADDRESS now (--time SECONDS, default: expires)
  unban ADDRESS      lift every ban of the address (every rule's ports) and forget its records;
                     a NETWORK (2001:db8::/64) lifts a rule's ban of that network
  allow add NETWORK  add an address or network to the allowlist now and for good (kept in
                     /etc/tallow.conf.d/50-tallow-allow.conf); lifts its bans. allow remove
                     NETWORK takes it out again; allow list shows the allowlist
  history            what happened to an address or network and why (--since 7d, --rule sshd.json,
                     --top: most banned; marks allowlisted addresses that attacked); read from the
                     history file itself when the daemon is not running
  report             bans and unbans per rule, top addresses, networks and patterns, repeat
                     offenders, bans per hour, against the previous period (default: the last
                     24h); --format html: one self-contained page; read from the history store;
                     --mail ACTION: mail it through that mail action (as the daily timer does)
  test               try patterns on log lines or the journal (see tallow test --help)

Signals: SIGHUP reloads tallow.conf and the patterns, SIGUSR1 logs the record table,
SIGTERM/SIGINT stop (bans stay in the kernel until their timeouts).
Exit status: 0 stopped cleanly, 64 bad usage, 69 no usable firewall, 78 bad configuration or
patterns, 1 other errors. See tallow(8), tallow.conf(5), tallow.patterns(5).
`;

export interface DaemonArgs {
  config: string;
  explicitConfig: boolean;
  journalDir?: string;
  dryRun: boolean;
  verbose: boolean;
}

export type Parsed =
  | { kind: 'daemon'; args: DaemonArgs }
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'ctl'; sub: 'status' | 'list' | 'rules' | 'metrics' | 'ban' | 'unban'; args: string[] }
  | { kind: 'test'; args: string[] }
  | { kind: 'history'; args: string[] }
  | { kind: 'report'; args: string[] }
  | { kind: 'allow'; args: string[] }
  | { kind: 'usage'; error: string };

const CTL = new Set(['status', 'list', 'rules', 'metrics', 'ban', 'unban']);

export function parseArgs(argv: string[]): Parsed {
  const first = argv[0];
  if (first !== undefined && CTL.has(first)) return { kind: 'ctl', sub: first as 'status', args: argv.slice(1) };
  if (first === 'test') return { kind: 'test', args: argv.slice(1) };
  if (first === 'history') return { kind: 'history', args: argv.slice(1) };
  if (first === 'report') return { kind: 'report', args: argv.slice(1) };
  if (first === 'allow') return { kind: 'allow', args: argv.slice(1) };
  const args: DaemonArgs = { config: DEFAULT_CONFIG_FILE ?? '/etc/tallow.conf', explicitConfig: false, dryRun: false, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let value: string | undefined;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      value = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const takeValue = (): string | null => {
      if (value !== undefined) return value;
      const v = argv[i + 1];
      if (v === undefined || v === '') return null;
      i++;
      return v;
    };
    const flag = (): boolean => value === undefined;
    switch (a) {
      case '-h':
      case '--help':
        return { kind: 'help' };
      case '-V':
      case '--version':
        return { kind: 'version' };
      case '-c':
      case '--config': {
        const v = takeValue();
        if (v === null || v === '') return { kind: 'usage', error: `${a} needs a file name` };
        args.config = v;
        args.explicitConfig = true;
        break;
      }
      case '-D':
      case '--journal-dir': {
        const v = takeValue();
        if (v === null || v === '') return { kind: 'usage', error: `${a} needs a directory` };
        args.journalDir = v;
        break;
      }
      case '-n':
      case '--dry-run':
        if (!flag()) return { kind: 'usage', error: `${a} takes no value` };
        args.dryRun = true;
        break;
      case '-v':
      case '--verbose':
        if (!flag()) return { kind: 'usage', error: `${a} takes no value` };
        args.verbose = true;
        break;
      default:
        return { kind: 'usage', error: a.startsWith('-') ? `unknown option ${a}` : `unknown command ${a}` };
    }
  }
  return { kind: 'daemon', args };
}

/** Exit status for a start-up error: the error's own exitCode (78 config/patterns, 69 firewall), else 1. */
export function exitStatusFor(e: unknown): number {
  const code = (e as { exitCode?: unknown } | null)?.exitCode;
  if (typeof code === 'number' && Number.isInteger(code) && code > 0 && code < 256) return code;
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
