// bench/journal-read: entries per second read from a 1,000,000-entry journal (3 fields each)
//   - through src/journal.ts (Journal.batches(), the daemon's path),
//   - in C++ alone (bench/journal-read-floor.cc, the floor),
//   - through `journalctl -o json` + JSON.parse line by line (what journalctl-based readers do).
// Each measurement runs in a fresh process, 3 runs each, medians reported.
// Usage: node dist/bench/journal-read.js [--entries N] [--runs R]
// The journal is built once with systemd-journal-remote and cached under /tmp (not in git).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { Journal } from '../src/journal';

const FIELDS = ['MESSAGE', '_EXE', '_PID'];
const CACHE = '/tmp/tallow-bench-journal-read';
const REMOTE = ['/lib/systemd/systemd-journal-remote', '/usr/lib/systemd/systemd-journal-remote'].find((p) => fs.existsSync(p));

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Streams generated export format into systemd-journal-remote (sshd-like lines). */
async function buildJournal(dir: string, entries: number): Promise<void> {
  if (!REMOTE) throw new Error('systemd-journal-remote is missing: install the Debian package systemd-journal-remote');
  fs.mkdirSync(dir, { recursive: true });
  const child = spawn(REMOTE, ['-o', path.join(dir, 'bench.journal'), '-'], { stdio: ['pipe', 'ignore', 'inherit'] });
  const done = new Promise<number | null>((r) => child.on('close', r));
  const t0 = 1_700_000_000_000_000;
  const chunk: string[] = [];
  for (let i = 0; i < entries; i++) {
    chunk.push(
      `__REALTIME_TIMESTAMP=${t0 + i * 1000}\n__MONOTONIC_TIMESTAMP=${1_000_000 + i * 1000}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n` +
        `MESSAGE=Failed password for invalid user user${i % 997} from 203.0.113.${i % 251} port ${1024 + (i % 60000)} ssh2\n` +
        `_EXE=/usr/sbin/sshd\n_PID=${1000 + (i % 30000)}\n\n`,
    );
    if (chunk.length === 10000 || i === entries - 1) {
      if (!child.stdin.write(chunk.join(''))) await new Promise((r) => child.stdin.once('drain', r));
      chunk.length = 0;
    }
  }
  child.stdin.end();
  const code = await done;
  if (code !== 0) throw new Error(`systemd-journal-remote exited ${code}`);
}

function countEntries(dir: string): number {
  const j = Journal.open({ directory: dir, fields: ['_PID'], batchSize: 10000 });
  let n = 0;
  for (let b = j.readBatch(); b.length > 0; b = j.readBatch()) n += b.length;
  j.close();
  return n;
}

// --- the three readers, each run as `node journal-read.js --child KIND DIR N` ------------

async function childTs(dir: string, n: number): Promise<number> {
  const t = process.hrtime.bigint();
  const j = Journal.open({ directory: dir, fields: FIELDS, batchSize: 5000 });
  j.seek({ at: 'head' });
  let got = 0;
  let bytes = 0;
  for await (const batch of j.batches()) {
    for (const e of batch) bytes += e.fields.MESSAGE.length + e.cursor.length;
    got += batch.length;
    if (got >= n) break;
  }
  j.close();
  if (got !== n || bytes === 0) throw new Error(`read ${got} entries, expected ${n}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function childJournalctl(dir: string, n: number): Promise<number> {
  const t = process.hrtime.bigint();
  const p = spawn('journalctl', ['--no-pager', '-o', 'json', '-D', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let got = 0;
  let bytes = 0;
  for await (const line of readline.createInterface({ input: p.stdout, crlfDelay: Infinity })) {
    const e = JSON.parse(line) as Record<string, unknown>;
    const fields: Record<string, string> = {};
    for (const f of FIELDS) if (typeof e[f] === 'string') fields[f] = e[f] as string;
    bytes += fields.MESSAGE.length + String(e.__CURSOR).length + Number(e.__REALTIME_TIMESTAMP) * 0;
    got++;
  }
  if (got !== n || bytes === 0) throw new Error(`journalctl gave ${got} entries, expected ${n}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

function buildFloor(): string {
  const src = path.resolve(__dirname, '..', '..', 'bench', 'journal-read-floor.cc');
  const exe = path.join(CACHE, 'journal-read-floor');
  if (!fs.existsSync(exe) || fs.statSync(exe).mtimeMs < fs.statSync(src).mtimeMs) {
    const flags = execFileSync('pkg-config', ['--cflags', '--libs', 'libsystemd'], { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean);
    execFileSync('g++', ['-O2', '-std=c++17', '-o', exe, src, ...flags], { stdio: 'inherit' });
  }
  return exe;
}

function runOnce(kind: 'ts' | 'floor' | 'journalctl', dir: string, n: number, floorExe: string): number {
  const r =
    kind === 'floor'
      ? spawnSync(floorExe, [dir, String(n)], { encoding: 'utf8' })
      : spawnSync(process.execPath, [__filename, '--child', kind, dir, String(n)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${kind} run failed (${r.status ?? r.signal}): ${r.stderr}`);
  const ms = Number(kind === 'floor' ? r.stdout.split(' ')[1] : r.stdout.trim());
  if (!(ms > 0)) throw new Error(`${kind}: bad output ${r.stdout}`);
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const [kind, dir, n] = process.argv.slice(3);
    const ms = kind === 'ts' ? await childTs(dir, Number(n)) : await childJournalctl(dir, Number(n));
    console.log(ms.toFixed(1));
    return;
  }
  const entries = arg('--entries', 1_000_000);
  const runs = arg('--runs', 3);
  const dir = path.join(CACHE, `journal-${entries}`);
  fs.mkdirSync(CACHE, { recursive: true });
  if (!fs.existsSync(dir) || countEntries(dir) !== entries) {
    fs.rmSync(dir, { recursive: true, force: true });
    const t = Date.now();
    process.stdout.write(`building ${dir} with ${entries} entries ... `);
    await buildJournal(dir, entries);
    console.log(`${((Date.now() - t) / 1000).toFixed(1)} s`);
  }
  const files = fs.readdirSync(dir);
  const size = files.reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
  console.log(`journal: ${entries} entries, ${files.length} file(s), ${(size / 2 ** 20).toFixed(0)} MiB; fields read: cursor, realtime, ${FIELDS.join(', ')}`);
  const floorExe = buildFloor();
  const results: Record<string, number> = {};
  for (const kind of ['floor', 'ts', 'journalctl'] as const) {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push(runOnce(kind, dir, entries, floorExe));
    results[kind] = median(times);
    const label = { floor: 'C++ floor (libsystemd)', ts: 'src/journal.ts batches()', journalctl: 'journalctl -o json + JSON.parse' }[kind];
    console.log(
      `${label.padEnd(34)} median ${results[kind].toFixed(0).padStart(6)} ms  ${Math.round((entries / results[kind]) * 1000).toLocaleString('en-US').padStart(10)} entries/s  (runs: ${times.map((x) => x.toFixed(0)).join(', ')} ms)`,
    );
  }
  console.log(`ratio TS / C++ floor: ${(results.ts / results.floor).toFixed(2)}x the time (target <= 1.5x)`);
  console.log(`ratio journalctl pipe / TS: ${(results.journalctl / results.ts).toFixed(2)}x the time (target >= 5x)`);
}

main().catch((e: Error) => {
  console.error(`journal-read bench: ${e.message}`);
  process.exit(1);
});
