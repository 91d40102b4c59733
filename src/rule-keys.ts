// The rule keys a block of a patterns file may carry beside `filter` and `items` (issue 14), each
// validated here: tallow.patterns(5), RULES. Resolution into Rule objects is in rules.ts.
import { parseDuration, parseIncrement, type BantimeIncrement } from './history/settings';
import { MAX_BAN_SECONDS } from './limits';
import { scopeOf } from './scope';

/** Every key a block may have. Anything else is refused: a typo must not silently do nothing. */
export const BLOCK_KEYS = ['filter', 'items', 'name', 'enabled', 'no_log', 'unit', 'threshold', 'limit', 'findtime', 'bantime',
  'ports', 'protocol', 'ban_prefix_v4', 'ban_prefix_v6', 'action', 'notify_allowlisted',
  'actions', 'publish',
  'bantime_increment', 'bantime_max', 'recidive_window'] as const;

/** The keys that give a rule its own policy, and so its own score pool. */
export const POLICY_KEYS = ['threshold', 'limit', 'findtime', 'bantime', 'ports', 'protocol', 'ban_prefix_v4', 'ban_prefix_v6',
  // Repeat offenders (issue 15): steps are counted per score pool, so a rule with its own keeps its own count.
  'bantime_increment', 'bantime_max', 'recidive_window'] as const;

/** The keys of one block as given (validated); an absent key is absent. */
export interface RuleKeys {
  name?: string;
  enabled?: boolean;
  /** its matches are not stored in the history (its bans still are) */
  no_log?: boolean;
  /** e.g. `postfix.service` (`.service` appended when the block gave no unit suffix) */
  unit?: string;
  threshold?: number;
  limit?: number;
  findtime?: number;
  bantime?: number;
  /** normalised (ascending, "N" / "N-M"), or every port */
  ports?: string[] | 'all';
  protocol?: 'tcp' | 'udp';
  ban_prefix_v4?: number;
  ban_prefix_v6?: number;
  /** `notify`: matches are reported to the actions (a login alert), never scored or banned */
  action?: 'ban' | 'notify';
  /** a notify rule: also for allowlisted addresses (default true) */
  notify_allowlisted?: boolean;
  /** the tallow.conf actions its events go to (absent: `actions=`); names checked in rules.ts */
  actions?: string[];
  /** its bans are published to the fleet (default true; issue 17) */
  publish?: boolean;
  /** repeat offenders (tallow.conf's keys of the same names, per rule): steps, their cap, the window (seconds) */
  bantime_increment?: BantimeIncrement;
  bantime_max?: number;
  recidive_window?: number;
}

const NAME = /^[A-Za-z0-9_.-]{1,40}$/;
/** as src/actions/settings.ts accepts them */
const ACTION_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const UNIT_SUFFIXES = ['.service', '.socket', '.device', '.mount', '.automount', '.swap', '.target', '.path', '.timer', '.slice', '.scope'];
/** systemd's unit name characters (unit_name_is_valid), at most 255 with the suffix. */
const UNIT = /^[A-Za-z0-9:_.@\\-]{1,247}$/;

const show = (v: unknown) => JSON.stringify(v) ?? String(v);

function wholeIn(key: string, v: unknown, min: number, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new Error(`"${key}": expected ${what} from ${min} to ${max}, got ${show(v)}`);
  }
  return v;
}

/** `"actions": ["admin-mail", "hook"]`: names of tallow.conf's actions ([]: none). */
function actionNames(v: unknown): string[] {
  const ok = Array.isArray(v) && v.every((n) => typeof n === 'string' && ACTION_NAME.test(n)) && new Set(v).size === v.length;
  if (!ok) throw new Error(`"actions": expected a list of action names from tallow.conf (action.NAME.KEY=...), each once, like ["admin-mail"], or [] for none, got ${show(v)}`);
  return v as string[];
}

/** `unit` as journald writes _SYSTEMD_UNIT: `postfix` -> `postfix.service`. */
export function unitName(v: unknown): string {
  if (typeof v !== 'string' || !UNIT.test(v) || v.startsWith('.') || v.startsWith('-')) {
    throw new Error(`"unit": expected a systemd unit name such as "postfix" or "postfix@-.service", got ${show(v)}`);
  }
  return UNIT_SUFFIXES.some((s) => v.endsWith(s) && v.length > s.length) ? v : `${v}.service`;
}

/** A duration as in tallow.conf: whole seconds (a number) or text such as "90", "30m", "6h", "1d", "1w". */
function durationKey(key: string, v: unknown, max: number): number {
  const n = typeof v === 'number' ? (Number.isInteger(v) ? v : null) : typeof v === 'string' ? parseDuration(v) : null;
  if (n === null || n < 1 || n > max) throw new Error(`"${key}": expected a duration (whole seconds, or text such as "6h", "1d", "1w") up to ${max} s, got ${show(v)}`);
  return n;
}

