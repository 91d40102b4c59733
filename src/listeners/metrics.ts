// Bans and unbans counted by reason, for `tallow status` and the Prometheus endpoints.
import type { Listener, TallowEvent } from '../events';
import { Metrics } from '../metrics';

export function metricsListener(metrics: Metrics): Listener {
  return {
    name: 'metrics',
    immediate: true,
    maxBatch: Infinity,
    handle(events: TallowEvent[]): void {
      for (const e of events) {
        if (e.kind === 'ban') Metrics.bump(metrics.bansByReason, e.cause === 'new' ? e.ban.reason : e.cause);
        else if (e.kind === 'unban') Metrics.bump(metrics.unbansByReason, e.reason);
      }
    },
  };
}
