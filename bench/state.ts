// State file cost (issue 6): save at 100,000 records + 10,000 bans (ms per save, bytes on disk),
// load + restore into a Tracker, and (as root) putting 10,000 bans back into a kernel ipset with
// their remaining time in one `ipset restore`, inside a throw-away network namespace.
// Then the state log (issue 12.3): one append of what changed in a save interval (--delta K records
// and K bans), and a load of the snapshot with a log as large as it (the worst case before a
// compaction).
// Run: npx tsc -p . && node --expose-gc dist/bench/state.js [--records N] [--bans N] [--runs R] [--delta K]
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StateStore, liveRecords, type SavedBan, type SavedRecord, type State, type StateDelta } from '../src/state';
import { Tracker } from '../src/tracker';
import { Ledger } from '../src/ledger';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const RECORDS = arg('--records', 100_000);
const BANS = arg('--bans', 10_000);
const RUNS = arg('--runs', 10);
const DELTA = arg('--delta', 2000);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function v4(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}
function v6(i: number): string {
  return `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`;
}

function makeState(now: number): State {
  const records: SavedRecord[] = [];
  for (let i = 0; i < RECORDS; i++) {
    const banned = i < BANS;
    // 80% IPv4, 20% IPv6, as in bench/engine
    const address = i % 5 === 4 ? v6(i) : v4(i);
    records.push({
      address, family: address.includes(':') ? 6 : 4, pool: '', score: banned ? 1.2 : 0.2 * (1 + (i % 4)), count: banned ? 6 : 1 + (i % 4),
      first: now - 600_000 - i, last: now - (i % 600) * 1000, banned,
      pattern: banned ? 'sshd.json#2' : null,
    });
  }
  const bans: SavedBan[] = records.slice(0, BANS).map((r, i) => ({
    address: r.address, family: r.family, scope: '', rule: 'sshd', expiry: now + 3_000_000 - i, since: now - 600_000, origin: 'rule', reason: 'threshold', pattern: r.pattern, score: r.score, count: r.count,
  }));
  return { version: 3, saved: now, cursor: 's=0123456789abcdef0123456789abcdef;i=1f2e3d;b=fedcba9876543210fedcba9876543210;m=123456789;t=5f0e1d2c3b4a5;x=9988776655443322', records, bans };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-bench-state-${process.pid}-`));
  try {
    const now = Date.now();
    const state = makeState(now);
    const store = new StateStore(dir);
    const gc = (globalThis as { gc?: () => void }).gc;

    const saves: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      gc?.();
      const t0 = process.hrtime.bigint();
      await store.save(state);
      saves.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const bytes = fs.statSync(store.file).size;

    // The event loop held during a save: the longest gap between two turns of a setImmediate
    // ticker running through it (the encode; in pieces where the store writes pieces).
    const blocks: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      let done = false;
      let longest = 0;
      let last = process.hrtime.bigint();
      const tick = () => {
        const now = process.hrtime.bigint();
        longest = Math.max(longest, Number(now - last) / 1e6);
        last = now;
        if (!done) setImmediate(tick);
      };
      setImmediate(tick);
      last = process.hrtime.bigint();
      await store.save(state);
      done = true;
      await new Promise((res) => setImmediate(res));
      blocks.push(longest);
    }

    const loads: number[] = [];
    const restores: number[] = [];
    let restored = 0;
    let again = 0;
    for (let r = 0; r < RUNS; r++) {
      gc?.();
      const t0 = process.hrtime.bigint();
      const loaded = store.load();
      const t1 = process.hrtime.bigint();
      const ledger = new Ledger({ emit: () => {} });
      const tr = new Tracker({ threshold: 1, expires: 3600, maxRecords: RECORDS * 2, isAllowed: () => false, bannedUntil: (a) => ledger.expiryOf(a) });
      for (const rec of liveRecords(loaded.state!, Date.now(), 3600)) tr.restore(rec);
      ledger.restore(loaded.state!.bans, Date.now());
      tr.prune(Date.now()); // the first prune reorders restored records
      const t2 = process.hrtime.bigint();
      loads.push(Number(t1 - t0) / 1e6);
      restores.push(Number(t2 - t1) / 1e6);
      restored = tr.size;
      again = ledger.size;
    }

    console.log(`state file: ${RECORDS} records, ${BANS} bans (${RUNS} runs, median)`);
    console.log(`  save (encode + write + fsync + rename + fsync dir): ${median(saves).toFixed(1)} ms (min ${Math.min(...saves).toFixed(1)}, max ${Math.max(...saves).toFixed(1)})`);
    console.log(`  longest the event loop is held during it:          ${median(blocks).toFixed(1)} ms`);
    console.log(`  bytes on disk: ${bytes} (${(bytes / 1048576).toFixed(1)} MiB, ${(bytes / (RECORDS + BANS)).toFixed(0)} B per record/ban)`);
    console.log(`  load (read + JSON.parse + check): ${median(loads).toFixed(1)} ms`);
    console.log(`  restore into Tracker + Ledger: ${median(restores).toFixed(1)} ms (${restored} records, ${again} bans)`);

    // The log: appends of DELTA records and DELTA bans each (a flood's save interval), the event
    // loop's share (encode) apart; then appends until the log is as large as the snapshot, and a load.
    const logged = store as StateStore & Partial<Pick<StateStore, 'append' | 'wantsCompaction' | 'bytesWritten' | 'logFile'>>;
    const now2 = Date.now();
    const deltaOf = (k: number): StateDelta => ({
      saved: now2 + k,
      cursor: state.cursor,
      records: state.records.slice(0, DELTA).map((r) => ({ ...r, count: r.count + k, last: now2 + k })),
      recordsGone: [],
      bans: state.bans.slice(0, DELTA).map((b) => ({ ...b, expiry: b.expiry + k })),
      bansGone: [],
    });
    if (typeof logged.append === 'function') {
      await store.save(state);
      const appends: number[] = [];
      const appendBlocks: number[] = [];
      let appendBytes = 0;
      for (let r = 0; r < RUNS; r++) {
        const d = deltaOf(r);
        const before = store.bytesWritten;
        const t0 = process.hrtime.bigint();
        const p = store.append(d);
        appendBlocks.push(Number(process.hrtime.bigint() - t0) / 1e6);
        await p;
        appends.push(Number(process.hrtime.bigint() - t0) / 1e6);
        appendBytes = store.bytesWritten - before;
      }
      let k = RUNS;
      while (!store.wantsCompaction) await store.append(deltaOf(k++));
      const logBytes = fs.statSync(store.logFile).size;
      const logLoads: number[] = [];
      for (let r = 0; r < Math.min(RUNS, 5); r++) {
        gc?.();
        const t0 = process.hrtime.bigint();
        const l = new StateStore(dir).load();
        logLoads.push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (l.note || l.problem || l.state!.bans.length !== BANS) throw new Error(`log load: ${l.note ?? l.problem ?? l.state!.bans.length}`);
      }
      console.log(`  append of ${DELTA} records + ${DELTA} bans to state.log (encode + write + fdatasync): ${median(appends).toFixed(1)} ms, of which encode ${median(appendBlocks).toFixed(1)} ms; ${appendBytes} bytes`);
      console.log(`  load with a log as large as the snapshot (${k} appends, ${(logBytes / 1048576).toFixed(1)} MiB, the most before a compaction): ${median(logLoads).toFixed(1)} ms`);
    }

    if (process.getuid?.() === 0 && fs.existsSync('/usr/sbin/ipset')) {
      const ns = `tallow-bench-state-${process.pid}`;
      execFileSync('ip', ['netns', 'add', ns]);
      try {
        const inNs = (argv: string[], input?: string) => execFileSync('ip', ['netns', 'exec', ns, ...argv], { input, stdio: ['pipe', 'pipe', 'pipe'] });
        inNs(['ipset', 'create', 'tallow', 'hash:ip', 'family', 'inet', 'timeout', '3600', 'maxelem', '65536']);
        inNs(['ipset', 'create', 'tallow6', 'hash:ip', 'family', 'inet6', 'timeout', '3600', 'maxelem', '65536']);
        const t = Date.now();
        const bans = store.load().state!.bans.filter((b) => b.expiry > t);
        const script = bans.map((b) => `add ${b.family === 4 ? 'tallow' : 'tallow6'} ${b.address} timeout ${Math.ceil((b.expiry - t) / 1000)} -exist`).join('\n') + '\n';
        const t0 = process.hrtime.bigint();
        inNs(['ipset', 'restore'], script);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const listed = inNs(['ipset', 'list', '-t']).toString();
        const entries = [...listed.matchAll(/Number of entries: (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
        console.log(`  ${bans.length} bans back into the kernel (one ipset restore, in a netns): ${ms.toFixed(1)} ms (${entries} entries in the sets)`);
      } finally {
        execFileSync('ip', ['netns', 'delete', ns]);
      }
    } else {
      console.log('  (kernel restore not measured: needs root and ipset)');
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
