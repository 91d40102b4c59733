// The command line of `tallow`, as data: the daemon's options and every command's, with their
// short aliases and help. options.ts parses by this table and writes each `--help` from it, and
// `tallow --help` lists every command from it; tallow(8) is checked against what it generates.
// A new command is one entry here and its handler in cli.ts.
import { EX_CONFIG, EX_NOINPUT, EX_NOPERM, EX_OK, EX_PROTOCOL, EX_REFUSED, EX_UNAVAILABLE, EX_USAGE, EXIT_STATUSES } from './exit';
import { exitLines, optionLines, synopsis, wrap, type CommandSpec, type OptionSpec } from './options';

const HELP: OptionSpec = { long: 'help', short: 'h', help: 'show this help' };
const JSON_OUT: OptionSpec = { long: 'json', short: 'j', help: 'print JSON for scripts instead of text' };
const SOCKET: OptionSpec = { long: 'socket', short: 's', value: 'PATH', help: 'the control socket (default: socket= of tallow.conf, /run/tallow/tallow.sock)' };
const CLIENT_CONFIG: OptionSpec = { long: 'config', short: 'c', value: 'FILE', help: 'read socket= (and the other settings the command needs) from FILE instead of /etc/tallow.conf' };
/** Every command that talks to the daemon also takes these. */
const CLIENT: OptionSpec[] = [SOCKET, CLIENT_CONFIG, HELP];
const QUIET = ['socket', 'config'];
const CLIENT_EXITS = [EX_OK, EX_REFUSED, EX_USAGE, EX_UNAVAILABLE, EX_PROTOCOL, EX_NOPERM, EX_CONFIG];
const CLIENT_EXIT_TEXT = { [EX_OK]: 'done', [EX_REFUSED]: 'the daemon refused the request (its message is printed)', [EX_UNAVAILABLE]: 'the daemon is not running', [EX_NOPERM]: 'permission denied on the control socket (it is root-only)' };

export const DAEMON: CommandSpec = {
  name: '',
  positionals: [0, 0],
  summary:
    "Reads sshd's authentication failures (and other services', by rule) from the systemd journal, scores remote addresses and bans offenders in the kernel firewall (ipset+iptables, firewalld or nftables).",
  options: [
    { long: 'config', short: 'c', value: 'FILE', help: 'read FILE instead of /etc/tallow.conf (a missing FILE is an error)' },
    { long: 'journal-dir', short: 'D', value: 'DIR', help: 'read the journal files in DIR (like journalctl -D) instead of the system journal' },
    { long: 'dry-run', short: 'n', help: 'decide and log bans, never touch the firewall (no state file, no control socket)' },
    { long: 'verbose', short: 'v', help: 'log every match, not only bans and unbans (and the stack of an unexpected error)' },
    HELP,
    { long: 'version', short: 'V', help: 'show the version' },
  ],
  quiet: ['version'],
  exits: [EX_OK, EX_REFUSED, EX_USAGE, EX_UNAVAILABLE, EX_NOPERM, EX_CONFIG],
  exitText: {
    [EX_OK]: 'stopped by a signal, cleanly',
    [EX_REFUSED]: 'another error (for example, a journal directory that cannot be opened)',
    [EX_UNAVAILABLE]: 'no usable firewall',
    [EX_NOPERM]: 'refused something it needs by the system (EACCES, EPERM)',
  },
};

const RUNTIME_NOTE = 'Settings changed with set are not saved: a reload (tallow reload, SIGHUP) or a restart goes back to the files.';

