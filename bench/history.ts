// The history's costs (issue 15). Run as root for the PostgreSQL part (a cluster of its own in a
// temporary directory, as the tests make it): npm run build && node --expose-gc dist/bench/history.js
//  1. inserts per second at the listener's batch size (1,000 rows a transaction), SQLite and
//     PostgreSQL: matches only, bans only; 1b. the SQLite store's CPU for a flood's rows;
//  2. a 10,000-ban flood through the daemon in process (matcher, tracker, ledger, log, dry-run
//     firewall), history off vs on (SQLite; the store opened and written to once before the count,
//     as in a running daemon; `--cold`: not): CPU of this process, and the time of the decision
//     path per journal batch (process(): what stands between an entry and the kernel queue);
//  3. database size per 1,000,000 events: 1,000,000 matches from 100,000 addresses (10 each, under
//     the hourly cap, all stored), and from 1,000 addresses in one hour (the cap keeps 60 + 1 each).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon } from '../src/daemon';
import type { JournalEntry } from '../src/journal';
import { HistoryListener, BATCH } from '../src/listeners/history';
import { Log } from '../src/log';
import { Metrics } from '../src/metrics';
import { PgStore } from '../src/history/postgres';
import { SqliteStore } from '../src/history/sqlite';
import type { HistoryRow, HistoryStore } from '../src/history/store';
import { PgCluster } from '../test/env/postgres';

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const tmp = (name: string) => fs.mkdtempSync(path.join(os.tmpdir(), `tallow-bench-${name}-`));
const v6 = (i: number) => `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`;

function rows(kind: 'match' | 'ban', n: number, start: number, t0: number): HistoryRow[] {
  const out: HistoryRow[] = [];
  for (let i = 0; i < n; i++) {
    const seq = start + i + 1;
    const address = v6(seq % 100_000);
    out.push(
      kind === 'match'
        ? { kind: 'match', seq, address, at: t0 + seq, pattern: 'sshd.json#2', n: 1 }
        : { kind: 'ban', seq, address, family: 6, since: t0 + seq, expiry: t0 + seq + 3_600_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5, step: 0, cause: 'new' },
    );
  }
  return out;
}

async function insertRate(store: HistoryStore, kind: 'match' | 'ban', total: number): Promise<number> {
  await store.open();
  const t0 = Date.now();
  // Rows made first: the figure is the store's alone.
  const batches: HistoryRow[][] = [];
  for (let i = 0; i < total; i += BATCH) batches.push(rows(kind, BATCH, i, t0));
  const start = process.hrtime.bigint();
  for (const b of batches) await store.write(`bench-${kind}`, b);
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  return Math.round(total / s);
}

