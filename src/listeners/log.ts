// Bans and unbans as log lines (structured journal entries under journald:
// `journalctl -t tallow TALLOW_ACTION=ban`). Bans restored or adopted at start are summed up by
// the daemon in one line each, not repeated here.
import type { Listener, TallowEvent } from '../events';
import type { Log } from '../log';

export function fmtScore(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

export function logListener(log: Log): Listener {
  return {
    name: 'log',
    immediate: true,
    maxBatch: Infinity,
    handle(events: TallowEvent[]): void {
      for (const e of events) {
        if (e.kind === 'ban') {
          if (e.cause !== 'new') continue;
          const b = e.ban;
          const fields: Record<string, string> = {
            address: b.address,
            seconds: String(Math.round((b.expiry - b.since) / 1000)),
            score: fmtScore(b.score),
            count: String(b.count),
            pattern: b.pattern ?? '',
            reason: b.reason,
          };
          if (b.origin !== 'rule' && b.origin !== 'manual') fields.origin = b.origin;
          // A repeat offender's step (bantime_increment): 1 is the first longer ban.
          if (b.step) fields.step = String(b.step);
          // Last, so lines read by tallow's habits (address ... reason) keep their shape.
          if (b.rule) fields.rule = b.rule;
          if (b.scope) fields.scope = b.scope;
          log.action('ban', fields);
        } else if (e.kind === 'unban') {
          const fields: Record<string, string> = { address: e.ban.address, reason: e.reason };
          if (e.reason === 'expired') fields.pattern = e.ban.pattern ?? '';
          if (e.ban.rule) fields.rule = e.ban.rule;
          if (e.ban.scope) fields.scope = e.ban.scope;
          log.action('unban', fields);
        } else if (e.kind === 'notify') {
          // A notify rule's match (a login): the user name is the client's, escaped by formatFields.
          const fields: Record<string, string> = { rule: e.rule, address: e.address, user: e.user, method: e.method };
          if (e.fingerprint) fields.fingerprint = e.fingerprint;
          if (e.allowlisted) fields.allowlisted = '1';
          log.action('notify', fields);
        }
      }
    },
  };
}