export const COMMANDS: CommandSpec[] = [
  {
    name: 'status',
    positionals: [0, 0],
    summary: 'version, uptime, backend, counters, journal position, one line for the rules (--json: every figure)',
    options: [JSON_OUT, ...CLIENT],
    quiet: QUIET,
    exits: CLIENT_EXITS,
    exitText: CLIENT_EXIT_TEXT,
  },
  {
    name: 'list',
    positionals: [0, 0],
    summary: 'banned addresses and networks with rule, ports, remaining time, score, count and pattern',
    options: [JSON_OUT, { long: 'rule', short: 'r', value: 'RULE', help: "only the bans of RULE (a rule's name, as tallow rules shows it)" }, ...CLIENT],
    quiet: QUIET,
    exits: CLIENT_EXITS,
    exitText: CLIENT_EXIT_TEXT,
  },
  {
    name: 'rules',
    args: '[NAME]',
    positionals: [0, 1],
    summary: 'each rule (or the one named): filter, policy, matches, bans, top addresses',
    options: [JSON_OUT, ...CLIENT],
    quiet: QUIET,
    exits: CLIENT_EXITS,
    exitText: CLIENT_EXIT_TEXT,
  },
  {
    name: 'metrics',
    positionals: [0, 0],
    summary: "every counter and gauge in Prometheus' text format",
    options: [...CLIENT],
    quiet: QUIET,
    exits: CLIENT_EXITS,
    exitText: CLIENT_EXIT_TEXT,
  },
  {
    name: 'ban',
    args: 'ADDRESS|NETWORK',
    positionals: [1, 1],
    summary: "ban ADDRESS (or a NETWORK such as 203.0.113.0/24) now, on every port, or on the ports of --rule RULE",
    options: [
      { long: 'time', short: 't', value: 'DURATION', help: "how long: seconds, or 30m, 2h, 7d, 2w (default: expires, or the rule's bantime)" },
      { long: 'rule', short: 'r', value: 'RULE', help: "ban on RULE's ports, in its name (an enabled rule that bans)" },
      ...CLIENT,
    ],
    quiet: QUIET,
    exits: CLIENT_EXITS,
    exitText: CLIENT_EXIT_TEXT,
  },
  {
    name: 'unban',
    args: 'ADDRESS|NETWORK',
    positionals: [0, 1],
    summary:
      'lift every ban of the address (every rule\'s ports) and forget its records; a NETWORK (2001:db8::/64) lifts the ban of that network; --all lifts every ban',
    options: [
      { long: 'all', short: 'a', help: 'lift every ban there is (and forget the records of the addresses banned)' },
      { long: 'fleet', help: 'lift it on every server of the fleet too (fleet= in tallow.conf)' },
      ...CLIENT,
    ],
    quiet: QUIET,
    exits: CLIENT_EXITS,
    exitText: CLIENT_EXIT_TEXT,
  },
  {
    name: 'reload',
    positionals: [0, 0],
    summary: 'reload tallow.conf and the patterns, as SIGHUP does, and say what changed; a configuration with an error is refused (exit 78, its file and line printed) and the running one kept',
    options: [...CLIENT],
    quiet: QUIET,
    exits: CLIENT_EXITS,
    exitText: CLIENT_EXIT_TEXT,
  },
  {
    name: 'get',
    args: 'KEY',
    positionals: [1, 1],
    summary: "a rule's setting that set can change: RULE.threshold, RULE.bantime or RULE.findtime (tallow get sshd.bantime)",
    options: [...CLIENT],
    quiet: QUIET,
    exits: CLIENT_EXITS,
    exitText: CLIENT_EXIT_TEXT,
  },
  {
    name: 'set',
    args: 'KEY VALUE',
    positionals: [2, 2],
    summary: "change a rule's threshold, bantime or findtime in the running daemon (tallow set sshd.bantime 2h), until the next reload or restart",
    options: [...CLIENT],
    quiet: QUIET,
    notes:
      'KEY is RULE.threshold (a score above 0, e.g. 3 or 2.5), RULE.bantime (how long its bans last) or RULE.findtime (the window its matches count in), durations in seconds or 30m, 2h, 7d, 2w. Bans already made keep their time. A rule that shared tallow.conf\'s score gets a score of its own, as a patterns file giving it that key would: its scores start over.\n' +
      RUNTIME_NOTE,
    exits: CLIENT_EXITS,
    exitText: CLIENT_EXIT_TEXT,
  },
  {
    name: 'allow',
    args: 'add|remove ADDRESS|NETWORK | list',
    positionals: [1, 2],
    summary:
      'allow add: an address or network allowed now and for good (kept in /etc/tallow.conf.d/50-tallow-allow.conf), its bans lifted; allow remove takes it out again; allow list shows the allowlist',
    options: [JSON_OUT, ...CLIENT],
    quiet: QUIET,
    exits: CLIENT_EXITS,
    exitText: { ...CLIENT_EXIT_TEXT, [EX_CONFIG]: 'tallow.conf cannot be read for socket=, or the configuration on disk with the change does not load (its file:line is printed)' },
  },
  {
    name: 'version',
    positionals: [0, 0],
    summary: "this program's version, and the running daemon's (which may be older after an upgrade)",
    options: [...CLIENT],
    quiet: QUIET,
    exits: [EX_OK, EX_USAGE, EX_CONFIG],
  },
  {
    name: 'history',
    args: '[ADDRESS|NETWORK]',
    positionals: [0, 1],
    summary:
      'what happened to an address or network and why (--since 7d, --rule sshd.json, --top: most banned; marks allowlisted addresses that attacked); read from the history file itself when the daemon is not running',
    options: [
      { long: 'since', value: 'WHEN', help: 'from a time ago (30m, 6h, 7d, 2w) or a date (2026-11-20, 2026-11-20T10:00)' },
      { long: 'rule', short: 'r', value: 'RULE', help: 'a rule, a pattern file or one pattern (sshd, sshd.json, sshd.json#3)' },
      { long: 'top', help: 'the most banned addresses instead' },
      { long: 'limit', short: 'n', value: 'N', help: 'at most N lines (200)' },
      JSON_OUT,
      ...CLIENT,
    ],
    quiet: QUIET,
    exits: [EX_OK, EX_REFUSED, EX_USAGE, EX_PROTOCOL, EX_NOPERM, EX_CONFIG],
    exitText: { ...CLIENT_EXIT_TEXT, [EX_REFUSED]: 'the daemon refused, or there is no history (history=off, no file yet)' },
  },
  {
    name: 'report',
    positionals: [0, 0],
    summary:
      'bans and unbans per rule, top addresses, networks and patterns, repeat offenders, bans per hour, against the previous period (default: the last 24h); read from the history store',
    options: [
      { long: 'since', value: 'WHEN', help: 'the start: a time ago (6h, 7d) or a date (default: 24 hours before --until)' },
      { long: 'until', value: 'WHEN', help: 'the end (default: now)' },
      { long: 'format', short: 'f', value: 'FORMAT', help: 'text (the default), json, or html (one self-contained page)' },
      { long: 'top', value: 'N', help: 'the length of the lists (10)' },
      { long: 'mail', short: 'm', value: 'ACTION', help: 'mail it through that mail action of tallow.conf (as the daily timer does) instead of printing it' },
      { long: 'config', short: 'c', value: 'FILE', help: 'read FILE instead of /etc/tallow.conf' },
      HELP,
    ],
    quiet: ['config'],
    exits: [EX_OK, EX_REFUSED, EX_USAGE, EX_CONFIG],
    exitText: { [EX_OK]: 'done', [EX_REFUSED]: 'no history to report from, or it cannot be read; or the mail was not sent' },
  },
  {
    name: 'test',
    args: '[FILE|-]',
    positionals: [0, 1],
    summary: 'try patterns on log lines or the journal: what matched, what did not, and what each rule would have banned',
    options: [
      { long: 'journal', short: 'J', help: 'read the journal instead of a file or standard input' },
      { long: 'since', value: 'WHEN', help: "with the journal, from WHEN: 'YYYY-MM-DD [HH:MM[:SS]]', 'today', 'yesterday', '@EPOCH', '-2h', '30 min ago'" },
      { long: 'unit', short: 'u', value: 'UNIT', help: "with the journal, that unit's entries only" },
      { long: 'journal-dir', short: 'D', value: 'DIR', help: 'the journal files in DIR instead of the system journal' },
      { long: 'rule', short: 'r', value: 'RULE', help: "that rule's matches and bans alone" },
      { long: 'unmatched', short: 'U', help: 'also print the lines no pattern matched' },
      { long: 'config', short: 'c', value: 'FILE', help: 'read FILE instead of /etc/tallow.conf' },
      { long: 'patterns', short: 'p', value: 'PATH', help: "a directory stands for patterns_dir (the shipped files plus its own); a FILE.json is tested alone" },
      { long: 'field', short: 'f', value: 'NAME=VALUE', multiple: true, help: 'set or add a journal field of the text lines' },
      HELP,
    ],
    quiet: ['config', 'patterns', 'field', 'since', 'unit', 'journal-dir'],
    notes:
      "Text lines are one message per line, or lines of journalctl's short or short-iso output; they count as sshd's (_EXE=/usr/sbin/sshd, _UID=0, SYSLOG_IDENTIFIER=sshd). Findtime is counted on the lines' own times.",
    exits: [EX_OK, EX_REFUSED, EX_USAGE, EX_NOINPUT, EX_CONFIG],
    exitText: { [EX_OK]: 'something matched', [EX_REFUSED]: 'nothing matched', [EX_NOINPUT]: 'the input cannot be read', [EX_CONFIG]: 'an error in tallow.conf or a patterns file, named by file and line' },
  },
];

