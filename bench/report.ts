// What a report costs on a large history (issue 16.5): npm run build && node dist/bench/report.js
// A SQLite history holding 89 quiet days (2,000 bans and 20,000 matches a day) and one day of
// flood: 100,000 bans and 1,000,000 matches from 100,000 addresses (a tenth of them banned
// twice, a tenth never). Reported: CPU and wall time of buildReport() for that day (medians of
// 3, all three forms), for 7 and 30 days, and for a quiet day before the flood; the event loop is held that long (better-sqlite3
// is synchronous), which matters when the daemon makes the daily report itself.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SqliteStore } from '../src/history/sqlite';
import type { HistoryRow } from '../src/history/store';
import { buildReport } from '../src/report';

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const DAY = 86_400_000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// Documentation ranges only: the first 768 numbers are IPv4 (three /24s), the rest IPv6 (a /64 per 4 addresses).
const V4 = ['192.0.2', '198.51.100', '203.0.113'];
const addr = (i: number) => (i < 768 ? `${V4[i >> 8]}.${i & 0xff}` : `2001:db8:${(i >> 16) & 0xffff}:${(i >> 2) & 0x3fff}::${(i & 3) + 1}`);

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-bench-report-'));
  try {
    const file = path.join(dir, 'history.sqlite');
    const store = new SqliteStore(file, quiet);
    const end = Date.UTC(2026, 5, 1);
    let seq = 0;
    let rows: HistoryRow[] = [];
    const flush = async (force = false) => {
      if (rows.length >= 50_000 || (force && rows.length)) {
        await store.write('bench', rows);
        rows = [];
      }
    };
    const ban = (address: string, since: number, step = 0) =>
      rows.push({ kind: 'ban', seq: ++seq, address, family: address.includes(':') ? 6 : 4, since, expiry: since + 3_600_000, origin: 'rule', reason: 'threshold', pattern: `sshd.json#${seq % 5}`, score: 1, count: 5, step, cause: 'new' });
    const match = (address: string, at: number) => rows.push({ kind: 'match', seq: ++seq, address, at, pattern: `sshd.json#${seq % 5}`, n: 1 });
    const t0 = Date.now();
    for (let d = 89; d >= 1; d--) {
      const start = end - (d + 1) * DAY;
      for (let i = 0; i < 2000; i++) {
        const a = addr(200_000 + i + d * 2000);
        for (let k = 0; k < 10; k++) match(a, start + i * 40_000 + k);
        ban(a, start + i * 40_000 + 10);
        await flush();
      }
    }
    const flood = end - DAY;
    for (let i = 0; i < 100_000; i++) {
      const a = addr(i);
      for (let k = 0; k < 10; k++) match(a, flood + i * 800 + k);
      if (i % 10 === 0) ban(a, flood + i * 800 + 10, 0), ban(a, flood + i * 800 + 400, 1);
      else if (i % 10 !== 1) ban(a, flood + i * 800 + 10);
      await flush();
    }
    await flush(true);
    await store.close();
    const mb = (fs.statSync(file).size + (fs.existsSync(file + '-wal') ? fs.statSync(file + '-wal').size : 0)) / 1e6;
    console.log(`history: ${seq} rows, ${mb.toFixed(0)} MB, written in ${((Date.now() - t0) / 1000).toFixed(0)} s`);

    const reader = new SqliteStore(file, quiet, true);
    // The flood's day, then 7 and 30 days ending with it; and a quiet day before it (the usual
    // daily report: its matches are 1% of the table, which the id bounds of each period avoid reading).
    for (const [days, until] of [[1, end], [7, end], [30, end], [1, end - DAY]]) {
      const times: number[] = [];
      const cpus: number[] = [];
      let bans = 0;
      for (let i = 0; i < 3; i++) {
        const s = process.hrtime.bigint();
        const c = process.cpuUsage();
        const r = await buildReport(reader, until - days * DAY, until, { host: 'bench' });
        const used = process.cpuUsage(c);
        cpus.push((used.user + used.system) / 1000);
        times.push(Number(process.hrtime.bigint() - s) / 1e6);
        bans = r.data.totals.current.bans;
      }
      // CPU time is the figure to compare on a shared machine; wall time is what the caller waits.
      console.log(`report of ${days} day(s)${until === end ? '' : ', a quiet one'} (${bans} bans): CPU ${median(cpus).toFixed(0)} ms, wall ${median(times).toFixed(0)} ms (medians of 3; wall ${times.map((t) => t.toFixed(0)).join(', ')})`);
    }
    await reader.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();