/** `bantime_increment`: a factor (2, "1.5"), durations ("1h,6h,1d" or ["1h", "6h", 86400]) or "off", as in tallow.conf. */
function incrementKey(v: unknown): BantimeIncrement {
  // In a list a number is whole seconds (never a factor): [3600] is one step of an hour.
  const item = (x: unknown) => (typeof x === 'number' ? `${x}s` : typeof x === 'string' ? x : null);
  const items = Array.isArray(v) ? v.map(item) : [];
  const text = Array.isArray(v) ? (v.length && !items.includes(null) ? items.join(',') : null) : typeof v === 'number' || typeof v === 'string' ? String(v).trim() : null;
  const r = text === null ? `expected a factor (e.g. 2), durations (e.g. "1h,6h,1d" or ["1h", "6h", "1d"]) or "off", got ${show(v)}` : parseIncrement(text);
  if (typeof r === 'string') throw new Error(`"bantime_increment": ${r}`);
  return r;
}

/**
 * The rule keys of one block (an object whose keys are already known to be BLOCK_KEYS). Throws
 * Error with a message naming the key; the caller adds `file: block N: `.
 */
export function parseRuleKeys(blk: Record<string, unknown>): RuleKeys {
  const k: RuleKeys = {};
  if ('name' in blk) {
    if (typeof blk.name !== 'string' || !NAME.test(blk.name)) {
      throw new Error(`"name": expected 1 to 40 letters, digits, "_", "." or "-", got ${show(blk.name)}`);
    }
    k.name = blk.name;
  }
  if ('enabled' in blk) {
    if (typeof blk.enabled !== 'boolean') throw new Error(`"enabled": expected true or false, got ${show(blk.enabled)}`);
    k.enabled = blk.enabled;
  }
  if ('no_log' in blk) {
    if (typeof blk.no_log !== 'boolean') throw new Error(`"no_log": expected true or false, got ${show(blk.no_log)}`);
    k.no_log = blk.no_log;
  }
  if ('unit' in blk) k.unit = unitName(blk.unit);
  if ('threshold' in blk && 'limit' in blk) throw new Error('"threshold" and "limit" both given: give one ("limit" N is "threshold" N with every match scoring 1)');
  if ('threshold' in blk) {
    const t = blk.threshold;
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) throw new Error(`"threshold": expected a number above 0, got ${show(t)}`);
    k.threshold = t;
  }
  if ('limit' in blk) k.limit = wholeIn('limit', blk.limit, 1, 1_000_000, 'a whole number of matches');
  if ('findtime' in blk) k.findtime = wholeIn('findtime', blk.findtime, 1, MAX_BAN_SECONDS, 'whole seconds');
  if ('bantime' in blk) k.bantime = wholeIn('bantime', blk.bantime, 1, MAX_BAN_SECONDS, 'whole seconds');
  if ('ports' in blk) k.ports = scopeOf(blk.ports, undefined, false).ports ?? 'all';
  if ('protocol' in blk) {
    if (blk.protocol !== 'tcp' && blk.protocol !== 'udp') throw new Error(`"protocol": expected "tcp" or "udp" (absent: both), got ${show(blk.protocol)}`);
    k.protocol = blk.protocol;
  }
  if ('ban_prefix_v4' in blk) k.ban_prefix_v4 = wholeIn('ban_prefix_v4', blk.ban_prefix_v4, 8, 32, 'a prefix length');
  if ('ban_prefix_v6' in blk) k.ban_prefix_v6 = wholeIn('ban_prefix_v6', blk.ban_prefix_v6, 16, 128, 'a prefix length');
  if ('action' in blk) {
    if (blk.action !== 'ban' && blk.action !== 'notify') throw new Error(`"action": expected "ban" (the default: matches score, the threshold bans) or "notify" (each match is reported to the actions, nothing is banned), got ${show(blk.action)}`);
    k.action = blk.action;
  }
  if ('notify_allowlisted' in blk) {
    if (typeof blk.notify_allowlisted !== 'boolean') throw new Error(`"notify_allowlisted": expected true or false, got ${show(blk.notify_allowlisted)}`);
    k.notify_allowlisted = blk.notify_allowlisted;
  }
  if ('actions' in blk) k.actions = actionNames(blk.actions);
  if ('publish' in blk) {
    if (typeof blk.publish !== 'boolean') throw new Error(`"publish": expected true (its bans are shared with the fleet, the default) or false, got ${show(blk.publish)}`);
    k.publish = blk.publish;
  }
  if ('bantime_increment' in blk) k.bantime_increment = incrementKey(blk.bantime_increment);
  if ('bantime_max' in blk) k.bantime_max = durationKey('bantime_max', blk.bantime_max, MAX_BAN_SECONDS);
  if ('recidive_window' in blk) k.recidive_window = durationKey('recidive_window', blk.recidive_window, 10 * 365 * 86400);
  if (k.action === 'notify') {
    // A notify rule never scores: a policy key would silently do nothing.
    const policy = POLICY_KEYS.find((key) => key in blk);
    if (policy) throw new Error(`"${policy}": a rule with "action": "notify" never scores or bans; leave it out`);
  }
  return k;
}