/** The command of that name (undefined: none). */
export function command(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/** `tallow --help`. */
export function usage(): string {
  const cmds = COMMANDS.map((c) => `  ${synopsis(c).replace(/^tallow /, '')}\n      ${wrap(c.summary, 94, '      ')}`).join('\n');
  return (
    `Usage: ${synopsis(DAEMON)}\n` +
    '       tallow COMMAND [ARGUMENTS] [OPTIONS]   (tallow COMMAND --help: its options)\n' +
    '       tallow --help | --version\n\n' +
    `${wrap(DAEMON.summary, 100, '')}\n\n` +
    `Daemon options:\n${optionLines(DAEMON.options)}\n` +
    `${wrap('Commands: status to version talk to the running daemon over its control socket, as root; history reads its store itself when it is not running; report and test need no daemon. Each command takes -h, --help, and those that read tallow.conf -c, --config FILE; those that talk to the daemon also:', 100, '')}\n` +
    `${optionLines([SOCKET])}\n` +
    `${cmds}\n\n` +
    `${wrap(RUNTIME_NOTE, 100, '')}\n` +
    'Signals: SIGHUP reloads tallow.conf and the patterns, SIGUSR1 logs the record table,\n' +
    'SIGTERM/SIGINT stop (bans stay in the kernel until their timeouts).\n\n' +
    `Exit status (the daemon and every command):\n${exitLines(EXIT_STATUSES.map(([c]) => c))}\n` +
    'See tallow(8), tallow.conf(5), tallow.patterns(5).\n'
  );
}
