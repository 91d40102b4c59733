// Exit statuses, the same for the daemon and every command (sysexits.h where one fits), listed in
// `tallow --help` and tallow(8) from this one table.

export const EX_OK = 0;
/** the daemon refused a request (its message is printed); `tallow test`: nothing matched */
export const EX_REFUSED = 1;
export const EX_USAGE = 64;
export const EX_NOINPUT = 66;
/** the daemon is not running (client); no usable firewall (daemon) */
export const EX_UNAVAILABLE = 69;
/** the daemon did not answer properly (timeout, connection lost, unreadable answer) */
export const EX_PROTOCOL = 76;
/** permission denied (the control socket is root-only) */
export const EX_NOPERM = 77;
export const EX_CONFIG = 78;

/** Each status and what it means, in order: `tallow --help` and tallow(8)'s EXIT STATUS. */
export const EXIT_STATUSES: [number, string][] = [
  [EX_OK, 'done (the daemon: stopped by a signal, cleanly)'],
  [EX_REFUSED, 'the daemon refused the request (its message is printed); tallow test: nothing matched; the daemon: another error'],
  [EX_USAGE, 'bad command line (unknown option or command, missing or invalid argument)'],
  [EX_NOINPUT, 'tallow test: its input cannot be read'],
  [EX_UNAVAILABLE, 'the daemon is not running (commands); no usable firewall (the daemon)'],
  [EX_PROTOCOL, 'the daemon did not answer properly (timeout, connection lost, unreadable answer)'],
  [EX_NOPERM, 'permission denied (the control socket is root-only)'],
  [EX_CONFIG, 'an error in tallow.conf or a patterns file, named by file and line (also a refused tallow reload)'],
];
