// Which actions an event goes to (issue 16): its rule's `"actions"` (a patterns-file key naming
// actions of tallow.conf), else tallow.conf's `actions=` (default: every action defined). Bans and
// unbans without a rule (by hand, adopted from the kernel, recidive) and rules a reload removed
// take `actions=`. Read from the running rules at each event: a reload's new choice applies at once.
import type { TallowEvent } from '../events';
import type { Rule } from '../rule';
import type { ActionSettings } from './settings';

/** The rule an event belongs to, or null. */
function ruleOf(e: TallowEvent): string | null {
  if (e.kind === 'ban' || e.kind === 'unban') return e.ban.rule;
  return e.rule ?? null;
}

/** `(event) => names of the actions it goes to`; `rules` gives the running rules. */
export function actionRouter(config: ActionSettings, rules: () => readonly Rule[] = () => []): (e: TallowEvent) => ReadonlySet<string> {
  const all = new Set((config.actionDefs ?? []).map((a) => a.name));
  const fallback: ReadonlySet<string> = config.actions == null ? all : new Set(config.actions);
  // One map per rule set (a reload makes a new array): no search per event in a flood.
  let seen: readonly Rule[] | null = null;
  let own = new Map<string, ReadonlySet<string>>();
  return (e) => {
    const now = rules();
    if (now !== seen) {
      seen = now;
      own = new Map(now.filter((r) => r.actions).map((r) => [r.name, new Set(r.actions)]));
    }
    const rule = ruleOf(e);
    return (rule !== null && own.get(rule)) || fallback;
  };
}
