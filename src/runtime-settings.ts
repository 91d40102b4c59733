// `tallow get KEY` / `tallow set KEY VALUE`: the settings of a rule that are safe to change in a
// running daemon (threshold, bantime, findtime). A value set is applied as if every block of the
// rule in the patterns files gave that key (so the rule's policy and score pool follow the same
// rules as tallow.patterns(5) describes); it lives in the daemon's memory only, until the next
// reload or restart.
import { MAX_BAN_SECONDS } from './limits';
import { parseDuration } from './history/settings';
import type { PatternFile } from './patterns';
import type { Rule } from './rule';

export const SETTABLE = ['threshold', 'bantime', 'findtime'] as const;
export type Settable = (typeof SETTABLE)[number];

/** Per rule, the values set at runtime. */
export type RuntimeSettings = Map<string, Partial<Record<Settable, number>>>;

/** `sshd.bantime` -> rule `sshd`, setting `bantime` (a rule name may hold dots: split at the last). */
export function splitKey(key: unknown): { rule: string; setting: Settable } | { error: string } {
  const shown = JSON.stringify(key)?.slice(0, 80) ?? String(key);
  const bad = { error: `${shown} is not a setting: expected RULE.threshold, RULE.bantime or RULE.findtime (e.g. sshd.bantime)` };
  if (typeof key !== 'string' || key.length > 240) return bad;
  const dot = key.lastIndexOf('.');
  const rule = key.slice(0, dot);
  const setting = key.slice(dot + 1);
  if (dot < 1 || !/^[!-~]{1,200}$/.test(rule) || !(SETTABLE as readonly string[]).includes(setting)) return bad;
  return { rule, setting: setting as Settable };
}

/**
 * A value as typed (`3`, `2.5`; `7200`, `2h`) or already a number -> the setting's value: a score
 * above 0, or whole seconds from 1 to MAX_BAN_SECONDS.
 */
export function parseSettingValue(setting: Settable, value: unknown): number | { error: string } {
  const shown = JSON.stringify(value)?.slice(0, 40) ?? String(value);
  if (setting === 'threshold') {
    const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,9}(?:\.\d{1,6})?$/.test(value) ? Number(value) : NaN;
    if (!Number.isFinite(n) || n <= 0) return { error: `threshold: expected a score above 0 (e.g. 3 or 2.5), not ${shown}` };
    return n;
  }
  const n = typeof value === 'number' ? value : typeof value === 'string' ? parseDuration(value) ?? NaN : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_BAN_SECONDS) {
    return { error: `${setting}: expected a duration from 1 s to ${MAX_BAN_SECONDS} s (seconds, or 30m, 2h, 7d, 2w), not ${shown}` };
  }
  return n;
}

/**
 * The files as loaded, with each runtime setting given by every block of its rule (`ruleOf`:
 * rules.ts's naming; passed in so that the client, which checks keys and values here too, never
 * loads the patterns code).
 */
export function withSettings(files: PatternFile[], settings: RuntimeSettings, ruleOf: (f: PatternFile) => string): PatternFile[] {
  if (settings.size === 0) return files;
  return files.map((f) => {
    const s = settings.get(ruleOf(f));
    if (!s) return f;
    const keys = { ...f.keys, ...s };
    // `limit` N is threshold N written another way: the threshold set replaces it.
    if (s.threshold !== undefined) delete keys.limit;
    return { ...f, keys };
  });
}

/** The rule's value of a setting, as it runs now. */
export function valueOf(rule: Rule, setting: Settable): number {
  return rule[setting];
}

/** `sshd.bantime` for each runtime setting. */
export function settingKeys(settings: RuntimeSettings): string[] {
  return [...settings].flatMap(([rule, s]) => Object.keys(s).map((k) => `${rule}.${k}`));
}
