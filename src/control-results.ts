// What the control socket answers: the shape of each command's `result` (the daemon's handler
// returns these, requests.ts; the client prints them, ctl.ts).
import type { Family } from './address';
import type { FleetStatus } from './fleet/subscriber';
import type { FiguresError, HistoryFigures } from './history/figures';

/** `status` */
export interface StatusResult {
  version: string;
  pid: number;
  /** seconds since the daemon started */
  uptime: number;
  /** firewall backend name, e.g. 'ipset', 'nftables', 'firewalld', 'dryrun' */
  backend: string;
  /** journal entries read since start */
  entries: number;
  /** entries a pattern matched since start */
  matches: number;
  /** addresses banned now (as the daemon knows them) */
  bansActive: number;
  /** records tracked now */
  records: number;
  /** journal cursor of the last entry read, null before the first */
  cursor: string | null;
  /** optional extras the daemon may fill in; printed when present */
  config?: string | null;
  stateFile?: string;
  /** ms since epoch of the last successful state save, null if none yet */
  lastSave?: number | null;
  /** one line per rule: matches and bans in force */
  rules?: { name: string; enabled: boolean; matches: number; bansActive: number }[];
  /** fleet= (src/fleet/subscriber.ts FleetStatus): absent when the fleet is off */
  fleet?: FleetStatus;
  /**
   * history= (src/history/figures.ts): the last 24 hours and 7 days read from the store, restarts
   * included, or why the store did not answer; with the history listener's queue. Absent with history=off.
   */
  history?: (HistoryFigures | FiguresError) & { queued: number; dropped: number };
}

/** One item of `list` (result: ListItem[]), sorted by the daemon as it likes; ctl sorts by remaining. */
export interface ListItem {
  /** the address, or the network banned (a rule with a ban prefix: `2001:db8::/64`) */
  address: string;
  family: Family;
  /** the rule that made the ban; null: by hand, adopted from the kernel, or from an older state file */
  rule?: string | null;
  /** where it applies: `all` (every port) or the ports (`22`, `25,465,587/tcp`) */
  ports?: string;
  /** Scope id ('' every port) */
  scope?: string;
  /** seconds left on the ban */
  remaining: number;
  /** current score of the record (0 when there is no record, e.g. a manual ban) */
  score: number;
  /** matches counted on the record */
  count: number;
  /** pattern that caused the ban (`sshd.json#3`), 'manual' for `tallow ban`, null if unknown */
  pattern: string | null;
  /** where the ban came from: rule, manual, adopted (found in the kernel at start), remote:NODE */
  origin?: string;
  /** threshold, instant, manual, adopted, recidive */
  reason?: string;
  /** repeat-offender step (bantime_increment), absent for a first ban */
  step?: number;
}

/** `rules` (result: RuleInfo[]): like `fail2ban-client status JAIL`. */
export interface RuleInfo {
  name: string;
  enabled: boolean;
  /** where it is defined: `/etc/tallow/postfix.json (block 1)` */
  where: string;
  /** the journal filter, short: groups OR'ed with ` | `, terms AND'ed with ` ` */
  filter: string;
  /** score to ban (`limit` N: N) */
  threshold: number;
  /** seconds; 0: no window */
  findtime: number;
  /** seconds a threshold ban lasts */
  bantime: number;
  /** `all` or the ports */
  ports: string;
  scope: string;
  /** prefix banned per family: 32/128 the address itself */
  prefix: { 4: number; 6: number };
  /** score pool: '' tallow.conf's shared pool, else the rule's own */
  pool: string;
  /** matches since the daemon started */
  matches: number;
  /** bans it made since the daemon started */
  bans: number;
  /** its bans in force now */
  bansActive: number;
  /** highest scores in its pool now */
  top: { address: string; score: number; count: number; banned: boolean }[];
}

/** `metrics`: Prometheus text exposition format. */
export interface MetricsResult {
  text: string;
}

/** `ban` */
export interface BanResult {
  address: string;
  family: Family;
  seconds: number;
  /** the rule it was made in the name of (`--rule`) */
  rule?: string;
  /** where it applies: `all`, or the rule's ports */
  ports?: string;
  /** set when the ban is held but not in the kernel yet (the firewall is failing; it is retried) */
  pending?: string;
}

/** `unban`: wasBanned false means there was no ban (the record, if any, is still forgotten). */
export interface UnbanResult {
  address: string;
  family: Family;
  wasBanned: boolean;
  /** the ports of each ban lifted (`all`, `22`...): one address may be banned in several scopes */
  lifted?: string[];
  /** set when the removal has not reached the kernel yet (retried) */
  pending?: string;
}

/** `unban` with `all` */
export interface UnbanAllResult {
  all: true;
  /** bans lifted */
  lifted: number;
  /** addresses and networks they were for */
  targets: number;
  pending?: string;
}

/** `reload` */
export interface ReloadResult {
  /** the configuration file read, null: built-in defaults */
  config: string | null;
  /** rules added, removed, enabled, disabled, policy changes (as logged) */
  changes: string[];
  /** tallow.conf keys changed that take effect only after a restart */
  restart: string[];
  /** settings made with `tallow set` that the reload dropped (RULE.KEY) */
  dropped: string[];
}

/** `get` and `set` */
export interface SettingResult {
  key: string;
  rule: string;
  setting: 'threshold' | 'bantime' | 'findtime';
  value: number;
  /** set at runtime (`tallow set`), lost at the next reload or restart */
  runtime: boolean;
  /** the rule scores in tallow.conf's shared pool (its threshold and expires) */
  shared: boolean;
  /** `set`: the value before */
  previous?: number;
  /** `set`: what changed in the rule, as logged */
  changes?: string[];
}