async function inserts(pg: PgCluster | null): Promise<void> {
  console.log(`\n1. inserts per second, ${BATCH} rows a transaction`);
  for (const kind of ['match', 'ban'] as const) {
    const dir = tmp('ins');
    const store = new SqliteStore(path.join(dir, 'history.sqlite'), quiet);
    console.log(`   sqlite      ${kind === 'ban' ? 'bans   ' : 'matches'}: ${await insertRate(store, kind, 200_000)} rows/s`);
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (!pg) return;
  for (const kind of ['match', 'ban'] as const) {
    const store = new PgStore({ url: null, host: pg.host, port: 5432, database: 'bench', user: 'postgres', sslmode: 'disable', passwordFile: pgPw! }, quiet);
    console.log(`   postgresql  ${kind === 'ban' ? 'bans   ' : 'matches'}: ${await insertRate(store, kind, 200_000)} rows/s`);
    await store.close();
  }
}

let pgPw: string | null = null;

/**
 * The store alone for a flood's rows: 10,000 matches + 10,000 bans (each address a match and a
 * ban, 1 or 3 patterns) in 20 transactions of 1,000 rows, a fresh file each run (opened before
 * the count, and written to once unless `--cold`), `--rounds` runs; median CPU. Compare trees by running this in separate processes,
 * alternately: two trees loaded in one process skew each other's figures.
 */
async function storeFlood(): Promise<void> {
  const runs = Number(process.argv.includes('--rounds') ? process.argv[process.argv.indexOf('--rounds') + 1] : 15);
  console.log(`\n1b. the store alone, a flood's rows (10,000 matches + 10,000 bans, 20 transactions of 1,000, fresh file), ${runs} runs`);
  for (const patterns of [1, 3]) {
    const cpu: number[] = [];
    for (let r = 0; r < runs; r++) {
      const dir = tmp('store');
      const store = new SqliteStore(path.join(dir, 'history.sqlite'), quiet);
      await store.open();
      if (!process.argv.includes('--cold')) await store.write('warm-up', [...rows('match', 100, 1_000_000, 0), ...rows('ban', 100, 1_000_100, 0)]);
      const t0 = Date.now();
      const batches: HistoryRow[][] = [];
      let seq = 0;
      for (let i = 0; i < 10_000; i += 500) {
        const b: HistoryRow[] = [];
        for (let k = i; k < i + 500; k++) {
          const address = v6(k);
          const pattern = `sshd.json#${k % patterns}`;
          b.push({ kind: 'match', seq: ++seq, address, at: t0 + k, pattern, n: 1, rule: 'sshd' });
          b.push({ kind: 'ban', seq: ++seq, address, family: 6, since: t0 + k, expiry: t0 + k + 3_600_000, origin: 'rule', reason: 'threshold', pattern, score: 1, count: 1, step: 0, rule: 'sshd', scope: '', cause: 'new' });
        }
        batches.push(b);
      }
      (globalThis as { gc?: () => void }).gc?.();
      const c0 = process.cpuUsage();
      for (const b of batches) await store.write('bench', b);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1000);
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const s = [...cpu].sort((a, b) => a - b);
    console.log(`   ${patterns} pattern${patterns > 1 ? 's' : ' '}: median ${median(cpu).toFixed(1)} ms (quartiles ${s[Math.floor(s.length / 4)].toFixed(1)}..${s[Math.floor((s.length * 3) / 4)].toFixed(1)})`);
  }
}

async function flood(history: boolean, matches = true): Promise<{ cpuMs: number; pathMs: number[]; stored: number }> {
  const dir = tmp('flood');
  const shipped = path.join(dir, 'shipped');
  const journal = path.join(dir, 'journal');
  fs.mkdirSync(shipped);
  fs.mkdirSync(journal);
  const pattern = { ban: 0, score: 1, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' };
  fs.writeFileSync(path.join(shipped, 'sshd.json'), JSON.stringify([{ filter: '_EXE=/usr/sbin/sshd', items: [pattern] }]));
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, `patterns_dir=${dir}/none\nstate_dir=${dir}/state\nsocket=${dir}/sock\nexpires=3600\n`);
  const metrics = new Metrics();
  const h = history
    ? new HistoryListener({ store: new SqliteStore(path.join(dir, 'history.sqlite'), quiet), log: quiet, metrics, matches, matchesPerHour: 60, days: 90, maxQueue: 100_000 })
    : null;
  const log = new Log({ journal: false, write: () => {} });
  const d = await Daemon.start({ configFile: conf, explicitConfig: true, journalDir: journal, dryRun: true, log, shippedPatterns: shipped, listeners: h ? [h] : [] });
  const pathMs: number[] = [];
  // The daemon opens the store at start (HistoryListener.start: file, WAL, schema, statements),
  // before any flood; a listener passed in `listeners` is not started, so open it here, out of the figure.
  if (h) await h.store.open();
  // And it has written before (its statements run once): a flood rarely meets a store that has
  // never written; `--cold` leaves this out (the first write's own costs counted in the flood).
  if (h && !process.argv.includes('--cold')) await h.store.write('warm-up', [...rows('match', 100, 1_000_000, 0), ...rows('ban', 100, 1_000_100, 0)]);
  // The previous run's garbage is not this run's CPU (run with --expose-gc).
  (globalThis as { gc?: () => void }).gc?.();
  const cpu0 = process.cpuUsage();
  let seq = 0;
  for (let i = 0; i < 10_000; i += 100) {
    const batch: JournalEntry[] = [];
    for (let k = i; k < i + 100; k++) {
      batch.push({ cursor: `c${seq++}`, realtime: Date.now() * 1000, fields: { _EXE: '/usr/sbin/sshd', MESSAGE: `Failed password for root from ${v6(k)} port 4000 ssh2` } });
    }
    const t = process.hrtime.bigint();
    d.process(batch);
    pathMs.push(Number(process.hrtime.bigint() - t) / 1e6);
    await new Promise((r) => setImmediate(r));
  }
  await d.events.flush(60_000);
  const c = process.cpuUsage(cpu0);
  await d.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  return { cpuMs: (c.user + c.system) / 1000, pathMs, stored: metrics.historyRowsStored };
}

async function floods(): Promise<void> {
  // On a shared machine one run's CPU varies by ±30%: each round is a pair (off, on, and on with
  // history_matches=0) run back to back in this process, their order turned every round, and the
  // figure is the median of the rounds' own ratios, with their spread (not a ratio of two medians).
  const rounds = Number(process.argv.includes('--rounds') ? process.argv[process.argv.indexOf('--rounds') + 1] : 9);
  console.log(`\n2. 10,000-ban flood in process (100 entries a batch), ${rounds} rounds of paired runs (off, on, on with history_matches=0; order turned each round)`);
  const off: number[] = [];
  const on: number[] = [];
  const bansOnly: number[] = [];
  const pathOff: number[] = [];
  const pathOn: number[] = [];
  let stored = 0;
  await flood(false); // warm-up
  await flood(true);
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? (['off', 'on', 'bans'] as const) : (['bans', 'on', 'off'] as const);
    for (const which of order) {
      const x = await flood(which !== 'off', which !== 'bans');
      if (which === 'off') off.push(x.cpuMs), pathOff.push(...x.pathMs);
      else if (which === 'on') on.push(x.cpuMs), pathOn.push(...x.pathMs), (stored = x.stored);
      else bansOnly.push(x.cpuMs);
    }
  }
  const p99 = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length * 0.99)];
  const signed = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)}%`;
  const paired = (xs: number[]) => {
    const ratios = xs.map((x, i) => x / off[i] - 1);
    const sorted = [...ratios].sort((a, b) => a - b);
    return `median ${signed(median(ratios))} (quartiles ${signed(sorted[Math.floor(sorted.length / 4)])}..${signed(sorted[Math.floor((sorted.length * 3) / 4)])}, range ${signed(sorted[0])}..${signed(sorted[sorted.length - 1])}; rounds: ${ratios.map(signed).join(' ')})`;
  };
  console.log(`   CPU, history off: median ${median(off).toFixed(0)} ms; on: ${median(on).toFixed(0)} ms (${stored} rows a run); on with history_matches=0: ${median(bansOnly).toFixed(0)} ms`);
  console.log(`   on over off, per round:                 ${paired(on)}`);
  console.log(`   history_matches=0 over off, per round:  ${paired(bansOnly)}`);
  console.log(`   decision path per batch (process()), median/p99: off ${median(pathOff).toFixed(2)}/${p99(pathOff).toFixed(2)} ms, on ${median(pathOn).toFixed(2)}/${p99(pathOn).toFixed(2)} ms`);
}

function fileSize(file: string): number {
  return ['', '-wal'].reduce((n, ext) => n + (fs.existsSync(file + ext) ? fs.statSync(file + ext).size : 0), 0);
}

async function sizes(pg: PgCluster | null): Promise<void> {
  console.log('\n3. database size per 1,000,000 matches');
  const t0 = Date.UTC(2026, 10, 20, 10, 0, 0);
  for (const [label, addresses] of [['100,000 addresses x 10', 100_000], ['1,000 addresses x 1,000 in one hour', 1000]] as const) {
    const dir = tmp('size');
    const file = path.join(dir, 'history.sqlite');
    const metrics = new Metrics();
    const h = new HistoryListener({ store: new SqliteStore(file, quiet), log: quiet, metrics, matches: true, matchesPerHour: 60, days: 90, maxQueue: 1_000_000 });
    for (let i = 0; i < 1_000_000; i += BATCH) {
      const events = [];
      for (let k = i; k < i + BATCH; k++) events.push({ kind: 'match' as const, address: v6(k % addresses), family: 6 as const, pattern: 'sshd.json#2', file: 'sshd.json', at: t0 + Math.floor(k / 300) });
      await h.handle(events);
    }
    await h.close(); // writes the over-the-cap summaries, checkpoints on close
    console.log(`   sqlite, ${label}: ${metrics.historyRowsStored} rows, ${(fileSize(file) / 1e6).toFixed(1)} MB`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (!pg) return;
  pg.psql('TRUNCATE tallow.matches', 'bench');
  const store = new PgStore({ url: null, host: pg.host, port: 5432, database: 'bench', user: 'postgres', sslmode: 'disable', passwordFile: pgPw! }, quiet);
  await insertRate(store, 'match', 1_000_000);
  await store.close();
  pg.psql('VACUUM ANALYZE tallow.matches', 'bench');
  console.log(`   postgresql, 100,000 addresses x 10: ${(Number(pg.psql("SELECT pg_total_relation_size('tallow.matches')", 'bench')) / 1e6).toFixed(1)} MB (table and index)`);
}

async function main(): Promise<void> {
  let pg: PgCluster | null = null;
  if (process.getuid?.() === 0 && !process.argv.includes('--only')) {
    try {
      pg = PgCluster.create();
      pg.start();
      pg.psql('CREATE DATABASE bench');
      pgPw = path.join(pg.dir, 'bench.pw');
      fs.writeFileSync(pgPw, 'superuser-secret-for-tests\n', { mode: 0o600 });
    } catch (e) {
      console.log(`(no PostgreSQL: ${(e as Error).message.split('\n')[0]})`);
      pg = null;
    }
  }
  try {
    console.log(`node ${process.version}, ${os.cpus().length} cpus (${os.cpus()[0]?.model ?? '?'})`);
    // `--only floods` (or inserts, store, sizes): one part, e.g. to compare the flood before and after a change;
    // `--rounds N`: the flood's pairs (default 9).
    const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : null;
    if (!only || only === 'inserts') await inserts(pg);
    if (!only || only === 'store') await storeFlood();
    if (!only || only === 'floods') await floods();
    if (!only || only === 'sizes') await sizes(pg);
  } finally {
    await pg?.destroy();
  }
}

void main();
