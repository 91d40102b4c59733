// tallow.conf keys of the history store and of repeat offenders (issue 15), kept beside the store
// so config.ts only spreads them into its table. Each setter returns an error message or null,
// like config.ts's own; the message is prefixed there with `file:line: key:`.
import { isAbsolute } from 'node:path';
import type { Config } from '../config';
import { MAX_BAN_SECONDS } from '../limits';

/** How a repeat offender's ban grows: off, a factor per step, or a list of steps (the last repeats). */
export type BantimeIncrement = { kind: 'off' } | { kind: 'factor'; factor: number } | { kind: 'list'; seconds: number[] };

export interface HistorySettings {
  /** `sqlite` (state_dir/history.sqlite), `off`, `postgresql` (the history_* keys) or a postgresql:// URL */
  history: string;
  historyMatches: boolean;
  historyDays: number;
  historyMatchesPerHour: number;
  historyQueue: number;
  historyHost: string;
  historyPort: number;
  historyDbname: string;
  historyUser: string;
  historySslmode: string;
  historyPasswordFile: string;
  bantimeIncrement: BantimeIncrement;
  bantimeMax: number;
  recidiveWindow: number;
  /** the `recidive` rule: this many bans within recidiveWindow (any rule, any scope) -> one ban on every port; 0 off */
  recidiveBans: number;
  /** seconds */
  recidiveBantime: number;
}

export function defaultHistorySettings(): HistorySettings {
  return {
    history: 'sqlite',
    historyMatches: true,
    historyDays: 90,
    // One match a minute on average: enough to see what an address tried, and 100,000 addresses
    // flooding for an hour still store at most 6,000,000 rows (bench/README: size per 1,000,000).
    historyMatchesPerHour: 60,
    historyQueue: 100_000,
    // Debian's (and libpq's usual) socket directory: a local server needs no TCP.
    historyHost: '/run/postgresql',
    historyPort: 5432,
    historyDbname: 'tallow',
    historyUser: 'tallow',
    historySslmode: 'prefer',
    historyPasswordFile: '',
    bantimeIncrement: { kind: 'off' },
    bantimeMax: 7 * 86400,
    recidiveWindow: 86400,
    recidiveBans: 0,
    recidiveBantime: 7 * 86400,
  };
}

const UNIT: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** `90`, `30s`, `15m`, `6h`, `1d`, `1w` -> seconds; null when not one of those. */
export function parseDuration(text: string): number | null {
  const m = /^(\d{1,9})([smhdw]?)$/.exec(text.trim());
  if (!m) return null;
  const n = Number(m[1]) * UNIT[m[2]];
  return n > 0 ? n : null;
}

/** `off`, a factor (`2`, `1.5`), or durations (`1h,6h,1d,1w`). */
export function parseIncrement(v: string): BantimeIncrement | string {
  if (v === 'off' || v === 'no' || v === '0') return { kind: 'off' };
  if (/^\d+(?:\.\d+)?$/.test(v) && !v.includes(',')) {
    const f = Number(v);
    if (!(f > 1) || f > 100) return `expected a factor above 1 (e.g. 2), a list of durations (e.g. 1h,6h,1d,1w) or off, got '${v}'`;
    return { kind: 'factor', factor: f };
  }
  const seconds: number[] = [];
  for (const part of v.split(',')) {
    const s = parseDuration(part);
    if (s === null || s > MAX_BAN_SECONDS) return `'${part.trim()}' is not a duration (like 30m, 6h, 1d, 1w; at most ${MAX_BAN_SECONDS} s) in '${v}'`;
    if (seconds.length && s < seconds[seconds.length - 1]) return `steps must not get shorter ('${part.trim()}' after ${seconds[seconds.length - 1]} s) in '${v}'`;
    seconds.push(s);
  }
  return { kind: 'list', seconds };
}

type Setter = (c: Config, value: string) => string | null;

