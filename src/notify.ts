// A notify rule's match (issue 16.4) as an event: reported to the listeners (mail, webhook,
// command, history, log), never handed to the scores or the ledger. The daemon calls this for
// every match of a rule with `"action": "notify"`.
import type { Allowlist } from './allowlist';
import type { NotifyEvent } from './events';
import type { Match } from './matcher';

/**
 * The event for a notify rule's match, or null when the address is allowlisted and the rule says
 * `"notify_allowlisted": false`. `at` is when the program logged the line (journal time, ms).
 */
export function notifyEvent(match: Match, at: number, allowlist: Pick<Allowlist, 'has'>): NotifyEvent | null {
  const allowlisted = allowlist.has(match.address, match.family);
  if (allowlisted && match.rule.notifyAllowlisted === false) return null;
  const login = match.login ?? { user: '', method: '', fingerprint: '' };
  return { kind: 'notify', rule: match.rule.name, address: match.address, family: match.family, at, ...login, pattern: match.pattern.name, allowlisted };
}
