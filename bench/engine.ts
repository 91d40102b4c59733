// Engine throughput and memory: matcher + tracker on 1,000,000 mixed sshd lines (90% not matching,
// 10% failures from 50,000 addresses), then memory per tracked address at 100,000 and 1,000,000.
// Run: npx tsc -p . && node --expose-gc dist/bench/engine.js
import { loadPatternFiles, shippedPatternsDir } from '../src/patterns';
import { Matcher } from '../src/matcher';
import { Tracker } from '../src/tracker';
import { Ledger } from '../src/ledger';
import { sshdEntries } from './sshd-entries';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run with node --expose-gc');
  process.exit(1);
}

function throughput(): number {
  const files = loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns');
  const matcher = new Matcher(files);
  // The daemon's hot path: matcher -> tracker -> ledger (events to no listener).
  const ledger = new Ledger({ emit: () => {} });
  const tracker = new Tracker({ threshold: 1, expires: 3600, maxRecords: 100_000, isAllowed: () => false, bannedUntil: (a) => ledger.expiryOf(a) });
  const list = sshdEntries(1_000_000, 50_000);
  const t0 = process.hrtime.bigint();
  let decisions = 0;
  const now = 1_700_000_000_000;
  for (let i = 0; i < list.length; i++) {
    const m = matcher.match(list[i]);
    // As the daemon: a notify rule's match (sshd-logins, on for the bench) goes to no score.
    if (m && m.rule.action !== 'notify') {
      for (const d of tracker.observe(m, now + i)) {
        decisions++;
        if (d.action === 'ban') ledger.ban({ ...d, origin: 'rule' }, now + i);
      }
    }
    if (i % 1000 === 999) {
      tracker.prune(now + i);
      ledger.expire(now + i);
    }
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`throughput: ${list.length} entries in ${s.toFixed(2)} s = ${Math.round(list.length / s).toLocaleString('en')} entries/s ` +
    `(matches ${[...matcher.metrics.matchesByFile.values()].reduce((a, b) => a + b, 0)}, records ${tracker.size}, decisions ${decisions})`);
  return list.length / s;
}

function memory(n: number): void {
  const tracker = new Tracker({ threshold: 1e9, expires: 3600, maxRecords: n, isAllowed: () => false, bannedUntil: () => 0 });
  const pattern = { name: 'sshd.json#2', ban: 0, score: 0.2 };
  // Address strings are built from a message, as the matcher does (regex captures are slices).
  const re = /from (\S+) port/;
  gc!();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) {
    const a = i % 5 === 0 ? `2001:db8::${i.toString(16)}` : `${10 + (i >>> 24)}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const msg = `Failed password for invalid user x${i} from ${a} port 22 ssh2`;
    const ip = re.exec(msg)![1];
    tracker.observe({ address: ip, family: i % 5 === 0 ? 6 : 4, pattern }, 1_700_000_000_000 + i);
  }
  gc!();
  const after = process.memoryUsage().heapUsed;
  console.log(`memory: ${n.toLocaleString('en')} records (80% IPv4, 20% IPv6): ${((after - before) / 1048576).toFixed(1)} MiB heap, ` +
    `${Math.round((after - before) / n)} bytes per record`);
  if (tracker.size !== n) throw new Error('records lost');
}

// Five rounds, the median reported: a shared machine drifts, and the first round warms the JIT.
const rates = [0, 1, 2, 3, 4].map(() => throughput()).sort((a, b) => a - b);
console.log(`throughput median of 5: ${Math.round(rates[2]).toLocaleString('en')} entries/s`);
memory(100_000);
memory(1_000_000);
