// Each module's share of the daemon's resident memory (issue 12, idle RSS).
//   node dist/bench/rss-modules.js [--runs N] [--alone] [ENTRY...]
// ENTRY: files (dist/src/...) or packages to start from; default: what `tallow` with the shipped
// tallow.conf loads (cli, service, the ipset backend, the SQLite history, and the two addons it
// opens at start: tallow.node with libsystemd, better-sqlite3's).
// 1. "Own share": a child records the order in which ENTRY's modules finish loading (dependencies
//    first); fresh children then require them one by one in that order and read VmRSS after
//    each, so each module is charged only what it adds itself. Median of N children.
// 2. With --alone: each module required alone in a fresh node (itself + everything it pulls in).
// Figures are VmRSS (KiB) over an empty node measured the same way; RssFile is given apart
// (shared-library and code pages, e.g. an addon's .so).
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(name);
  if (i < 0) return dflt;
  const v = argv[i + 1];
  argv.splice(i, 2);
  return v;
};
const RUNS = Number(opt('--runs', '5'));
const ALONE = argv.includes('--alone') ? (argv.splice(argv.indexOf('--alone'), 1), true) : false;
const ENTRIES = argv.length
  ? argv.map((a) => (a.startsWith('.') || a.startsWith('/') || a.startsWith('dist/') ? path.resolve(ROOT, a) : a))
  : ['dist/src/cli.js', 'dist/src/service.js', 'dist/src/firewall/ipset.js', 'dist/src/history/sqlite.js', 'build/Release/tallow.node', 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'].map((f) => path.join(ROOT, f));

// The first JavaScript file a process compiles costs ~1 MiB of the node binary's own pages
// (loader and compiler code), whatever the file: charged to the baseline, not to the first module.
const WARM = `require(${JSON.stringify(path.join(__dirname, 'rss-warm.js'))});`;

// Runs in the child: read /proc/self/status (KiB).
const STATUS = `const st = () => { const s = require('fs').readFileSync('/proc/self/status', 'utf8');
  const g = (k) => Number(new RegExp(k + ':\\\\s+(\\\\d+)').exec(s)[1]);
  return [g('VmRSS'), g('RssFile')]; };`;

function node(script: string): string {
  const r = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return r.stdout;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const short = (f: string) => f.replace(ROOT + '/', '').replace(/^(\/.*)?node_modules\//, 'npm:');

/** Module files in the order they finish loading (dependencies before dependants). */
function loadOrder(entries: string[]): string[] {
  const out = node(`const M = require('module'); const done = [];
    const orig = M.prototype.require;
    M.prototype.require = function (id) {
      const r = orig.apply(this, arguments);
      try { const f = M._resolveFilename(id, this); if (f.startsWith('/') && !done.includes(f)) done.push(f); } catch {}
      return r;
    };
    for (const e of ${JSON.stringify(entries)}) { require(e); const f = require.resolve(e); if (!done.includes(f)) done.push(f); }
    process.stdout.write(JSON.stringify(done));`);
  return JSON.parse(out) as string[];
}

/** VmRSS and RssFile after each require, in one fresh process. */
function stepwise(files: string[]): [number, number][] {
  const out = node(`${STATUS} ${WARM} const r = [st()];
    for (const f of ${JSON.stringify(files)}) { require(f); r.push(st()); }
    process.stdout.write(JSON.stringify(r));`);
  return JSON.parse(out) as [number, number][];
}

function alone(file: string | null): [number, number] {
  const out = node(`${STATUS} ${WARM} ${file ? `require(${JSON.stringify(file)});` : ''} process.stdout.write(JSON.stringify(st()));`);
  return JSON.parse(out) as [number, number];
}

const mib = (kib: number) => (kib / 1024).toFixed(2);

function main(): void {
  const files = loadOrder(ENTRIES);
  const runs = Array.from({ length: RUNS }, () => stepwise(files));
  const base = median(runs.map((r) => r[0][0]));
  const baseFile = median(runs.map((r) => r[0][1]));
  console.log(`empty node: VmRSS ${mib(base)} MiB (RssFile ${mib(baseFile)}); ${files.length} modules from ${ENTRIES.map(short).join(', ')}; median of ${RUNS} runs`);
  console.log('own share, in load order (MiB of VmRSS added by the module itself; RssFile part):');
  const rows: { f: string; rss: number; file: number }[] = [];
  for (let i = 0; i < files.length; i++) {
    rows.push({
      f: short(files[i]),
      rss: median(runs.map((r) => r[i + 1][0] - r[i][0])),
      file: median(runs.map((r) => r[i + 1][1] - r[i][1])),
    });
  }
  // Packages summed: one line each.
  const groups = new Map<string, { rss: number; file: number; n: number }>();
  for (const r of rows) {
    const key = r.f.startsWith('npm:') ? r.f.split('/')[0] : r.f;
    const g = groups.get(key) ?? { rss: 0, file: 0, n: 0 };
    g.rss += r.rss;
    g.file += r.file;
    g.n++;
    groups.set(key, g);
  }
  for (const [k, g] of groups) console.log(`  ${k.padEnd(34)} ${mib(g.rss).padStart(6)}  (file ${mib(g.file)})${g.n > 1 ? ` ${g.n} files` : ''}`);
  const total = median(runs.map((r) => r[r.length - 1][0]));
  console.log(`all loaded: VmRSS ${mib(total)} MiB, ${mib(total - base)} over an empty node`);

  if (ALONE) {
    const empty = median(Array.from({ length: RUNS }, () => alone(null)[0]));
    console.log(`\neach required alone (with what it pulls in), MiB over an empty node (${mib(empty)}):`);
    for (const f of files) {
      const v = median(Array.from({ length: RUNS }, () => alone(f)[0]));
      console.log(`  ${short(f).padEnd(34)} ${mib(v - empty).padStart(6)}`);
    }
  }
}

main();
