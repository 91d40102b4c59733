// 1,000,000 distinct attackers banned (issue 12, point 3): the daemon's own path at that size.
//   node dist/bench/million.js [--n 1000000] [--history sqlite] [--window 10000] [--set key=value]...
//        [--keep DIR] [--restart-only DIR] [--profile DIR] [--heap-snapshot FILE]   (root)
// --keep leaves the state directory in DIR; --restart-only DIR only restarts from it (the sets
// empty, as after a reboot); --profile writes the daemon child's .cpuprofile into DIR.
// In a throw-away network namespace (backend=auto: ipset+iptables there, maxelem 1048576 as
// shipped), with a temporary state_dir, the shipped tallow.conf otherwise (history=off unless
// --history says; the shipped default is sqlite):
// 1. Memory per entry (heap after gc, before and after inserting N): a tracker record of a banned
//    address (its address string included, as the matcher hands it over) and a ledger ban (the
//    address string is the record's, shared, as in the daemon).
// 2. The daemon (Daemon.start in this process, an empty journal directory): N attackers x 5
//    `Failed password` lines (score 0.2 each: the 5th bans) through Daemon.process() in batches of
//    5,000 entries, the event loop turning between batches as under the journal reader; attackers
//    come in windows of --window (10,000) whose lines are interleaved (with max_records=100000 an
//    attacker must reach the threshold before 100,000 others push it out). Measured: seconds to
//    decide every ban, until every ban is in the kernel, peak RSS (VmHWM), the firewall's check
//    and list, `tallow list` and `status` answers, a state save (time, bytes), stop.
// 3. Restart as after a reboot: the sets emptied, a new Daemon.start on the same state_dir:
//    load + restore (start() resolving) and the re-fill of the kernel sets, RSS after.
// Addresses: the 762 IPv4 documentation addresses, the rest from 2001:db8::/32.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon } from '../src/daemon';
import type { JournalEntry } from '../src/journal';
import { Ledger } from '../src/ledger';
import { Log } from '../src/log';
import { StateStore } from '../src/state';
import { Tracker, type BanDecision } from '../src/tracker';
import { BanSteps } from '../src/recidive';
import { manyAddresses } from '../test/real/firewall-addresses';

const ROOT = path.resolve(__dirname, '..', '..');
const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const N = Number(opt('--n', '1000000'));
const WINDOW = Number(opt('--window', '10000'));
const HISTORY = opt('--history', 'off');
const SETS = args.flatMap((a, i) => (a === '--set' ? [args[i + 1]] : []));
const BATCH = 5000;

const gc = (globalThis as { gc?: () => void }).gc;
const secs = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
const MiB = (b: number) => +(b / 1048576).toFixed(1);

function status(key: string): number {
  const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return Number(m?.[1] ?? NaN) * 1024;
}

/** Start a new peak (VmHWM) from now: clear_refs(5) resets the process's high-water mark. */
function resetPeak(): void {
  fs.writeFileSync('/proc/self/clear_refs', '5');
}

