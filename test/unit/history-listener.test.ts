// The history behind the dispatcher: a store that fails (full disk, server away) never holds back
// the kernel; its events wait up to history_queue, past it they are dropped, counted and logged,
// and once the store is back what waited is stored exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { Dispatcher, type Listener, type TallowEvent } from '../../src/events';
import { Ledger } from '../../src/ledger';
import { HistoryListener } from '../../src/listeners/history';
import { Metrics } from '../../src/metrics';
import { SqliteStore } from '../../src/history/sqlite';
import type { HistoryRow } from '../../src/history/store';
import { collect, tmpdir } from './history-helpers';

class FlakyStore extends SqliteStore {
  down = false;
  override async write(run: string, rows: HistoryRow[]): Promise<void> {
    if (this.down) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    return super.write(run, rows);
  }
}

test('a failing store: bans reach the kernel listener at once; events past history_queue are dropped and counted; the rest stored once when it is back', async (t) => {
  const dir = tmpdir(t);
  const log = collect();
  const file = path.join(dir, 'history.sqlite');
  const store = new FlakyStore(file, log);
  const metrics = new Metrics();
  const h = new HistoryListener({ store, log, metrics, matches: true, matchesPerHour: 60, days: 90, maxQueue: 1000 });
  const kernel: string[] = [];
  const firewall: Listener = { name: 'firewall', immediate: true, maxBatch: Infinity, handle: (es: TallowEvent[]) => void es.forEach((e) => e.kind === 'ban' && kernel.push(e.ban.address)) };
  const events = new Dispatcher([firewall, h], log, { retryBaseMs: 20, retryMaxMs: 50 });
  const ledger = new Ledger({ emit: (e) => events.emit(e) });
  t.after(() => events.close());

  const ban = (i: number) =>
    ledger.ban({ address: `2001:db8:1::${(i + 1).toString(16)}`, family: 6, seconds: 600, origin: 'rule', reason: 'threshold', pattern: 'x#1', score: 1, count: 5 }, Date.now());
  store.down = true;
  for (let i = 0; i < 3000; i++) {
    ban(i);
    if (i % 50 === 49) await new Promise((r) => setImmediate(r));
  }
  assert.equal(kernel.length, 3000, 'every ban reached the kernel listener while the store failed');
  const st = events.stats().find((s) => s.name === 'history')!;
  assert.equal(st.queued, 1000);
  assert.equal(st.dropped, 2000);
  assert.ok(log.lines.some((l) => /^error: listener history: queue full, events dropped$/.test(l)), log.lines.join('\n'));
  assert.ok(metrics.historyStoreErrors > 0);

  store.down = false;
  await events.flush(5000);
  const db = new Database(file, { readonly: true });
  t.after(() => db.close());
  const n = (db.prepare('SELECT count(*) AS n, count(DISTINCT address) AS d FROM bans').get() as { n: number; d: number });
  assert.deepEqual(n, { n: 1000, d: 1000 }, 'the 1,000 that waited, each once');
  assert.equal(metrics.historyRowsStored, 1000);
});