function duration(max: number, set: (c: Config, n: number) => void): Setter {
  return (c, v) => {
    const n = parseDuration(v);
    if (n === null || n > max) return `expected a duration (seconds, or like 30m, 6h, 1d, 1w) up to ${max} s, got '${v}'`;
    set(c, n);
    return null;
  };
}

function whole(min: number, max: number, set: (c: Config, n: number) => void): Setter {
  return (c, v) => {
    if (!/^\d{1,10}$/.test(v) || Number(v) < min || Number(v) > max) return `expected a whole number from ${min} to ${max}, got '${v}'`;
    set(c, Number(v));
    return null;
  };
}

function text(set: (c: Config, s: string) => void, re: RegExp, what: string): Setter {
  return (c, v) => {
    if (!re.test(v)) return `expected ${what}, got '${v}'`;
    set(c, v);
    return null;
  };
}

export const HISTORY_KEYS: Record<string, Setter> = {
  history: (c, v) => {
    if (v === 'off' || v === 'no' || v === '0' || v === 'sqlite' || v === 'postgresql') c.history = v === 'no' || v === '0' ? 'off' : v;
    else if (/^postgres(?:ql)?:\/\/\S+$/.test(v)) c.history = v;
    else return `expected sqlite, off, postgresql (with the history_* keys) or a postgresql://USER@HOST/DB URL, got '${v}'`;
    return null;
  },
  history_matches: (c, v) => {
    const s = v.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(s)) c.historyMatches = true;
    else if (['0', 'false', 'no', 'off'].includes(s)) c.historyMatches = false;
    else return `expected 0 or 1 (or true/false, yes/no), got '${v}'`;
    return null;
  },
  history_days: whole(1, 36500, (c, n) => (c.historyDays = n)),
  history_matches_per_hour: whole(0, 1_000_000, (c, n) => (c.historyMatchesPerHour = n)),
  history_queue: whole(1, 10_000_000, (c, n) => (c.historyQueue = n)),
  history_host: text((c, s) => (c.historyHost = s), /^(?:\/\S*|[A-Za-z0-9.:-]+)$/, 'a host name, an address or a socket directory (absolute path)'),
  history_port: whole(1, 65535, (c, n) => (c.historyPort = n)),
  history_dbname: text((c, s) => (c.historyDbname = s), /^[A-Za-z0-9_.-]{1,63}$/, 'a database name (letters, digits, _ . -)'),
  history_user: text((c, s) => (c.historyUser = s), /^[A-Za-z0-9_.-]{1,63}$/, 'a role name (letters, digits, _ . -)'),
  history_sslmode: text((c, s) => (c.historySslmode = s), /^(?:disable|prefer|require|verify-ca|verify-full)$/, 'disable, prefer, require, verify-ca or verify-full'),
  history_password_file: (c, v) => {
    if (v === 'off' || v === 'no') {
      c.historyPasswordFile = '';
      return null;
    }
    if (!isAbsolute(v)) return `expected an absolute path or off, got '${v}'`;
    c.historyPasswordFile = v;
    return null;
  },
  bantime_increment: (c, v) => {
    const r = parseIncrement(v);
    if (typeof r === 'string') return r;
    c.bantimeIncrement = r;
    return null;
  },
  bantime_max: duration(MAX_BAN_SECONDS, (c, n) => (c.bantimeMax = n)),
  recidive_window: duration(10 * 365 * 86400, (c, n) => (c.recidiveWindow = n)),
  recidive_bans: whole(0, 1_000_000, (c, n) => (c.recidiveBans = n)),
  recidive_bantime: duration(MAX_BAN_SECONDS, (c, n) => (c.recidiveBantime = n)),
};

/** Read only at start (the store is opened once); a reload that changes them says so. */
export const HISTORY_RESTART_KEYS = [
  'history', 'historyMatches', 'historyDays', 'historyMatchesPerHour', 'historyQueue', 'historyHost', 'historyPort', 'historyDbname', 'historyUser', 'historySslmode', 'historyPasswordFile',
] as const;
