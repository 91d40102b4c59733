// The report's data: one plain object, built from the history by data.ts, shown by text.ts and
// html.ts, and printed as is by `tallow report --format json`. This file is the JSON's
// documentation. Times are ms since the epoch (UTC); periods are half-open [since, until).
// `version` changes only when a field changes meaning or goes away; new fields may be added.

export const REPORT_VERSION = 1;

export interface Period {
  since: number;
  until: number;
}

/** Figures of one period. */
export interface Totals {
  /** bans that started in the period (an extended ban counts again: the history keeps a row per extension) */
  bans: number;
  /** bans that ended in the period (recorded unbans: expired, lifted by hand, refused by the kernel) */
  unbans: number;
  /** unbans by why they ended: `expired`, `manual`, `refused` */
  unbansByReason: Record<string, number>;
  /** different addresses banned */
  addressesBanned: number;
  /** different addresses banned or matched */
  addressesSeen: number;
  /** matches stored, those summed up past history_matches_per_hour included */
  matches: number;
  /** of `matches`, those summed up past history_matches_per_hour (their pattern is not kept) */
  matchesPastCap: number;
}

/**
 * A rule: the `rule` the history stored with the ban (rules per service), else the pattern's
 * file without `.json` (`sshd.json#3` -> `sshd`), else `(manual)` or `(adopted)`.
 */
export interface RuleLine {
  rule: string;
  bans: number;
  previousBans: number;
  unbans: number;
}

export interface AddressLine {
  address: string;
  bans: number;
  matches: number;
  /** highest repeat-offender step of its bans in the period (0: first bans only) */
  step: number;
  /** rules of its bans and matches, most frequent first */
  rules: string[];
}

/** A /24 (IPv4) or /64 (IPv6). */
export interface NetworkLine {
  network: string;
  bans: number;
  /** different addresses of the network banned or matched */
  addresses: number;
  matches: number;
}

export interface PatternLine {
  /** `sshd.json#3` */
  pattern: string;
  rule: string;
  matches: number;
  bans: number;
}

export interface RepeatBan {
  since: number;
  seconds: number;
  step: number;
  rule: string;
}

/** An address banned more than once in the period, its bans oldest first. */
export interface RepeatOffender {
  address: string;
  bans: RepeatBan[];
}

/** A successful login reported by a notify rule (issue 16.4). */
export interface Login {
  at: number;
  rule: string;
  user: string;
  address: string;
  /** `password`, `publickey`, `keyboard-interactive/pam` */
  method: string;
  fingerprint: string | null;
}

export interface ReportData {
  version: typeof REPORT_VERSION;
  /** the machine the report is about */
  host: string;
  /** when the report was made */
  generated: number;
  period: Period;
  /** the period of the same length just before, for comparison */
  previous: Period;
  /** `rule`: rules as the history stored them (with a pattern-file fallback per ban); `pattern-file`: the history has no rule column */
  rulesFrom: 'rule' | 'pattern-file';
  totals: { current: Totals; previous: Totals };
  /** every rule with a ban or unban in either period, most bans first */
  rules: RuleLine[];
  /** most banned, then most matched; at most `top` */
  addresses: AddressLine[];
  networks: NetworkLine[];
  /** patterns by matches then bans; at most `top`; matches summed up past the hourly cap have no pattern and are only in totals */
  patterns: PatternLine[];
  /** `total`: how many addresses were banned more than once; `items`: the most banned `top` of them */
  repeatOffenders: { total: number; items: RepeatOffender[] };
  /** `recorded`: the history has a place for logins (false until notify rules store them); `items`: the newest `top` */
  logins: { recorded: boolean; total: number; items: Login[] };
  /**
   * Bans per bucket (the chart): bucket i covers [period.since + i * bucketSeconds, + bucketSeconds),
   * the last may be shorter. An hour for periods up to 8 days, longer beyond (at most 200 buckets).
   */
  timeline: { bucketSeconds: number; bans: number[] };
  /** how many lines the lists above were cut to */
  top: number;
}
