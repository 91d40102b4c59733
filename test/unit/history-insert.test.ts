// The SQLite store's multi-row INSERTs (100 rows a statement, the rest one by one): rows of one
// kind of text, a few kinds, many kinds, more than one statement's worth and a rest, each stored
// with its own values in the order they came (the report bisects matches by id); two bans of one
// address in a batch; a failed batch leaves nothing waiting for the next one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../src/history/sqlite';
import type { BanRow, HistoryRow, MatchRow } from '../../src/history/store';
import { collect, tmpdir } from './history-helpers';

const T0 = Date.UTC(2026, 10, 20, 10, 0, 0);

function open(t: { after(fn: () => unknown): void }) {
  const file = path.join(tmpdir(t), 'history.sqlite');
  const store = new SqliteStore(file, collect());
  t.after(() => store.close());
  const read = <R>(sql: string): R[] => {
    const db = new Database(file, { readonly: true });
    try {
      return db.prepare(sql).all() as R[];
    } finally {
      db.close();
    }
  };
  return { store, read };
}

/** 237 matches and 237 bans (two statements of 100 and a rest), their text of `variety` kinds: 1 (a flood's case), 3 or 12. */
async function mixed(t: { after(fn: () => unknown): void }, variety: number): Promise<void> {
  const { store, read } = open(t);
  const rows: HistoryRow[] = [];
  const matches: Omit<MatchRow, 'kind' | 'seq'>[] = [];
  const bans: Omit<BanRow, 'kind' | 'seq' | 'cause'>[] = [];
  let seq = 0;
  for (let i = 0; i < 237; i++) {
    const v = i % variety;
    const address = i % 2 && i < 200 ? `2001:db8::${i.toString(16)}` : i < 200 ? `198.51.100.${i}` : `192.0.2.${i - 200}`;
    const m = { address: `203.0.113.${i}`, at: T0 + i, pattern: v === 2 ? '*' : `sshd.json#${v}`, n: v === 2 ? 7 + i : 1, rule: v % 4 === 1 ? null : `r${v}` };
    const b = {
      address,
      family: (i % 2 && i < 200 ? 6 : 4) as 4 | 6,
      since: T0 + 1000 * i,
      expiry: T0 + 1000 * i + 60_000 * (i + 1),
      origin: v === 1 ? 'manual' : 'rule',
      reason: v === 1 ? 'manual' : 'threshold',
      pattern: v === 1 ? null : `sshd.json#${v}`,
      score: i / 4,
      count: i,
      step: i % 3,
      rule: v === 1 ? null : `r${v % 5}`,
      scope: v % 3 === 0 ? '' : `p${v}`,
    };
    matches.push(m);
    bans.push(b);
    rows.push({ kind: 'match', seq: ++seq, ...m }, { kind: 'ban', seq: ++seq, cause: i % 11 === 0 ? 'restored' : 'new', ...b });
  }
  await store.write('run-1', rows);
  // Read in id order: rows go in in the order they came.
  assert.deepEqual(read('SELECT address, at, pattern, n, rule FROM matches ORDER BY id'), matches);
  assert.deepEqual(read('SELECT address, family, since, expiry, origin, reason, pattern, score, count, step, rule, scope FROM bans ORDER BY id'), bans);
}

test('a flood of one rule: 237 matches and bans sharing their text, each stored with its own values, in order', (t) => mixed(t, 1));
test('3 kinds of text: each row stored with its own kind, in order', (t) => mixed(t, 3));
test('12 kinds of text: each row stored as it came', (t) => mixed(t, 12));

test('two bans of one address in one batch: the first of an equal (address, since) is kept, a later one gets the higher id', async (t) => {
  const { store, read } = open(t);
  const ban = (seq: number, address: string, since: number, pattern: string, origin = 'rule'): BanRow => ({
    kind: 'ban', seq, address, family: 4, since, expiry: since + 60_000, origin, reason: 'threshold', pattern, score: 1, count: 1, step: 0, cause: 'new', rule: 'sshd', scope: '',
  });
  await store.write('run-1', [
    ban(1, '192.0.2.1', T0, 'sshd.json#1'),
    // Another group (other pattern and origin) with an equal (address, since): not stored.
    ban(2, '192.0.2.1', T0, 'sshd.json#2', 'manual'),
    ban(3, '192.0.2.2', T0, 'sshd.json#2'),
    // A later ban of .2 in the first group: must come after .2's ban of the other group.
    ban(4, '192.0.2.2', T0 + 5000, 'sshd.json#1'),
  ]);
  assert.deepEqual(read('SELECT address, since, pattern, origin FROM bans ORDER BY id'), [
    { address: '192.0.2.1', since: T0, pattern: 'sshd.json#1', origin: 'rule' },
    { address: '192.0.2.2', since: T0, pattern: 'sshd.json#2', origin: 'rule' },
    { address: '192.0.2.2', since: T0 + 5000, pattern: 'sshd.json#1', origin: 'rule' },
  ]);
});

test('a batch that fails (a row the schema refuses) is rolled back whole, and leaves nothing waiting for the next batch', async (t) => {
  const { store, read } = open(t);
  const match = (seq: number, address: string): MatchRow => ({ kind: 'match', seq, address, at: T0 + seq, pattern: 'sshd.json#1', n: 1, rule: 'sshd' });
  const bad = { kind: 'ban', seq: 3, address: '192.0.2.9', family: 4, since: T0, expiry: T0 + 1, origin: 'rule', reason: null, pattern: null, score: 1, count: 1, step: 0, cause: 'new' } as unknown as BanRow;
  await assert.rejects(store.write('run-1', [match(1, '192.0.2.7'), match(2, '192.0.2.8'), bad]), /NOT NULL/);
  await store.write('run-1', [match(4, '198.51.100.4')]);
  assert.deepEqual(read('SELECT address FROM matches'), [{ address: '198.51.100.4' }]);
  assert.deepEqual(read('SELECT address FROM bans'), []);
});
