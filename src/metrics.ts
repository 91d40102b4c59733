// Every counter and gauge of the daemon, in one place. The stages count into plain fields of one
// Metrics object (a field increment on the hot path, nothing more); gauges that other modules
// already know (records, active bans, queue lengths) are read when someone looks. The same
// figures come out three ways: `tallow status [--json]`, and Prometheus' text format (control
// socket, optional HTTP endpoint, optional textfile for node_exporter).

export type Labels = Record<string, string>;

export interface Sample {
  labels: Labels;
  value: number;
}

export interface Family {
  /** Prometheus name: `tallow_` prefix, `_total` for counters, base units. */
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: Sample[];
}

/** Gauges owned by other modules, read at scrape time (the daemon's wiring supplies them). */
export interface GaugeSource {
  records(): number;
  bansActive(): { 4: number; 6: number };
  /** active bans per rule (bans no rule made are not counted) */
  bansActiveByRule?(): Map<string, number>;
  listeners(): { name: string; queued: number; failures: number; dropped: number; delivered: number }[];
  firewallPending(): number;
  firewallToolRuns(): number;
}

export class Metrics {
  readonly started = Date.now();
  // journal
  entriesRead = 0;
  /** catching up after a restart: entries older than `expires` */
  entriesTooOld = 0;
  /** seconds between the newest entry's journal time stamp and its processing */
  journalLagSeconds = 0;
  // matcher
  readonly matchesByFile = new Map<string, number>();
  /** per rule (the same matches as matchesByFile, counted by the rule that matched) */
  readonly matchesByRule = new Map<string, number>();
  invalidAddresses = 0;
  oversizedMessages = 0;
  // tracker
  recordsEvicted = 0;
  // ledger
  readonly bansByReason = new Map<string, number>();
  readonly unbansByReason = new Map<string, number>();
  /** bans a rule decided (threshold and instant), by rule */
  readonly bansByRule = new Map<string, number>();
  /** bans nobody may make (loopback, the host's own address...): refused */
  readonly bansRefused = new Map<string, number>();
  // firewall
  firewallBatches = 0;
  firewallElements = 0;
  firewallFailures = 0;
  firewallRepairs = 0;
  firewallRefused = 0;
  // state
  stateSaves = 0;
  stateSaveFailures = 0;
  stateSaveSeconds = 0;
  stateBytes = 0;
  // history (dropped events: tallow_listener_events_dropped_total{listener="history"})
  historyRowsStored = 0;
  historyStoreErrors = 0;
  historyRowsPruned = 0;
  historyMatchesCapped = 0;

  gauges: GaugeSource | null = null;
  /** Families of optional parts (the fleet), read when someone looks. */
  readonly extra: (() => Family[])[] = [];

  static bump(map: Map<string, number>, key: string, n = 1): void {
    map.set(key, (map.get(key) ?? 0) + n);
  }