/** CPU seconds of this process (user + system). */
function cpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function kernelCount(): number {
  const out = execFileSync('ipset', ['list', '-t'], { encoding: 'utf8' });
  return [...out.matchAll(/Number of entries: (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

/**
 * Heap bytes per entry: tracker records of banned addresses, then ledger bans of the same
 * addresses, then the repeat-offender view's entry (recidive.ts keeps one per threshold ban for
 * recidive_window, 1 day, even with bantime_increment=off, the default).
 */
function perEntry(n: number): Record<string, number> {
  if (!gc) throw new Error('run with node --expose-gc');
  const list = manyAddresses(Math.min(n, 762), Math.max(0, n - 762));
  const ledger = new Ledger({ emit: () => {} });
  const tracker = new Tracker({ threshold: 1, expires: 3600, maxRecords: 100_000, isAllowed: () => false, bannedUntil: (a) => ledger.expiryOf(a) });
  const pattern = { name: 'sshd.json#2', score: 1, ban: 0 };
  const re = /from (\S+) port/;
  const decisions: BanDecision[] = new Array(n);
  gc();
  const h0 = process.memoryUsage().heapUsed;
  const now = Date.now();
  for (let i = 0; i < n; i++) {
    // The address as the matcher hands it over: a slice of the message.
    const address = re.exec(`Failed password for invalid user u from ${list[i].address} port 22 ssh2`)![1];
    const d = tracker.observe({ address, family: list[i].family, pattern }, now);
    decisions[i] = d[0] as BanDecision;
  }
  gc();
  const h1 = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) ledger.ban({ ...decisions[i], origin: 'rule' }, now);
  gc();
  const h2 = process.memoryUsage().heapUsed;
  const steps = new BanSteps({ increment: { kind: 'off' }, max: 604800, window: 86400, recidiveBans: 0, recidiveBantime: 604800 });
  const listener = steps.listener();
  for (const ban of ledger.values()) listener.handle([{ kind: 'ban', ban, cause: 'new' }]);
  gc();
  const h3 = process.memoryUsage().heapUsed;
  if (tracker.size !== n || ledger.size !== n || steps.size !== n) throw new Error(`lost entries: ${tracker.size} records, ${ledger.size} bans, ${steps.size} steps`);
  return {
    tracker_bytes_per_record: Math.round((h1 - h0) / n),
    ledger_bytes_per_ban: Math.round((h2 - h1) / n),
    recidive_bytes_per_ban: Math.round((h3 - h2) / n),
    tracker_mib: MiB(h1 - h0),
    ledger_mib: MiB(h2 - h1),
    recidive_mib: MiB(h3 - h2),
  };
}

function entry(address: string, i: number): JournalEntry {
  return {
    cursor: '',
    realtime: Date.now() * 1000,
    fields: { MESSAGE: `Failed password for invalid user u${i % 1000} from ${address} port ${1024 + (i % 60000)} ssh2`, _EXE: '/usr/sbin/sshd', _UID: '0', SYSLOG_IDENTIFIER: 'sshd' },
  };
}

interface Setup {
  state: string;
  opts: { configFile: string; explicitConfig: boolean; journalDir: string; dryRun: boolean; log: Log };
  logLines: () => number;
}

function setup(dir: string): Setup {
  const state = path.join(dir, 'state');
  const journal = path.join(dir, 'journal');
  const conf = path.join(dir, 'tallow.conf');
  for (const d of [state, path.join(dir, 'run')]) fs.mkdirSync(d, { mode: 0o700, recursive: true });
  fs.mkdirSync(journal, { recursive: true });
  fs.writeFileSync(conf, `${fs.readFileSync(path.join(ROOT, 'tallow.conf'), 'utf8')}\nstate_dir=${state}\nsocket=${path.join(dir, 'run', 'tallow.sock')}\nhistory=${HISTORY}\n${SETS.join('\n')}\n`);
  let lines = 0;
  const log = new Log({ journal: false, write: () => lines++ });
  return { state, opts: { configFile: conf, explicitConfig: true, journalDir: journal, dryRun: false, log }, logLines: () => lines };
}

/** Heap in use after a full collection, and VmRSS. */
function settled(out: Record<string, unknown>, name: string): void {
  gc?.();
  const m = process.memoryUsage();
  out[`${name}_heap_mib`] = `${MiB(m.heapUsed)} used, ${MiB(m.heapTotal)} committed, ${MiB(m.external)} external`;
  out[`${name}_rss_mib`] = MiB(status('VmRSS'));
}

/** Start, the flood, what a million costs the checks, lists and a save; stop (the last save). */
/** The i-th attacker: what manyAddresses() gives, one at a time (a list of a million is 100 MiB of heap). */
function attacker(i: number): string {
  if (i < 762) return `${['192.0.2', '198.51.100', '203.0.113'][Math.floor(i / 254)]}.${(i % 254) + 1}`;
  const j = i - 762;
  return `2001:db8:${(Math.floor(j / 0xffff) + 1).toString(16)}:${((j % 0xffff) + 1).toString(16)}::a`;
}

/**
 * Every state save in this process: count, seconds holding the event loop (snapshot or delta
 * encode), seconds in all, bytes written. Both kinds of save (a whole snapshot; an append to
 * state.log where the store has one), so the same bench runs on a tree with either.
 */
const saves = { n: 0, appends: 0, blocking: 0, total: 0, bytes: 0, maxBlocking: 0 };
type Writer = (this: StateStore, x: never) => Promise<void>;
const proto = StateStore.prototype as unknown as Record<string, Writer>;
for (const name of ['save', 'append']) {
  const real = proto[name];
  if (typeof real !== 'function') continue;
  proto[name] = function (this: StateStore, x: never) {
    const store = this as StateStore & { bytesWritten?: number; lastBytes: number };
    const before = store.bytesWritten;
    const t = process.hrtime.bigint();
    const p = real.call(this, x);
    const held = secs(t);
    saves.n++;
    if (name === 'append') saves.appends++;
    saves.blocking += held;
    saves.maxBlocking = Math.max(saves.maxBlocking, held);
    // A tree without bytesWritten rewrites the whole file each save: its size is what was written.
    return p.finally(() => {
      saves.total += secs(t);
      saves.bytes += before === undefined ? store.lastBytes : (store.bytesWritten ?? 0) - before;
    });
  };
}

async function flood(s: Setup, out: Record<string, unknown>): Promise<void> {
  let t = process.hrtime.bigint();
  const d = await Daemon.start(s.opts);
  out.start_s = secs(t);
  settled(out, 'after_start');

  // Windows of WINDOW attackers, each attacker's 5 lines interleaved with the others' in its window.
  resetPeak();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  t = process.hrtime.bigint();
  const c0 = cpu();
  let batch: JournalEntry[] = [];
  let lines = 0;
  const send = async () => {
    d.process(batch);
    batch = [];
    await new Promise((r) => setImmediate(r));
  };
  for (let w = 0; w < N; w += WINDOW) {
    const end = Math.min(N, w + WINDOW);
    for (let round = 0; round < 5; round++) {
      for (let i = w; i < end; i++) {
        batch.push(entry(attacker(i), lines++));
        if (batch.length === BATCH) await send();
      }
    }
  }
  if (batch.length) await send();
  out.lines = lines;
  out.decide_s = secs(t);
  out.decide_cpu_s = +(cpu() - c0).toFixed(2);
  out.bans_decided = d.ledger.size;
  await d.firewall.flush();
  out.all_in_kernel_s = secs(t);
  out.cpu_s = +(cpu() - c0).toFixed(2);
  loop.disable();
  out.longest_loop_stall_s = +(loop.max / 1e9).toFixed(2);
  out.peak_flood_rss_mib = MiB(status('VmHWM'));
  out.kernel = kernelCount();
  out.state_saves_during_flood = saves.n;
  out.state_saves_appended = saves.appends;
  out.state_saves_blocking_s = +saves.blocking.toFixed(2);
  out.state_save_longest_block_s = +saves.maxBlocking.toFixed(2);
  out.state_saves_total_s = +saves.total.toFixed(2);
  out.state_saves_mib_written = MiB(saves.bytes);
  out.records_evicted = d.metrics.recordsEvicted;
  settled(out, 'after_flood');

  t = process.hrtime.bigint();
  out.check_ok = await d.firewall.backend.check();
  out.check_s = secs(t);
  t = process.hrtime.bigint();
  out.firewall_listed = (await d.firewall.list()).length;
  out.firewall_list_s = secs(t);
  t = process.hrtime.bigint();
  out.tallow_list_bytes = JSON.stringify(await d.handle({ cmd: 'list' })).length;
  out.tallow_list_s = secs(t);
  t = process.hrtime.bigint();
  await d.handle({ cmd: 'status' });
  out.tallow_status_s = secs(t);

  // One save as the StateSaver makes it (snapshot + encode + write + fsync + rename), and the
  // part of it that holds the event loop (snapshot + encode, before the first await).
  const store = new StateStore(s.state);
  t = process.hrtime.bigint();
  const saving = store.save({ version: 3, saved: Date.now(), cursor: null, records: [...d.scoring.records()], bans: [...d.ledger.values()] });
  out.state_save_blocking_s = secs(t);
  await saving;
  out.state_save_s = secs(t);
  t = process.hrtime.bigint();
  await d.stop();
  out.stop_s = secs(t); // includes the last save
  out.state_bytes = fs.statSync(path.join(s.state, 'state.json')).size;
  out.state_log_bytes = fs.existsSync(path.join(s.state, 'state.log')) ? fs.statSync(path.join(s.state, 'state.log')).size : 0;
  out.state_mib_written_in_all = MiB(saves.bytes); // the flood's saves, the one above, the stop's
  out.records = d.scoring.size;
  out.peak_rss_mib = MiB(status('VmHWM')); // the flood, the lists, the saves, the stop
}

/** Restart as after a reboot: the kernel sets empty, everything in the state file. */
async function restart(s: Setup, out: Record<string, unknown>): Promise<void> {
  for (const set of ['tallow', 'tallow6']) spawnSync('ipset', ['flush', set]); // absent in a fresh namespace
  gc?.();
  let t = process.hrtime.bigint();
  out.state_loaded_bans = new StateStore(s.state).load().state?.bans.length ?? 0;
  out.state_load_s = secs(t);
  gc?.();
  resetPeak();
  t = process.hrtime.bigint();
  const d = await Daemon.start(s.opts);
  out.restart_start_s = secs(t); // load + restore into tracker and ledger + firewall set-up and listing
  await d.firewall.flush();
  out.restart_refilled_s = secs(t); // ... + every ban back into the kernel
  out.restart_bans = d.ledger.size;
  out.peak_restart_rss_mib = MiB(status('VmHWM'));
  out.restart_kernel = kernelCount();
  settled(out, 'after_restart');
  // What the heap holds after a restart (analysed by hand: a snapshot at 1,000,000 is gigabytes).
  if (opt('--heap-snapshot', '')) (require('node:v8') as typeof import('node:v8')).writeHeapSnapshot(opt('--heap-snapshot', ''));
  await d.stop();
}

async function daemonRun(dir: string): Promise<Record<string, unknown>> {
  const s = setup(dir);
  const out: Record<string, unknown> = { n: N, history: HISTORY, settings: SETS.join(' ') || 'as shipped' };
  if (!args.includes('--restart-only')) {
    await flood(s, out);
    settled(out, 'after_stop');
  }
  await restart(s, out);
  out.log_lines = s.logLines();
  return out;
}

async function child(): Promise<void> {
  const r = args.includes('--memory') ? perEntry(N) : await daemonRun(opt('--dir', ''));
  process.stdout.write(JSON.stringify(r) + '\n');
  setImmediate(() => process.exit(0));
}

async function runChild(argv: string[]): Promise<Record<string, unknown>> {
  const c = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  c.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number | null>((r) => c.on('exit', r));
  if (code !== 0) throw new Error(`child exited ${code}: ${out.slice(-2000)}`);
  return JSON.parse(out.trim().split('\n').pop() ?? '') as Record<string, unknown>;
}

async function parent(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (a network namespace with ipset)');
  const given = opt('--restart-only', '') || opt('--keep', '');
  const dir = given ? path.resolve(given) : fs.mkdtempSync(path.join(os.tmpdir(), `tallow-million-${process.pid}-`));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const profile = opt('--profile', '') ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(opt('--profile', ''))] : [];
  const ns = `tallow-million-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    // Each part in a fresh process, so that one's garbage is not the other's RSS.
    const mem = args.includes('--restart-only') ? {} : await runChild([process.execPath, '--expose-gc', __filename, '--child', '--memory', ...args]);
    const run = await runChild(['ip', 'netns', 'exec', ns, process.execPath, '--expose-gc', ...profile, __filename, '--child', '--dir', dir, ...args]);
    for (const [k, v] of Object.entries({ ...mem, ...run })) console.log(`${k.padEnd(26)} ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(2) : v}`);
  } finally {
    execFileSync('ip', ['netns', 'delete', ns]);
    if (!given) fs.rmSync(dir, { recursive: true, force: true });
  }
}

(args.includes('--child') ? child() : parent()).catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
