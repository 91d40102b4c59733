// The listeners a daemon's events go to, in order, and the gauges its metrics read: assembled
// once at start from the configuration. Optional ones (history, actions, fleet) load their code
// only when configured (their modules require lazily).
import { actionListeners } from './actions';
import type { Config } from './config';
import type { Daemon } from './daemon';
import type { Listener } from './events';
import { execCount } from './firewall/exec';
import type { Fleet } from './fleet';
import { fleetFor } from './fleet/settings';
import { historyListener } from './history';
import { firewallListener } from './listeners/firewall';
import type { HistoryListener } from './listeners/history';
import { logListener } from './listeners/log';
import { metricsListener } from './listeners/metrics';
import { StateListener, type StateSource } from './listeners/state';
import { Metrics, type GaugeSource } from './metrics';
import type { StateStore } from './state';

export interface Wired {
  listeners: Listener[];
  state: StateListener | null;
  history: HistoryListener | null;
  fleet: Fleet | null;
}

export interface WiringOptions {
  config: Config;
  /** null in a dry run: no state file is written. */
  store: StateStore | null;
  /** The journal position the state file resumes at. */
  cursor: string | null;
  /** What the state file is made of. */
  source: StateSource;
  dryRun: boolean;
  /** Listeners after the built-in ones (tests). */
  extra: Listener[];
}

/** Firewall, log, metrics, state, repeat-offender steps, history, actions, fleet, then the extra ones. */
export function wireListeners(d: Daemon, o: WiringOptions): Wired {
  const { config } = o;
  const log = d.log;
  const listeners: Listener[] = [firewallListener(d.firewall), logListener(log), metricsListener(d.metrics)];
  let state: StateListener | null = null;
  if (o.store) {
    state = new StateListener(o.store, o.source, d.metrics, (msg) => log.error(`saving state failed: ${msg}`), o.cursor);
    listeners.push(state);
  }
  listeners.push(d.steps.listener());
  const history = historyListener(config, log, d.metrics, o.dryRun);
  if (history) listeners.push(history);
  // A dry run only says what it would do: no command, webhook or mail.
  if (!o.dryRun) listeners.push(...actionListeners(config, log, () => d.engine.rules));
  const fleet = fleetFor(d, config, log, o.dryRun);
  if (fleet) listeners.push(fleet.listener);
  listeners.push(...o.extra);
  return { listeners, state, history, fleet };
}

/** What the metrics read from the daemon when asked (scrape, textfile, `tallow status`). */
export function daemonGauges(d: Daemon): GaugeSource {
  return {
    records: () => d.scoring.size,
    bansActive: () => {
      const n = { 4: 0, 6: 0 };
      for (const b of d.ledger.values()) n[b.family]++;
      return n;
    },
    bansActiveByRule: () => {
      const n = new Map<string, number>();
      for (const b of d.ledger.values()) if (b.rule !== null) Metrics.bump(n, b.rule);
      return n;
    },
    listeners: () => d.events.stats(),
    firewallPending: () => d.firewall.queued,
    firewallToolRuns: execCount,
  };
}