  families(now = Date.now()): Family[] {
    const one = (value: number): Sample[] => [{ labels: {}, value }];
    const byLabel = (label: string, map: Map<string, number>): Sample[] =>
      [...map].sort(([a], [b]) => a.localeCompare(b)).map(([k, value]) => ({ labels: { [label]: k }, value }));
    const g = this.gauges;
    const active = g?.bansActive() ?? { 4: 0, 6: 0 };
    const listeners = g?.listeners() ?? [];
    const per = (pick: (l: (typeof listeners)[number]) => number): Sample[] => listeners.map((l) => ({ labels: { listener: l.name }, value: pick(l) }));
    const out: Family[] = [
      { name: 'tallow_start_time_seconds', help: 'When the daemon started, seconds since the epoch.', type: 'gauge', samples: one(this.started / 1000) },
      { name: 'tallow_uptime_seconds', help: 'Seconds since the daemon started.', type: 'gauge', samples: one((now - this.started) / 1000) },
      { name: 'tallow_journal_entries_read_total', help: 'Journal entries read.', type: 'counter', samples: one(this.entriesRead) },
      { name: 'tallow_journal_entries_skipped_total', help: 'Journal entries skipped while catching up: older than expires.', type: 'counter', samples: one(this.entriesTooOld) },
      { name: 'tallow_journal_lag_seconds', help: 'Age of the newest journal entry when it was processed.', type: 'gauge', samples: one(this.journalLagSeconds) },
      { name: 'tallow_matches_total', help: 'Entries a pattern matched, by pattern file.', type: 'counter', samples: byLabel('file', this.matchesByFile) },
      { name: 'tallow_invalid_addresses_total', help: 'Matches whose captured address was not a valid IPv4/IPv6 address (ignored).', type: 'counter', samples: one(this.invalidAddresses) },
      { name: 'tallow_oversized_messages_total', help: 'Messages longer than the matching cap (not matched).', type: 'counter', samples: one(this.oversizedMessages) },
      { name: 'tallow_records', help: 'Addresses tracked now.', type: 'gauge', samples: one(g?.records() ?? 0) },
      { name: 'tallow_records_evicted_total', help: 'Records dropped to stay under max_records.', type: 'counter', samples: one(this.recordsEvicted) },
      {
        name: 'tallow_bans_active',
        help: 'Addresses banned now, by family.',
        type: 'gauge',
        samples: [
          { labels: { family: 'ipv4' }, value: active[4] },
          { labels: { family: 'ipv6' }, value: active[6] },
        ],
      },
      { name: 'tallow_bans_total', help: 'Bans made, by reason.', type: 'counter', samples: byLabel('reason', this.bansByReason) },
      // Per rule under names of their own: the same events labelled two ways in one family would
      // make sum(tallow_matches_total) count every match twice.
      { name: 'tallow_rule_matches_total', help: 'Entries a pattern matched, by rule.', type: 'counter', samples: byLabel('rule', this.matchesByRule) },
      { name: 'tallow_rule_bans_total', help: 'Bans a rule decided (threshold and instant), by rule.', type: 'counter', samples: byLabel('rule', this.bansByRule) },
      { name: 'tallow_rule_bans_active', help: 'Bans in force now, by the rule that made them.', type: 'gauge', samples: byLabel('rule', g?.bansActiveByRule?.() ?? new Map()) },
      { name: 'tallow_unbans_total', help: 'Bans ended, by reason.', type: 'counter', samples: byLabel('reason', this.unbansByReason) },
      { name: 'tallow_bans_refused_total', help: 'Bans refused because the address must never be banned, by reason.', type: 'counter', samples: byLabel('reason', this.bansRefused) },
      { name: 'tallow_firewall_batches_total', help: 'Batches sent to the firewall.', type: 'counter', samples: one(this.firewallBatches) },
      { name: 'tallow_firewall_elements_total', help: 'Additions and removals sent to the firewall.', type: 'counter', samples: one(this.firewallElements) },
      { name: 'tallow_firewall_failures_total', help: 'Firewall batches that failed (each is retried).', type: 'counter', samples: one(this.firewallFailures) },
      { name: 'tallow_firewall_repairs_total', help: 'Times lost sets or rules were re-created or re-filled.', type: 'counter', samples: one(this.firewallRepairs) },
      { name: 'tallow_firewall_refused_total', help: 'Elements the kernel refused (dropped, each named in the log).', type: 'counter', samples: one(this.firewallRefused) },
      { name: 'tallow_firewall_tool_runs_total', help: 'Firewall tool processes started (sessions, checks, monitors).', type: 'counter', samples: one(g?.firewallToolRuns() ?? 0) },
      { name: 'tallow_firewall_pending', help: 'Firewall changes waiting to be sent.', type: 'gauge', samples: one(g?.firewallPending() ?? 0) },
      { name: 'tallow_listener_queue_length', help: 'Events waiting for each listener.', type: 'gauge', samples: per((l) => l.queued) },
      { name: 'tallow_listener_events_total', help: 'Events delivered to each listener.', type: 'counter', samples: per((l) => l.delivered) },
      { name: 'tallow_listener_failures_total', help: 'Failed deliveries to each listener (retried).', type: 'counter', samples: per((l) => l.failures) },
      { name: 'tallow_listener_events_dropped_total', help: 'Events dropped because a listener queue was full.', type: 'counter', samples: per((l) => l.dropped) },
      { name: 'tallow_state_saves_total', help: 'State file saves.', type: 'counter', samples: one(this.stateSaves) },
      { name: 'tallow_state_save_failures_total', help: 'State file saves that failed (retried).', type: 'counter', samples: one(this.stateSaveFailures) },
      { name: 'tallow_state_save_duration_seconds', help: 'Duration of the last state save.', type: 'gauge', samples: one(this.stateSaveSeconds) },
      { name: 'tallow_history_rows_stored_total', help: 'Rows written to the history (bans, unbans, matches).', type: 'counter', samples: one(this.historyRowsStored) },
      { name: 'tallow_history_store_errors_total', help: 'Failed history writes, opens and deletions (writes are retried).', type: 'counter', samples: one(this.historyStoreErrors) },
      { name: 'tallow_history_rows_pruned_total', help: 'History rows deleted as older than history_days.', type: 'counter', samples: one(this.historyRowsPruned) },
      { name: 'tallow_history_matches_capped_total', help: 'Matches past history_matches_per_hour for their address, counted in one row instead of stored.', type: 'counter', samples: one(this.historyMatchesCapped) },
      { name: 'tallow_state_bytes', help: 'Size of the last state file written.', type: 'gauge', samples: one(this.stateBytes) },
    ];
    for (const more of this.extra) out.push(...more());
    return out;
  }

  /** Prometheus text exposition format 0.0.4. */
  prometheus(now = Date.now()): string {
    const lines: string[] = [];
    for (const f of this.families(now)) {
      lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
      for (const s of f.samples) lines.push(`${f.name}${labelText(s.labels)} ${numberText(s.value)}`);
    }
    return lines.join('\n') + '\n';
  }

  /** The same figures for scripts: `{ name: value }`, or `{ name: { label: value } }` for labelled ones. */
  json(now = Date.now()): Record<string, number | Record<string, number>> {
    const out: Record<string, number | Record<string, number>> = {};
    for (const f of this.families(now)) {
      const key = f.name.replace(/^tallow_/, '');
      const labelled = f.samples.some((s) => Object.keys(s.labels).length > 0);
      if (!labelled) out[key] = f.samples[0]?.value ?? 0;
      else out[key] = Object.fromEntries(f.samples.map((s) => [Object.values(s.labels).join(','), s.value]));
    }
    return out;
  }
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function numberText(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : '-Inf';
  return String(Math.round(n * 1e6) / 1e6);
}
