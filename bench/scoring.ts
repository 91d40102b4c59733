// Scores per rule: observations per second through one Tracker (tallow's pool, as before rules),
// through Scoring with tallow's default rule, with a findtime rule, with a /64 ban-prefix rule,
// and with 8 rules each in its own pool; then memory per record with full findtime windows.
// Run: npx tsc -p . && node --expose-gc dist/bench/scoring.js
import { Ledger } from '../src/ledger';
import type { Rule } from '../src/rule';
import { ALL_PORTS } from '../src/scope';
import { defaultRule, Scoring } from '../src/scoring';
import { MAX_WINDOW, Tracker, type Observation } from '../src/tracker';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run with node --expose-gc');
  process.exit(1);
}
const N = 2_000_000;
const ADDRESSES = 50_000;
const T0 = 1_700_000_000_000;

function observations(): Observation[] {
  const out: Observation[] = [];
  const pattern = { name: 'sshd.json#2', score: 0.2, ban: 0 };
  for (let i = 0; i < ADDRESSES; i++) {
    const k = (i * 2654435761) >>> 0;
    const six = k % 7 === 0;
    out.push({ address: six ? `2001:db8:${(k % 4096).toString(16)}::${(i % 65536).toString(16)}` : `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`, family: six ? 6 : 4, pattern });
  }
  return out;
}

function run(name: string, observe: (m: Observation, now: number) => unknown, prune: (now: number) => unknown, obs: Observation[]): void {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    observe(obs[(i * 40503) % obs.length], T0 + i);
    if (i % 1000 === 999) prune(T0 + i);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${name.padEnd(34)} ${Math.round(N / s).toLocaleString('en').padStart(11)} observations/s`);
}

const rule = (name: string, o: Partial<Rule> = {}): Rule => ({ ...defaultRule({ threshold: 1, expires: 3600 }), name, pool: name, ...o });

function main(): void {
  const obs = observations();
  const ledger = new Ledger({ emit: () => {} });
  const opts = { threshold: 1, expires: 3600, maxRecords: 100_000, isAllowed: () => false, bannedUntil: (t: string, s: string) => ledger.expiryOf(t, s) };
  // Memory: 100,000 records with full windows (scores so small nothing is banned).
  const n = 100_000;
  for (const findtime of [0, 3600]) {
    const r = rule('mem', { findtime, threshold: 1e9 });
    const sc = new Scoring({ ...opts, maxRecords: n }, [r]);
    const tiny = { name: 'x#1', score: 1e-6, ban: 0 };
    gc!();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < n; i++) {
      const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      for (let k = 0; k < (findtime ? MAX_WINDOW + 4 : 1); k++) sc.observe({ address, family: 4, pattern: tiny }, r, T0 + k);
    }
    gc!();
    const per = (process.memoryUsage().heapUsed - before) / n;
    console.log(`memory, findtime ${String(findtime).padStart(4)}: ${Math.round(per)} bytes per record (${sc.size.toLocaleString('en')} records${findtime ? `, windows full at ${MAX_WINDOW} matches` : ''})`);
  }  gc!();

  const ban = (ds: ReturnType<Tracker['observe']>, now: number) => {
    for (const d of ds) if (d.action === 'ban') ledger.ban({ ...d, origin: 'rule' }, now);
  };
  for (let round = 0; round < 2; round++) {
    console.log(`round ${round + 1} (${N.toLocaleString('en')} observations of ${ADDRESSES.toLocaleString('en')} addresses, score 0.2, threshold 1)`);
    let t = new Tracker(opts);
    run('Tracker (one pool, as before)', (m, now) => ban(t.observe(m, now), now), (now) => t.prune(now), obs);
    const def = defaultRule({ threshold: 1, expires: 3600 });
    let s = new Scoring(opts, [def]);
    run('Scoring, default rule', (m, now) => ban(s.observe(m, def, now), now), (now) => s.prune(now), obs);
    const win = rule('win', { findtime: 600 });
    s = new Scoring(opts, [win]);
    run('Scoring, findtime 600 s', (m, now) => ban(s.observe(m, win, now), now), (now) => s.prune(now), obs);
    const net = rule('net', { prefix: { 4: 24, 6: 64 }, scope: { ...ALL_PORTS, id: 'net', net: true } });
    s = new Scoring(opts, [net]);
    run('Scoring, ban prefix /24 /64', (m, now) => ban(s.observe(m, net, now), now), (now) => s.prune(now), obs);
    const eight = Array.from({ length: 8 }, (_, i) => rule(`r${i}`));
    s = new Scoring(opts, eight);
    run('Scoring, 8 rules in 8 pools', (m, now) => ban(s.observe(m, eight[now % 8], now), now), (now) => s.prune(now), obs);
    t = new Tracker(opts);
  }

}

main();
