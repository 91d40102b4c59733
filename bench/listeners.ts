// What each listener costs per ban: 10,000 bans through the ledger and the dispatcher, with the
// firewall queue alone (a backend that only counts), then adding one listener at a time (log to
// /dev/null, the state file in a temporary directory, the metrics counters). CPU time of this
// process per ban, median of RUNS runs. Run: npm run build && node dist/bench/listeners.js
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Dispatcher, type Listener } from '../src/events';
import { Firewall } from '../src/firewall';
import type { BanEntry, FirewallBackend, KernelBan } from '../src/firewall/backend';
import { Ledger } from '../src/ledger';
import { firewallListener } from '../src/listeners/firewall';
import { logListener } from '../src/listeners/log';
import { metricsListener } from '../src/listeners/metrics';
import { StateListener, type StateSource } from '../src/listeners/state';
import { Log } from '../src/log';
import { Metrics } from '../src/metrics';
import { StateStore } from '../src/state';

const BANS = 10_000;

/** The state file of a ledger alone (no records). */
function stateSource(l: Ledger): StateSource {
  return { cursor: () => null, scoring: { records: () => [][Symbol.iterator](), get: () => undefined, trackChanges: () => {}, takeChanged: () => [] }, ledger: l };
}
const RUNS = 5;

class CountingBackend implements FirewallBackend {
  readonly name = 'count';
  elements = 0;
  describe() {
    return 'count';
  }
  async setup() {}
  async check() {
    return true;
  }
  async apply(add: BanEntry[]) {
    this.elements += add.length;
  }
  async list(): Promise<KernelBan[]> {
    return [];
  }
}

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const devnull = fs.openSync('/dev/null', 'w');

async function run(extra: (ledger: Ledger, metrics: Metrics, dir: string) => Listener[]): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-bench-listeners-'));
  try {
    const metrics = new Metrics();
    const backend = new CountingBackend();
    const fw = new Firewall(backend, quiet, { checkIntervalMs: 600_000, held: () => ledger.values() });
    await fw.start();
    let events!: Dispatcher;
    const ledger = new Ledger({ emit: (e) => events.emit(e) });
    events = new Dispatcher([firewallListener(fw), ...extra(ledger, metrics, dir)], quiet);
    const t0 = process.cpuUsage();
    // As a flood brings them: 100 bans per journal batch, a tick apart.
    for (let i = 0; i < BANS; i += 100) {
      const now = Date.now();
      for (let j = i; j < i + 100; j++) {
        const address = `2001:db8::${(j + 1).toString(16)}`;
        ledger.ban({ address, family: 6, seconds: 3600, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5 }, now);
      }
      await new Promise((r) => setImmediate(r));
    }
    await events.flush(60_000);
    await events.close();
    const cpu = process.cpuUsage(t0);
    if (backend.elements !== BANS) throw new Error(`kernel got ${backend.elements} of ${BANS}`);
    return (cpu.user + cpu.system) / BANS;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const log = new Log({ journal: false, write: (_l, line) => fs.writeSync(devnull, line + '\n') });
  const cases: [string, (l: Ledger, m: Metrics, dir: string) => Listener[]][] = [
    ['firewall queue alone', () => []],
    ['+ log', () => [logListener(log)]],
    ['+ metrics', (_l, m) => [metricsListener(m)]],
    ['+ state file', (l, m, dir) => [new StateListener(new StateStore(dir), stateSource(l), m, () => {}, null)]],
    ['all four', (l, m, dir) => [logListener(log), metricsListener(m), new StateListener(new StateStore(dir), stateSource(l), m, () => {}, null)]],
  ];
  // Warm every path first, then measure the cases interleaved (a shared machine drifts).
  for (const [, make] of cases) for (let r = 0; r < 2; r++) await run(make);
  const xs: number[][] = cases.map(() => []);
  for (let r = 0; r < RUNS; r++) for (let c = 0; c < cases.length; c++) xs[c].push(await run(cases[c][1]));
  const base = median(xs[0]);
  console.log(`${BANS.toLocaleString('en')} bans through ledger -> dispatcher -> listeners; CPU µs per ban, median of ${RUNS}`);
  cases.forEach(([name], c) => {
    const m = median(xs[c]);
    console.log(`  ${name.padEnd(22)} ${m.toFixed(2).padStart(7)} µs/ban  (${m - base >= 0 ? '+' : ''}${(m - base).toFixed(2)} over the queue alone)`);
  });
}

void main();
