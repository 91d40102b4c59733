// What `tallow rules` shows of a rule beyond its scoring policy: a notify rule's action, the
// actions its events go to, `publish`, and its own repeat-offender keys. Each key only when the
// rule sets it (absent: tallow.conf's value applies), in the JSON as in the text. Built by
// requests.ts from the Rule, printed by ctl.ts; kept here so both stay small.
import type { BantimeIncrement } from './history/settings';
import type { Rule } from './rule';

/** Added to control.ts's RuleInfo (every key optional: a rule without them looks as before). */
export interface RuleInfoExtra {
  /** `notify`: the rule alerts on each match, never scores or bans */
  action?: 'notify';
  /** a notify rule: allowlisted addresses reported too */
  notifyAllowlisted?: boolean;
  /** the rule's `actions`: tallow.conf's actions its events go to ([]: none) */
  actions?: string[];
  /** false: its bans are not shared with the fleet */
  publish?: false;
  bantimeIncrement?: BantimeIncrement;
  /** seconds */
  bantimeMax?: number;
  /** seconds */
  recidiveWindow?: number;
}

export function ruleInfoExtra(r: Rule): RuleInfoExtra {
  return {
    ...(r.action === 'notify' ? { action: r.action, notifyAllowlisted: r.notifyAllowlisted ?? true } : {}),
    ...(r.actions ? { actions: [...r.actions] } : {}),
    ...(r.publish === false ? { publish: false as const } : {}),
    ...(r.increment ? { bantimeIncrement: r.increment } : {}),
    ...(r.bantimeMax !== undefined ? { bantimeMax: r.bantimeMax } : {}),
    ...(r.recidiveWindow !== undefined ? { recidiveWindow: r.recidiveWindow } : {}),
  };
}

function incrementText(i: BantimeIncrement, seconds: (n: number) => string): string {
  if (i.kind === 'off') return 'off (every ban as long as the first)';
  if (i.kind === 'factor') return `factor ${i.factor} (each ban ${i.factor} times as long as the one before)`;
  return `steps ${i.seconds.map(seconds).join(', ')}`;
}

/**
 * The lines `tallow rules` prints for these keys, after the policy (the pattern keys' names, so
 * an administrator finds them in tallow.patterns(5)). `seconds` formats a duration as ctl.ts does.
 */
export function extraPairs(r: RuleInfoExtra, seconds: (n: number) => string): [string, string][] {
  const out: [string, string][] = [];
  if (r.actions) out.push(['actions', r.actions.length ? r.actions.join(', ') : 'none']);
  if (r.publish === false) out.push(['publish', 'no (its bans are not shared with the fleet)']);
  if (r.bantimeIncrement) out.push(['bantime_increment', incrementText(r.bantimeIncrement, seconds)]);
  if (r.bantimeMax !== undefined) out.push(['bantime_max', seconds(r.bantimeMax)]);
  if (r.recidiveWindow !== undefined) out.push(['recidive_window', seconds(r.recidiveWindow)]);
  return out;
}

/** A notify rule's line in place of threshold..target: what it does with a match. */
export function notifyText(r: RuleInfoExtra): string {
  return `notify (each match an alert, never a ban; allowlisted addresses ${r.notifyAllowlisted === false ? 'not reported' : 'reported too'})`;
}
