// Which history store tallow.conf asks for: none (history=off, or a dry run, which must not
// change what a real run later reads), an SQLite file in state_dir, or PostgreSQL.
// The stores, their drivers and the listener are loaded only when a store is asked for: with
// history=off the daemon never loads better-sqlite3 or pg (idle memory, issue 12).
import * as path from 'node:path';
import type { Config } from '../config';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import type { HistoryListener } from '../listeners/history';
import type { HistoryStore } from './store';

export function historyStore(config: Config, log: Logger, readonly = false): HistoryStore | null {
  if (config.history === 'off') return null;
  if (config.history === 'sqlite') {
    const { HISTORY_FILE, SqliteStore } = require('./sqlite') as typeof import('./sqlite');
    return new SqliteStore(path.join(config.stateDir, HISTORY_FILE), log, readonly);
  }
  // The PostgreSQL client alone costs ~14 MiB of RSS.
  const { PgStore, pgSettings } = require('./postgres') as typeof import('./postgres');
  return new PgStore(pgSettings(config), log);
}

export function historyListener(config: Config, log: Logger, metrics: Metrics, dryRun: boolean): HistoryListener | null {
  const store = dryRun ? null : historyStore(config, log);
  if (!store) return null;
  const { HistoryListener } = require('../listeners/history') as typeof import('../listeners/history');
  return new HistoryListener({
    store,
    log,
    metrics,
    matches: config.historyMatches,
    matchesPerHour: config.historyMatchesPerHour,
    days: config.historyDays,
    maxQueue: config.historyQueue,
  });
}
