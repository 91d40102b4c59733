// Bans and unbans counted by reason (and bans by rule), for `tallow status`, `tallow rules` and
// the Prometheus endpoints.
import type { Listener, TallowEvent } from '../events';
import { Metrics } from '../metrics';

export function metricsListener(metrics: Metrics): Listener {
  return {
    name: 'metrics',
    immediate: true,
    maxBatch: Infinity,
    handle(events: TallowEvent[]): void {
      for (const e of events) {
        if (e.kind === 'ban') {
          Metrics.bump(metrics.bansByReason, e.cause === 'new' ? e.ban.reason : e.cause);
          if (e.cause === 'new' && e.ban.rule !== null) Metrics.bump(metrics.bansByRule, e.ban.rule);
        }
        else if (e.kind === 'unban') Metrics.bump(metrics.unbansByReason, e.reason);
      }
    },
  };
}
